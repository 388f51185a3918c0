"""The Danube Cloud front-end driven by the vendor's own client (`esdc-api` from PyPI, `esdc_api.Client`): login and
API keys, imports from IMGAPI manifests served by a local HTTP server, task polling, the three list forms, show,
update, delete, VM usage, snapshot → image, imagestores (a second imaged as the repository), every error case of
the reference, and the same catalog through the OpenStack API."""

import hashlib
import json
import math
import re
import subprocess
import time
import uuid

import pytest
import requests
from esdc_api import Client
from esdc_api.exceptions import ClientError, TaskFailure

from conftest import ImagedServer, Raw, imaged_bin, random_bytes, wait_for

PASSWORDS = {"dn-alice": "alice-danube-password", "dn-bob": "bob-danube-password", "dn-admin": "admin-danube-password"}
MiB = 1 << 20


def create_account(srv: ImagedServer, name: str, project: str, role: str):
    out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                          "--password-stdin", "--data-dir", str(srv.data_dir)],
                         input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def api_key(srv: ImagedServer, name: str) -> str:
    out = subprocess.run([str(imaged_bin()), "account", "key", "create", name, "--data-dir", str(srv.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key_id = re.search(r"^key id: (imk_[0-9a-f]+)$", out.stdout, re.M).group(1)
    secret = re.search(r"^secret: (\S+)$", out.stdout, re.M).group(1)
    return f"{key_id}:{secret}"


def login(srv: ImagedServer, who: str) -> Client:
    es = Client(api_url=srv.url + "/api")
    r = es.login(who, PASSWORDS[who])
    assert r.ok and re.fullmatch(r"[0-9a-f]{40}", r.content.result["token"]), r.content
    return es


def wait_task(es: Client, content, timeout: float = 60):
    """The client never polls by itself: poll `/task/<id>/status` until the task leaves PENDING/STARTED."""
    deadline = time.time() + timeout
    while content.task_status in ("PENDING", "STARTED"):
        assert time.time() < deadline, f"task {content.task_id} still {content.task_status}"
        time.sleep(0.2)
        content = es.get("/task/%s/status" % content.task_id).content
    return content


def manifest_for(data: bytes, *, image_uuid: str | None = None, name: str = "tiny", version: str = "1.2", files=None, **extra) -> dict:
    m = {"v": 2, "uuid": image_uuid or str(uuid.uuid4()), "name": name, "version": version, "type": "zvol", "os": "linux",
         "image_size": 64, "description": "Tiny disk", "tags": {"erigones": ["web"], "resize": True},
         "published_at": "2026-11-30T10:00:00Z",
         "files": files if files is not None else [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
    m.update(extra)
    return m


def serve_image(origin, data: bytes, **kw) -> tuple[str, dict]:
    """An IMGAPI-style pair on the origin: `/imgs/<uuid>` (manifest) and `/imgs/<uuid>/file` (bytes)."""
    m = manifest_for(data, **kw)
    origin.serve(f"/imgs/{m['uuid']}", json.dumps(m).encode(), content_type="application/json")
    origin.serve(f"/imgs/{m['uuid']}/file", data)
    return origin.url(f"/imgs/{m['uuid']}"), m


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    """A second imaged: the imagestore (IMGAPI repository) of the first."""
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-danube-peer"), "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", "any")
    srv.start()
    create_account(srv, "dn-admin", "admin", "admin")
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def dn(tmp_path_factory, origin, peer):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-danube"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--import-allow-port", str(peer.port),
                       "--danube-snapshot-url", f"http://127.0.0.1:{origin.port}/snap/{{vm}}/{{snap}}/disk{{disk_id}}",
                       "--danube-imagestore", f"peer={peer.url}/imgapi/", "--task-lease-seconds", "3")
    srv.start()
    # dn-alice shares the project of the OpenStack token `alicetok` (p-alice): both APIs see one tenant.
    for name, project, role in [("dn-alice", "p-alice", "member"), ("dn-bob", "p-bob", "member"), ("dn-admin", "admin", "admin")]:
        create_account(srv, name, project, role)
    yield srv
    srv.kill()


def test_danube_client_lifecycle(dn, origin):
    es = login(dn, "dn-alice")
    data = random_bytes(2 * MiB + 5, 71)
    manifest_url, m = serve_image(origin, data)

    # stream=False: the plain 201 PENDING answer, polled (esdc-api streams by default: test_danube_round2)
    r = es.post("/image/dn-tiny", manifest_url=manifest_url, dc="main", access=3, stream=False)
    assert r.status_code == 201 and r.task_id.startswith("1e1u1-") and r.version == "4.6" and r.dc == "main"
    c = r.content
    assert (c.task_status, c.result) == ("PENDING", None)
    done = wait_task(es, c)
    assert done.task_status == "SUCCESS" and done.result["returncode"] == 0 and m["uuid"] in done.result["message"]
    assert es.get("/task/%s/done" % c.task_id).content.result == {"task_id": c.task_id, "done": True}

    shown = es.get("/image/dn-tiny").content.result
    assert shown == {"dc_bound": True, "name": "dn-tiny", "uuid": m["uuid"], "alias": "dn-tiny", "version": "1.2",
                     "owner": "dn-alice", "access": 3, "desc": "Tiny disk", "ostype": 1, "size": 64, "resize": True,
                     "deploy": False, "tags": ["web"], "status": 1, "created": shown["created"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["created"])
    assert es.get("/image/dn-tiny", extended=True).content.result["dcs"] == ["main"]

    # the same image through the OpenStack API: same id, same bytes
    alice = Raw(dn.url, "alice")
    os_view = alice.get(f"/v2/images/{m['uuid']}").json()
    assert (os_view["name"], os_view["status"], os_view["checksum"]) == ("dn-tiny", "active", hashlib.md5(data).hexdigest())
    assert alice.get(f"/v2/images/{m['uuid']}/file").content == data

    # an image made through OpenStack is visible through Danube
    made = alice.post("/v2/images", json={"name": "os-made", "disk_format": "raw", "container_format": "bare"}).json()
    assert alice.put(f"/v2/images/{made['id']}/file", data=b"z" * (3 * MiB),
                     headers={"Content-Type": "application/octet-stream"}).status_code == 204
    os_made = es.get("/image/os-made").content.result
    assert (os_made["uuid"], os_made["status"], os_made["size"], os_made["access"]) == (made["id"], 1, 3, 3)

    # the three list forms and order_by
    time.sleep(1.1)
    manifest2, m2 = serve_image(origin, random_bytes(MiB, 72), version="2.0")
    assert wait_task(es, es.post("/image/dn-alpha", manifest_url=manifest2, dc="main").content).task_status == "SUCCESS"
    names = es.get("/image").content.result
    assert names == sorted(names) and {"dn-tiny", "os-made", "dn-alpha"} <= set(names)
    assert es.get("/image", order_by="-created").content.result[0] == "dn-alpha"
    assert es.get("/image", order_by="created").content.result[-1] == "dn-alpha"
    full = es.get("/image", full=True).content.result
    assert {i["name"]: i["version"] for i in full if i["name"].startswith("dn-")} == {"dn-tiny": "1.2", "dn-alpha": "2.0"}
    assert "dcs" not in full[0] and es.get("/image", extended=True).content.result[0]["dcs"] == ["main"]
    with pytest.raises(ClientError) as e:
        es.get("/image", order_by="size").content
    assert e.value.status_code == 412 and e.value.detail == "Invalid order_by; Possible sort fields are: name, created"

    # PUT (a task, streamed to its end), read back; access 4 marks it deleted (deactivated in the core), 3 brings it back
    upd = es.put("/image/dn-tiny", desc="Tiny disk 2", version="1.3", tags=["web", "db"], deploy=True)
    assert upd.content.task_status == "SUCCESS" and upd.status_code == 200 and upd.task_id.startswith("1e1u1-")
    back = es.get("/image/dn-tiny").content.result
    assert (back["desc"], back["version"], back["tags"], back["deploy"], back["status"]) == ("Tiny disk 2", "1.3", ["web", "db"], True, 1)
    assert wait_task(es, es.put("/image/dn-tiny", access=4).content).task_status == "SUCCESS"
    assert es.get("/image/dn-tiny").content.result["access"] == 4
    assert alice.get(f"/v2/images/{m['uuid']}").json()["status"] == "deactivated"
    assert wait_task(es, es.put("/image/dn-tiny", access=3).content).task_status == "SUCCESS"
    assert es.get("/image/dn-tiny").content.result["access"] == 3
    assert alice.get(f"/v2/images/{m['uuid']}").json()["status"] == "active"

    # an API key works as well as a login
    keyed = Client(api_url=dn.url + "/api", api_key=api_key(dn, "dn-alice"))
    assert "dn-tiny" in keyed.get("/image").content.result
    # another tenant sees none of it
    assert not {"dn-tiny", "dn-alpha", "os-made"} & set(login(dn, "dn-bob").get("/image").content.result)

    # delete; then 404
    gone = es.delete("/image/dn-alpha")
    assert gone.content.task_status == "SUCCESS" and gone.status_code == 200 and gone.task_id.startswith("1e1u1-")
    with pytest.raises(ClientError) as e:
        es.get("/image/dn-alpha").content
    assert e.value.status_code == 404 and e.value.detail == "Image not found"
    assert alice.get(f"/v2/images/{m2['uuid']}").status_code == 404

    # logout: the token no longer works
    assert es.logout().ok
    with pytest.raises(ClientError) as e:
        es.get("/image").content
    assert e.value.status_code == 401 and e.value.detail == "Authentication credentials were not provided."


def test_danube_error_cases(dn, origin):
    es = login(dn, "dn-alice")
    alice = Raw(dn.url, "alice")
    before = {i["id"] for i in alice.get("/v2/images").json()["images"]}
    hits = len(origin.hits)

    def client_error(call) -> ClientError:
        with pytest.raises(ClientError) as e:
            call().content
        return e.value

    # authentication
    e = client_error(lambda: Client(api_url=dn.url + "/api").get("/image"))
    assert (e.status_code, e.detail) == (401, "Authentication credentials were not provided.")
    e = client_error(lambda: Client(api_url=dn.url + "/api", api_key="imk_00:nope").get("/image"))
    assert (e.status_code, e.detail) == (401, "Invalid API key")
    bad = Client(api_url=dn.url + "/api").login("dn-alice", "wrong")
    assert not bad.ok and bad.status_code == 400

    # names: too long or badly formed (400 FAILURE on `name`), outside the URL's characters (404)
    e = client_error(lambda: es.post("/image/" + "n" * 33, manifest_url=origin.url("/x"), dc="main"))
    assert e.status_code == 400 and e.task_status == "FAILURE" and "32 characters" in e.detail["name"][0]
    e = client_error(lambda: es.post("/image/-dash", manifest_url=origin.url("/x"), dc="main"))
    assert e.status_code == 400 and e.detail == {"name": ["Enter a valid value."]}
    r = requests.post(dn.url + "/api/image/bad!name/", json={}, headers=es.headers)
    assert r.status_code == 404 and r.json() == {"detail": "Not found"}

    # field values
    e = client_error(lambda: es.post("/image/dn-err", manifest_url=origin.url("/x"), dc="main", access=7))
    assert e.status_code == 400 and e.detail == {"access": ['"7" is not a valid choice.']}
    e = client_error(lambda: es.post("/image/dn-err", dc="main"))
    assert e.status_code == 400 and e.detail == {"manifest_url": ["This field is required."]}
    e = client_error(lambda: es.post("/image/dn-err", manifest_url=origin.url("/x")))
    assert e.status_code == 400 and set(e.detail) == {"dc_bound", "dc"}
    e = client_error(lambda: es.post("/image/dn-err", manifest_url=origin.url("/x"), dc="elsewhere"))
    assert (e.status_code, e.detail) == (404, "Datacenter not found")
    e = client_error(lambda: es.post("/image/dn-err", manifest_url=origin.url("/x"), dc="main", access=1))
    assert e.status_code == 403  # public images are the SuperAdmin's
    e = client_error(lambda: es.post("/image/dn-err", manifest_url=origin.url("/x"), dc="main", tags=["a.b"]))
    assert e.status_code == 400 and "tags" in e.detail

    # manifests: unreachable, too large, not JSON, invalid, several files, hostile addresses
    def manifest_error(url: str) -> str:
        err = client_error(lambda: es.post("/image/dn-err", manifest_url=url, dc="main"))
        assert err.status_code == 400 and err.task_status == "FAILURE", err.detail
        return err.detail["manifest_url"][0]

    assert manifest_error(origin.url("/no/such/manifest")).startswith("Image manifest URL is unreachable (")
    assert manifest_error(origin.serve("/big-manifest", b"{" + b" " * 9000 + b"}", "application/json")).startswith("Image manifest URL is unreachable (")
    assert manifest_error(origin.serve("/not-json", b"<html>no</html>")) == "Could not parse image manifest."
    assert manifest_error(origin.serve("/no-uuid", json.dumps({"v": 2, "files": [{}]}).encode())) == "Invalid image manifest."
    two = manifest_for(b"x", files=[{"size": 1}, {"size": 2}])
    assert manifest_error(origin.serve("/two-files", json.dumps(two).encode())) == "Multiple files inside manifest are not supported."
    requests_before = len(origin.hits)
    for hostile in ["http://169.254.169.254/latest/meta-data/", f"http://127.0.0.1:{dn.port}/images", "http://10.0.0.1/images/x"]:
        assert manifest_error(hostile).startswith("Image manifest URL is unreachable (")
    assert len(origin.hits) == requests_before
    e = client_error(lambda: es.post("/image/dn-err", manifest_url="ftp://example.com/m", dc="main"))
    assert e.detail == {"manifest_url": ["Enter a valid URL."]}

    # a file that does not match its manifest (SHA-1), and one that is gone: the task fails and the image is removed
    data = random_bytes(MiB, 81)
    url, m = serve_image(origin, data)
    corrupt = data[:-1] + b"\x00"
    origin.serve(f"/imgs/{m['uuid']}/file", corrupt)
    r = es.post("/image/dn-corrupt", manifest_url=url, dc="main")
    assert r.status_code == 201
    with pytest.raises(TaskFailure) as failed:
        wait_task(es, r.content)
    assert failed.value.status_code == 400 and failed.value.task_status == "FAILURE"
    # the manifest's SHA-1 is a pin like any other: the same check and words as an OpenStack expected_hash
    assert failed.value.detail == (f"Got bad return code (1). Error: Checksum verification failed: the data's sha1 is "
                                   f"{hashlib.sha1(corrupt).hexdigest()}, the pinned sha1 is {m['files'][0]['sha1']}.")
    assert client_error(lambda: es.get("/image/dn-corrupt")).status_code == 404
    url, m = serve_image(origin, data)
    origin.routes.pop(f"/imgs/{m['uuid']}/file")
    with pytest.raises(TaskFailure):
        wait_task(es, es.post("/image/dn-nofile", manifest_url=url, dc="main").content)
    assert client_error(lambda: es.get("/image/dn-nofile")).status_code == 404

    # duplicates: name (406), manifest uuid (400), alias + version (400)
    url, m = serve_image(origin, random_bytes(4096, 82), version="7.0")
    assert wait_task(es, es.post("/image/dn-dup", manifest_url=url, dc="main", alias="dup-alias").content).task_status == "SUCCESS"
    e = client_error(lambda: es.post("/image/dn-dup", manifest_url=url, dc="main"))
    assert (e.status_code, e.detail) == (406, "Image already exists")
    e = client_error(lambda: es.post("/image/dn-dup2", manifest_url=url, dc="main"))
    assert e.detail == {"manifest_url": ['Image UUID is already registered by image "dn-dup".']}
    url3, _ = serve_image(origin, random_bytes(4096, 83), version="7.0")
    e = client_error(lambda: es.post("/image/dn-dup3", manifest_url=url3, dc="main", alias="DUP-alias"))
    assert e.detail == {"alias": ["This alias is already in use. Please supply a different alias or version."]}

    # an image whose import runs is not OK for changes (417)
    slow = random_bytes(2 * MiB, 84)
    url, m = serve_image(origin, slow)
    origin.slow(f"/imgs/{m['uuid']}/file", slow, chunk=128 << 10, delay=0.15)
    pending = es.post("/image/dn-slow", manifest_url=url, dc="main", stream=False).content
    assert es.get("/image/dn-slow").content.result["status"] == 2
    e = client_error(lambda: es.put("/image/dn-slow", desc="now"))
    assert (e.status_code, e.detail) == (417, "Image status is not OK")
    assert es.get("/task").content.result == [pending.task_id]
    assert wait_task(es, pending).task_status == "SUCCESS"

    # tasks that do not exist, dummy ids, methods
    e = client_error(lambda: es.get("/task/1e1u1-%s/status" % uuid.uuid4()))
    assert (e.status_code, e.detail) == (404, "Task does not exist (anymore)")
    dummy = es.get("/image").content.task_id
    assert dummy.startswith("1d1u1-")
    assert client_error(lambda: es.get("/task/%s/status" % dummy)).status_code == 404
    e = client_error(lambda: es.request("PATCH", "/image/dn-dup"))
    assert (e.status_code, e.detail) == (405, 'Method "PATCH" not allowed.')
    r = requests.post(dn.url + "/api/image/dn-x/", data=b"{nope", headers=es.headers)
    assert (r.status_code, r.json()) == (400, {"detail": "Malformed request"})

    # nothing left behind by the refused and failed imports
    after = {i["id"] for i in alice.get("/v2/images").json()["images"]}
    assert after - before == {i for i in after if alice.get(f"/v2/images/{i}").json()["name"] in ("dn-dup", "dn-slow")}
    assert len(origin.hits) > hits


def test_danube_snapshot_image_and_vm_usage(dn, origin):
    es = login(dn, "dn-alice")
    admin = login(dn, "dn-admin")
    disk = random_bytes(5 * MiB + 1, 91)
    origin.serve("/snap/web01/daily-1/disk1", disk)
    r = es.post("/vm/web01/snapshot/daily-1/image/web-base", disk_id=1, version="2.0", desc="web base")
    assert r.status_code == 201
    assert wait_task(es, r.content).task_status == "SUCCESS"
    img = es.get("/image/web-base").content.result
    assert (img["size"], img["version"], img["desc"], img["status"]) == (math.ceil(len(disk) / MiB), "2.0", "web base", 1)
    os_view = Raw(dn.url, "alice").get(f"/v2/images/{img['uuid']}").json()
    assert os_view["checksum"] == hashlib.md5(disk).hexdigest()
    assert os_view["os_hash_value"] == hashlib.sha512(disk).hexdigest() and os_view["size"] == len(disk)

    # usage recorded by the operator's admin endpoint, shown by Danube's, enforced on delete
    assert es.get("/image/web-base/vm").content.result == []
    with pytest.raises(ClientError) as e:
        es.put("/image/web-base/vm/web01").content
    assert e.value.status_code == 403
    assert admin.put("/image/web-base/vm/web01").content.result == ["web01"]
    assert es.get("/image/web-base/vm").content.result == ["web01"]
    with pytest.raises(ClientError) as e:
        es.delete("/image/web-base").content
    assert (e.value.status_code, e.value.detail) == (428, "Image is used by some VMs")
    assert admin.delete("/image/web-base/vm/web01").content.result == []
    assert es.delete("/image/web-base").ok

    # a bad disk id, a snapshot the source does not have (404 before any task; nothing stays)
    with pytest.raises(ClientError) as e:
        es.post("/vm/web01/snapshot/daily-1/image/web-x", disk_id=0).content
    assert (e.value.status_code, e.value.detail) == (412, "Invalid disk_id")
    with pytest.raises(ClientError) as e:
        es.post("/vm/web01/snapshot/missing/image/web-y").content
    assert (e.value.status_code, e.value.detail) == (404, "Snapshot not found")
    with pytest.raises(ClientError) as e:
        es.get("/image/web-y").content
    assert e.value.status_code == 404


def test_danube_imagestore_is_another_imaged(dn, peer, origin):
    # The peer gets a public image through its own Danube API (its admin), from a manifest with a SHA-1.
    peer_admin = login(peer, "dn-admin")
    data = random_bytes(3 * MiB + 7, 95)
    url, m = serve_image(origin, data, name="peer-base", version="3.1")
    assert wait_task(peer_admin, peer_admin.post("/image/peer-base", manifest_url=url, dc_bound=False, access=1).content).task_status == "SUCCESS"

    # the peer's read-only IMGAPI (and /images stays OpenStack's version negotiation)
    assert requests.get(peer.url + "/images").status_code == 300
    listing = requests.get(peer.url + "/imgapi/images").json()
    served = next(x for x in listing if x["uuid"] == m["uuid"])
    assert (served["name"], served["version"], served["public"], served["state"]) == ("peer-base", "3.1", True, "active")
    assert served["files"] == [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]
    assert requests.get(f"{peer.url}/imgapi/images/{m['uuid']}").json() == served
    f = requests.get(f"{peer.url}/imgapi/images/{m['uuid']}/file")
    assert f.content == data and f.headers["Content-MD5"] == __import__("base64").b64encode(hashlib.md5(data).digest()).decode()
    assert requests.get(f"{peer.url}/imgapi/images/{uuid.uuid4()}").json()["code"] == "ResourceNotFound"

    es = login(dn, "dn-alice")
    assert es.get("/imagestore").content.result == ["peer"]
    repo = es.put("/imagestore/peer").content.result
    assert repo["name"] == "peer" and repo["error"] is None and repo["image_count"] >= 1 and repo["url"] == peer.url + "/imgapi/"
    assert m["uuid"] in es.get("/imagestore/peer/image").content.result
    entry = es.get("/imagestore/peer/image/%s" % m["uuid"]).content.result
    assert (entry["name"], entry["version"], entry["download_size"]) == ("peer-base", "3.1", len(data))
    r = es.post("/imagestore/peer/image/%s" % m["uuid"], name="from-peer", dc="main")
    assert r.status_code == 201 and wait_task(es, r.content).task_status == "SUCCESS"
    local = Raw(dn.url, "alice").get(f"/v2/images/{m['uuid']}").json()
    remote = Raw(peer.url, "admin").get(f"/v2/images/{m['uuid']}").json()
    assert (local["name"], local["checksum"], local["os_hash_value"], local["size"]) == \
        ("from-peer", remote["checksum"], remote["os_hash_value"], len(data))
    assert Raw(dn.url, "alice").get(f"/v2/images/{m['uuid']}/file").content == data
    with pytest.raises(ClientError) as e:
        es.post("/imagestore/peer/image/%s" % m["uuid"], name="again", dc="main").content
    assert (e.value.status_code, e.value.detail) == (406, "Image already exists")
    with pytest.raises(ClientError) as e:
        es.get("/imagestore/nowhere").content
    assert (e.value.status_code, e.value.detail) == (404, "ImageStore not found")
    with pytest.raises(ClientError) as e:
        es.get("/imagestore/peer/image/%s" % uuid.uuid4()).content
    assert (e.value.status_code, e.value.detail) == (404, "Image not found")


def test_danube_under_another_prefix(tmp_path):
    """`--danube-prefix /danube/api`: the client works there, and `/api/image/…` is no longer Danube's."""
    srv = ImagedServer(tmp_path / "prefixed", "--danube-prefix", "/danube/api")
    srv.start()
    try:
        create_account(srv, "dn-alice", "p-alice", "member")
        es = Client(api_url=srv.url + "/danube/api")
        assert es.login("dn-alice", PASSWORDS["dn-alice"]).ok
        assert es.get("/image").content.result == []
        r = requests.get(srv.url + "/api/image/", headers={"ES-STREAM": "es"})
        assert r.status_code != 200 or "task_id" not in r.text  # not answered by the Danube front-end
        assert "es_version" not in r.headers
    finally:
        srv.kill()


def test_danube_keeps_a_compressed_image_file_as_its_manifest_describes(peer, origin):
    """IMGAPI serves the file its manifest describes (sha1, size, compression): a gzip file is stored as sent,
    although imaged decompresses other imports (test_decompression.py)."""
    import gzip
    admin = login(peer, "dn-admin")
    gz = gzip.compress(random_bytes(MiB, 97) + bytes(MiB), mtime=0)
    url, m = serve_image(origin, gz, name="gz-base", version="1.0",
                         files=[{"sha1": hashlib.sha1(gz).hexdigest(), "size": len(gz), "compression": "gzip"}])
    assert wait_task(admin, admin.post("/image/gz-base", manifest_url=url, dc_bound=False, access=1).content).task_status == "SUCCESS"
    served = requests.get(f"{peer.url}/imgapi/images/{m['uuid']}").json()
    assert served["files"] == [{"sha1": hashlib.sha1(gz).hexdigest(), "size": len(gz), "compression": "gzip"}]
    assert requests.get(f"{peer.url}/imgapi/images/{m['uuid']}/file").content == gz
    assert "imaged_source_compression" not in Raw(peer.url, "admin").get(f"/v2/images/{m['uuid']}").json()
