"""The audit log (issue 19, point 4): every state-changing call of the five APIs writes exactly one JSON line
(who: user, project, API, key id; what: action, image id and name; result; request id; client address) to
`<data-dir>/audit.log`; refused calls are audited with result error; reads are not; `imaged audit` reads it back
by image and by user. The log and the audit file hold no password, token, session id or key secret."""

import hashlib
import json
import re
import subprocess
import uuid

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin, remember_secret, scan_for_secrets, token

PASSWORD = "audit-pass-Quoted\"Secret"
ACCOUNTS = [("au-alice", "p-alice", "member"), ("au-bob", "p-bob", "member")]


def cli(srv: ImagedServer, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ImagedServer(tmp_path_factory.mktemp("imaged-audit"), "--cache-size", str(64 << 20))  # the cache API answers
    s.start()
    remember_secret(PASSWORD)
    remember_secret(hashlib.sha512(PASSWORD.encode()).hexdigest())
    s.user_ids = {}
    for name, project, role in ACCOUNTS:
        out = cli(s, "account", "create", name, "--project", project, "--role", role, "--password-stdin",
                  "--data-dir", str(s.data_dir), stdin=PASSWORD + "\n")
        s.user_ids[name] = re.search(r"user id (\S+),", out).group(1)
    yield s
    s.kill()


class Audit:
    def __init__(self, srv: ImagedServer):
        self.path = srv.data_dir / "audit.log"

    def lines(self) -> list[dict]:
        text = self.path.read_text() if self.path.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def of(self, r: requests.Response) -> dict:
        """The one line of a response, found by its X-Request-Id."""
        rid = r.headers["X-Request-Id"]
        found = [line for line in self.lines() if line["request_id"] == rid]
        assert len(found) == 1, (rid, r.status_code, found)
        return found[0]


def expect(line: dict, **want):
    got = {k: line[k] for k in want}
    assert got == want, line
    assert line["client"] == "127.0.0.1" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
    assert line["result"] == ("ok" if line["status"] < 400 else "error"), line
    assert set(line) == {"time", "request_id", "client", "api", "method", "path", "user", "project", "key_id", "action",
                         "image_id", "image_name", "status", "result"}


def test_openstack_writes_are_audited_and_reads_are_not(srv):
    audit, alice, bob, carol = Audit(srv), Raw(srv.url, "alice"), Raw(srv.url, "bob"), Raw(srv.url, "carol")
    name = f'au-os "quoted"\nname-{uuid.uuid4().hex[:6]}'
    r = alice.post("/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "shared"})
    assert r.status_code == 201, r.text
    image = r.json()
    expect(audit.of(r), api="openstack", method="POST", path="/v2/images", user="u-alice", project="p-alice", key_id=None,
           action="image.create", image_id=image["id"], image_name=name, status=201)
    before = len(audit.lines())
    assert alice.get(f"/v2/images/{image['id']}").status_code == 200 and alice.get("/v2/images").status_code == 200
    assert len(audit.lines()) == before  # reads are not audited

    r = alice.patch(f"/v2/images/{image['id']}", [{"op": "replace", "path": "/name", "value": "au-os-renamed"}])
    assert r.status_code == 200, r.text
    expect(audit.of(r), api="openstack", method="PATCH", user="u-alice", project="p-alice", action="image.update",
           image_id=image["id"], image_name="au-os-renamed", status=200)
    r = alice.put(f"/v2/images/{image['id']}/file", data=b"audited bytes" * 100,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    expect(audit.of(r), action="image.upload", image_id=image["id"], image_name="au-os-renamed", status=204, user="u-alice")
    r = alice.post(f"/v2/images/{image['id']}/members", json={"member": "p-bob"})
    assert r.status_code == 200, r.text
    expect(audit.of(r), action="member.create", image_id=image["id"], user="u-alice", project="p-alice", status=200)

    # Refusals: bob cannot delete alice's image (the member sees it: 403), carol (reader) cannot create (403),
    # nobody sees an unknown image (404).
    r = bob.delete(f"/v2/images/{image['id']}")
    assert r.status_code == 403, r.text
    expect(audit.of(r), action="image.delete", image_id=image["id"], user="u-bob", project="p-bob", status=403, result="error")
    r = carol.post("/v2/images", json={"name": "au-carol"})
    assert r.status_code == 403, r.text
    expect(audit.of(r), action="image.create", user="u-carol", project="p-carol", image_id=None, status=403, result="error")
    ghost = str(uuid.uuid4())
    r = bob.delete(f"/v2/images/{ghost}")
    assert r.status_code == 404
    expect(audit.of(r), action="image.delete", image_id=ghost, image_name=None, user="u-bob", status=404, result="error")
    r = requests.delete(srv.url + f"/v2/images/{image['id']}", headers={"X-Auth-Token": "not-a-valid-token"}, timeout=30)
    assert r.status_code == 401
    expect(audit.of(r), user=None, project=None, status=401, result="error")

    r = alice.delete(f"/v2/images/{image['id']}")
    assert r.status_code == 204
    expect(audit.of(r), action="image.delete", image_id=image["id"], image_name="au-os-renamed", user="u-alice", status=204)

    # imaged audit: the image's history, and one user's requests.
    history = cli(srv, "audit", "--data-dir", str(srv.data_dir), "--image", image["id"])
    actions = [json.loads(line)["action"] for line in history.splitlines()]
    assert actions == ["image.create", "image.update", "image.upload", "member.create", "image.delete", "image.delete"], actions
    assert [json.loads(line)["user"] for line in history.splitlines()][-2:] == ["u-bob", "u-alice"]
    bobs = [json.loads(line) for line in cli(srv, "audit", "--data-dir", str(srv.data_dir), "--user", "u-bob").splitlines()]
    assert len(bobs) == 2 and {b["user"] for b in bobs} == {"u-bob"} and {b["status"] for b in bobs} == {403, 404}
    assert [json.loads(line) for line in cli(srv, "audit", "--data-dir", str(srv.data_dir), "--project", "p-bob").splitlines()] == bobs
    missing = subprocess.run([str(imaged_bin()), "audit", "--file", str(srv.workdir / "nope.log")], capture_output=True, text=True)
    assert missing.returncode != 0 and "cannot read the audit file" in missing.stderr
    table = cli(srv, "audit", "--data-dir", str(srv.data_dir), "--image", image["id"], "--table", "--since", "1h")
    assert table.splitlines()[0].split()[:5] == ["TIME", "API", "USER", "PROJECT", "ACTION"] and len(table.splitlines()) == 7
    assert cli(srv, "audit", "--data-dir", str(srv.data_dir), "--user", "u-bob", "--since", "2999-01-01") == ""


def test_metadef_and_cache_writes_name_their_action(srv):
    """Issue 20's writes say what they did: metadef namespace, tag and resource-type writes (a refused one too) and
    the cache's queue, delete and clear each leave one line with their action, user and project."""
    audit, admin, alice = Audit(srv), Raw(srv.url, "admin"), Raw(srv.url, "alice")
    ns = f"AU::NS{uuid.uuid4().hex[:6]}"
    r = admin.post("/v2/metadefs/namespaces", json={"namespace": ns})
    assert r.status_code == 201, r.text
    expect(audit.of(r), api="openstack", method="POST", path="/v2/metadefs/namespaces", action="metadef.namespace.create",
           user="u-admin", project="p-admin", image_id=None, status=201)
    r = alice.post("/v2/metadefs/namespaces", json={"namespace": ns + "x"})
    assert r.status_code == 403, r.text
    expect(audit.of(r), action="metadef.namespace.create", user="u-alice", project="p-alice", status=403, result="error")
    r = admin.post(f"/v2/metadefs/namespaces/{ns}/tags/au-tag")
    assert r.status_code == 201, r.text
    expect(audit.of(r), method="POST", action="metadef.tag.create", user="u-admin", project="p-admin", status=201)
    r = admin.post(f"/v2/metadefs/namespaces/{ns}/resource_types", json={"name": "OS::Glance::Image", "prefix": "au_"})
    assert r.status_code == 201, r.text
    expect(audit.of(r), action="metadef.resource_type.associate", user="u-admin", status=201)
    r = admin.delete(f"/v2/metadefs/namespaces/{ns}")
    assert r.status_code == 204, r.text
    expect(audit.of(r), method="DELETE", action="metadef.namespace.delete", user="u-admin", project="p-admin", status=204)

    r = admin.post("/v2/images", json={"name": "au-cached", "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    r = admin.put(f"/v2/images/{image_id}/file", data=b"cached bytes" * 100, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = admin.put(f"/v2/cache/{image_id}")
    assert r.status_code == 202, r.text
    expect(audit.of(r), api="openstack", method="PUT", path=f"/v2/cache/{image_id}", action="cache.queue", image_id=image_id,
           user="u-admin", project="p-admin", status=202)
    r = admin.delete(f"/v2/cache/{image_id}")
    assert r.status_code == 204, r.text
    expect(audit.of(r), action="cache.delete", image_id=image_id, user="u-admin", project="p-admin", status=204)
    r = admin.delete("/v2/cache")
    assert r.status_code == 204, r.text
    expect(audit.of(r), method="DELETE", action="cache.clear", image_id=None, user="u-admin", project="p-admin", status=204)


def avi_login(srv, who, password=PASSWORD) -> requests.Response:
    return requests.post(srv.url + "/login", json={"username": who, "password": password}, timeout=30)


def test_avi_logins_writes_and_logout_are_audited(srv):
    audit = Audit(srv)
    r = avi_login(srv, "au-alice", "wrong-password-1")
    assert r.status_code == 401
    expect(audit.of(r), api="avi", method="POST", path="/login", action="login", user="au-alice", project=None,
           image_id=None, status=401, result="error")
    r = avi_login(srv, "au-alice")
    assert r.status_code == 200, r.text
    remember_secret(r.cookies["sessionid"])
    expect(audit.of(r), api="avi", action="login", user="au-alice", project="p-alice", status=200, result="ok")
    session = {"cookies": {"csrftoken": r.cookies["csrftoken"], "sessionid": r.cookies["sessionid"]},
               "headers": {"X-CSRFToken": r.cookies["csrftoken"], "Referer": srv.url + "/", "X-Avi-Version": "30.2.1"}}
    name = f"au-avi-{uuid.uuid4().hex[:6]}"
    r = requests.post(srv.url + "/api/image", json={"name": name, "type": "IMAGE_TYPE_SYSTEM"}, timeout=30, **session)
    assert r.status_code == 201, r.text
    image_id = r.json()["uuid"].removeprefix("image-")
    expect(audit.of(r), api="avi", method="POST", action="image.create", image_id=image_id, image_name=name,
           user="au-alice", project="p-alice", status=201)
    r = requests.delete(srv.url + f"/api/image/image-{image_id}", timeout=30, **session)
    assert r.status_code == 204, r.text
    expect(audit.of(r), api="avi", method="DELETE", action="image.delete", image_id=image_id, image_name=name,
           user="au-alice", status=204)
    r = requests.post(srv.url + "/logout", json={}, timeout=30, **session)
    assert r.status_code == 200, r.text
    expect(audit.of(r), api="avi", action="logout", user="au-alice", project="p-alice", status=200)
    # The Avi image's history by its Avi id.
    history = cli(srv, "audit", "--data-dir", str(srv.data_dir), "--image", f"image-{image_id}")
    assert [json.loads(line)["action"] for line in history.splitlines()] == ["image.create", "image.delete"]


def zstack_login(srv, who) -> requests.Response:
    return requests.put(srv.url + "/zstack/v1/accounts/login", timeout=30, json={
        "logInByAccount": {"accountName": who, "password": hashlib.sha512(PASSWORD.encode()).hexdigest()}})


def test_zstack_login_update_delete_logout_are_audited(srv):
    audit, alice = Audit(srv), Raw(srv.url, "alice")
    image = alice.create(name=f"au-zs-{uuid.uuid4().hex[:6]}", disk_format="raw", container_format="bare")
    assert alice.put(f"/v2/images/{image['id']}/file", data=b"z" * 4096,
                     headers={"Content-Type": "application/octet-stream"}).status_code == 204
    r = zstack_login(srv, "au-alice")
    assert r.status_code == 200, r.text
    sid = r.json()["inventory"]["uuid"]
    remember_secret(sid)
    expect(audit.of(r), api="zstack", method="PUT", action="login", user="au-alice", project="p-alice", status=200)
    zs = {"Authorization": f"OAuth {sid}"}
    zuuid = image["id"].replace("-", "")
    r = requests.put(srv.url + f"/zstack/v1/images/{zuuid}/actions", json={"updateImage": {"name": "au-zs-renamed"}},
                     headers={**zs, "X-Job-UUID": uuid.uuid4().hex}, timeout=30)
    assert r.status_code == 202, r.text
    expect(audit.of(r), api="zstack", action="image.update", image_id=image["id"], image_name="au-zs-renamed",
           user="au-alice", project="p-alice", status=202)
    r = requests.delete(srv.url + f"/zstack/v1/images/{zuuid}", headers={**zs, "X-Job-UUID": uuid.uuid4().hex}, timeout=30)
    assert r.status_code == 202, r.text
    expect(audit.of(r), api="zstack", method="DELETE", action="image.delete", image_id=image["id"], image_name="au-zs-renamed",
           user="au-alice", project="p-alice", status=202)
    r = requests.get(srv.url + f"/zstack/v1/accounts/sessions/{sid}/valid", headers=zs, timeout=30)
    assert r.status_code == 200
    r = requests.delete(srv.url + f"/zstack/v1/accounts/sessions/{sid}", headers=zs, timeout=30)
    assert r.status_code == 200, r.text
    line = audit.of(r)
    expect(line, api="zstack", action="logout", user="au-alice", method="DELETE", status=200)
    assert sid not in line["path"] and line["path"] == "/zstack/v1/accounts/sessions/<redacted>"


def test_danube_login_update_logout_are_audited(srv):
    audit, alice = Audit(srv), Raw(srv.url, "alice")
    name = f"au-dn-{uuid.uuid4().hex[:6]}"
    image = alice.create(name=name, disk_format="raw", container_format="bare")
    assert alice.put(f"/v2/images/{image['id']}/file", data=b"d" * 4096,
                     headers={"Content-Type": "application/octet-stream"}).status_code == 204
    r = requests.post(srv.url + "/api/accounts/login/", json={"username": "au-bob", "password": "nope-nope-nope"}, timeout=30)
    assert r.status_code >= 400
    expect(audit.of(r), api="danube", action="login", user="au-bob", project=None, result="error")
    r = requests.post(srv.url + "/api/accounts/login/", json={"username": "au-alice", "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    remember_secret(tok)
    expect(audit.of(r), api="danube", action="login", user="au-alice", project="p-alice", status=200)
    headers = {"Authorization": f"Token {tok}"}
    r = requests.put(srv.url + f"/api/image/{name}/", json={"desc": "audited"}, headers=headers, timeout=30)
    assert r.status_code == 201 and r.json()["status"] == "PENDING", r.text  # Danube's updates are tasks
    expect(audit.of(r), api="danube", method="PUT", action="image.update", image_id=image["id"], image_name=name,
           user="au-alice", project="p-alice", status=201)
    other = alice.create(name=f"au-dn2-{uuid.uuid4().hex[:6]}", disk_format="raw", container_format="bare")
    assert alice.put(f"/v2/images/{other['id']}/file", data=b"e" * 4096,
                     headers={"Content-Type": "application/octet-stream"}).status_code == 204
    r = requests.delete(srv.url + f"/api/image/{other['name']}/", headers=headers, timeout=30)
    assert r.status_code in (200, 201), r.text
    expect(audit.of(r), api="danube", method="DELETE", action="image.delete", image_id=other["id"], image_name=other["name"],
           user="au-alice", project="p-alice", status=r.status_code)
    r = requests.get(srv.url + "/api/accounts/logout/", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    expect(audit.of(r), api="danube", method="GET", action="logout", user="au-alice", status=200)


def test_scalr_signed_writes_name_the_key(srv):
    from test_one_door import scalr
    audit = Audit(srv)
    out = cli(srv, "account", "key", "create", "au-alice", "--scalr", "--data-dir", str(srv.data_dir))
    key = {"id": re.search(r"^key id: (APIK[A-Z0-9]{16})$", out, re.M).group(1),
           "secret": re.search(r"^secret: (\S{40})$", out, re.M).group(1)}
    remember_secret(key["secret"])
    listed = cli(srv, "account", "list", "--data-dir", str(srv.data_dir))
    env = int(re.search(r"^au-alice\t.*\tscalr_env=(\d+)$", listed, re.M).group(1))
    path = f"/api/v1beta0/user/{env}/images/"
    name = f"au-sc-{uuid.uuid4().hex[:6]}"
    r = scalr(srv.url, key, "POST", path, json.dumps({
        "name": name, "cloudPlatform": "ec2", "cloudLocation": "us-east-1", "cloudImageId": f"ami-{uuid.uuid4().hex[:10]}",
        "architecture": "x86_64", "os": {"id": "ubuntu-16-04"}}).encode())
    assert r.status_code == 201, r.text
    image_id = r.json()["data"]["id"]
    expect(audit.of(r), api="scalr", method="POST", action="image.create", image_id=image_id, image_name=name,
           key_id=key["id"], user="au-alice", project="p-alice", status=201)
    r = scalr(srv.url, key, "DELETE", path + image_id + "/")
    assert r.status_code == 200 and r.json()["errors"] == [], r.text
    expect(audit.of(r), api="scalr", action="image.delete", image_id=image_id, key_id=key["id"], user="au-alice", status=200)
    forged = dict(key, secret="0" * 40)
    r = scalr(srv.url, forged, "DELETE", path + image_id + "/")
    assert r.status_code == 401
    expect(audit.of(r), api="scalr", key_id=key["id"], user=None, status=401, result="error")


def test_no_secret_in_this_servers_log_or_audit_file(srv):
    """Runs last in this module: every secret the tests above used, none in the server's log or audit file."""
    for t in ("alice", "bob", "carol", "admin"):
        remember_secret(token(t))
    found = scan_for_secrets([srv.workdir])
    assert found == [], found
    assert (srv.data_dir / "audit.log").stat().st_size > 0 and srv.log_text()


def test_the_secret_scan_finds_a_planted_secret_and_harvests_credentials(tmp_path, srv):
    """The scan can fail: a secret planted in a log is found with its file and line; credentials the suite sent
    (a Basic password, an ES-API-KEY secret, a login token answered) were remembered without the test's help."""
    from conftest import SECRETS
    planted = f"planted-{uuid.uuid4().hex}"
    remember_secret(planted)
    (tmp_path / "imaged-1.log").write_text("first line\nGET /x?token=" + planted + " 200\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "audit.log").write_text('{"path":"/' + planted + '"}\n')
    found = scan_for_secrets([tmp_path])
    assert len(found) == 2 and found[0].startswith(f"{tmp_path}/data/audit.log:1: ") and f"imaged-1.log:2: " in found[1], found
    SECRETS.discard(planted)
    basic = f"basic-{uuid.uuid4().hex[:12]}"
    requests.get(srv.url + "/api/image", auth=("au-alice", basic), timeout=30)
    es_secret = uuid.uuid4().hex
    requests.get(srv.url + "/api/image/", headers={"ES-API-KEY": f"imk_x:{es_secret}"}, timeout=30)
    assert basic in SECRETS and es_secret in SECRETS


def test_zstack_upload_url_is_audited_with_its_token_redacted(srv):
    """An `upload://` image's bytes arrive at a URL whose token is the credential: the upload is audited under the
    user who asked for it, and the line's path masks the token."""
    from conftest import SECRETS
    audit = Audit(srv)
    sid = zstack_login(srv, "au-alice").json()["inventory"]["uuid"]
    zs = {"Authorization": f"OAuth {sid}"}
    image_uuid = uuid.uuid4().hex
    [bs] = requests.get(srv.url + "/zstack/v1/backup-storage", headers=zs, timeout=30).json()["inventories"]
    r = requests.post(srv.url + "/zstack/v1/images", headers={**zs, "X-Job-UUID": uuid.uuid4().hex}, timeout=30, json={
        "params": {"name": "au-zs-up", "url": f"upload://{image_uuid}", "format": "raw", "resourceUuid": image_uuid,
                   "backupStorageUuids": [bs["uuid"]]},
        "systemTags": [], "userTags": []})
    assert r.status_code == 202, r.text
    core_id = str(uuid.UUID(image_uuid))
    job = requests.get(r.json()["location"], headers=zs, timeout=30)
    assert job.status_code == 200, job.text
    expect(audit.of(r), api="zstack", method="POST", action="image.create", image_id=core_id, image_name="au-zs-up",
           user="au-alice", status=202)
    upload_url = job.json()["inventory"]["backupStorageRefs"][0]["installPath"]
    upload_token = upload_url.rsplit("/", 1)[1]
    assert upload_token in SECRETS  # harvested from the answer by conftest
    payload = b"raw bytes of an uploaded image\n" * 128
    r = requests.post(upload_url, data=payload, timeout=30,
                      headers={"X-IMAGE-UUID": image_uuid, "X-IMAGE-SIZE": str(len(payload))})
    assert r.status_code == 200, r.text
    line = audit.of(r)
    # The upload slot keeps the uploader's id (no name): the line names the same account by its user id.
    expect(line, api="zstack", method="POST", action="image.upload", image_id=core_id, image_name="au-zs-up",
           user=srv.user_ids["au-alice"], project="p-alice", status=200, path=f"/zstack/v1/uploads/{image_uuid}/<redacted>")
    assert upload_token not in (srv.data_dir / "audit.log").read_text() and upload_token not in srv.log_text()
