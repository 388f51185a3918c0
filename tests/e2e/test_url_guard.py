"""The outbound URL guard of web-download (reference §11.3, issue 3 §5): deny-by-default for loopback,
link-local/metadata, private and other special ranges, encoded IP forms, other schemes and ports;
redirects re-checked; the size cap enforced on the stream.

Refusals of the URI itself happen at `POST /import` (400 "does not pass filtering", no task, image
still queued) on the shared server, which has no allow flags. Redirect and size checks need an origin
the server may reach: those use servers started with `--import-allow-cidr 127.0.0.1/32
--import-allow-port <origin port>`, and canary HTTP servers on forbidden addresses prove that
nothing was ever fetched from them."""

import re
import signal

import pytest

from conftest import (ImagedServer, Origin, Raw, assert_data_facts, assert_nothing_kept, digests, random_bytes,
                      tasks_of, unique, wait_status, wait_task_finished)

MiB = 1 << 20

FORBIDDEN = [
    "http://127.0.0.1/x",
    "http://127.0.0.1:80/x",
    "http://localhost/x",
    "http://localhost./x",
    "http://LOCALHOST/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/openstack/latest/meta_data.json",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://100.64.0.1/x",
    "http://0.0.0.0/x",
    "http://[::1]/x",
    "http://[::]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:7f00:1]/x",
    "http://[fe80::1]/x",
    "http://[fd00::1]/x",
    "file:///etc/passwd",
    "ftp://example.com/x",
    "gopher://127.0.0.1:70/_x",
    "http://2130706433/x",
    "http://0x7f000001/x",
    "http://0x7f.0.0.1/x",
    "http://0177.0.0.1/x",
    "http://017700000001/x",
    "http://127.1/x",
    "http://127.0.1/x",
    "http://0/x",
    "http://user:pw@127.0.0.1/x",
    "http://example.invalid:8080/x",
    "http://93.184.215.14:8080/x",    # a public address, but a port outside 80/443
    "http://93.184.215.14:22/x",
    "not a url",
    "http:///x",
]


@pytest.mark.parametrize("uri", FORBIDDEN)
def test_forbidden_uri_refused_at_import(raw, uri):
    alice = raw["alice"]
    iid = alice.create(name=unique("guard"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 400, f"{uri}: expected 400, got {r.status_code}: {r.text[:300]}"
    assert "does not pass filtering" in r.text, r.text
    image = alice.get(f"/v2/images/{iid}").json()
    assert image["status"] == "queued", image
    assert "os_glance_import_task" not in image and "os_glance_failed_import" not in image
    assert tasks_of(alice, iid) == []


def test_guarded_server_refuses_the_allowed_origin_itself(raw, origin):
    """Without allow flags even the test's own origin (loopback, odd port) is refused."""
    alice = raw["alice"]
    uri = origin.serve(f"/{unique('nope')}.raw", b"never fetched")
    iid = alice.create(name=unique("guard-origin"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 400 and "does not pass filtering" in r.text
    assert uri.removeprefix(origin.url("")) not in origin.hits


# ---------------------------------------------------------------------------------------------
# with 127.0.0.1/32 and the origin's port allowed


@pytest.fixture(scope="module")
def canaries(origin):
    """Forbidden targets that record any request: 127.0.0.2 on the allowed port (outside the
    allowed CIDR) and 127.0.0.1 on another port (port not allowed)."""
    other_addr = Origin("127.0.0.2", origin.port)
    other_port = Origin("127.0.0.1", 0)
    for c in (other_addr, other_port):
        c.serve("/secret", b"canary data")
    yield other_addr, other_port
    other_addr.close()
    other_port.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, origin):
    """Allows the origin (127.0.0.1/32, its port) and caps images at 20 MiB."""
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-guard"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--image-size-cap", str(20 * MiB),
                       "--task-lease-seconds", "3")
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


def import_fails(srv, uri: str, why: str) -> dict:
    """Imports `uri`; asserts the task fails with a message matching `why`, the image is queued again
    and nothing is stored. Returns the failed task."""
    alice = Raw(srv.url, "alice")
    iid = alice.create(name=unique("guard-task"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 202, r.text
    task = wait_task_finished(alice, iid, timeout=120)
    assert task["status"] == "failure", task
    assert re.search(why, task["message"], re.I), f"task message does not say /{why}/: {task['message']}"
    image = wait_status(alice, iid, "queued", timeout=30)
    assert image["size"] is None and image["checksum"] is None, image
    assert "os_glance_failed_import" in image and "os_glance_import_task" not in image
    assert_nothing_kept(srv, iid)
    return task


def test_allowed_origin_and_allowed_redirect_work(guarded, origin):
    """The positive control: the allowed origin, also through two redirects that stay on it."""
    alice = Raw(guarded.url, "alice")
    data = random_bytes(MiB + 5, 201)
    name = unique("ok")
    final = origin.serve(f"/{name}.raw", data)
    hop2 = origin.redirect(f"/{name}-hop2", final, code=301)
    hop1 = origin.redirect(f"/{name}-hop1", hop2, code=307)
    iid = alice.create(name=unique("guard-ok"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": hop1}})
    assert r.status_code == 202, r.text
    image = wait_status(alice, iid, ["active", "queued"], timeout=120)
    assert_data_facts(image, digests(data))
    assert [t["status"] for t in tasks_of(alice, iid)] == ["success"]


def test_allowed_server_still_refuses_other_addresses_and_ports(guarded, canaries):
    alice = Raw(guarded.url, "alice")
    for canary in canaries:
        uri = canary.url("/secret")
        iid = alice.create(name=unique("guard-other"), disk_format="raw", container_format="bare")["id"]
        r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 400 and "does not pass filtering" in r.text, (uri, r.status_code, r.text[:200])
        assert canary.hits == []


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://[::1]:{port}/secret",
    "http://10.1.2.3:{port}/secret",
    "http://2130706433:{port}/secret",
    "file:///etc/passwd",
])
def test_redirect_to_forbidden_target_fails_the_task(guarded, origin, target):
    target = target.format(port=origin.port)
    uri = origin.redirect(f"/{unique('redir')}", target)
    import_fails(guarded, uri, r"filtering|redirect|not allowed|forbidden")


@pytest.mark.parametrize("which", ["other address", "other port"])
def test_redirect_to_canary_never_reaches_it(guarded, origin, canaries, which):
    canary = canaries[0] if which == "other address" else canaries[1]
    uri = origin.redirect(f"/{unique('redir-canary')}", canary.url("/secret"), code=302)
    import_fails(guarded, uri, r"filtering|redirect|not allowed|forbidden")
    assert canary.hits == [], f"the forbidden target was fetched: {canary.hits}"


def test_redirect_loop_fails_the_task(guarded, origin):
    path = f"/{unique('loop')}"
    uri = origin.redirect(path, origin.url(path))
    import_fails(guarded, uri, r"redirect")
    assert 1 < origin.hits.count(path) <= 20


def test_endless_body_over_size_cap_fails_the_task(guarded, origin):
    uri = origin.endless(f"/{unique('endless')}")
    import_fails(guarded, uri, r"cap|too large|exceed|limit")


def test_announced_length_over_size_cap_fails_the_task(guarded, origin):
    uri = origin.serve(f"/{unique('big')}.raw", random_bytes(20 * MiB + 1, 203))
    import_fails(guarded, uri, r"cap|too large|exceed|limit")
