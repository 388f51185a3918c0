"""The Danube Cloud front-end's OpenAPI document (`/openapi/danube.json`), kept true by real answers: the document
is served and valid OpenAPI 3.1; a realistic flow of the vendor client's requests (login, imports and their tasks,
the three list forms, show, update, delete, VM usage, snapshot → image, imagestores, the IMGAPI, and the error cases)
has every answer — status, headers, body — validated against it with schemathesis' Python API; and schemathesis
itself runs against a live server with a fixed seed: no 5xx and no answer outside the document."""

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
import schemathesis
from esdc_api import Client
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from conftest import free_port, imaged_bin, ImagedServer, random_bytes, schemathesis_cli, served_openapi

FRONTEND = "danube"
PASSWORDS = {"oa-admin": "admin-openapi-password", "oa-alice": "alice-openapi-password", "oa-carol": "carol-openapi-password"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
MiB = 1 << 20


def imaged(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def api_key(srv: ImagedServer, account: str) -> str:
    out = imaged("account", "key", "create", account, "--data-dir", str(srv.data_dir))
    key_id = re.search(r"^key id: (imk_[0-9a-f]+)$", out, re.M).group(1)
    secret = re.search(r"^secret: (\S+)$", out, re.M).group(1)
    return f"{key_id}:{secret}"


def manifest_for(data: bytes, *, name: str = "tiny", version: str = "1.0", sha1: str | None = None) -> dict:
    return {"v": 2, "uuid": str(uuid.uuid4()), "name": name, "version": version, "type": "zvol", "os": "linux",
            "image_size": 64, "description": "OpenAPI test disk", "tags": {"erigones": ["web"], "resize": True},
            "published_at": "2026-11-30T10:00:00Z",
            "files": [{"sha1": sha1 or hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}


def serve_image(origin, data: bytes, *, slow: bool = False, **kw) -> tuple[str, dict]:
    m = manifest_for(data, **kw)
    origin.serve(f"/oa-imgs/{m['uuid']}", json.dumps(m).encode(), content_type="application/json")
    if slow:
        origin.slow(f"/oa-imgs/{m['uuid']}/file", data, chunk=64 << 10, delay=0.1)
    else:
        origin.serve(f"/oa-imgs/{m['uuid']}/file", data)
    return origin.url(f"/oa-imgs/{m['uuid']}"), m


@pytest.fixture(scope="module")
def dn(tmp_path_factory, origin):
    """One imaged with a snapshot source on the origin and two imagestores: itself (`self`) and one that is gone."""
    port = free_port()
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-openapi-danube"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--import-allow-port", str(port),
                       "--danube-snapshot-url", f"http://127.0.0.1:{origin.port}/oa-snap/{{vm}}/{{snap}}/disk{{disk_id}}",
                       "--danube-imagestore", f"self=http://127.0.0.1:{port}/imgapi/",
                       "--danube-imagestore", f"gone=http://127.0.0.1:{origin.port}/oa-no-such-store/",
                       "--task-lease-seconds", "3")
    srv.start(port=port)
    for name, project, role in [("oa-admin", "admin", "admin"), ("oa-alice", "p-alice", "member"), ("oa-carol", "p-carol", "reader")]:
        imaged("account", "create", name, "--project", project, "--role", role, "--password-stdin", "--data-dir", str(srv.data_dir),
               stdin=PASSWORDS[name] + "\n")
    srv.admin_key = api_key(srv, "oa-admin")
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def document(dn) -> dict:
    return served_openapi(dn.url, FRONTEND)


class Validator:
    """Every answer checked against the document by schemathesis: status documented, content type, headers, body."""

    def __init__(self, doc: dict):
        self.schema = schemathesis.openapi.from_dict(doc)
        self.seen: set[str] = set()

    def case_for(self, r: requests.Response):
        url = urlsplit(r.request.url)
        operation = self.schema.find_operation_by_path(r.request.method, url.path)
        assert operation is not None, f"{r.request.method} {url.path} is not in the document"
        if r.request.method == "HEAD":  # the router matches HEAD to GET; the document has HEAD operations of its own
            operation = self.schema[operation.path]["HEAD"]
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(operation.path)) + "$"
        params = {k: unquote(v) for k, v in re.match(pattern, url.path).groupdict().items()}
        self.seen.add(operation.label)
        return operation.Case(path_parameters=params or None, query=dict(parse_qsl(url.query)) or None)

    def __call__(self, r: requests.Response, status: int | None = None) -> requests.Response:
        if status is not None:
            assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text[:500])
        self.case_for(r).validate_response(r, checks=CHECKS)
        return r

    def rejects(self, r: requests.Response) -> str:
        try:
            self.case_for(r).validate_response(r, checks=CHECKS)
        except FailureGroup as e:
            return str(e)
        except AssertionError as e:
            return str(e)
        raise AssertionError(f"a doctored answer passed validation: {r.status_code} {r.headers} {r.text[:300]}")


class Danube:
    """Requests exactly as `esdc_api.Client(...).request(..., stream=False)` makes them (its headers but `ES-STREAM`,
    trailing slashes, JSON bodies, GET query strings), returning the raw `requests.Response` so each can be validated.
    The streamed answers `ES-STREAM` asks for are not JSON documents: test_danube_round2 checks them on the wire."""

    def __init__(self, base: str, check: Validator, api_key: str | None = None):
        self.client = Client(api_url=base + "/api", api_key=api_key)
        del self.client.headers["ES-STREAM"]
        self.base = base
        self.check = check

    def login(self, who: str) -> "Danube":
        r = self.check(self.request("POST", "/accounts/login", username=who, password=PASSWORDS[who]), 200)
        self.client.headers["Authorization"] = "Token " + r.json()["token"]
        return self

    def request(self, method: str, resource: str, **params) -> requests.Response:
        url = self.client._get_request_url(resource)
        data = None if method == "GET" else json.dumps(params)
        return requests.request(method, url, params=params if method == "GET" else None, data=data,
                                headers=self.client.headers, timeout=60, allow_redirects=False)

    def call(self, method: str, resource: str, status: int, **params) -> requests.Response:
        return self.check(self.request(method, resource, **params), status)

    def raw(self, method: str, resource: str, status: int, **kw) -> requests.Response:
        return self.check(requests.request(method, self.base + resource, headers=dict(self.client.headers, **kw.pop("headers", {})),
                                           timeout=60, **kw), status)

    def wait(self, task_id: str, timeout: float = 60) -> requests.Response:
        deadline = time.time() + timeout
        while True:
            r = self.check(self.request("GET", f"/task/{task_id}/status"))
            if r.status_code != 201:
                return r
            assert time.time() < deadline, f"task {task_id} still pending"
            time.sleep(0.2)


def test_danube_document_is_served_and_valid(document):
    assert document["openapi"] == "3.1.0" and document["info"]["title"] and document["info"]["version"]
    paths = document["paths"]
    for path in ["/api/accounts/login/", "/api/image/", "/api/image/{name}/", "/api/task/{task_id}/status/",
                 "/api/vm/{vm}/snapshot/{snapshot}/image/{name}/", "/api/imagestore/{repository}/image/{uuid}/",
                 "/imgapi/images/{uuid}/file"]:
        assert path in paths, path
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "token"}


def test_danube_flow_answers_match_the_document(dn, origin, document):
    check = Validator(document)
    alice = Danube(dn.url, check).login("oa-alice")
    admin = Danube(dn.url, check, api_key=dn.admin_key)
    carol = Danube(dn.url, check).login("oa-carol")
    anonymous = Danube(dn.url, check)

    # login refusals, no or bad credentials
    anonymous.call("POST", "/accounts/login", 400, username="oa-alice", password="wrong")
    anonymous.call("POST", "/accounts/login", 400, username="oa-alice")
    check(requests.post(dn.url + "/api/accounts/login/", data=b"{nope", timeout=30), 400)
    anonymous.call("GET", "/image", 401)
    Danube(dn.url, check, api_key="imk_00:nope").call("GET", "/image", 401)

    # an import from a manifest: 201 PENDING, polled to SUCCESS
    data = random_bytes(MiB + 3, 301)
    url, m = serve_image(origin, data, version="1.2")
    r = alice.call("POST", "/image/oa-tiny", 201, manifest_url=url, dc="main", access=3)
    task = r.json()["task_id"]
    assert r.headers["es_task_id"] == task and r.headers["es_task_response"] == "true"
    assert alice.wait(task).status_code == 200
    alice.call("GET", f"/task/{task}/done", 200)
    alice.call("GET", f"/task/{task}/state", 200)
    alice.call("GET", f"/task/{task}", 404)  # finished
    shown = alice.call("GET", "/image/oa-tiny", 200).json()["result"]
    assert (shown["uuid"], shown["version"], shown["size"], shown["tags"]) == (m["uuid"], "1.2", 64, ["web"])
    assert alice.call("GET", "/image/oa-tiny", 200, extended="true").json()["result"]["dcs"] == ["main"]

    # a slow import: the running task, its image pending (417 for changes)
    slow_url, _ = serve_image(origin, random_bytes(2 * MiB, 302), slow=True)
    pending = alice.call("POST", "/image/oa-slow", 201, manifest_url=slow_url, dc="main").json()["task_id"]
    assert alice.call("GET", "/task", 200).json() == [pending]
    assert alice.call("GET", f"/task/{pending}", 200).json()["image"] == "oa-slow"
    alice.call("GET", f"/task/{pending}/status", 201)
    assert alice.call("GET", f"/task/{pending}/done", 201).json()["done"] is False
    assert alice.call("GET", "/image/oa-slow", 200).json()["result"]["status"] == 2
    alice.call("PUT", "/image/oa-slow", 417, desc="now")
    assert alice.wait(pending).status_code == 200

    # a failed import (the file does not match the manifest's SHA-1): 400 FAILURE, the image is gone
    bad_url, _ = serve_image(origin, random_bytes(4096, 303), sha1="0" * 40)
    failing = alice.call("POST", "/image/oa-corrupt", 201, manifest_url=bad_url, dc="main").json()["task_id"]
    assert alice.wait(failing).status_code == 400
    alice.call("GET", f"/task/{failing}/done", 400)
    alice.call("GET", "/image/oa-corrupt", 404)

    # the three list forms and order_by
    assert "oa-tiny" in alice.call("GET", "/image", 200).json()["result"]
    alice.call("GET", "/image", 200, full="true")
    alice.call("GET", "/image", 200, extended="True", order_by="-created,name")
    alice.call("GET", "/image", 412, order_by="size")

    # update (a task), deactivate (access 4) and back, refusals; owner alone is answered at once
    upd = alice.call("PUT", "/image/oa-tiny", 201, desc="Tiny 2", version="1.3", tags=["web", "db"], deploy=True, resize="False")
    assert alice.wait(upd.json()["task_id"]).status_code == 200
    shown = alice.call("GET", "/image/oa-tiny", 200).json()["result"]
    assert (shown["desc"], shown["resize"]) == ("Tiny 2", False)
    assert alice.wait(alice.call("PUT", "/image/oa-tiny", 201, access=4).json()["task_id"]).status_code == 200
    assert alice.call("GET", "/image/oa-tiny", 200).json()["result"]["access"] == 4
    assert alice.wait(alice.call("PUT", "/image/oa-tiny", 201, access="3").json()["task_id"]).status_code == 200
    assert alice.call("PUT", "/image/oa-tiny", 200, owner="oa-alice").json()["result"]["access"] == 3
    alice.call("PUT", "/image/oa-tiny", 400, desc="x", cb_url="http://169.254.169.254/cb")
    assert alice.call("PUT", "/image/oa-tiny", 400, access=7, tags=["a.b"]).json()["result"].keys() == {"access", "tags"}
    check(requests.put(dn.url + "/api/image/oa-tiny/", data=b"[1]", headers=alice.client.headers, timeout=30), 400)
    alice.call("PUT", "/image/oa-nothing", 404)

    # import refusals: name rules, taken, fields, datacenter, permissions, manifests
    alice.call("POST", "/image/" + "n" * 33, 400, manifest_url=url, dc="main")
    alice.call("POST", "/image/-dash", 400, manifest_url=url, dc="main")
    alice.raw("POST", "/api/image/bad!name/", 404, json={})
    alice.call("POST", "/image/oa-tiny", 406, manifest_url=url, dc="main")
    alice.call("POST", "/image/oa-err", 400, dc="main")
    alice.call("POST", "/image/oa-err", 400, manifest_url=url)
    alice.call("POST", "/image/oa-err", 404, manifest_url=url, dc="elsewhere")
    alice.call("POST", "/image/oa-err", 403, manifest_url=url, dc="main", access=1)
    alice.call("POST", "/image/oa-err", 400, manifest_url=url, dc="main")  # the manifest's uuid is registered
    alice.call("POST", "/image/oa-err", 400, manifest_url=origin.url("/oa-no-such-manifest"), dc="main")
    alice.call("POST", "/image/oa-err", 400, manifest_url="ftp://example.com/m", dc="main")

    # VM usage: admins record it, everyone sees it, delete is refused while it is recorded
    assert alice.call("GET", "/image/oa-tiny/vm", 200).json()["result"] == []
    alice.call("PUT", "/image/oa-tiny/vm/web01", 403)
    assert admin.call("PUT", "/image/oa-tiny/vm/web01", 200).json()["result"] == ["web01"]
    assert alice.call("GET", "/image/oa-tiny/vm", 200, full="1").json()["result"] == [{"hostname": "web01"}]
    alice.call("DELETE", "/image/oa-tiny", 428)
    assert admin.call("DELETE", "/image/oa-tiny/vm/web01", 200).json()["result"] == []

    # snapshot → image (in the DC form too), a bad disk id
    origin.serve("/oa-snap/web01/daily/disk1", random_bytes(3 * MiB + 1, 304))
    snap = alice.call("POST", "/vm/web01/snapshot/daily/image/oa-web", 201, disk_id=1, version="2.0").json()["task_id"]
    assert alice.wait(snap).status_code == 200
    assert alice.call("GET", "/image/oa-web", 200).json()["result"]["size"] == 4
    alice.call("POST", "/vm/web01/snapshot/daily/image/oa-web-2", 412, disk_id=0)
    alice.call("POST", "/dc/main/vm/web01/snapshot/missing/image/oa-web-3", 404)

    # cancel: a running import is REVOKED (410, then polled 410), a finished task cannot be (406)
    running = alice.call("POST", "/image/oa-cancel", 201, manifest_url=serve_image(origin, random_bytes(2 * MiB, 306), slow=True)[0],
                         dc="main").json()["task_id"]
    assert alice.call("PUT", f"/task/{running}/cancel", 410).json()["status"] == "REVOKED"
    alice.call("GET", f"/task/{running}/status", 410)
    alice.call("GET", f"/task/{running}/state", 410)
    assert alice.call("GET", f"/task/{running}/done", 410).json()["done"] is True
    alice.call("PUT", f"/task/{running}/cancel", 406)
    alice.call("PUT", f"/task/1e1u1-{uuid.uuid4()}/cancel", 404)
    alice.call("GET", "/image/oa-cancel", 404)

    # datacenters: the images attached to `main`; a SuperAdmin attaches DC-unbound images only
    assert "oa-web" in alice.call("GET", "/dc/main/image", 200).json()["result"]
    alice.call("GET", "/dc/main/image", 200, extended="true")
    alice.call("GET", "/dc/elsewhere/image", 404)
    assert alice.call("GET", "/dc/main/image/oa-web", 200).json()["result"]["name"] == "oa-web"
    alice.call("POST", "/dc/main/image/oa-web", 403)
    admin.call("POST", "/dc/main/image/oa-web", 406)  # attached already (its DC)
    admin.call("DELETE", "/dc/main/image/oa-web", 428)  # DC-bound

    # a public image (admin), served by the IMGAPI; imagestores: this server itself and one that is gone
    pub_data = random_bytes(MiB, 305)
    pub_url, pub = serve_image(origin, pub_data, name="oa-public", version="3.1")
    t = admin.call("POST", "/image/oa-public", 201, manifest_url=pub_url, dc_bound=False, access=1).json()["task_id"]
    assert admin.wait(t).status_code == 200
    assert admin.call("DELETE", "/dc/main/image/oa-public", 200).json()["result"]["dcs"] == []
    alice.call("GET", "/dc/main/image/oa-public", 404)
    assert admin.call("POST", "/dc/main/image/oa-public", 201).json()["result"]["dcs"] == ["main"]
    listing = check(requests.get(dn.url + "/imgapi/images", timeout=30), 200).json()
    assert pub["uuid"] in [x["uuid"] for x in listing]
    check(requests.get(dn.url + "/imgapi/images", params={"name": "oa-public", "version": "3.1", "os": "linux", "type": "zvol",
                                                          "limit": "1"}, timeout=30), 200)
    check(requests.get(f"{dn.url}/imgapi/images/{pub['uuid']}", timeout=30), 200)
    check(requests.head(f"{dn.url}/imgapi/images/{pub['uuid']}", timeout=30), 200)
    f = check(requests.get(f"{dn.url}/imgapi/images/{pub['uuid']}/file", timeout=30), 200)
    assert f.content == pub_data
    check(requests.get(f"{dn.url}/imgapi/images/{uuid.uuid4()}", timeout=30), 404)
    check(requests.get(f"{dn.url}/imgapi/images/{m['uuid']}/file", timeout=30), 404)  # private

    assert alice.call("GET", "/imagestore", 200).json()["result"] == ["gone", "self"]
    alice.call("GET", "/imagestore", 200, full="true")
    carol.call("GET", "/imagestore", 403)
    repo = alice.call("PUT", "/imagestore/self", 200).json()["result"]
    assert repo["error"] is None and repo["image_count"] >= 1
    refreshed = alice.call("PUT", "/imagestore", 400).json()["result"]
    assert [x["name"] for x in refreshed if x["error"]] == ["gone"]
    alice.call("GET", "/imagestore/gone", 200)
    alice.call("GET", "/imagestore/nowhere", 404)
    assert pub["uuid"] in alice.call("GET", "/imagestore/self/image", 200).json()["result"]
    alice.call("GET", "/imagestore/self/image", 200, full="true")
    alice.call("GET", f"/imagestore/self/image/{pub['uuid']}", 200)
    alice.call("GET", f"/imagestore/self/image/{uuid.uuid4()}", 404)
    alice.call("POST", f"/imagestore/self/image/{pub['uuid']}", 406, name="oa-again", dc="main")

    # delete (a task), logout
    alice.call("DELETE", "/image/oa-web", 400, cb_url="ftp://nowhere/")
    gone = alice.call("DELETE", "/image/oa-web", 201).json()["task_id"]
    assert alice.wait(gone).json()["result"]["message"] == "Successfully deleted image oa-web"
    alice.call("GET", "/image/oa-web", 404)
    alice.call("GET", "/accounts/logout", 200)
    alice.call("GET", "/image", 401)

    # every operation of the document was answered at least once in this flow
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
                  if method in ("get", "put", "post", "delete", "head", "patch")}
    assert operations - check.seen <= {"HEAD /imgapi/images", "HEAD /imgapi/images/{uuid}/file"}, operations - check.seen

    # the validation can fail: a doctored body, a missing header, an undocumented status
    good = admin.call("GET", "/image/oa-public", 200)
    doctored = requests.get(good.url, headers=admin.client.headers, timeout=30)
    doctored._content = doctored.content.replace(b'"status":1', b'"status":"ok"')
    assert "ST108" in check.rejects(doctored) or "violates schema" in check.rejects(doctored)
    headless = requests.get(good.url, headers=admin.client.headers, timeout=30)
    headless.raw.headers.discard("es_version")  # schemathesis reads the wire headers
    assert "es_version" in check.rejects(headless)
    odd = requests.get(good.url, headers=admin.client.headers, timeout=30)
    odd.status_code = 418
    assert "418" in check.rejects(odd)


def test_danube_findings(dn, origin, document):
    """The server bugs found while writing the document (findings D1–D4), answered as the document says; each is
    checked on its own and all are reported together."""
    check = Validator(document)
    admin = Danube(dn.url, check, api_key=dn.admin_key)
    data = random_bytes(MiB, 311)
    url, m = serve_image(origin, data, name="oa-disabled")
    t = admin.call("POST", "/image/oa-disabled", 201, manifest_url=url, dc_bound=False, access=1).json()["task_id"]
    assert admin.wait(t).status_code == 200
    assert admin.wait(admin.call("PUT", "/image/oa-disabled", 201, access=4).json()["task_id"]).status_code == 200
    problems = []
    for finding, probe in [
        # D1: the file of a disabled public image is no 500
        ("D1", lambda: check(requests.get(f"{dn.url}/imgapi/images/{m['uuid']}/file", timeout=30), 404)),
        ("D1 (HEAD)", lambda: check(requests.head(f"{dn.url}/imgapi/images/{m['uuid']}/file", timeout=30), 404)),
        # D2: VM and snapshot names outside [A-Za-z0-9._-] are not routed
        ("D2", lambda: admin.raw("POST", "/api/vm/web%2001/snapshot/daily/image/oa-d2/", 404, json={})),
        # D3: an IMGAPI limit outside 1–1000 is refused
        ("D3", lambda: check(requests.get(dn.url + "/imgapi/images", params={"limit": "1001"}, timeout=30), 422)),
        # D4: a datacenter imaged does not have (`--danube-dc`) is not found
        ("D4", lambda: admin.raw("POST", "/api/dc/elsewhere/vm/web01/snapshot/daily/image/oa-d4/", 404, json={})),
    ]:
        try:
            probe()
        except (AssertionError, FailureGroup) as e:
            problems.append(f"{finding}: {str(e)[:1500]}")
    assert not problems, "\n\n".join(problems)


def test_schemathesis_finds_nothing(dn, origin, document, tmp_path):
    """schemathesis (fixed seed, bounded examples) against the live server with an admin API key; seeded images,
    tasks and manifests are offered as dictionary values so requests also reach existing objects."""
    admin = Danube(dn.url, Validator(document), api_key=dn.admin_key)
    names, uuids, tasks, manifests = [], [], [], []
    for i in range(3):
        data = random_bytes(64 << 10, 320 + i)
        url, m = serve_image(origin, data, name=f"st-seed-{i}")
        r = admin.call("POST", f"/image/st-seed-{i}", 201, manifest_url=url, dc_bound=False, access=1)
        names.append(f"st-seed-{i}")
        uuids.append(m["uuid"])
        tasks.append(r.json()["task_id"])
    for t in tasks:
        admin.wait(t)
    for i in range(6):  # manifests not imported yet: a generated import may use one and succeed
        url, _ = serve_image(origin, random_bytes(4096, 330 + i), name=f"st-new-{i}")
        manifests.append(url)
    admin.call("PUT", "/image/st-seed-0/vm/web01", 200)
    origin.serve("/oa-snap/web01/daily/disk1", random_bytes(MiB, 340))

    spec = tmp_path / f"{FRONTEND}.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join([
        # Danube's own refusal codes besides the usual ones: 412 (order_by, disk_id), 413, 417 (image busy), 423 (locked)
        "[checks.negative_data_rejection]",
        "expected-statuses = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 417, 422, 423, 428]",
        "[dictionaries.names]", f"values = {json.dumps(names + ['web01'])}",
        "[dictionaries.uuids]", f"values = {json.dumps(uuids)}",
        "[dictionaries.tasks]", f"values = {json.dumps(tasks)}",
        "[dictionaries.stores]", 'values = ["self", "gone"]',
        "[dictionaries.manifests]", f"values = {json.dumps(manifests)}",
        "[parameters]",
        '"path.name" = { dictionary = "names", probability = 0.5 }',
        '"path.uuid" = { dictionary = "uuids", probability = 0.5 }',
        '"path.task_id" = { dictionary = "tasks", probability = 0.5 }',
        '"path.repository" = { dictionary = "stores", probability = 0.6 }',
        '"path.vm" = { dictionary = "names", probability = 0.5 }',
        '"body.manifest_url" = { dictionary = "manifests", probability = 0.3 }',
        "[phases.stateful.generation]", "max-examples = 30",
        ""]))
    report = tmp_path / "report"
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
              "response_schema_conformance,negative_data_rejection")
    argv = [schemathesis_cli(), "--config-file", str(config), "run", str(spec), "--url", dn.url,
            "-H", f"ES-API-KEY: {dn.admin_key}", "--checks", checks, "--max-examples", os.environ.get("IMAGED_OPENAPI_MAX_EXAMPLES", "8"), "--seed", os.environ.get("IMAGED_OPENAPI_SEED", "20261202"),
            "--generation-database", "none", "--no-color", "--report", "junit,ndjson", "--report-dir", str(report),
            "--request-timeout", "30"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    print(out.stdout[-20000:])
    junit = ET.parse(next(report.glob("junit*.xml"))).getroot()
    operations = len([c for c in junit.iter("testcase") if not c.get("name", "").startswith("Stateful")])
    cases = failures = 0
    for line in next(report.glob("ndjson*.ndjson")).read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            cases += len(recorder.get("interactions") or {})
            failures += sum(c.get("status") == "failure" for checked in (recorder.get("checks") or {}).values() for c in checked)
    print(f"SCHEMATHESIS {FRONTEND} operations={operations} cases={cases} failures={failures}")
    assert cases > 0 and operations > 0, out.stdout + out.stderr
    assert failures == 0 and out.returncode == 0, out.stdout[-20000:] + out.stderr[-5000:]
