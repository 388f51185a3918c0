"""The Scalr front-end's OpenAPI document (`/openapi/scalr.json`), kept true by real answers: the document is served
and valid OpenAPI 3.1; a realistic flow of signed requests in the three scopes (what `scalr-ctl` does: register,
get, list with filters and pages, edit, deregister, and the error cases: signatures, scopes, bodies, filters, the
unsupported actions) has every answer — status, headers, body — validated against it with schemathesis' Python
API; and schemathesis itself runs against a live server with a fixed seed, every request signed by
`schemathesis_scalr_hooks.py`: no 5xx besides Scalr's 501 NotImplemented, and no answer outside the document."""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from conftest import imaged_bin, ImagedServer, schemathesis_cli, served_openapi
from schemathesis_scalr_hooks import sign

FRONTEND = "scalr"
HOOKS = Path(__file__).resolve().parent / "schemathesis_scalr_hooks.py"
PASSWORDS = {"st-admin": "admin-openapi-password", "st-alice": "alice-openapi-password", "st-bob": "bob-openapi-password",
             "st-carol": "carol-openapi-password"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def imaged(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Key:
    def __init__(self, srv: ImagedServer, account: str):
        out = imaged("account", "key", "create", account, "--scalr", "--data-dir", str(srv.data_dir))
        self.key_id = re.search(r"^key id: (APIK[A-Z0-9]{16})$", out, re.M).group(1)
        self.secret = re.search(r"^secret: (\S{40})$", out, re.M).group(1)
        listed = imaged("account", "list", "--data-dir", str(srv.data_dir))
        self.env_id = int(re.search(rf"^{account}\t.*\tscalr_env=(\d+)$", listed, re.M).group(1))


def registration(name: str, ami: str, location: str = "us-east-1", **extra) -> dict:
    return {"name": name, "cloudPlatform": "ec2", "cloudLocation": location, "cloudImageId": ami, "architecture": "x86_64",
            "os": {"id": "ubuntu-16-04"}, **extra}


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-openapi-scalr"))
    srv.start()
    for name, project, role in [("st-admin", "admin", "admin"), ("st-alice", "p-alice", "member"), ("st-bob", "p-bob", "member"),
                                ("st-carol", "p-carol", "reader")]:
        imaged("account", "create", name, "--project", project, "--role", role, "--password-stdin", "--data-dir", str(srv.data_dir),
               stdin=PASSWORDS[name] + "\n")
    srv.keys = {who: Key(srv, f"st-{who}") for who in ["admin", "alice", "bob", "carol"]}
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def document(sc) -> dict:
    return served_openapi(sc.url, FRONTEND)


class Validator:
    """Every answer checked against the document by schemathesis: status documented, content type, headers, body."""

    def __init__(self, doc: dict):
        # 501 is Scalr's own answer for what is not offered (copy, replace, deleteFromCloud), documented as such
        config = SchemathesisConfig.from_dict({"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}}})
        self.schema = schemathesis.openapi.from_dict(doc, config=config)
        self.seen: set[str] = set()

    def case_for(self, r: requests.Response):
        url = urlsplit(r.request.url)
        operation = self.schema.find_operation_by_path(r.request.method, url.path)
        assert operation is not None, f"{r.request.method} {url.path} is not in the document"
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(operation.path)) + "$"
        params = {k: unquote(v) for k, v in re.match(pattern, url.path).groupdict().items()}
        self.seen.add(operation.label)
        return operation.Case(path_parameters=params or None, query=dict(parse_qsl(url.query)) or None)

    def __call__(self, r: requests.Response, status: int | None = None, code: str | None = None) -> requests.Response:
        if status is not None:
            assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text[:500])
        self.case_for(r).validate_response(r, checks=CHECKS)
        if code is not None:
            assert [e["code"] for e in r.json()["errors"]] == [code], r.text
        return r

    def rejects(self, r: requests.Response) -> str:
        try:
            self.case_for(r).validate_response(r, checks=CHECKS)
        except (FailureGroup, AssertionError) as e:
            return str(e)
        raise AssertionError(f"a doctored answer passed validation: {r.status_code} {r.headers} {r.text[:300]}")


class Scalr:
    """Signed requests as Scalr's clients make them (scalr-ctl's headers; the body is JSON), validated."""

    def __init__(self, srv: ImagedServer, key: Key, check: Validator):
        self.srv, self.key, self.check = srv, key, check

    def request(self, method: str, path: str, query: str = "", body=None, *, raw: bytes | None = None, date: str | None = None,
                drop: str | None = None, content_type: str = "application/json", headers: dict | None = None,
                secret: str | None = None) -> requests.Response:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        prepared = requests.Request(method, self.srv.url + path + ("?" + query if query else ""), data=data,
                                    headers={"Content-Type": content_type, "Accept": "application/json", **(headers or {})}).prepare()
        sign(prepared, self.key.key_id, secret or self.key.secret)
        if date:  # a signature over another date
            prepared.headers["X-Scalr-Date"] = date
        if drop:
            del prepared.headers[drop]
        with requests.Session() as s:
            return s.send(prepared, timeout=60)

    def call(self, method: str, path: str, status: int, query: str = "", body=None, code: str | None = None, **kw) -> requests.Response:
        return self.check(self.request(method, path, query, body, **kw), status, code)


def test_scalr_document_is_served_and_valid(document):
    assert document["openapi"] == "3.1.0" and document["info"]["title"] and document["info"]["version"]
    for path in ["/api/v1beta0/global/images/", "/api/v1beta0/account/images/{imageId}/", "/api/v1beta0/account/{accountId}/images/",
                 "/api/v1beta0/user/{envId}/images/{imageId}/actions/copy/", "/api/user.v1beta0.yml"]:
        assert path in document["paths"], path
    assert set(document["components"]["securitySchemes"]) == {"keyId", "date", "signature"}


def test_scalr_flow_answers_match_the_document(sc, document):
    check = Validator(document)
    alice, bob = Scalr(sc, sc.keys["alice"], check), Scalr(sc, sc.keys["bob"], check)
    admin, carol = Scalr(sc, sc.keys["admin"], check), Scalr(sc, sc.keys["carol"], check)
    env = f"/api/v1beta0/user/{sc.keys['alice'].env_id}/images/"

    # environment scope: register, get, list (filters, pages), edit, deregister
    made = [alice.call("POST", env, 201, body=registration(f"fl-img-{i}", f"ami-fl{i:04d}")).json()["data"] for i in range(5)]
    first = made[0]
    assert (first["scope"], first["cloudPlatform"], first["os"]) == ("environment", "ec2", {"id": "ubuntu-16-04"})
    assert alice.call("GET", env + first["id"] + "/", 200).json()["data"] == first
    assert len(alice.call("GET", env, 200).json()["data"]) == 5
    page = alice.call("GET", env, 200, "maxResults=2&pageNum=2").json()
    assert len(page["data"]) == 2 and page["pagination"]["next"].endswith("maxResults=2&pageNum=3")
    assert alice.call("GET", env, 200, "maxResults=2&pageNum=9").json()["data"] == []
    alice.call("GET", env, 200, "cloudPlatform=ec2&cloudLocation=us-east-1&name=fl-img-4&deprecated=false&os=ubuntu-16-04")
    edited = alice.call("PATCH", env + first["id"] + "/", 200, body={"name": "fl-img-renamed", "deprecated": True}).json()["data"]
    assert (edited["name"], edited["deprecated"]) == ("fl-img-renamed", True)
    r = alice.call("DELETE", env + made[4]["id"] + "/", 200, "deleteFromCloud=false")
    assert r.json()["data"] is None
    alice.call("GET", env + made[4]["id"] + "/", 404, code="ObjectNotFound")

    # global and account scopes (admin writes), in every path form
    glob = admin.call("POST", "/api/v1beta0/global/images/", 201,
                      body={**registration("fl-global", "projects/p/global/images/fl"), "cloudPlatform": "gce", "cloudLocation": None,
                            "scope": "scalr", "cloudFeatures": {"type": "ImageCloudFeatures"}, "scalrAgentInstalled": False}).json()["data"]
    assert (glob["scope"], glob["cloudLocation"]) == ("scalr", None)
    acct = admin.call("POST", "/api/v1beta0/account/1/images/", 201, body=registration("fl-account", "ami-flacct")).json()["data"]
    for path in ["/api/v1beta0/global/images/", "/api/v1beta0/account/images/", "/api/v1beta0/account/1/images/"]:
        admin.call("GET", path, 200)
    alice.call("GET", "/api/v1beta0/account/images/", 200, "scope=account")
    alice.call("GET", f"/api/v1beta0/account/images/{acct['id']}/", 200)
    admin.call("GET", f"/api/v1beta0/account/1/images/{acct['id']}/", 200)
    admin.call("GET", f"/api/v1beta0/global/images/{glob['id']}/", 200)
    admin.call("PATCH", f"/api/v1beta0/account/images/{acct['id']}/", 200, body={"name": "fl-account-2"})
    admin.call("PATCH", f"/api/v1beta0/account/1/images/{acct['id']}/", 200, body={"deprecated": False})
    admin.call("PATCH", f"/api/v1beta0/global/images/{glob['id']}/", 200, body={"deprecated": True})
    # an admin reaches alice's environment too
    admin.call("GET", env, 200)

    # signatures
    alice.call("GET", env, 401, drop="X-Scalr-Signature", code="BadAuthentication")
    alice.call("GET", env, 400, drop="X-Scalr-Date", code="BadRequest")
    stale = (datetime.now(timezone.utc) - timedelta(seconds=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    alice.call("GET", env, 401, date=stale, code="BadAuthentication")
    alice.call("GET", env, 401, secret="x" * 40, code="BadAuthentication")
    bad = requests.get(sc.url + env, headers={"X-Scalr-Key-Id": sc.keys["alice"].key_id, "X-Scalr-Date": stale,
                                              "X-Scalr-Signature": "V2-HMAC-SHA256 abc"}, timeout=30)
    check(bad, 401, "BadAuthentication")
    debug = alice.call("GET", env, 200, headers={"X-Scalr-Debug": "1"}).json()["meta"]
    assert debug["stringToSign"].startswith("GET\n")

    # scopes and permissions
    bob.call("GET", env, 403, code="ObjectNotFound")
    alice.call("GET", "/api/v1beta0/user/0/images/", 400, code="InvalidValue")
    alice.call("GET", "/api/v1beta0/global/images/", 403, code="PermissionViolation")
    alice.call("GET", "/api/v1beta0/account/2/images/", 403, code="PermissionViolation")
    alice.call("POST", "/api/v1beta0/account/images/", 403, body=registration("fl-no", "ami-flno"), code="PermissionViolation")
    carol_env = f"/api/v1beta0/user/{sc.keys['carol'].env_id}/images/"
    carol.call("POST", carol_env, 403, body=registration("fl-reader", "ami-flreader"), code="PermissionViolation")
    alice.call("PATCH", f"/api/v1beta0/account/images/{acct['id']}/", 403, body={"name": "mine"}, code="PermissionViolation")
    alice.call("PATCH", env + acct["id"] + "/", 403, body={"name": "mine"}, code="ScopeViolation")
    alice.call("DELETE", env + glob["id"] + "/", 403, code="ScopeViolation")
    bob.call("GET", f"/api/v1beta0/user/{sc.keys['bob'].env_id}/images/{made[1]['id']}/", 404, code="ObjectNotFound")

    # bodies, values, filters, pages
    alice.call("POST", env, 409, body=registration("fl-dup", "ami-fl0001"), code="UnicityViolation")
    alice.call("POST", env, 400, raw=b"{not json", code="InvalidStructure")
    alice.call("POST", env, 400, body=[1], code="InvalidStructure")
    alice.call("POST", env, 400, body={**registration("fl-x", "ami-flx"), "imageName": "y"}, code="InvalidStructure")
    for bad_member, code in [({"name": "bad_name"}, "InvalidValue"), ({"cloudPlatform": "mars"}, "InvalidStructure"),
                             ({"architecture": "arm"}, "InvalidValue"), ({"os": {"id": "ubuntu 16"}}, "InvalidValue"),
                             ({"scope": "scalr"}, "InvalidValue"), ({"cloudImageId": "<b>x</b>"}, "InvalidValue"),
                             ({"cloudLocation": ""}, "InvalidStructure"), ({"deprecated": "yes"}, "InvalidValue")]:
        alice.call("POST", env, 400, body={**registration("fl-x2", "ami-flx2"), **bad_member}, code=code)
    alice.call("POST", env, 400, body=registration("fl-ctype", "ami-flctype"), content_type="text/plain", code="BadRequest")
    alice.call("GET", env, 400, "colour=red", code="InvalidStructure")
    alice.call("GET", env, 400, "cloudLocation=us-east-1", code="InvalidStructure")
    alice.call("GET", env, 400, "maxResults=101", code="InvalidValue")
    alice.call("GET", env, 400, "pageNum=0", code="InvalidValue")
    alice.call("PATCH", env + made[1]["id"] + "/", 400, body={"cloudImageId": "ami-other"}, code="InvalidStructure")
    alice.call("PATCH", env + made[1]["id"] + "/", 400, body={"name": "-x-"}, code="InvalidValue")
    alice.call("GET", env + "not-a-uuid/", 404, code="EndpointNotFound")

    # issue 18: size/type stored, 422 ConfigurationMismatch, os.id against the catalogue, lastUsed
    sized = alice.call("POST", env, 201, body={**registration("fl-sized", "ami-flsized"), "size": 8, "type": "ebs-hvm",
                                               "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}).json()["data"]
    assert (sized["size"], sized["type"], sized["lastUsed"]) == (8, "ebs-hvm", None)
    alice.call("POST", env, 422, body={**registration("fl-422", "ami-fl422"), "type": "ebs",
                                       "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}, code="ConfigurationMismatch")
    alice.call("POST", env, 422, body={**registration("fl-422b", "ami-fl422b"), "cloudPlatform": "openstack", "type": "ebs"},
               code="ConfigurationMismatch")
    alice.call("POST", env, 400, body={**registration("fl-os", "ami-flos"), "os": {"id": "plan9-4"}}, code="InvalidValue")
    alice.call("POST", env, 400, body={**registration("fl-size", "ami-flsize"), "size": 0}, code="InvalidValue")
    for prefix in ["/api/v1beta0/global", "/api/v1beta0/account", "/api/v1beta0/account/1", f"/api/v1beta0/user/{sc.keys['alice'].env_id}"]:
        who = admin if prefix.endswith("global") else alice
        listed = who.call("GET", prefix + "/os/", 200, "family=ubuntu").json()["data"]
        assert "ubuntu-22-04" in [o["id"] for o in listed]
        assert who.call("GET", prefix + "/os/ubuntu-22-04/", 200).json()["data"]["generation"] == "22.04"
        who.call("GET", prefix + "/os/plan9-4/", 404, code="ObjectNotFound")
    alice.call("GET", f"/api/v1beta0/user/{sc.keys['alice'].env_id}/os/", 400, "colour=red", code="InvalidStructure")
    alice.call("GET", f"/api/v1beta0/user/{sc.keys['alice'].env_id}/os/", 200, "maxResults=2&pageNum=3")
    alice.call("GET", "/api/v1beta0/global/os/", 403, code="PermissionViolation")

    # what imaged does not offer
    alice.call("DELETE", env + made[1]["id"] + "/", 501, "deleteFromCloud=true", code="NotImplemented")
    alice.call("POST", env + made[1]["id"] + "/actions/copy/", 501, body={"cloudPlatform": "ec2", "cloudLocation": "eu-west-1"},
               code="NotImplemented")
    alice.call("POST", env + made[1]["id"] + "/actions/replace/", 501, body={"newImage": {"id": made[2]["id"]}}, code="NotImplemented")
    for prefix in ["/api/v1beta0/global", "/api/v1beta0/account", "/api/v1beta0/account/1"]:
        image = glob if prefix.endswith("global") else acct
        for action in ["copy", "replace"]:
            admin.call("POST", f"{prefix}/images/{image['id']}/actions/{action}/", 501, body={}, code="NotImplemented")
    alice.call("POST", env + "00000000-0000-0000-0000-000000000000/actions/copy/", 404, body={}, code="ObjectNotFound")

    # in use (VMs recorded through the Danube front-end's admin endpoint): 409 ObjectInUse
    token = requests.post(sc.url + "/api/accounts/login/", json={"username": "st-admin", "password": PASSWORDS["st-admin"]},
                          timeout=30).json()["token"]
    danube = {"Authorization": f"Token {token}"}
    assert requests.put(sc.url + f"/api/image/{made[2]['name']}/vm/web01/", json={}, headers=danube, timeout=30).status_code == 200
    alice.call("DELETE", env + made[2]["id"] + "/", 409, code="ObjectInUse")
    assert requests.delete(sc.url + f"/api/image/{made[2]['name']}/vm/web01/", json={}, headers=danube, timeout=30).status_code == 200

    # deregistered in every scope
    alice.call("DELETE", env + made[2]["id"] + "/", 200)
    admin.call("DELETE", f"/api/v1beta0/account/1/images/{acct['id']}/", 200, "cloudDelete=0")
    admin.call("DELETE", f"/api/v1beta0/global/images/{glob['id']}/", 200)
    again = admin.call("POST", "/api/v1beta0/account/images/", 201, body=registration("fl-account-3", "ami-flacct3")).json()["data"]
    admin.call("DELETE", f"/api/v1beta0/account/images/{again['id']}/", 200)

    # every operation of the document was answered in this flow (the spec downloads: test_scalr_findings)
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
                  if method in ("get", "put", "post", "delete", "patch")}
    specs = {f"GET /api/{level}.v1beta0.yml" for level in ["user", "account", "global"]}
    missing = operations - check.seen - specs
    assert not missing, missing

    # the validation can fail: a doctored body, a missing header, an undocumented status
    good = alice.request("GET", env + made[1]["id"] + "/")
    good._content = good.content.replace(b'"scope":"environment"', b'"scope":"galaxy"')
    assert "galaxy" in check.rejects(good)
    headless = alice.request("GET", env + made[1]["id"] + "/")
    headless.raw.headers.discard("x-request-id")  # schemathesis reads the wire headers
    assert "X-Request-Id" in check.rejects(headless)
    odd = alice.request("GET", env + made[1]["id"] + "/")
    odd.status_code = 418
    assert "418" in check.rejects(odd)


def test_scalr_findings(sc, document):
    """The server bugs found while writing the document (findings S1–S3), answered as the document says; each is
    checked on its own and all are reported together."""
    check = Validator(document)
    alice, admin = Scalr(sc, sc.keys["alice"], check), Scalr(sc, sc.keys["admin"], check)
    env = f"/api/v1beta0/user/{sc.keys['alice'].env_id}/images/"
    problems = []

    def expect(finding: str, probe) -> None:
        try:
            probe()
        except (AssertionError, FailureGroup, requests.ConnectionError) as e:
            problems.append(f"{finding}: {str(e)[:1500]}")

    def s1():
        # a page far past the end is an empty page, not a crash of the server
        try:
            r = admin.request("GET", env, "pageNum=9223372036854775807")
        except requests.ConnectionError:
            r = None
        if r is None:  # the process is going down (its crash report takes a while): the rest of the module needs a server
            try:
                sc.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
            sc.kill()
            sc.start()
        assert r is not None, "GET …/images/?pageNum=9223372036854775807 crashed the server"
        assert check(r, 200).json()["data"] == []

    def s2():
        # the Swagger documents are YAML downloads
        for level in ["user", "account", "global"]:
            check(requests.get(f"{sc.url}/api/{level}.v1beta0.yml", timeout=30), 200)

    def s3():
        # wrong-typed cloudLocation / cloudFeatures are refused like every other member
        alice.call("POST", env, 400, body={**registration("fs-gce", "img-fs-gce"), "cloudPlatform": "gce", "cloudLocation": 5},
                   code="InvalidValue")
        alice.call("POST", env, 400, body={**registration("fs-feat", "ami-fsfeat"), "cloudFeatures": "weird"}, code="InvalidValue")

    expect("S1", s1)
    expect("S2", s2)
    expect("S3", s3)
    assert not problems, "\n\n".join(problems)


def test_schemathesis_finds_nothing(sc, document, tmp_path):
    """schemathesis (fixed seed, bounded examples) against the live server, every request signed with an admin key by
    the hooks module; environments and registrations in each scope are offered as dictionary values."""
    admin = Scalr(sc, sc.keys["admin"], Validator(document))
    envs = [sc.keys["admin"].env_id, sc.keys["alice"].env_id]
    ids = []
    for n, path in enumerate(["/api/v1beta0/global/images/", "/api/v1beta0/account/images/", f"/api/v1beta0/user/{envs[0]}/images/",
                              f"/api/v1beta0/user/{envs[1]}/images/", f"/api/v1beta0/user/{envs[1]}/images/"]):
        ids.append(admin.call("POST", path, 201, body=registration(f"st-seed-{n}", f"ami-stseed{n}")).json()["data"]["id"])

    spec = tmp_path / f"{FRONTEND}.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join([
        # 501 is Scalr's own answer for what is not offered (copy, replace, deleteFromCloud), documented as such
        "[checks.not_a_server_error]", 'expected-statuses = ["2xx", "3xx", "4xx", "501"]',
        "[dictionaries.envs]", f"values = {json.dumps(envs)}",
        "[dictionaries.ids]", f"values = {json.dumps(ids)}",
        "[parameters]",
        '"path.envId" = { dictionary = "envs", probability = 0.7 }',
        '"path.imageId" = { dictionary = "ids", probability = 0.5 }',
        "[phases.stateful.generation]", "max-examples = 30",
        ""]))
    report = tmp_path / "report"
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
              "response_schema_conformance,negative_data_rejection")
    argv = [schemathesis_cli(), "--config-file", str(config), "run", str(spec), "--url", sc.url, "--checks", checks,
            "--max-examples", os.environ.get("IMAGED_OPENAPI_MAX_EXAMPLES", "8"), "--seed", os.environ.get("IMAGED_OPENAPI_SEED", "20261202"), "--generation-database", "none", "--no-color",
            "--report", "junit,ndjson", "--report-dir", str(report), "--request-timeout", "30"]
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(HOOKS), IMAGED_SCALR_KEY_ID=sc.keys["admin"].key_id,
               IMAGED_SCALR_SECRET=sc.keys["admin"].secret)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=170, cwd=tmp_path, env=env)
    print(out.stdout[-20000:])
    junit = ET.parse(next(report.glob("junit*.xml"))).getroot()
    operations = len([c for c in junit.iter("testcase") if not c.get("name", "").startswith("Stateful")])
    cases = failures = unauthenticated = 0
    for line in next(report.glob("ndjson*.ndjson")).read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            interactions = (recorder.get("interactions") or {}).values()
            cases += len(interactions)
            unauthenticated += sum(1 for i in interactions if (i.get("response") or {}).get("status_code") == 401)
            failures += sum(c.get("status") == "failure" for checked in (recorder.get("checks") or {}).values() for c in checked)
    print(f"SCHEMATHESIS {FRONTEND} operations={operations} cases={cases} failures={failures}")
    assert cases > 0 and operations > 0, out.stdout + out.stderr
    # the hooks sign: only the negative cases that leave a signature header out are refused as unauthenticated
    assert unauthenticated < cases / 10, f"{unauthenticated} of {cases} answers were 401"
    assert failures == 0 and out.returncode == 0, out.stdout[-20000:] + out.stderr[-5000:]
