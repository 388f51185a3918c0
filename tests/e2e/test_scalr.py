"""The Scalr front-end driven by the vendor's CLI (`scalr-ctl` from PyPI, which downloads imaged's specs and signs
every request) in the three scopes, plus raw signed requests for the signature rules, the scopes, the error
envelope and the same catalog through the OpenStack API."""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin

PASSWORDS = {"sc-admin": "admin-scalr-password", "sc-alice": "alice-scalr-password", "sc-bob": "bob-scalr-password"}
SCALR_CTL = Path(sys.executable).parent / "scalr-ctl"


def imaged(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Key:
    def __init__(self, srv: ImagedServer, account: str, project: str):
        out = imaged("account", "key", "create", account, "--scalr", "--data-dir", str(srv.data_dir))
        self.key_id = re.search(r"^key id: (APIK[A-Z0-9]{16})$", out, re.M).group(1)
        self.secret = re.search(r"^secret: (\S{40})$", out, re.M).group(1)
        listed = imaged("account", "list", "--data-dir", str(srv.data_dir))
        self.env_id = int(re.search(rf"^{account}\t.*\tscalr_env=(\d+)$", listed, re.M).group(1))
        self.project = project


def canonical_query(qs: str) -> str:
    d = dict(parse_qsl(qs, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(d.items()))


def signed(srv: ImagedServer, key: Key, method: str, path: str, query: str = "", body: bytes = b"", *, date: str | None = None,
           secret: str | None = None, sign_query: str | None = None, sign_body: bytes | None = None, debug: bool = False,
           drop: str | None = None, content_type: str = "application/json") -> requests.Response:
    """A request signed as reference §2.4's signer does; the keyword arguments forge one part at a time."""
    date = date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sts = "\n".join([method, date, path, sign_query if sign_query is not None else canonical_query(query)]).encode() + b"\n" + \
        (sign_body if sign_body is not None else body)
    sig = base64.b64encode(hmac.new((secret or key.secret).encode(), sts, hashlib.sha256).digest()).decode()
    headers = {"X-Scalr-Key-Id": key.key_id, "X-Scalr-Date": date, "X-Scalr-Signature": f"V1-HMAC-SHA256 {sig}",
               "Content-Type": content_type}
    if debug:
        headers["X-Scalr-Debug"] = "1"
    if drop:
        headers.pop(drop)
    url = srv.url + path + ("?" + query if query else "")
    return requests.request(method, url, data=body, headers=headers, timeout=30)


def error(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert re.fullmatch(r"[0-9a-f-]{36}", body["meta"]["requestId"])
    [err] = body["errors"]
    assert err["code"] == code, body
    return err["message"]


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-scalr"))
    srv.start()
    for name, project, role in [("sc-admin", "admin", "admin"), ("sc-alice", "p-alice", "member"), ("sc-bob", "p-bob", "member")]:
        imaged("account", "create", name, "--project", project, "--role", role, "--password-stdin", "--data-dir", str(srv.data_dir),
               stdin=PASSWORDS[name] + "\n")
    srv.keys = {"admin": Key(srv, "sc-admin", "admin"), "alice": Key(srv, "sc-alice", "p-alice"), "bob": Key(srv, "sc-bob", "p-bob")}
    yield srv
    srv.kill()


class ScalrCtl:
    """`scalr-ctl` with its own home: a profile naming imaged, the user key and the global-scope key."""

    def __init__(self, srv: ImagedServer, home: Path, user: Key, glob: Key):
        home.mkdir(parents=True, exist_ok=True)
        (home / "default.yaml").write_text("\n".join([
            f"API_HOST: 127.0.0.1:{srv.port}", "API_SCHEME: http", f"API_KEY_ID: {user.key_id}", f"API_SECRET_KEY: {user.secret}",
            f"GLOBAL_SCOPE_API_KEY_ID: {glob.key_id}", f"GLOBAL_SCOPE_API_SECRET_KEY: {glob.secret}",
            f"envId: '{user.env_id}'", "accountId: '1'", "view: json", ""]))
        self.env = dict(os.environ, SCALRCLI_HOME=str(home))
        out = subprocess.run([str(SCALR_CTL), "update"], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.count("Done") == 3, out.stdout + out.stderr
        assert {p.name for p in home.iterdir()} >= {"user.yaml", "account.yaml", "global.yaml", "user.json"}

    def __call__(self, *args: str, stdin: dict | None = None, ok: bool = True):
        out = subprocess.run([str(SCALR_CTL), *args], env=self.env, input=json.dumps(stdin) if stdin is not None else None,
                             capture_output=True, text=True, timeout=120)
        if not ok:
            assert out.returncode != 0, out.stdout
            return out.stderr
        assert out.returncode == 0, out.stdout + out.stderr
        # `update` prints the object it fetched first, then the PATCH's answer: the last document counts.
        documents = [line for line in out.stdout.splitlines() if line.startswith("{")]
        return json.loads(documents[-1]) if documents else out.stdout.strip()


def registration(name: str, location: str = "us-east-1", ami: str = "ami-0a1b2c3d") -> dict:
    return {"name": name, "cloudPlatform": "ec2", "cloudLocation": location, "cloudImageId": ami, "architecture": "x86_64",
            "os": {"id": "ubuntu-16-04"}}


def test_scalr_ctl_in_every_scope(sc, tmp_path):
    ctl = ScalrCtl(sc, tmp_path / "scalr-alice", sc.keys["alice"], sc.keys["admin"])

    # environment scope: register, fetch, filters, paging, edit, deregister
    made = [ctl("images", "register", "--stdin", stdin=registration(f"env-img-{i}", ami=f"ami-{i:08x}"))["data"] for i in range(5)]
    first = made[0]
    assert (first["scope"], first["source"], first["status"], first["cloudPlatform"], first["os"]) == \
        ("environment", "Manual", "active", "ec2", {"id": "ubuntu-16-04"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["added"]) and first["scalrAgentInstalled"] is True
    got = ctl("images", "get", "--imageId", first["id"], "--json")["data"]
    assert got == first
    listed = ctl("images", "list", "--json")
    # creation order (ties within a second by id, as the catalog pages them)
    assert sorted(i["name"] for i in listed["data"]) == [f"env-img-{i}" for i in range(5)]
    assert listed["pagination"] == {"first": None, "last": None, "prev": None, "next": None}
    page = ctl("images", "list", "--max-results", "2", "--page-number", "2", "--json")
    assert [i["id"] for i in page["data"]] == [i["id"] for i in listed["data"][2:4]]
    env = sc.keys["alice"].env_id
    assert page["pagination"] == {"first": f"/api/v1beta0/user/{env}/images/?maxResults=2&pageNum=1",
                                  "last": f"/api/v1beta0/user/{env}/images/?maxResults=2&pageNum=3",
                                  "prev": f"/api/v1beta0/user/{env}/images/?maxResults=2&pageNum=1",
                                  "next": f"/api/v1beta0/user/{env}/images/?maxResults=2&pageNum=3"}
    assert [i["id"] for i in ctl("images", "list", "--filters", "cloudImageId=ami-00000003", "--json")["data"]] == [made[3]["id"]]
    assert [i["name"] for i in ctl("images", "list", "--filters", "cloudPlatform=ec2,cloudLocation=us-east-1,name=env-img-4", "--json")["data"]] == ["env-img-4"]
    edited = ctl("images", "update", "--imageId", first["id"], "--stdin", stdin={"name": "env-img-renamed"})["data"]
    assert edited["name"] == "env-img-renamed" and edited["cloudImageId"] == first["cloudImageId"]
    assert ctl("images", "get", "--imageId", first["id"], "--json")["data"]["name"] == "env-img-renamed"
    ctl("images", "delete", "--imageId", made[4]["id"])
    assert "ObjectNotFound" in ctl("images", "get", "--imageId", made[4]["id"], "--json", ok=False)

    # global scope (the admin's global key) and account scope; both are visible below
    glob = ctl("global", "images", "register", "--stdin", stdin={**registration("gl-img", location=""), "cloudPlatform": "gce",
                                                                 "cloudImageId": "projects/p/global/images/x"})["data"]
    assert glob["scope"] == "scalr" and glob["cloudLocation"] is None
    assert [i["name"] for i in ctl("global", "images", "list", "--json")["data"]] == ["gl-img"]
    admin_ctl = ScalrCtl(sc, tmp_path / "scalr-admin", sc.keys["admin"], sc.keys["admin"])
    acct = admin_ctl("account", "images", "register", "--stdin", stdin=registration("acct-img", ami="ami-acc"))["data"]
    assert acct["scope"] == "account"
    assert {i["name"] for i in ctl("account", "images", "list", "--json")["data"]} == {"gl-img", "acct-img"}
    assert [i["name"] for i in ctl("account", "images", "list", "--filters", "scope=account", "--json")["data"]] == ["acct-img"]
    assert ctl("global", "images", "get", "--imageId", glob["id"], "--json")["data"] == glob
    assert ctl("account", "images", "get", "--imageId", acct["id"], "--json")["data"] == acct
    renamed = admin_ctl("account", "images", "update", "--imageId", acct["id"], "--stdin", stdin={"name": "acct-img-2", "deprecated": True})["data"]
    assert (renamed["name"], renamed["deprecated"], renamed["cloudImageId"]) == ("acct-img-2", True, "ami-acc")
    assert [i["name"] for i in ctl("account", "images", "list", "--filters", "deprecated=true", "--json")["data"]] == ["acct-img-2"]
    assert {"gl-img", "acct-img-2"} <= {i["name"] for i in ctl("images", "list", "--json")["data"]}
    # a member's key cannot register in the account scope, nor change global images from its environment
    assert "PermissionViolation" in ctl("account", "images", "register", "--stdin", stdin=registration("nope", ami="ami-no"), ok=False)
    assert "ScopeViolation" in ctl("images", "update", "--imageId", glob["id"], "--stdin", stdin={"name": "mine"}, ok=False)
    edited = ctl("global", "images", "update", "--imageId", glob["id"], "--stdin", stdin={"name": "gl-img-2"})["data"]
    assert edited["name"] == "gl-img-2"
    admin_ctl("account", "images", "delete", "--imageId", acct["id"])
    ctl("global", "images", "delete", "--imageId", glob["id"])
    assert {i["name"] for i in ctl("images", "list", "--json")["data"]} == {"env-img-renamed", "env-img-1", "env-img-2", "env-img-3"}
    # copy and replace are answered as Scalr answers what it cannot do
    assert "NotImplemented" in ctl("images", "copy", "--imageId", made[1]["id"], "--stdin",
                                   stdin={"cloudPlatform": "ec2", "cloudLocation": "eu-west-1"}, ok=False)


def test_signatures_are_checked_as_scalr_checks_them(sc):
    alice = sc.keys["alice"]
    path = f"/api/v1beta0/user/{alice.env_id}/images/"
    assert signed(sc, alice, "GET", path).status_code == 200
    # the parameters may come in any order: the signature covers them sorted
    assert signed(sc, alice, "GET", path, "name=x&cloudPlatform=ec2", sign_query="cloudPlatform=ec2&name=x").status_code == 200
    assert signed(sc, alice, "GET", path, "cloudPlatform=ec2&name=x").status_code == 200
    # a signer that did not sort the query (its raw order) is refused
    assert error(signed(sc, alice, "GET", path, "name=x&cloudPlatform=ec2", sign_query="name=x&cloudPlatform=ec2"),
                 401, "BadAuthentication") == "Signature does not match"
    assert error(signed(sc, alice, "GET", path, secret="x" * 40), 401, "BadAuthentication") == "Signature does not match"
    body = json.dumps(registration("signed-img", ami="ami-signed")).encode()
    assert error(signed(sc, alice, "POST", path, body=body, sign_body=body + b" "), 401, "BadAuthentication") == "Signature does not match"
    stale = (datetime.now(timezone.utc) - timedelta(seconds=301)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error(signed(sc, alice, "GET", path, date=stale), 401, "BadAuthentication") == "Request is expired."
    future = (datetime.now(timezone.utc) + timedelta(seconds=301)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error(signed(sc, alice, "GET", path, date=future), 401, "BadAuthentication") == "Request is expired."
    assert error(signed(sc, alice, "GET", path, drop="X-Scalr-Signature"), 401, "BadAuthentication") == "Unsigned request"
    assert error(signed(sc, alice, "GET", path, drop="X-Scalr-Key-Id"), 401, "BadAuthentication") == "Unsigned request"
    assert error(signed(sc, alice, "GET", path, drop="X-Scalr-Date"), 400, "BadRequest") == "Missing or invalid X-Scalr-Date header"
    # A date with a 40-digit fraction made ICU trap and took the server down (found by Fuzz/FuzzScalr).
    long_fraction = "2016-09-26T19:19:12." + "7" * 40 + "Z"
    assert error(signed(sc, alice, "GET", path, date=long_fraction), 400, "BadRequest") == "Missing or invalid X-Scalr-Date header"
    assert signed(sc, alice, "GET", path).status_code == 200
    r = requests.get(sc.url + path, headers={"X-Scalr-Key-Id": alice.key_id, "X-Scalr-Date": "2016-09-26T19:19:12Z",
                                             "X-Scalr-Signature": "V2-HMAC-SHA256 abc"})
    assert error(r, 401, "BadAuthentication") == "Invalid signature"
    unknown = Key.__new__(Key)
    unknown.key_id, unknown.secret = "APIK0000000000000000", "y" * 40
    assert error(signed(sc, unknown, "GET", path), 401, "BadAuthentication") == "Invalid API Key"
    # debugging: the string to sign comes back in meta, also on a refusal
    r = signed(sc, alice, "POST", path, body=body, sign_body=b"{}", debug=True)
    error(r, 401, "BadAuthentication")
    assert r.json()["meta"]["stringToSign"].endswith("\n" + body.decode()) and r.json()["meta"]["stringToSign"].startswith("POST\n")
    # the worked example's offset date form is accepted when it is now
    offset = datetime.now(timezone(timedelta(hours=2))).isoformat()
    assert signed(sc, alice, "GET", path, date=offset).status_code == 200
    # the secret is never in a response or the catalog in clear
    catalog = (sc.data_dir / "catalog.sqlite").read_bytes() + (sc.data_dir / "catalog.sqlite-wal").read_bytes()
    assert alice.secret.encode() not in catalog and alice.key_id.encode() in catalog


def test_scopes_bodies_and_errors(sc):
    alice, bob, admin = sc.keys["alice"], sc.keys["bob"], sc.keys["admin"]
    a_path, b_path = f"/api/v1beta0/user/{alice.env_id}/images/", f"/api/v1beta0/user/{bob.env_id}/images/"
    mine = signed(sc, alice, "POST", a_path, body=json.dumps(registration("alice-only", ami="ami-alice")).encode())
    assert mine.status_code == 201, mine.text
    image = mine.json()["data"]
    # another environment sees nothing of it, and cannot even address alice's environment
    assert image["id"] not in [i["id"] for i in signed(sc, bob, "GET", b_path).json()["data"]]
    assert error(signed(sc, bob, "GET", b_path + image["id"] + "/"), 404, "ObjectNotFound").startswith("Requested Image either does not exist")
    assert error(signed(sc, bob, "GET", a_path), 403, "ObjectNotFound") == "Invalid environment"
    assert error(signed(sc, alice, "GET", "/api/v1beta0/user/abc/images/"), 400, "InvalidValue") == "Environment has not been provided with the request"
    # an admin reaches any environment that has an account
    assert image["id"] in [i["id"] for i in signed(sc, admin, "GET", a_path).json()["data"]]
    # a duplicate registration, malformed and unknown bodies, bad values, filters and paging
    dup = signed(sc, alice, "POST", a_path, body=json.dumps(registration("alice-again", ami="ami-alice")).encode())
    assert error(dup, 409, "UnicityViolation") == "This Image has already been registered in Scalr"
    assert error(signed(sc, alice, "POST", a_path, body=b"{not json"), 400, "InvalidStructure") == "Invalid body"
    assert error(signed(sc, alice, "POST", a_path, body=b"[1]"), 400, "InvalidStructure") == "Invalid body"
    r = signed(sc, alice, "POST", a_path, body=json.dumps({**registration("x1", ami="ami-x1"), "imageName": "y"}).encode())
    assert error(r, 400, "InvalidStructure") == "You are trying to set the property imageName which does not exist."
    for bad, code, message in [({"name": "bad_name"}, "InvalidValue", "Invalid name of the Image"),
                               ({"cloudPlatform": "mars"}, "InvalidStructure", "Unexpected platform value"),
                               ({"architecture": "arm"}, "InvalidValue", "Invalid architecture value"),
                               ({"os": {"id": "ubuntu 16"}}, "InvalidValue", "Invalid identifier of the OS"),
                               ({"scope": "scalr"}, "InvalidValue", "Invalid scope"),
                               ({"name": "<b>x</b>"}, "InvalidValue", "Property name contains invalid characters.")]:
        r = signed(sc, alice, "POST", a_path, body=json.dumps({**registration("x2", ami="ami-x2"), **bad}).encode())
        assert error(r, 400, code) == message
    no_os = registration("x3", ami="ami-x3")
    del no_os["os"]
    assert error(signed(sc, alice, "POST", a_path, body=json.dumps(no_os).encode()), 400, "InvalidStructure") == "Missed property 'os.id'"
    assert error(signed(sc, alice, "GET", a_path, "colour=red"), 400, "InvalidStructure").startswith("Unsupported filter.")
    assert error(signed(sc, alice, "GET", a_path, "cloudLocation=us-east-1"), 400, "InvalidStructure").startswith("Both 'cloudPlatform'")
    assert error(signed(sc, alice, "GET", a_path, "maxResults=101"), 400, "InvalidValue").startswith("Limit should be")
    assert error(signed(sc, alice, "GET", a_path, "pageNum=0"), 400, "InvalidValue") == "Page number should be more than 0."
    # found by schemathesis: a page number whose offset overflows trapped the whole process; now an empty page
    for far in ["9223372036854775807", "92233720368547759"]:
        r = signed(sc, alice, "GET", a_path, f"pageNum={far}")
        assert r.status_code == 200 and r.json()["data"] == [], r.text
    for bad, message in [({"cloudLocation": 5}, "Property cloudLocation must be a string."),
                         ({"cloudFeatures": "weird"}, "Property cloudFeatures must be an object.")]:
        r = signed(sc, alice, "POST", a_path, body=json.dumps({**registration("x4", ami="ami-x4"), **bad}).encode())
        assert error(r, 400, "InvalidValue") == message
    r = signed(sc, alice, "PATCH", a_path + image["id"] + "/", body=b'{"cloudImageId": "ami-other"}')
    assert error(r, 400, "InvalidStructure").startswith("You are trying to set the property cloudImageId which either is not alterable")
    assert error(signed(sc, alice, "GET", a_path + "not-a-uuid/"), 404, "EndpointNotFound")
    assert error(signed(sc, alice, "DELETE", a_path + image["id"] + "/", "deleteFromCloud=true"), 501, "NotImplemented")
    r = signed(sc, alice, "POST", a_path, body=json.dumps(registration("ctype", ami="ami-ctype")).encode(), content_type="text/plain")
    assert error(r, 400, "BadRequest") == "Invalid Content-Type"
    # nothing above changed the image
    assert signed(sc, alice, "GET", a_path + image["id"] + "/").json()["data"] == image


def test_scalr_registrations_in_the_other_apis(sc):
    alice = sc.keys["alice"]
    path = f"/api/v1beta0/user/{alice.env_id}/images/"
    made = signed(sc, alice, "POST", path, body=json.dumps(registration("cross-img", ami="ami-cross")).encode()).json()["data"]
    os_alice = Raw(sc.url, "alice")
    shown = os_alice.get(f"/v2/images/{made['id']}").json()
    assert (shown["name"], shown["status"], shown["visibility"], shown["size"]) == ("cross-img", "queued", "private", None)
    assert (shown["architecture"], shown["os_distro"], shown["scalr_cloud_platform"], shown["scalr_cloud_image_id"],
            shown["scalr_cloud_location"]) == ("x86_64", "ubuntu-16-04", "ec2", "ami-cross", "us-east-1")
    # deleted through OpenStack: gone for Scalr
    assert os_alice.delete(f"/v2/images/{made['id']}").status_code == 204
    assert error(signed(sc, alice, "GET", path + made["id"] + "/"), 404, "ObjectNotFound")
    # deregistered through Scalr: gone for OpenStack
    again = signed(sc, alice, "POST", path, body=json.dumps(registration("cross-img-2", ami="ami-cross2")).encode()).json()["data"]
    r = signed(sc, alice, "DELETE", path + again["id"] + "/")
    assert r.status_code == 200 and r.json()["data"] is None and r.json()["errors"] == []
    assert os_alice.get(f"/v2/images/{again['id']}").status_code == 404


def test_an_image_in_use_is_not_deregistered(sc):
    """In use = VMs recorded against the image (the Danube front-end's usage records): 409 ObjectInUse."""
    alice = sc.keys["alice"]
    path = f"/api/v1beta0/user/{alice.env_id}/images/"
    made = signed(sc, alice, "POST", path, body=json.dumps(registration("used-img", ami="ami-used")).encode()).json()["data"]
    token = requests.post(sc.url + "/api/accounts/login/", json={"username": "sc-admin", "password": PASSWORDS["sc-admin"]}).json()["token"]
    admin = {"Authorization": f"Token {token}", "ES-STREAM": "es"}
    assert requests.put(sc.url + "/api/image/used-img/vm/web01/", json={}, headers=admin).json()["result"] == ["web01"]
    assert error(signed(sc, alice, "DELETE", path + made["id"] + "/"), 409, "ObjectInUse") == "The Image is used by some Role or Server."
    assert signed(sc, alice, "GET", path + made["id"] + "/").status_code == 200
    assert requests.delete(sc.url + "/api/image/used-img/vm/web01/", json={}, headers=admin).json()["result"] == []
    assert signed(sc, alice, "DELETE", path + made["id"] + "/").status_code == 200
