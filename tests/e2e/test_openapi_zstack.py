"""The ZStack front-end's OpenAPI document (issue 10), kept true by the server's real answers.

(a) The document imaged serves at /openapi/zstack.json is a valid OpenAPI 3.1 document.
(b) A flow as ZStack's SDKs drive it (login with the SHA-512 password, `Authorization: OAuth`, an X-Job-UUID per
    call, async APIs answered 202 and polled to 200/503; AddImage from a URL and by upload://, QueryImage with its
    query language, UpdateImage, ChangeImageState, DeleteImage/RecoverImage/ExpungeImage, backup storages, logout)
    with error cases, where every response, job polls included, is checked against the document with schemathesis'
    own checks (status code, content type, headers, body schema); a doctored response must fail the same checks.
(c) The schemathesis CLI against a live server (fixed seed, bounded examples, the session via -H, the data hooks
    of schemathesis_zstack_hooks.py): no answer outside the document, no schema-invalid request accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as st_checks

from conftest import imaged_bin, ImagedServer, random_bytes, schemathesis_cli, served_openapi

FRONTEND = "zstack"
HERE = Path(__file__).resolve().parent
ACCOUNTS = {  # name: (project, role, password)
    "oz-alice": ("p-oz-alice", "member", "oz-alice-password"),
    "oz-root": ("admin", "admin", "oz-root-password"),
}
RESPONSE_CHECKS = [st_checks.status_code_conformance, st_checks.content_type_conformance,
                   st_checks.response_headers_conformance, st_checks.response_schema_conformance]
# What the CLI run checks (selected in schemathesis.toml: a --checks list on the command line would override the
# per-operation settings). ZStack answers every API-level error with 503 and its ErrorCode body, so
# not_a_server_error allows 503; SYS.1000 (an internal error) is outside the document's ErrorCode enum, so a real
# server fault still fails response_schema_conformance. negative_data_rejection holds for the synchronous
# operations; the async ones (AddImage, DeleteImage, the image and backup storage actions, DeleteExportedImage,
# CreateUserTag, DeleteTag) accept any well-formed job with 202 and fail
# it in the job, as ZStack does, so the check is off for them (this module's flow checks that such jobs fail).
# Not used: ignored_auth (ZStack refuses a missing Authorization with a plain-text 400 and a bad session with 503
# ID.1001, not 401/403), use_after_free (DeleteImage is ZStack's soft delete: the image stays, `Deleted`, until
# expunged), positive_data_acceptance (valid-looking uuids of images or storages that do not exist are refused).
CLI_CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
              "response_schema_conformance", "negative_data_rejection", "ensure_resource_availability", "unsupported_method",
              "allow_header_conformance"]
EXTRA_SETTINGS = {"not_a_server_error": 'expected-statuses = ["2xx", "3xx", "4xx", "503"]\n'}
SCHEMATHESIS_TOML = (
    "[checks]\nenabled = false\n\n"
    + "".join(f"[checks.{name}]\nenabled = true\n{EXTRA_SETTINGS.get(name, '')}\n" for name in CLI_CHECKS)
    + '[[operations]]\ninclude-operation-id = ["addImage", "deleteImage", "imageAction", "backupStorageAction", "deleteExportedImage",'
    + ' "createUserTag", "deleteTag"]\n'
    + "checks.negative_data_rejection.enabled = false\n"
)
SEED = int(os.environ.get("IMAGED_OPENAPI_SEED", "20261"))
MAX_EXAMPLES = int(os.environ.get("IMAGED_OPENAPI_MAX_EXAMPLES", "15"))


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def zs_server(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-openapi-zstack"), "--store", "primary=file", "--store", "replica=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    for name, (project, role, password) in ACCOUNTS.items():
        out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                              "--password-stdin", "--data-dir", str(srv.data_dir)],
                             input=password + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def document(zs_server) -> dict:
    return served_openapi(zs_server.url, FRONTEND)


class ZStack:
    """ZStack's REST conventions (as the Java/Python SDKs), every answer checked against the document."""

    def __init__(self, schema, base: str, session: str | None = None):
        self.schema = schema
        self.root = base
        self.base = base + "/zstack/v1"
        self.session = session
        self.http = requests.Session()
        self.validated = 0

    def check(self, r: requests.Response) -> requests.Response:
        operation = self.schema.find_operation_by_path(r.request.method, r.request.path_url.split("?")[0])
        assert operation is not None, f"{r.request.method} {r.request.path_url} is not in the document"
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(operation.path))
        params = re.fullmatch(pattern, r.request.path_url.split("?")[0]).groupdict()
        operation.Case(path_parameters=params or None).validate_response(r, checks=RESPONSE_CHECKS)
        self.validated += 1
        return r

    def login(self, name: str, password: str | None = None) -> requests.Response:
        r = self.call("PUT", "/accounts/login", auth=False, json={"logInByAccount": {
            "accountName": name, "password": sha512(password or ACCOUNTS[name][2])}})
        if r.status_code == 200:
            self.session = r.json()["inventory"]["uuid"]
        return r

    def call(self, method: str, path: str, job: str | None = None, auth: bool = True, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if auth and self.session:
            headers.setdefault("Authorization", f"OAuth {self.session}")
        if method in ("POST", "PUT", "DELETE") and path.startswith(("/images", "/zstack")):
            headers.setdefault("X-Job-UUID", job or uuid.uuid4().hex)
        kw.setdefault("timeout", 60)
        return self.check(self.http.request(method, path if path.startswith("http") else self.base + path, headers=headers, **kw))

    def poll(self, location: str, timeout: float = 90) -> requests.Response:
        deadline = time.monotonic() + timeout
        while True:
            r = self.check(self.http.get(location, headers={"Authorization": f"OAuth {self.session}"}, timeout=60))  # the session, as every call
            if r.status_code != 202:
                return r
            assert time.monotonic() < deadline, f"job {location} still running"
            time.sleep(0.2)

    def run(self, method: str, path: str, **kw) -> requests.Response:
        r = self.call(method, path, **kw)
        assert r.status_code == 202, (r.status_code, r.text)
        return self.poll(r.json()["location"])

    def ok(self, method: str, path: str, **kw) -> dict:
        r = self.run(method, path, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def fails(self, method: str, path: str, code: str, **kw) -> dict:
        r = self.run(method, path, **kw)
        assert r.status_code == 503 and r.json()["error"]["code"] == code, r.text
        return r.json()["error"]

    def image(self, image_uuid: str) -> dict | None:
        found = self.call("GET", f"/images/{image_uuid}").json()["inventories"]
        return found[0] if found else None


def test_document_is_valid_openapi(document):
    assert {"/zstack/v1/accounts/login", "/zstack/v1/images", "/zstack/v1/images/{uuid}", "/zstack/v1/images/{uuid}/actions",
            "/zstack/v1/api-jobs/{uuid}", "/zstack/v1/backup-storage", "/zstack/v1/uploads/{uuid}/{token}"} <= set(document["paths"])


def test_real_answers_match_the_document(zs_server, document, origin):
    schema = schemathesis.openapi.from_dict(document)
    z = ZStack(schema, zs_server.url)

    # Sessions.
    r = z.login("oz-alice", "wrong-password")
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1000"
    assert z.call("PUT", "/accounts/login", auth=False, json={"logIn": {}}).status_code == 400
    assert z.call("PUT", "/accounts/login", auth=False, json={"logInByAccount": {"accountName": "oz-alice"}}).json()["error"]["code"] == "SYS.1007"
    assert z.login("oz-alice").status_code == 200
    assert z.call("GET", f"/accounts/sessions/{z.session}/valid", auth=False).json() == {"valid": True}
    assert z.call("GET", f"/accounts/sessions/{uuid.uuid4().hex}/valid", auth=False).json() == {"valid": False}
    assert z.call("GET", "/images", auth=False).status_code == 400  # missing header 'Authorization'
    assert z.call("GET", "/images", headers={"Authorization": "Bearer x"}).status_code == 400
    assert z.call("GET", "/images", headers={"Authorization": f"OAuth {uuid.uuid4().hex}"}).json()["error"]["code"] == "ID.1001"

    # Backup storages: imaged's stores.
    stores = {bs["name"]: bs for bs in z.call("GET", "/backup-storage").json()["inventories"]}
    assert set(stores) == {"primary", "replica"}
    primary, replica = stores["primary"]["uuid"], stores["replica"]["uuid"]
    assert z.call("GET", f"/backup-storage/{replica}").json()["inventories"][0]["name"] == "replica"
    assert z.call("GET", f"/backup-storage/{uuid.uuid4().hex}").json() == {"inventories": []}
    assert len(z.call("GET", "/images/candidate-backup-storage").json()["inventories"]) == 2
    assert z.call("GET", "/backup-storage", params={"q": "name=primary"}).json()["inventories"][0]["uuid"] == primary
    assert z.call("GET", "/backup-storage", params={"q": "name>a"}).json()["error"]["code"] == "SYS.1007"
    assert z.call("GET", "/backup-storage", params={"q": "nothing"}).status_code == 400

    # AddImage from a URL onto both storages, with a chosen job uuid and image uuid; the job runs (202) then 200.
    data = random_bytes(2 << 20, 5151)
    src = origin.slow(f"/{uuid.uuid4().hex}.raw", data, 256 << 10, 0.1)
    job, wanted = uuid.uuid4().hex, uuid.uuid4().hex
    r = z.call("POST", "/images", job=job, json={
        "params": {"name": "oz-raw", "description": "from a url", "url": src, "format": "raw", "platform": "Linux",
                   "system": "false", "backupStorageUuids": [primary, replica], "resourceUuid": wanted},
        "systemTags": ["qemuga"], "userTags": ["team::blue"]})
    assert r.status_code == 202 and r.json()["location"].endswith(f"/api-jobs/{job}")
    first = z.check(z.http.get(r.json()["location"], headers={"Authorization": f"OAuth {z.session}"}, timeout=60))
    assert first.status_code in (200, 202)
    done = z.poll(r.json()["location"]).json()["inventory"]
    assert done["uuid"] == wanted and done["status"] == "Ready" and done["md5Sum"] == hashlib.md5(data).hexdigest()
    assert {ref["backupStorageUuid"] for ref in done["backupStorageRefs"]} == {primary, replica}
    assert z.call("POST", "/images", job=job, json={"params": {}}).status_code == 400  # a reused job uuid
    assert z.call("POST", "/images", job="not-a-job", json={"params": {}}).status_code == 400
    assert z.call("POST", "/images", json={"name": "no params"}).status_code == 400
    assert z.call("POST", "/images", json={"params": {"name": "x", "system": "yes"}}).status_code == 400

    # AddImage refusals end in failed jobs with ZStack's codes.
    base = {"name": "oz-bad", "url": src, "format": "raw", "backupStorageUuids": [primary]}
    z.fails("POST", "/images", "SYS.1007", json={"params": {**base, "format": "vhd"}})
    z.fails("POST", "/images", "SYS.1007", json={"params": {**base, "url": "file:///etc/passwd"}})
    z.fails("POST", "/images", "SYS.1007", json={"params": {**base, "url": "http://169.254.169.254/latest"}})
    z.fails("POST", "/images", "SYS.1003", json={"params": {**base, "backupStorageUuids": [uuid.uuid4().hex]}})
    z.fails("POST", "/images", "SYS.1007", json={"params": {**base, "resourceUuid": wanted}})
    err = z.fails("POST", "/images", "SYS.1002", json={"params": {**base, "url": origin.url(f"/{uuid.uuid4().hex}-missing.raw")}})
    assert err["cause"]["code"]

    # upload://: the job ends at once; the bytes go to the ref's upload URL (multipart, as to ZStack's agent).
    made = z.ok("POST", "/images", json={"params": {"name": "oz-upload", "url": "upload://oz.raw", "format": "raw",
                                                    "backupStorageUuids": [replica]}})["inventory"]
    assert made["status"] == "Downloading"
    upload_url = made["backupStorageRefs"][0]["installPath"]
    payload = random_bytes(300 << 10, 5152)
    assert z.call("POST", upload_url, auth=False, files={"file": ("oz.raw", payload)}).status_code == 400  # no X-IMAGE-SIZE
    r = z.call("POST", upload_url, auth=False, files={"file": ("oz.raw", payload)},
               headers={"X-IMAGE-UUID": made["uuid"], "X-IMAGE-SIZE": str(len(payload))})
    assert r.status_code == 200, r.text
    assert z.call("POST", upload_url, auth=False, data=payload, headers={"X-IMAGE-SIZE": str(len(payload))}).status_code == 404
    assert z.image(made["uuid"])["status"] == "Ready"

    # QueryImage and its query language.
    q = z.call("GET", "/images", params=[("q", "status=Ready"), ("q", "name~=oz-%"), ("sort", "-createDate"), ("replyWithCount", "true")]).json()
    assert q["total"] == 2 and {i["name"] for i in q["inventories"]} == {"oz-raw", "oz-upload"}
    page = z.call("GET", "/images", params={"fields": "uuid,name,status", "limit": 1, "start": 1, "sortBy": "name"}).json()
    assert [set(i) for i in page["inventories"]] == [{"uuid", "name", "status"}]
    assert z.call("GET", "/images", params={"count": "true", "q": "backupStorage.name=replica"}).json() == {"total": 2}
    assert z.call("GET", "/images", params={"q": f"backupStorageRefs.backupStorageUuid?={primary},{replica}", "q2": "x"}).json()["inventories"]
    assert z.call("GET", "/images", params={"q": "size>abc"}).json()["error"]["code"] == "SYS.1007"
    assert z.call("GET", "/images", params={"q": "colour=red"}).json()["error"]["code"] == "SYS.1007"
    assert z.call("GET", "/images", params={"sort": "-colour"}).json()["error"]["code"] == "SYS.1007"
    assert z.call("GET", "/images", params={"q": "no operator"}).status_code == 400
    assert z.call("GET", "/images", params={"limit": "-1"}).status_code == 400
    assert z.image(wanted)["name"] == "oz-raw" and z.image(uuid.uuid4().hex) is None

    # UpdateImage, ChangeImageState, refusals, unsupported actions.
    updated = z.ok("PUT", f"/images/{wanted}/actions", json={"updateImage": {"name": "oz-renamed", "description": 42, "platform": "Windows",
                                                                               "guestOsType": "Windows 2019", "system": True}})["inventory"]
    assert (updated["name"], updated["description"], updated["platform"], updated["system"]) == ("oz-renamed", "42", "Windows", True)
    assert z.call("PUT", f"/images/{wanted}/actions", json={"updateImage": {"virtio": "maybe"}}).status_code == 400
    assert z.call("PUT", f"/images/{wanted}/actions", json={"renameImage": {}}).status_code == 400
    z.fails("PUT", f"/images/{wanted}/actions", "SYS.1007", json={"updateImage": {"platform": "BeOS"}})
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"changeImageState": {"stateEvent": "disable"}})["inventory"]["state"] == "Disabled"
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"changeImageState": {"stateEvent": "enable"}})["inventory"]["state"] == "Enabled"
    z.fails("PUT", f"/images/{wanted}/actions", "SYS.1007", json={"changeImageState": {"stateEvent": "freeze"}})
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"setImageQga": {"enable": True}}) == {}
    assert z.call("GET", f"/images/{wanted}/qga").json() == {"enable": True}
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"setImageBootMode": {"bootMode": "UEFI"}}) == {}
    z.fails("PUT", f"/images/{wanted}/actions", "SYS.1007", json={"setImageBootMode": {"bootMode": "BIOS"}})
    hashed = z.ok("PUT", f"/images/{wanted}/actions", json={"calculateImageHash": {"backupStorageUuid": replica, "algorithm": "SHA256"}})
    assert hashed["inventory"]["uuid"] == wanted
    z.fails("PUT", f"/images/{wanted}/actions", "SYS.1014", json={"exportImageFromBackupStorage": {"imageUuid": wanted}})
    # ExportImageFromBackupStorage, its URL, DeleteExportedImageFromBackupStorage.
    exported = z.ok("PUT", f"/backup-storage/{replica}/actions", json={"exportImageFromBackupStorage": {"imageUuid": wanted}})
    assert z.call("GET", exported["imageUrl"], auth=False).status_code == 200
    assert z.call("HEAD", exported["imageUrl"], auth=False).status_code == 200
    assert z.call("GET", exported["imageUrl"], auth=False, headers={"Range": "bytes=0-9"}).status_code == 206
    assert [ref.get("exportMd5Sum") for ref in z.image(wanted)["backupStorageRefs"] if ref["backupStorageUuid"] == replica] == [exported["exportMd5Sum"]]
    z.fails("PUT", f"/backup-storage/{uuid.uuid4().hex}/actions", "SYS.1003", json={"exportImageFromBackupStorage": {"imageUuid": wanted}})
    assert z.ok("DELETE", f"/backup-storage/{replica}/exported-images/{wanted}") == {}
    assert z.call("GET", exported["imageUrl"], auth=False).status_code == 404
    # CreateUserTag, QueryUserTag, DeleteTag.
    tag = z.ok("POST", "/user-tags", json={"params": {"resourceType": "ImageVO", "resourceUuid": wanted, "tag": "oz::1"}})["inventory"]
    assert z.call("GET", "/user-tags", params=[("q", f"resourceUuid={wanted}"), ("q", "tag=oz::1"), ("replyWithCount", "true")]).json()["total"] == 1
    assert z.call("GET", f"/user-tags/{tag['uuid']}").json()["inventories"] == [tag]
    z.fails("POST", "/user-tags", "SYS.1006", json={"params": {"resourceType": "ImageVO", "resourceUuid": wanted, "tag": "oz::1"}})
    assert z.ok("DELETE", f"/tags/{tag['uuid']}") == {}
    assert z.call("GET", "/user-tags", params={"q": "colour=red"}).status_code == 503
    z.fails("PUT", f"/images/{uuid.uuid4().hex}/actions", "SYS.1003", json={"syncImageSize": {}})
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"syncImageSize": {}})["inventory"]["uuid"] == wanted

    # DeleteImage (soft), RecoverImage, DeleteImage, ExpungeImage.
    assert z.ok("DELETE", f"/images/{wanted}", params={"deleteMode": "Permissive"}) == {}
    assert z.image(wanted)["status"] == "Deleted"
    z.fails("DELETE", f"/images/{made['uuid']}", "SYS.1007", params={"deleteMode": "Sometimes"})
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"recoverImage": {}})["inventory"]["status"] == "Ready"
    z.fails("PUT", f"/images/{wanted}/actions", "SYS.1006", json={"expungeImage": {}})  # not deleted
    assert z.ok("DELETE", f"/images/{wanted}") == {}
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"expungeImage": {"backupStorageUuids": [primary, replica]}}) == {}
    assert z.image(wanted) is None
    assert z.ok("DELETE", f"/images/{uuid.uuid4().hex}") == {}  # no such image: success

    # Jobs: unknown or expired is a plain 404. Logout ends the session.
    assert z.check(z.http.get(f"{z.base}/api-jobs/{uuid.uuid4().hex}", headers={"Authorization": f"OAuth {z.session}"}, timeout=60)).status_code == 404
    assert z.call("DELETE", f"/accounts/sessions/{z.session}", auth=False).json() == {}
    assert z.call("GET", f"/accounts/sessions/{z.session}/valid", auth=False).json() == {"valid": False}
    assert z.call("GET", "/images").json()["error"]["code"] == "ID.1001"
    print(f"validated {z.validated} real responses against zstack.json")

    # The same checks reject doctored answers: the document means something.
    z.login("oz-alice")
    real = z.call("GET", "/images")
    for doctor in (lambda b: b["inventories"][0].update(status="Bogus"),
                   lambda b: b["inventories"][0].update(uuid="image-1"),
                   lambda b: b["inventories"][0].update(createDate="2026-12-02T03:00:00Z"),
                   lambda b: b["inventories"][0]["backupStorageRefs"][0].pop("installPath"),
                   lambda b: b.update(inventories=None)):
        body = real.json()
        doctor(body)
        fake = requests.Response()
        fake.status_code, fake.headers, fake.request, fake.url = 200, real.headers, real.request, real.url
        fake._content = json.dumps(body).encode()
        with pytest.raises(FailureGroup):
            z.check(fake)
    internal = requests.Response()  # an internal error (SYS.1000) is not an API error of the contract
    internal.status_code, internal.headers, internal.request, internal.url = 503, real.headers, real.request, real.url
    internal._content = json.dumps({"error": {"code": "SYS.1000", "description": "An internal error happened in system",
                                              "details": "internal error"}}).encode()
    with pytest.raises(FailureGroup):
        z.check(internal)


def test_schemathesis_finds_nothing(zs_server, document, tmp_path):
    schema = schemathesis.openapi.from_dict(document)
    z = ZStack(schema, zs_server.url)
    assert z.login("oz-root").status_code == 200
    storage = z.call("GET", "/backup-storage").json()["inventories"][0]["uuid"]
    spec = tmp_path / "zstack.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    junit = tmp_path / "junit.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
               SCHEMATHESIS_HOOKS="schemathesis_zstack_hooks", ZSTACK_USERNAME="oz-root",
               ZSTACK_PASSWORD=ACCOUNTS["oz-root"][2], ZSTACK_BACKUP_STORAGE=storage)
    cmd = [schemathesis_cli(), "--no-color", "--config-file", str(config), "run", str(spec), "--url", zs_server.url,
           "-H", f"Authorization: OAuth {z.session}", "--max-examples", str(MAX_EXAMPLES),
           "--seed", str(SEED), "--workers", "1", "--request-timeout", "30",
           "--report", "junit", "--report-junit-path", str(junit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=170, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert junit.exists(), out[-5000:]
    suite = ET.parse(junit).getroot()
    operations = sum(1 for t in suite.iter("testcase") if re.match(r"(GET|HEAD|POST|PUT|PATCH|DELETE) /", t.get("name", "")))
    failures = int(suite.get("failures")) + int(suite.get("errors"))
    generated = re.search(r"(\d+) generated", out)
    cases = int(generated.group(1)) if generated else 0
    print(f"SCHEMATHESIS {FRONTEND} operations={operations} cases={cases} failures={failures}")
    assert failures == 0 and proc.returncode == 0, out[-12000:]
    assert cases > 0 and operations == len([m for p in document["paths"].values() for m in p if m != "parameters"]), out[-3000:]
