"""Faults on the data path (issue 3 acceptance): client disconnects, size mismatches, the size cap,
SIGKILL of the server during an upload and during an import, conflicting uploads and a delete
while an upload runs. Afterwards no half-written image is `active`, no blob or temporary is left
behind, and images return to `queued` (or finish) instead of hanging in `saving`/`importing`."""

import re
import signal
import socket
import threading
import time

import pytest

from conftest import (ImagedServer, Raw, assert_data_facts, assert_nothing_kept, digests, make_active,
                      random_bytes, tasks_of, token, unique, upload, wait_for, wait_status)

MiB = 1 << 20


class SocketUpload:
    """A hand-made HTTP/1.1 upload over a raw socket, so a test controls exactly how many bytes go
    out, how fast, and when the connection drops. `start()` sends the headers and then feeds the body
    from a thread (`chunk` bytes every `delay` seconds) until `send_bytes` are out or `stop()`."""

    def __init__(self, base_url: str, image_id: str, who: str = "alice", *, content_length: int | None,
                 send_bytes: int, chunk: int = 256 * 1024, delay: float = 0.0, path: str = "file",
                 extra_headers: dict | None = None):
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.content_length, self.send_bytes, self.chunk, self.delay = content_length, send_bytes, chunk, delay
        headers = {"Host": f"{host}:{port}", "X-Auth-Token": token(who), "Content-Type": "application/octet-stream",
                   **(extra_headers or {})}
        if content_length is None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(content_length)
        head = f"PUT /v2/images/{image_id}/{path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = (head + "\r\n").encode()
        self.sent = 0
        self.send_error: Exception | None = None
        self._stop = threading.Event()
        self.done = threading.Event()
        self.block = random_bytes(chunk, 4242)

    def start(self) -> "SocketUpload":
        self.sock.sendall(self.head)
        threading.Thread(target=self._feed, daemon=True).start()
        return self

    def _feed(self):
        try:
            while self.sent < self.send_bytes and not self._stop.is_set():
                n = min(self.chunk, self.send_bytes - self.sent)
                piece = self.block[:n]
                if self.content_length is None:
                    piece = f"{n:x}\r\n".encode() + piece + b"\r\n"
                self.sock.sendall(piece)
                self.sent += n
                if self.delay:
                    time.sleep(self.delay)
            if self.content_length is None and not self._stop.is_set():
                self.sock.sendall(b"0\r\n\r\n")
        except OSError as e:
            self.send_error = e
        finally:
            self.done.set()

    def stop(self):
        self._stop.set()
        self.done.wait(30)

    def close(self):
        """Drops the connection (like a client that dies)."""
        self.stop()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def response_status(self, timeout: float = 60) -> int | None:
        """The status code the server answered with, or None if the connection ended without one."""
        self.sock.settimeout(timeout)
        buf = b""
        try:
            while b"\r\n" not in buf:
                got = self.sock.recv(65536)
                if not got:
                    break
                buf += got
        except OSError:
            pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# client-side faults on the shared server


def test_client_disconnects_mid_upload(raw, server):
    alice = raw["alice"]
    iid = alice.create(name=unique("disconnect"), disk_format="raw", container_format="bare")["id"]
    up = SocketUpload(server.url, iid, content_length=100 * MiB, send_bytes=10 * MiB).start()
    up.done.wait(60)
    assert up.sent == 10 * MiB and up.send_error is None
    wait_status(alice, iid, "saving", timeout=30)
    dropped_at = time.monotonic()
    up.close()
    image = wait_status(alice, iid, "queued", timeout=30)
    took = time.monotonic() - dropped_at
    assert took < 10, f"the image took {took:.1f}s to return to queued after the client went away"
    assert image["size"] is None and image["checksum"] is None and image["virtual_size"] is None
    assert_nothing_kept(server, iid)
    # and it takes a complete upload afterwards
    data = random_bytes(2 * MiB, 3)
    assert upload(alice, iid, data).status_code == 204
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(data))


def test_client_disconnects_mid_chunked_upload(raw, server):
    alice = raw["alice"]
    iid = alice.create(name=unique("disconnect-chunked"), disk_format="raw", container_format="bare")["id"]
    up = SocketUpload(server.url, iid, content_length=None, send_bytes=1 << 40, chunk=MiB, delay=0.05).start()
    wait_status(alice, iid, "saving", timeout=30)
    wait_for(lambda: up.sent >= 4 * MiB, timeout=30, what="4 MiB sent")
    up.close()
    wait_status(alice, iid, "queued", timeout=30)
    assert_nothing_kept(server, iid)


@pytest.mark.parametrize("declared,body", [(3 * MiB, 2 * MiB), (MiB, 2 * MiB)])
def test_declared_size_mismatch_400(raw, server, declared, body):
    """x-openstack-image-size says one size, the body has another: 400, nothing kept, queued."""
    alice = raw["alice"]
    iid = alice.create(name=unique("mismatch"), disk_format="raw", container_format="bare")["id"]
    data = random_bytes(body, 17)
    r = upload(alice, iid, iter([data]), headers={"x-openstack-image-size": str(declared)})
    assert r.status_code == 400, (declared, body, r.status_code, r.text[:300])
    image = alice.get(f"/v2/images/{iid}").json()
    assert image["status"] == "queued" and image["size"] is None and image["checksum"] is None
    assert_nothing_kept(server, iid)
    # with the right declaration it works
    r = upload(alice, iid, data, headers={"x-openstack-image-size": str(body)})
    assert r.status_code == 204


def test_upload_to_active_or_deactivated_is_409(raw, server):
    alice = raw["alice"]
    image = make_active(alice, b"first\n" * 1000)
    iid = image["id"]
    r = upload(alice, iid, b"second")
    assert r.status_code == 409, r.text
    assert alice.get(f"/v2/images/{iid}").json() == image
    assert alice.get(f"/v2/images/{iid}/file").content == b"first\n" * 1000
    assert alice.post(f"/v2/images/{iid}/actions/deactivate").status_code == 204
    assert upload(alice, iid, b"third").status_code == 409
    r = alice.put(f"/v2/images/{iid}/stage", data=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 409
    assert server.temporaries() == []


def test_second_upload_while_saving_is_409(raw, server):
    alice = raw["alice"]
    iid = alice.create(name=unique("concurrent"), disk_format="raw", container_format="bare")["id"]
    data = random_bytes(4 * MiB, 23)
    up = SocketUpload(server.url, iid, content_length=len(data) + 8 * MiB, send_bytes=8 * MiB, chunk=MiB,
                      delay=0.05).start()
    try:
        wait_status(alice, iid, "saving", timeout=30)
        r = upload(alice, iid, b"intruder")
        assert r.status_code == 409, r.text
    finally:
        up.close()
    wait_status(alice, iid, "queued", timeout=30)
    assert_nothing_kept(server, iid)


def test_delete_during_upload(raw, server):
    """Deleting an image while it is `saving`: the upload gets 410 Gone (or its connection is cut),
    the image is deleted and no data remains (CVE-2014-9623)."""
    alice = raw["alice"]
    iid = alice.create(name=unique("del-saving"), disk_format="raw", container_format="bare")["id"]
    total = 40 * MiB
    up = SocketUpload(server.url, iid, content_length=total, send_bytes=total, chunk=512 * 1024, delay=0.05).start()
    wait_status(alice, iid, "saving", timeout=30)
    wait_for(lambda: up.sent >= 4 * MiB, timeout=30, what="4 MiB sent")
    r = alice.delete(f"/v2/images/{iid}")
    assert r.status_code == 204, r.text
    assert alice.get(f"/v2/images/{iid}").status_code == 404
    status = up.response_status(timeout=60)
    up.close()
    assert status in (410, None), f"upload to a deleted image answered {status}"
    assert_nothing_kept(server, iid, timeout=30)
    # the id stays dead
    assert alice.get(f"/v2/images/{iid}").status_code == 404
    assert raw["admin"].get(f"/v2/images/{iid}").status_code == 404


# ---------------------------------------------------------------------------------------------
# the size cap


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-cap"), "--image-size-cap", str(10 * MiB))
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


def test_upload_over_size_cap_413(capped):
    srv = capped
    alice = Raw(srv.url, "alice")
    over = random_bytes(10 * MiB + 1, 31)

    # with a Content-Length
    iid = alice.create(name=unique("cap-cl"), disk_format="raw", container_format="bare")["id"]
    r = upload(alice, iid, over)
    assert r.status_code == 413, r.text[:300]
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(srv, iid)

    # chunked, size unknown: enforced while streaming
    def gen():
        for off in range(0, len(over), MiB):
            yield over[off:off + MiB]
    r = upload(alice, iid, gen())
    assert r.status_code == 413, r.text[:300]
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(srv, iid)

    # a declared size over the cap is refused before any byte is stored
    r = upload(alice, iid, b"small", headers={"x-openstack-image-size": str(20 * MiB)})
    assert r.status_code == 413, r.text[:300]
    assert_nothing_kept(srv, iid)

    # staging has the same cap
    r = alice.put(f"/v2/images/{iid}/stage", data=over, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413, r.text[:300]
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(srv, iid)

    # exactly the cap is fine
    r = upload(alice, iid, over[:10 * MiB])
    assert r.status_code == 204, r.text[:300]
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(over[:10 * MiB]))


def test_endless_chunked_upload_stopped_at_cap(capped):
    """A client streaming without end is cut off at the cap, not after it has filled the disk."""
    srv = capped
    alice = Raw(srv.url, "alice")
    iid = alice.create(name=unique("cap-endless"), disk_format="raw", container_format="bare")["id"]
    up = SocketUpload(srv.url, iid, content_length=None, send_bytes=1 << 40, chunk=MiB).start()
    status = up.response_status(timeout=60)
    up.close()
    assert status == 413
    assert up.sent < 200 * MiB
    wait_status(alice, iid, "queued", timeout=30)
    assert_nothing_kept(srv, iid)


# ---------------------------------------------------------------------------------------------
# SIGKILL of the server


@pytest.fixture
def killable(tmp_path, origin):
    srv = ImagedServer(tmp_path, "--task-lease-seconds", "3", "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port))
    srv.start()
    yield srv
    srv.kill()


def assert_no_half_images(client: Raw) -> None:
    """Every active image's blob has its recorded size (nothing half-written went active)."""
    for image in client.get("/v2/images", params={"limit": 1000}).json()["images"]:
        if image["status"] == "active":
            r = client.get(f"/v2/images/{image['id']}/file")
            assert r.status_code == 200 and len(r.content) == image["size"], image
            assert digests(r.content)["md5"] == image["checksum"], image


def test_sigkill_during_upload_and_stage(killable):
    srv = killable
    alice = Raw(srv.url, "alice")
    saving = alice.create(name=unique("kill-saving"), disk_format="raw", container_format="bare")["id"]
    staging = alice.create(name=unique("kill-staging"), disk_format="raw", container_format="bare")["id"]
    staged = alice.create(name=unique("kill-staged"), disk_format="raw", container_format="bare")["id"]
    done = make_active(alice, random_bytes(MiB, 41), name=unique("kill-done"))
    staged_data = random_bytes(MiB + 7, 43)
    r = alice.put(f"/v2/images/{staged}/stage", data=staged_data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204

    uploads = [SocketUpload(srv.url, iid, content_length=64 * MiB, send_bytes=64 * MiB, chunk=256 * 1024,
                            delay=0.05, path=path).start()
               for iid, path in ((saving, "file"), (staging, "stage"))]
    try:
        wait_status(alice, saving, "saving", timeout=30)
        wait_status(alice, staging, "uploading", timeout=30)
        wait_for(lambda: all(u.sent >= 2 * MiB for u in uploads), timeout=30, what="2 MiB sent on each upload")
        wait_for(lambda: len(srv.temporaries()) >= 1, timeout=30, what="a temporary in blobs/.tmp")
        proc = srv.proc
        srv.kill(signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
    finally:
        for u in uploads:
            u.close()
    assert srv.temporaries(), "the SIGKILL should have left a temporary behind for the scrub to find"

    srv.start(port=srv.port)
    image = alice.get(f"/v2/images/{saving}").json()
    assert image["status"] == "queued" and image["size"] is None and image["checksum"] is None, image
    image = alice.get(f"/v2/images/{staging}").json()
    assert image["status"] == "queued" and image["size"] is None, image
    assert srv.temporaries() == []
    for iid in (saving, staging):
        assert not srv.blob_path(iid).exists() and not srv.staging_path(iid).exists()
    # completed work survived: the active image and the fully staged one
    assert alice.get(f"/v2/images/{done['id']}").json() == done
    assert alice.get(f"/v2/images/{staged}").json()["status"] == "uploading"
    assert_no_half_images(alice)
    log = srv.log_text()
    assert re.search(rf"{saving}.*queued", log), f"no scrub line for {saving} in the restart log:\n{log}"
    assert re.search(rf"{staging}.*queued", log), f"no scrub line for {staging} in the restart log:\n{log}"

    # everything is usable again: upload, stage, and import the staged data
    data = random_bytes(MiB, 47)
    assert upload(alice, saving, data).status_code == 204
    assert_data_facts(alice.get(f"/v2/images/{saving}").json(), digests(data))
    assert alice.post(f"/v2/images/{staged}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    assert_data_facts(wait_status(alice, staged, ["active", "queued"], timeout=120), digests(staged_data))


def largest_temporary(srv: ImagedServer) -> int:
    sizes = [0]
    for name in srv.temporaries():
        try:
            sizes.append((srv.data_dir / "blobs" / ".tmp" / name).stat().st_size)
        except FileNotFoundError:
            pass
    return max(sizes)


def test_sigkill_during_web_download(killable, origin):
    srv = killable
    alice = Raw(srv.url, "alice")
    data = random_bytes(8 * MiB, 53)
    path = f"/{unique('slow')}.raw"
    uri = origin.slow(path, data, chunk=256 * 1024, delay=0.1)  # about 3 s per attempt
    iid = alice.create(name=unique("kill-import"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 202, r.text
    wait_status(alice, iid, "importing", timeout=30)
    wait_for(lambda: origin.hits.count(path) >= 1, timeout=30, what="the origin to be asked")
    wait_for(lambda: [t for t in tasks_of(alice, iid) if t["status"] == "processing"], timeout=30,
             what="a processing task")
    # kill once part of the body is on disk (the origin needs about 3 s for all of it)
    wait_for(lambda: largest_temporary(srv) >= MiB, timeout=30, interval=0.05,
             what="1 MiB of the import in a temporary")
    srv.kill(signal.SIGKILL)
    assert srv.temporaries(), "the SIGKILL should have left the import's temporary behind"
    srv.start(port=srv.port)

    # the task is resumed (restarted from zero) or failed; never left importing/processing
    def settled():
        image = alice.get(f"/v2/images/{iid}").json()
        tasks = tasks_of(alice, iid)
        if image["status"] in ("active", "queued") and tasks and all(t["status"] in ("success", "failure") for t in tasks):
            return image, tasks
        return None
    image, tasks = wait_for(settled, timeout=120, interval=0.5, what="the interrupted import to settle")
    assert len(tasks) == 1, tasks
    task = tasks[0]
    if task["status"] == "success":
        assert image["status"] == "active"
        assert_data_facts(image, digests(data))
        assert alice.get(f"/v2/images/{iid}/file").content == data
        assert origin.hits.count(path) >= 2  # fetched again after the restart
    else:
        assert image["status"] == "queued", image
        assert task["message"], task
        assert "os_glance_failed_import" in image
        assert_nothing_kept(srv, iid)
    assert srv.temporaries() == []
    assert "os_glance_import_task" not in image
    assert_no_half_images(alice)
