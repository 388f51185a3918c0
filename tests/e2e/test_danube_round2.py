"""Danube Cloud, round two (issue 18), with the vendor's own client (`esdc-api`): PUT and DELETE as real tasks,
task cancel, `/api/dc/<dc>/image/` with several datacenters (`--danube-dc`), `ES-STREAM` streamed answers as
esdc-api reads them, access 4 at import, an unknown snapshot refused before any task, and `cb_url` callbacks to a
loopback receiver. The flows that need no import origin run on the default `imaged serve` too."""

import hashlib
import http.server
import json
import socket
import threading
import time
import uuid

import pytest
import requests
from esdc_api import Client
from esdc_api.exceptions import ClientError, TaskFailure, TaskRevoked

from conftest import ImagedServer, Raw, random_bytes, wait_for
from test_danube import MiB, api_key, create_account, login, serve_image, wait_task


class Receiver:
    """A loopback HTTP server that records every callback it gets (method, path, headers, JSON body)."""

    def __init__(self):
        self.calls: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body) if body else None})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_GET = do_DELETE = _record

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[dict]:
        return [c for c in self.calls if c["path"] == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def dn2(tmp_path_factory):
    """Two datacenters (`main` is the default), loopback origins and receivers allowed on any port."""
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-danube2"), "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", "any",
                       "--danube-dc", "main", "--danube-dc", "lab", "--task-lease-seconds", "3",
                       "--danube-snapshot-url", "http://127.0.0.1:1/unused")
    srv.start()
    for name, project, role in [("dn-alice", "p-alice", "member"), ("dn-bob", "p-bob", "member"), ("dn-admin", "admin", "admin")]:
        create_account(srv, name, project, role)
    yield srv
    srv.kill()


def client_error(call):
    with pytest.raises(ClientError) as e:
        call().content
    return e.value


def pending_tasks(es: Client) -> list:
    return es.get("/task").content.result


def imported(es: Client, origin, name: str, seed: int, **kw) -> dict:
    url, m = serve_image(origin, random_bytes(256 << 10, seed))
    assert wait_task(es, es.post("/image/" + name, manifest_url=url, **kw).content).task_status == "SUCCESS"
    return m


def test_put_and_delete_are_tasks(dn2, origin):
    es = login(dn2, "dn-alice")
    m = imported(es, origin, "t-img", 201, dc="main")

    # PUT of fields other than owner/dc_bound: 201 PENDING with a real, pollable task id
    r = es.put("/image/t-img", desc="changed", tags=["a", "b"], stream=False)
    assert r.status_code == 201 and r.headers["es_task_response"] == "true" and "es_stream" not in r.headers
    c = r.content
    assert (c.task_status, c.result) == ("PENDING", None) and c.task_id.startswith("1e1u1-") and r.task_id == c.task_id
    polled = es.get("/task/%s/status" % c.task_id)
    assert polled.status_code == 200 and polled.content.task_status == "SUCCESS"
    assert polled.content.result == {"returncode": 0, "message": "Successfully updated image t-img"}
    assert es.get("/task/%s/done" % c.task_id).content.result == {"task_id": c.task_id, "done": True}
    shown = es.get("/image/t-img").content.result
    assert (shown["desc"], shown["tags"], shown["status"]) == ("changed", ["a", "b"], 1)

    # only dc_bound/owner: synchronous, 200 with the image (a dummy id)
    r = es.put("/image/t-img", owner="dn-alice", stream=False)
    assert r.status_code == 200 and r.content.task_status == "SUCCESS" and r.content.task_id.startswith("1d1u1-")
    assert r.content.result["name"] == "t-img" and r.content.result["desc"] == "changed"

    # a refused PUT is answered at once, no task made, nothing changed
    e = client_error(lambda: es.put("/image/t-img", desc="x", version="v" * 17, stream=False))
    assert e.status_code == 400 and e.task_status == "FAILURE" and set(e.detail) == {"version"}
    assert es.get("/image/t-img").content.result["desc"] == "changed"
    assert pending_tasks(es) == []

    # another tenant neither sees nor polls the task
    bob = login(dn2, "dn-bob")
    e = client_error(lambda: bob.get("/task/%s/status" % c.task_id))
    assert (e.status_code, e.detail) == (404, "Task does not exist (anymore)")

    # DELETE refused while a VM uses it (428, no task), then a task that removes it
    admin = login(dn2, "dn-admin")
    assert admin.put("/image/t-img/vm/web9").content.result == ["web9"]
    e = client_error(lambda: es.delete("/image/t-img", stream=False))
    assert (e.status_code, e.detail) == (428, "Image is used by some VMs")
    assert es.get("/image/t-img").content.result["uuid"] == m["uuid"]
    assert admin.delete("/image/t-img/vm/web9").content.result == []
    r = es.delete("/image/t-img", stream=False)
    assert r.status_code == 201 and r.content.task_status == "PENDING"
    done = wait_task(es, r.content)
    assert (done.task_status, done.result) == ("SUCCESS", {"returncode": 0, "message": "Successfully deleted image t-img"})
    assert client_error(lambda: es.get("/image/t-img")).status_code == 404
    assert Raw(dn2.url, "alice").get(f"/v2/images/{m['uuid']}").status_code == 404


def test_es_stream_answers(dn2, origin):
    es = login(dn2, "dn-alice")
    headers = {k: v for k, v in es.headers.items()}

    # a slow import, streamed on the raw wire: 201 at once with es_stream, spaces while it runs, then code + JSON
    slow = random_bytes(2 * MiB, 202)
    url, m = serve_image(origin, slow)
    origin.slow(f"/imgs/{m['uuid']}/file", slow, chunk=128 << 10, delay=0.2)
    started = time.time()
    r = requests.post(dn2.url + "/api/image/s-slow/", data=json.dumps({"manifest_url": url, "dc": "main"}), headers=headers, stream=True)
    assert r.status_code == 201 and r.headers["es_stream"] == "True" and r.headers["es_task_response"] == "true"
    task_id = r.headers["es_task_id"]
    assert task_id.startswith("1e1u1-") and r.headers["es_dc"] == "main" and "content-length" not in r.headers
    raw = r.raw.read()
    assert time.time() - started > 2.5
    keep_alive, rest = raw[: len(raw) - len(raw.lstrip())], raw.lstrip()
    assert len(keep_alive) >= 2 and keep_alive.strip() == b""  # the first at once, more while the download ran
    code, body = rest.split(b"\n", 1)
    assert code == b"200"
    assert json.loads(body) == {"task_id": task_id, "status": "SUCCESS",
                                "result": {"returncode": 0, "message": f"Successfully imported image {m['uuid']}"}}

    # the client reads the same: its status is the streamed one
    url2, m2 = serve_image(origin, random_bytes(300 << 10, 203))
    r = es.post("/image/s-two", manifest_url=url2, dc="main")
    assert r.content.task_status == "SUCCESS" and r.status_code == 200 and r.stream == "True"
    assert es.get("/image/s-two").content.result["status"] == 1

    # a failing task streamed: esdc-api raises TaskFailure with the streamed 400
    url3, m3 = serve_image(origin, random_bytes(64 << 10, 204))
    origin.routes.pop(f"/imgs/{m3['uuid']}/file")
    with pytest.raises(TaskFailure) as failed:
        es.post("/image/s-bad", manifest_url=url3, dc="main").content
    assert failed.value.status_code == 400 and failed.value.detail.startswith("Got bad return code (1). Error: ")
    assert client_error(lambda: es.get("/image/s-bad")).status_code == 404

    # PUT and DELETE stream too; refusals and synchronous answers are never streamed
    r = es.put("/image/s-two", desc="streamed")
    assert r.content.task_status == "SUCCESS" and r.status_code == 200 and r.stream == "True"
    assert es.get("/image/s-two").content.result["desc"] == "streamed"
    r = requests.put(dn2.url + "/api/image/s-two/", data=json.dumps({"access": 9}), headers=headers)
    assert r.status_code == 400 and "es_stream" not in r.headers and r.json()["status"] == "FAILURE"
    r = requests.get(dn2.url + "/api/image/s-two/", headers=headers)
    assert r.status_code == 200 and "es_stream" not in r.headers and r.json()["result"]["desc"] == "streamed"
    r = es.delete("/image/s-two")
    assert r.content.task_status == "SUCCESS" and r.stream == "True"
    assert client_error(lambda: es.get("/image/s-two")).status_code == 404


def test_task_cancel(dn2, origin):
    es = login(dn2, "dn-alice")
    slow = random_bytes(4 * MiB, 205)
    url, m = serve_image(origin, slow)
    origin.slow(f"/imgs/{m['uuid']}/file", slow, chunk=64 << 10, delay=0.25)
    c = es.post("/image/c-slow", manifest_url=url, dc="main", stream=False).content
    assert c.task_status == "PENDING" and pending_tasks(es) == [c.task_id]
    assert es.get("/image/c-slow").content.result["status"] == 2

    # another tenant cannot cancel it (it does not exist for them)
    bob = login(dn2, "dn-bob")
    e = client_error(lambda: bob.put("/task/%s/cancel" % c.task_id))
    assert (e.status_code, e.detail) == (404, "Task does not exist (anymore)")

    # cancel: 410 REVOKED (esdc-api's TaskRevoked), the image is gone at once (Danube's rollback of a POST)
    with pytest.raises(TaskRevoked) as revoked:
        es.put("/task/%s/cancel" % c.task_id).content
    assert revoked.value.status_code == 410 and revoked.value.task_status == "REVOKED"
    with pytest.raises(TaskRevoked):
        es.get("/task/%s/status" % c.task_id).content
    plain = {k: v for k, v in es.headers.items() if k != "ES-STREAM"}
    r = requests.get(dn2.url + "/api/task/%s/done/" % c.task_id, headers=plain)
    assert (r.status_code, r.json()) == (410, {"task_id": c.task_id, "done": True})
    assert client_error(lambda: es.get("/image/c-slow")).status_code == 404
    assert pending_tasks(es) == []
    os_alice = Raw(dn2.url, "alice")
    assert m["uuid"] not in {i["id"] for i in os_alice.get("/v2/images").json()["images"]}

    # the node running it stops and leaves nothing: the task stays REVOKED, the image stays gone, no blob
    time.sleep(2.5)
    with pytest.raises(TaskRevoked):
        es.get("/task/%s/status" % c.task_id).content
    assert client_error(lambda: es.get("/image/c-slow")).status_code == 404
    wait_for(lambda: not dn2.blob_path(m["uuid"]).exists(), timeout=15, what="no blob of the cancelled import")

    # a finished task cannot be cancelled (406), nor can a dummy id or a PUT task
    e = client_error(lambda: es.put("/task/%s/cancel" % c.task_id))
    assert (e.status_code, e.detail) == (406, "Task cannot be canceled")
    imported(es, origin, "c-done", 206, dc="main")
    put = es.put("/image/c-done", desc="d", stream=False).content
    e = client_error(lambda: es.put("/task/%s/cancel" % put.task_id))
    assert (e.status_code, e.detail) == (406, "Task cannot be canceled")
    assert es.get("/image/c-done").content.result["desc"] == "d"
    e = client_error(lambda: es.get("/task/%s/cancel" % put.task_id))
    assert e.status_code == 405


def test_datacenters(dn2, origin):
    es = login(dn2, "dn-alice")
    admin = login(dn2, "dn-admin")

    # an image bound to the second DC; the request DC (es_dc) stays the default one
    r = es.post("/image/dc-lab", manifest_url=serve_image(origin, random_bytes(64 << 10, 207))[0], dc="lab")
    assert r.content.task_status == "SUCCESS" and r.dc == "main"
    assert es.get("/image/dc-lab", extended=True).content.result["dcs"] == ["lab"]
    assert "dc-lab" in es.get("/dc/lab/image").content.result
    assert "dc-lab" not in es.get("/dc/main/image").content.result
    assert es.get("/dc/lab/image/dc-lab").content.result["name"] == "dc-lab"
    e = client_error(lambda: es.get("/dc/main/image/dc-lab"))
    assert (e.status_code, e.detail) == (404, "Image not found")
    full = es.get("/dc/lab/image", extended=True).content.result
    assert [i["dcs"] for i in full if i["name"] == "dc-lab"] == [["lab"]]

    # unknown DCs are 404, before anything is made
    e = client_error(lambda: es.post("/image/dc-x", manifest_url=origin.url("/x"), dc="nowhere"))
    assert (e.status_code, e.detail) == (404, "Datacenter not found")
    e = client_error(lambda: es.get("/dc/nowhere/image"))
    assert (e.status_code, e.detail) == (404, "Datacenter not found")
    assert client_error(lambda: es.get("/image/dc-x")).status_code == 404

    # a DC-unbound image (SuperAdmin): in the default DC, attached to more and detached
    assert admin.post("/image/dc-global", manifest_url=serve_image(origin, random_bytes(64 << 10, 208))[0],
                      dc_bound=False).content.task_status == "SUCCESS"
    assert admin.get("/image/dc-global", extended=True).content.result["dcs"] == ["main"]
    r = admin.post("/dc/lab/image/dc-global")
    assert r.status_code == 201 and r.content.task_status == "SUCCESS" and r.content.result["dcs"] == ["main", "lab"]
    assert "dc-global" in admin.get("/dc/lab/image").content.result
    e = client_error(lambda: admin.post("/dc/lab/image/dc-global"))
    assert (e.status_code, e.detail) == (406, "Image already exists")
    e = client_error(lambda: es.post("/dc/lab/image/dc-lab"))
    assert e.status_code == 403  # attaching is the SuperAdmin's
    e = client_error(lambda: admin.post("/dc/main/image/dc-lab"))
    assert (e.status_code, e.detail) == (428, "Image is DC-bound")
    assert es.get("/image/dc-lab", extended=True).content.result["dcs"] == ["lab"]
    # binding it needs exactly one DC
    e = client_error(lambda: admin.put("/image/dc-global", dc_bound=True))
    assert e.status_code == 400 and e.detail == {"dc_bound": ["Image is attached into more than one datacenter."]}
    assert admin.get("/image/dc-global").content.result["dc_bound"] is False
    # detach: refused while used by a VM, then done
    assert admin.put("/image/dc-global/vm/vm1").content.result == ["vm1"]
    e = client_error(lambda: admin.delete("/dc/main/image/dc-global"))
    assert (e.status_code, e.detail) == (428, "Image is used by some VMs")
    assert admin.delete("/image/dc-global/vm/vm1").content.result == []
    r = admin.delete("/dc/main/image/dc-global")
    assert r.status_code == 200 and r.content.result["dcs"] == ["lab"]
    e = client_error(lambda: admin.delete("/dc/main/image/dc-global"))
    assert (e.status_code, e.detail) == (404, "Image not found")
    assert "dc-global" not in admin.get("/dc/main/image").content.result
    r = admin.put("/image/dc-global", dc_bound=True)
    assert r.status_code == 200 and r.content.result["dc_bound"] is True
    assert admin.get("/image/dc-global", extended=True).content.result["dcs"] == ["lab"]


def test_access_4_at_import(dn2, origin):
    es = login(dn2, "dn-alice")
    alice = Raw(dn2.url, "alice")
    data = random_bytes(200 << 10, 209)
    url, m = serve_image(origin, data)
    # polled: SUCCESS is only reported once the image is "deleted" (deactivated in the core)
    c = es.post("/image/a4-img", manifest_url=url, dc="main", access=4, stream=False).content
    assert c.task_status == "PENDING"
    assert es.get("/image/a4-img").content.result["access"] == 4
    assert wait_task(es, c).task_status == "SUCCESS"
    shown = es.get("/image/a4-img").content.result
    assert (shown["access"], shown["status"]) == (4, 1)
    assert alice.get(f"/v2/images/{m['uuid']}").json()["status"] == "deactivated"
    assert alice.get(f"/v2/images/{m['uuid']}/file").status_code == 403
    # streamed the same way, and set back to private it is usable with the right bytes
    url2, m2 = serve_image(origin, random_bytes(100 << 10, 210))
    assert es.post("/image/a4-two", manifest_url=url2, dc="main", access=4).content.task_status == "SUCCESS"
    assert alice.get(f"/v2/images/{m2['uuid']}").json()["status"] == "deactivated"
    assert wait_task(es, es.put("/image/a4-img", access=3).content).task_status == "SUCCESS"
    assert es.get("/image/a4-img").content.result["access"] == 3
    assert alice.get(f"/v2/images/{m['uuid']}/file").content == data
    # still refused: other values
    e = client_error(lambda: es.post("/image/a4-x", manifest_url=url, dc="main", access=2))
    assert e.status_code == 400 and e.detail == {"access": ['"2" is not a valid choice.']}


def test_unknown_snapshot_is_404_before_a_task(tmp_path, origin):
    srv = ImagedServer(tmp_path / "snap", "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       "--danube-snapshot-url", f"http://127.0.0.1:{origin.port}/vmsnap/{{dc}}/{{vm}}/{{snap}}/disk{{disk_id}}",
                       "--danube-vm-url", f"http://127.0.0.1:{origin.port}/vms/{{dc}}/{{vm}}",
                       "--danube-dc", "main", "--danube-dc", "lab")
    srv.start()
    try:
        create_account(srv, "dn-alice", "p-alice", "member")
        es = login(srv, "dn-alice")
        disk = random_bytes(MiB, 211)
        origin.serve("/vmsnap/lab/web02/s1/disk1", disk)
        origin.serve("/vms/main/web02", b"{}", "application/json")
        origin.serve("/vms/lab/web02", b"{}", "application/json")
        hits = len(origin.hits)
        # an unknown VM (--danube-vm-url answers 404): its snapshot is not even asked for
        e = client_error(lambda: es.post("/vm/nobody/snapshot/s1/image/sn-x"))
        assert (e.status_code, e.detail) == (404, "VM not found")
        e = client_error(lambda: es.post("/vm/web02/snapshot/nosuch/image/sn-x"))
        assert (e.status_code, e.detail) == (404, "Snapshot not found")
        # the default DC's path is not the lab's: not found either
        e = client_error(lambda: es.post("/vm/web02/snapshot/s1/image/sn-x"))
        assert (e.status_code, e.detail) == (404, "Snapshot not found")
        assert origin.hits[hits:] == ["/vms/main/nobody", "/vms/main/web02", "/vmsnap/main/web02/nosuch/disk1",
                                      "/vms/main/web02", "/vmsnap/main/web02/s1/disk1"]
        assert pending_tasks(es) == [] and es.get("/image").content.result == []
        # found under its DC: imported, bound to that DC
        r = es.post("/dc/lab/vm/web02/snapshot/s1/image/sn-ok")
        assert r.content.task_status == "SUCCESS"
        img = es.get("/image/sn-ok", extended=True).content.result
        assert (img["dcs"], img["dc_bound"], img["size"]) == (["lab"], True, 1)
        e = client_error(lambda: es.post("/dc/nowhere/vm/web02/snapshot/s1/image/sn-y"))
        assert (e.status_code, e.detail) == (404, "Datacenter not found")
    finally:
        srv.kill()


def test_on_the_default_server(tmp_path):
    """No options at all: one DC (`main`), PUT/DELETE tasks, streaming, cancel refusals, `/dc/main/image/`."""
    srv = ImagedServer(tmp_path / "default")
    srv.start()
    try:
        create_account(srv, "dn-alice", "p-alice", "member")
        es = login(srv, "dn-alice")
        # an image made through OpenStack (the default server refuses loopback imports)
        alice = Raw(srv.url, "alice")
        made = alice.post("/v2/images", json={"name": "d-img", "disk_format": "raw", "container_format": "bare"}).json()
        assert alice.put(f"/v2/images/{made['id']}/file", data=b"d" * 4096,
                         headers={"Content-Type": "application/octet-stream"}).status_code == 204
        assert es.get("/dc/main/image").content.result == ["d-img"]
        assert es.get("/image/d-img", extended=True).content.result["dcs"] == ["main"]
        e = client_error(lambda: es.get("/dc/lab/image"))
        assert (e.status_code, e.detail) == (404, "Datacenter not found")
        r = es.put("/image/d-img", desc="on default")
        assert r.content.task_status == "SUCCESS" and r.stream == "True" and r.task_id.startswith("1e1u1-")
        c = es.put("/image/d-img", version="2.0", stream=False).content
        assert c.task_status == "PENDING" and wait_task(es, c).task_status == "SUCCESS"
        e = client_error(lambda: es.put("/task/%s/cancel" % c.task_id))
        assert (e.status_code, e.detail) == (406, "Task cannot be canceled")
        shown = es.get("/image/d-img").content.result
        assert (shown["desc"], shown["version"]) == ("on default", "2.0")
        # a loopback callback is the URL guard's to refuse here (nothing opened it): 400 on cb_url, nothing changed
        e = client_error(lambda: es.put("/image/d-img", desc="never", cb_url="http://127.0.0.1/cb"))
        assert e.status_code == 400 and set(e.detail) == {"cb_url"} and "--import-allow-cidr" in e.detail["cb_url"][0], e.detail
        assert e.detail["cb_url"][0].startswith("Callback URL does not pass filtering: http://127.0.0.1/cb (")
        assert es.get("/image/d-img").content.result["desc"] == "on default"
        r = es.delete("/image/d-img")
        assert r.content.task_status == "SUCCESS" and r.status_code == 200
        assert alice.get(f"/v2/images/{made['id']}").status_code == 404
    finally:
        srv.kill()


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def one_callback(receiver: Receiver, path: str) -> dict:
    """Exactly one callback reaches `path` (and no second one follows)."""
    wait_for(lambda: receiver.to(path), timeout=15, what=f"a callback to {path}")
    time.sleep(1.0)
    calls = receiver.to(path)
    assert len(calls) == 1, calls
    return calls[0]


def test_cb_url_callbacks(dn2, origin, receiver):
    key = api_key(dn2, "dn-alice")
    secret = key.split(":", 1)[1]
    es = Client(api_url=dn2.url + "/api", api_key=key)

    # an import: one POST with the task status JSON, random_token and security_token = md5(random_token + key)
    url, m = serve_image(origin, random_bytes(128 << 10, 220))
    r = es.post("/image/cb-img", manifest_url=url, dc="main", cb_url=receiver.url("/cb/import"))
    assert r.content.task_status == "SUCCESS"
    call = one_callback(receiver, "/cb/import")
    assert call["method"] == "POST" and call["headers"]["Content-Type"] == "application/json"
    body = call["body"]
    assert {k: body[k] for k in ("task_id", "status", "result")} == {
        "task_id": r.task_id, "status": "SUCCESS", "result": {"returncode": 0, "message": f"Successfully imported image {m['uuid']}"}}
    assert set(body) == {"task_id", "status", "result", "random_token", "security_token"}
    assert len(body["random_token"]) >= 16 and body["security_token"] == md5(body["random_token"] + secret)

    # PUT and DELETE tasks report too; with a login token, the token is the key
    tok = login(dn2, "dn-alice")
    token = tok.headers["Authorization"].split(" ", 1)[1]
    c = tok.put("/image/cb-img", desc="cb", cb_url=receiver.url("/cb/put"), stream=False).content
    body = one_callback(receiver, "/cb/put")["body"]
    assert (body["task_id"], body["status"], body["result"]["message"]) == (c.task_id, "SUCCESS", "Successfully updated image cb-img")
    assert body["security_token"] == md5(body["random_token"] + token)
    r = tok.delete("/image/cb-img", cb_url=receiver.url("/cb/delete"))
    assert r.content.task_status == "SUCCESS"
    assert one_callback(receiver, "/cb/delete")["body"]["result"]["message"] == "Successfully deleted image cb-img"

    # a failed import and a cancelled one: FAILURE and REVOKED, once each
    url, m = serve_image(origin, random_bytes(64 << 10, 221))
    origin.routes.pop(f"/imgs/{m['uuid']}/file")
    with pytest.raises(TaskFailure):
        es.post("/image/cb-bad", manifest_url=url, dc="main", cb_url=receiver.url("/cb/failed")).content
    body = one_callback(receiver, "/cb/failed")["body"]
    assert body["status"] == "FAILURE" and body["result"]["detail"].startswith("Got bad return code (1). Error: ")
    slow = random_bytes(2 * MiB, 222)
    url, m = serve_image(origin, slow)
    origin.slow(f"/imgs/{m['uuid']}/file", slow, chunk=64 << 10, delay=0.25)
    c = es.post("/image/cb-slow", manifest_url=url, dc="main", cb_url=receiver.url("/cb/cancel"), stream=False).content
    with pytest.raises(TaskRevoked):
        es.put("/task/%s/cancel" % c.task_id).content
    body = one_callback(receiver, "/cb/cancel")["body"]
    assert (body["task_id"], body["status"]) == (c.task_id, "REVOKED")


def test_cb_url_receiver_down_or_refused(dn2, origin):
    es = login(dn2, "dn-alice")
    # down: nothing listens on the port; a hung receiver accepts and never answers. Neither blocks nor fails a task.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = closed.getsockname()[1]
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        url, m = serve_image(origin, random_bytes(64 << 10, 223))
        started = time.time()
        r = es.post("/image/cb-down", manifest_url=url, dc="main", cb_url=f"http://127.0.0.1:{down}/cb")
        assert r.content.task_status == "SUCCESS" and time.time() - started < 5
        started = time.time()
        r = es.put("/image/cb-down", desc="hung", cb_url=f"http://127.0.0.1:{hung.getsockname()[1]}/cb")
        assert r.content.task_status == "SUCCESS" and time.time() - started < 2
        polled = es.get("/task/%s/status" % r.task_id).content
        assert polled.task_status == "SUCCESS" and es.get("/image/cb-down").content.result["desc"] == "hung"
    finally:
        hung.close()

    # refused before anything is made: a URL the guard refuses, not a URL, a method Danube does not have
    before = es.get("/image").content.result
    for params, field in [({"cb_url": "http://169.254.169.254/latest/meta-data/"}, "cb_url"), ({"cb_url": "ftp://x/"}, "cb_url"),
                          ({"cb_url": "http://127.0.0.1:9/cb", "cb_method": "PATCH"}, "cb_method")]:
        e = client_error(lambda: es.post("/image/cb-refused", manifest_url=url, dc="main", **params))
        assert e.status_code == 400 and e.task_status == "FAILURE" and set(e.detail) == {field}, e.detail
        e = client_error(lambda: es.put("/image/cb-down", desc="never", **params))
        assert e.status_code == 400 and set(e.detail) == {field}
    assert "169.254.169.254" in str(client_error(lambda: es.delete("/image/cb-down", cb_url="http://169.254.169.254/x")).detail)
    assert es.get("/image").content.result == before and pending_tasks(es) == []
    assert es.get("/image/cb-down").content.result["desc"] == "hung"
