"""The ZStack front-end (`/zstack/v1`) spoken over plain HTTP the way ZStack's own SDKs speak it (there is
no ZStack REST client on PyPI): `PUT accounts/login` with the SHA-512 hex of the password, `Authorization:
OAuth <session>`, an `X-Job-UUID` on every call, async APIs answered 202 + `location`, polled until 200
(result) or 503 (error). Images come from a loopback origin; the bytes are real qcow2/raw disks."""

import hashlib
import re
import signal
import subprocess
import time
import uuid

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin, qemu_info, random_bytes, wait_for

PASSWORDS = {"zs-alice": "alice-zstack-password", "zs-bob": "bob-zstack-password", "zs-admin": "admin-zstack-password"}
GSON_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$")
INVENTORY_FIELDS = ["uuid", "name", "description", "state", "status", "size", "actualSize", "md5Sum", "url", "mediaType",
                    "guestOsType", "type", "platform", "architecture", "format", "system", "virtio", "createDate",
                    "lastOpDate", "backupStorageRefs"]


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def job_uuid() -> str:
    return uuid.uuid4().hex


class ZStack:
    """ZStack's REST conventions (Java/Python SDK): the session in `Authorization: OAuth`, an X-Job-UUID on
    every call, 202 → poll the location every `interval` seconds, 200/503 final."""

    def __init__(self, base: str, session: str | None = None):
        self.base = base.rstrip("/") + "/zstack/v1"
        self.session = session
        self.http = requests.Session()

    @classmethod
    def login(cls, base: str, who: str, password: str | None = None) -> "ZStack":
        z = cls(base)
        r = z.http.put(z.base + "/accounts/login", json={"logInByAccount": {"accountName": who,
                                                                             "password": sha512(password or PASSWORDS[who])}})
        assert r.status_code == 200, r.text
        inv = r.json()["inventory"]
        assert re.fullmatch(r"[0-9a-f]{32}", inv["uuid"]) and GSON_DATE.match(inv["expiredDate"]), inv
        z.session = inv["uuid"]
        return z

    def headers(self, job: str | None = None, **extra) -> dict:
        h = {"X-Job-UUID": job or job_uuid(), **extra}
        if self.session:
            h["Authorization"] = f"OAuth {self.session}"
        return h

    def call(self, method: str, path: str, job: str | None = None, **kw) -> requests.Response:
        headers = {**self.headers(job), **kw.pop("headers", {})}
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def poll(self, location: str, timeout: float = 120.0) -> requests.Response:
        assert "/zstack/v1/api-jobs/" in location, location
        deadline = time.time() + timeout
        while True:
            r = self.http.get(location, headers=self.headers(), timeout=30)
            if r.status_code != 202:
                return r
            assert r.json() == {}
            assert time.time() < deadline, f"job {location} still running after {timeout} s"
            time.sleep(0.2)

    def run(self, method: str, path: str, job: str | None = None, **kw) -> requests.Response:
        """An async API to its end: the 202, then the job's final answer."""
        r = self.call(method, path, job, **kw)
        assert r.status_code == 202, (r.status_code, r.text)
        body = r.json()
        assert isinstance(body["apiTimeout"], int) and body["apiTimeout"] > 0
        return self.poll(body["location"])

    def ok(self, method: str, path: str, **kw) -> dict:
        r = self.run(method, path, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def error(self, method: str, path: str, code: str, **kw) -> dict:
        r = self.run(method, path, **kw)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == code, err
        assert err["description"] and err["details"]
        return err

    def query(self, path: str = "/images", params=None) -> dict:
        r = self.call("GET", path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def get_image(self, image_uuid: str) -> dict | None:
        found = self.query(f"/images/{image_uuid}")["inventories"]
        assert len(found) <= 1
        return found[0] if found else None

    def add_image(self, **params) -> requests.Response:
        return self.run("POST", "/images", json={"params": params, "systemTags": [], "userTags": []})


@pytest.fixture(scope="module")
def zs_server(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-zstack"), "--store", "primary=file", "--store", "replica=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       "--task-lease-seconds", "3")
    srv.start()
    # zs-alice shares the project of the OpenStack token `alicetok` (p-alice): both APIs see one tenant.
    for name, project, role in [("zs-alice", "p-alice", "member"), ("zs-bob", "p-bob", "member"), ("zs-admin", "admin", "admin")]:
        create_account(srv, name, project, role)
    yield srv
    srv.kill()


def create_account(srv: ImagedServer, name: str, project: str, role: str):
    out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                          "--password-stdin", "--data-dir", str(srv.data_dir)],
                         input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def storages(z: ZStack) -> dict:
    return {bs["name"]: bs for bs in z.query("/backup-storage")["inventories"]}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_zstack_conversation(zs_server, origin, disk):
    srv = zs_server
    z = ZStack.login(srv.url, "zs-alice")

    # imaged's stores are the backup storages, with stable uuids and the file system's capacity
    bs = storages(z)
    assert set(bs) == {"primary", "replica"}
    for b in bs.values():
        assert re.fullmatch(r"[0-9a-f]{32}", b["uuid"]) and b["status"] == "Connected" and b["state"] == "Enabled"
        assert 0 < b["availableCapacity"] <= b["totalCapacity"]
    assert z.query(f"/backup-storage/{bs['replica']['uuid']}")["inventories"][0]["name"] == "replica"
    both = [bs["primary"]["uuid"], bs["replica"]["uuid"]]

    # AddImage from a URL onto both backup storages, with a caller-chosen uuid and job uuid
    qcow2 = disk.qcow2("zs.qcow2", virtual=48 << 20, seed=7)
    payload = qcow2.read_bytes()
    url = origin.serve("/zs/tiny.qcow2", qcow2)
    wanted = job_uuid()
    job = job_uuid()
    r = z.call("POST", "/images", job, json={
        "params": {"name": "zs-tiny", "description": "a tiny linux", "url": url, "mediaType": "RootVolumeTemplate",
                   "guestOsType": "Ubuntu", "system": False, "format": "qcow2", "platform": "Linux",
                   "architecture": "x86_64", "backupStorageUuids": both, "resourceUuid": wanted,
                   "systemTags": ["inside::params"]},
        "systemTags": ["qemuga"], "userTags": ["team::blue"]})
    assert r.status_code == 202, r.text
    assert r.json()["location"].endswith(f"/zstack/v1/api-jobs/{job}") and r.json()["apiTimeout"] == 259200000
    done = z.poll(r.json()["location"])
    assert done.status_code == 200, done.text
    inv = done.json()["inventory"]
    for field in INVENTORY_FIELDS:
        assert field in inv, field
    assert inv["uuid"] == wanted and inv["name"] == "zs-tiny" and inv["description"] == "a tiny linux"
    assert (inv["state"], inv["status"], inv["type"]) == ("Enabled", "Ready", "zstack")
    assert inv["md5Sum"] == md5(payload) and inv["actualSize"] == len(payload)
    assert inv["size"] == qemu_info(qcow2)["virtual-size"] == 48 << 20
    assert (inv["url"], inv["format"], inv["mediaType"], inv["guestOsType"]) == (url, "qcow2", "RootVolumeTemplate", "Ubuntu")
    assert (inv["platform"], inv["architecture"], inv["system"], inv["virtio"]) == ("Linux", "x86_64", False, True)
    assert GSON_DATE.match(inv["createDate"]) and GSON_DATE.match(inv["lastOpDate"])
    refs = {ref["backupStorageUuid"]: ref for ref in inv["backupStorageRefs"]}
    assert set(refs) == set(both)
    for store, ref in [("primary", refs[both[0]]), ("replica", refs[both[1]])]:
        assert ref["status"] == "Ready" and ref["imageUuid"] == wanted
        assert ref["installPath"] == f"imaged://{store}/images/{uuid.UUID(wanted)}" and GSON_DATE.match(ref["createDate"])
        # the bytes really are in each store
        assert (srv.data_dir / "stores" / store / "images" / str(uuid.UUID(wanted))).read_bytes() == payload
    # a finished job keeps answering the same result; a GET on it is the only allowed method
    again = z.http.get(r.json()["location"], headers=z.headers())
    assert again.status_code == 200 and again.json()["inventory"]["uuid"] == wanted
    assert z.http.post(r.json()["location"]).status_code == 405

    # the same image through the OpenStack API: same id, same bytes, deactivation and deletion map
    alice = Raw(srv.url, "alice")
    core_id = str(uuid.UUID(wanted))
    shown = alice.get(f"/v2/images/{core_id}").json()
    assert (shown["name"], shown["status"], shown["disk_format"], shown["checksum"]) == ("zs-tiny", "active", "qcow2", md5(payload))
    assert shown["architecture"] == "x86_64" and sorted(shown["stores"].split(",")) == ["primary", "replica"]
    assert alice.get(f"/v2/images/{core_id}/file").content == payload

    # two more images to query over: a raw one on one storage and an ISO
    raw = random_bytes(3 << 20, 11)
    time.sleep(1.1)
    raw_inv = z.add_image(name="zs-raw", url=origin.serve("/zs/disk.raw", raw), format="raw", platform="Windows",
                          backupStorageUuids=[both[1]]).json()["inventory"]
    assert (raw_inv["status"], raw_inv["guestOsType"], raw_inv["md5Sum"], raw_inv["size"]) == ("Ready", "Windows", md5(raw), len(raw))
    assert [ref["backupStorageUuid"] for ref in raw_inv["backupStorageRefs"]] == [both[1]]
    time.sleep(1.1)  # createDate has one-second resolution: keep the three apart for the sort checks
    other = z.add_image(name="other-zs", url=origin.serve("/zs/other.raw", raw[:1 << 20]), format="raw",
                        mediaType="DataVolumeTemplate", backupStorageUuids=both).json()["inventory"]
    assert other["mediaType"] == "DataVolumeTemplate"

    # QueryImage: conditions (=, in, like, !=, >), sort, paging with a count, fields, count only
    names = lambda res: [i["name"] for i in res["inventories"]]
    res = z.query(params=[("q", "status=Ready"), ("q", "format?=qcow2,raw"), ("sort", "-createDate"),
                          ("replyWithCount", "true"), ("limit", "2"), ("start", "0")])
    assert names(res) == ["other-zs", "zs-raw"] and res["total"] == 3
    assert res["schema"]["inventories[0]"] == "org.zstack.header.image.ImageInventory"
    res = z.query(params=[("q", "status=Ready"), ("sort", "-createDate"), ("limit", "2"), ("start", "2")])
    assert names(res) == ["zs-tiny"] and "total" not in res
    # the Python SDK sends `%` unencoded: raw query string
    res = z.http.get(z.base + "/images?q=name~=zs-%&sort=+name", headers=z.headers()).json()
    assert names(res) == ["zs-raw", "zs-tiny"]
    assert names(z.query(params=[("q", "size>4194304"), ("q", "name!=nothing")])) == ["zs-tiny"]
    assert names(z.query(params=[("q", "mediaType!?=RootVolumeTemplate")])) == ["other-zs"]
    assert names(z.query(params=[("q", f"backupStorageRefs.backupStorageUuid={both[0]}"), ("sort", "name")])) == ["other-zs", "zs-tiny"]
    assert names(z.query(params=[("q", "__userTag__=team::blue")])) == ["zs-tiny"]
    assert names(z.query(params=[("q", "__systemTag__=qemuga")])) == ["zs-tiny"]
    assert names(z.query(params=[("q", "description is null")])) == []
    only = z.query(params=[("q", f"uuid={wanted}"), ("fields", "uuid,name"), ("fields", "status")])["inventories"]
    assert only == [{"uuid": wanted, "name": "zs-tiny"}]
    assert z.query(params=[("q", "platform=Windows"), ("count", "true")]) == {"total": 1}
    assert z.get_image(job_uuid()) is None
    # another tenant sees none of them
    bob = ZStack.login(srv.url, "zs-bob")
    assert bob.query()["inventories"] == [] and bob.get_image(wanted) is None

    # UpdateImage
    upd = z.ok("PUT", f"/images/{wanted}/actions", json={"updateImage": {"name": "zs-tiny-2", "description": "",
                                                                        "guestOsType": "Debian", "platform": "Other",
                                                                        "architecture": "aarch64", "virtio": False}})["inventory"]
    assert (upd["name"], upd["description"], upd["guestOsType"], upd["platform"], upd["architecture"], upd["virtio"]) == \
        ("zs-tiny-2", "", "Debian", "Other", "aarch64", False)
    assert z.get_image(wanted)["name"] == "zs-tiny-2"
    assert alice.get(f"/v2/images/{core_id}").json()["name"] == "zs-tiny-2"

    # disable / enable map onto the core's deactivate / reactivate
    off = z.ok("PUT", f"/images/{wanted}/actions", json={"changeImageState": {"stateEvent": "disable"}})["inventory"]
    assert (off["state"], off["status"]) == ("Disabled", "Ready")
    assert alice.get(f"/v2/images/{core_id}").json()["status"] == "deactivated"
    on = z.ok("PUT", f"/images/{wanted}/actions", json={"changeImageState": {"stateEvent": "enable"}})["inventory"]
    assert on["state"] == "Enabled" and alice.get(f"/v2/images/{core_id}").json()["status"] == "active"

    # delete (soft) → Deleted, still queryable, gone for OpenStack; recover; delete; expunge
    assert z.ok("DELETE", f"/images/{wanted}", params={"deleteMode": "Permissive"}) == {}
    gone = z.get_image(wanted)
    assert gone["status"] == "Deleted" and {ref["status"] for ref in gone["backupStorageRefs"]} == {"Deleted"}
    assert names(z.query(params=[("q", "status=Deleted")])) == ["zs-tiny-2"]
    assert names(z.query(params=[("q", "status!=Deleted"), ("sort", "name")])) == ["other-zs", "zs-raw"]
    assert alice.get(f"/v2/images/{core_id}").status_code == 404
    assert core_id not in [i["id"] for i in alice.get("/v2/images").json()["images"]]
    blob = srv.data_dir / "stores" / "primary" / "images" / core_id
    assert blob.read_bytes() == payload  # kept until expunged
    # a deleted image cannot be deleted twice into something else: deleting again succeeds, changes nothing
    assert z.ok("DELETE", f"/images/{wanted}") == {}
    rec = z.ok("PUT", f"/images/{wanted}/actions", json={"recoverImage": {}})["inventory"]
    assert (rec["status"], rec["state"]) == ("Ready", "Enabled")
    assert {ref["status"] for ref in rec["backupStorageRefs"]} == {"Ready"}
    assert alice.get(f"/v2/images/{core_id}/file").content == payload
    err = z.error("PUT", f"/images/{wanted}/actions", "SYS.1006", json={"expungeImage": {}})
    assert "is not deleted on any backup storage" in err["details"]
    err = z.error("PUT", f"/images/{wanted}/actions", "SYS.1006", json={"recoverImage": {}})
    assert "is not Deleted" in err["details"]
    assert z.ok("DELETE", f"/images/{wanted}", params={"deleteMode": "Enforcing"}) == {}
    assert z.ok("PUT", f"/images/{wanted}/actions", json={"expungeImage": {"backupStorageUuids": both}}) == {}
    assert z.get_image(wanted) is None
    wait_for(lambda: not blob.exists(), what="expunged blob removed")
    assert not (srv.data_dir / "stores" / "replica" / "images" / core_id).exists()
    # deleting what no longer exists is a success (successIfResourceNotExisting)
    assert z.ok("DELETE", f"/images/{wanted}") == {}

    # an image made through OpenStack is visible through ZStack
    made = alice.post("/v2/images", json={"name": "from-openstack", "disk_format": "raw", "container_format": "bare"}).json()
    assert alice.put(f"/v2/images/{made['id']}/file", data=b"x" * 4096,
                     headers={"Content-Type": "application/octet-stream"}).status_code == 204
    seen = z.get_image(made["id"].replace("-", ""))
    assert (seen["name"], seen["status"], seen["format"], seen["actualSize"]) == ("from-openstack", "Ready", "raw", 4096)
    assert seen["md5Sum"] == md5(b"x" * 4096)

    # sessions: valid, logout, then refused
    assert z.http.get(f"{z.base}/accounts/sessions/{z.session}/valid").json() == {"valid": True}
    assert z.http.delete(f"{z.base}/accounts/sessions/{z.session}").status_code == 200
    assert z.http.get(f"{z.base}/accounts/sessions/{z.session}/valid").json() == {"valid": False}
    r = z.call("GET", "/images")
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001"


def test_zstack_admin_sees_every_project(zs_server, origin):
    alice = ZStack.login(zs_server.url, "zs-alice")
    bs = storages(alice)
    inv = alice.add_image(name="zs-alices", url=origin.serve("/zs/a.raw", b"a" * 8192), format="raw",
                          backupStorageUuids=[bs["primary"]["uuid"]]).json()["inventory"]
    admin = ZStack.login(zs_server.url, "zs-admin")
    assert admin.get_image(inv["uuid"])["name"] == "zs-alices"
    bob = ZStack.login(zs_server.url, "zs-bob")
    err = bob.error("PUT", f"/images/{inv['uuid']}/actions", "SYS.1003", json={"updateImage": {"name": "stolen"}})
    assert "not found" in err["details"]
    assert alice.get_image(inv["uuid"])["name"] == "zs-alices"


def test_zstack_bad_input(zs_server, origin, disk):
    srv = zs_server
    z = ZStack.login(srv.url, "zs-alice")
    bs = storages(z)
    primary = bs["primary"]["uuid"]
    base = z.base

    # framework-level refusals: plain-text 400/404/405
    r = requests.get(base + "/images")
    assert r.status_code == 400 and r.text == "missing header 'Authorization'"
    r = requests.get(base + "/images", headers={"Authorization": "Bearer abc"})
    assert r.status_code == 400 and r.text == "Authorization type must be 'OAuth'"
    r = requests.get(base + "/no/such/api", headers=z.headers())
    assert r.status_code == 404 and r.text == "no api mapping to /v1/no/such/api"
    r = requests.patch(base + "/images", headers=z.headers())
    assert r.status_code == 405 and "PATCH" in r.text
    r = requests.get(base + "/api-jobs/" + job_uuid(), headers=z.headers())
    assert r.status_code == 404 and r.text == "the job has been expired"
    r = requests.get(base + "/api-jobs/" + job_uuid())  # polling needs the session too (issue 19)
    assert r.status_code == 400 and r.text == "missing header 'Authorization'"
    r = z.call("POST", "/images", job="not-a-uuid", json={"params": {}})
    assert r.status_code == 400 and "Invalid header[X-Job-UUID]" in r.text
    r = z.call("GET", "/images", params={"q": "name"})
    assert r.status_code == 400 and "doesn't contain any query operator" in r.text
    r = z.call("GET", "/images", params={"limit": "ten"})
    assert r.status_code == 400 and r.text == "Invalid query parameter. 'limit' must be an integer"
    r = z.call("POST", "/images", json={"params": {"name": "x", "url": "http://a/b", "format": "raw",
                                                   "backupStorageUuids": [primary], "system": "yes"}})
    assert r.status_code == 400 and r.text.startswith("Invalid value for boolean field [system], [yes]")
    r = z.call("PUT", f"/images/{job_uuid()}/actions", json={"renameImage": {}})
    assert r.status_code == 400 and "doesn't contain action mapping" in r.text
    r = z.call("POST", "/images", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = z.call("POST", "/images", data=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code in (400, 413)

    # sessions and logins
    r = requests.put(base + "/accounts/login", json={"logInByAccount": {"accountName": "zs-alice", "password": sha512("wrong")}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1000"
    r = requests.put(base + "/accounts/login", json={"logInByAccount": {"accountName": "zs-alice", "password": PASSWORDS["zs-alice"]}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1000"  # the clear password is not the protocol
    r = requests.get(base + "/images", headers={"Authorization": "OAuth " + job_uuid()})
    assert r.status_code == 503 and r.json()["error"] == {
        "code": "ID.1001", "description": "The session is invalid, either wrong session id or the session has been expired",
        "details": "Session expired"}

    before = {i["id"] for i in Raw(srv.url, "alice").get("/v2/images").json()["images"]}
    hits = len(origin.hits)
    good = origin.serve("/zs/good.raw", b"g" * 4096)
    # API-level refusals arrive as the job's 503 with ZStack's codes
    z.error("POST", "/images", "SYS.1003", json={"params": {"name": "x", "url": good, "format": "raw", "backupStorageUuids": [job_uuid()]}})
    z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "format": "raw", "backupStorageUuids": []}})
    z.error("POST", "/images", "SYS.1007", json={"params": {"url": good, "format": "raw", "backupStorageUuids": [primary]}})
    err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "format": "raw", "mediaType": "Kernel",
                                                                  "backupStorageUuids": [primary]}})
    assert err["details"].endswith("are [RootVolumeTemplate, ISO, DataVolumeTemplate], but Kernel found")
    err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "backupStorageUuids": [primary]}})
    assert err["details"] == "unknown format[null]"
    z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "format": "iso", "system": True,
                                                            "backupStorageUuids": [primary]}})
    z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x" * 256, "url": good, "format": "raw", "backupStorageUuids": [primary]}})
    z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "format": "raw", "architecture": "sparc",
                                                            "backupStorageUuids": [primary]}})
    z.error("POST", "/images", "SYS.1007", json={"params": {"name": "x", "url": good, "format": "raw", "resourceUuid": "abc",
                                                            "backupStorageUuids": [primary]}})
    # hostile URLs: server-local files, metadata service, private addresses, other schemes
    for hostile in ["file:///etc/passwd", "/etc/shadow", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/x.qcow2",
                    f"http://127.0.0.1:{srv.port}/zstack/v1/images", "gopher://a/b", "ftp://example.com/x.raw"]:
        err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "hostile", "url": hostile, "format": "raw",
                                                                      "backupStorageUuids": [primary]}})
        assert "url" in err["details"], err
    assert len(origin.hits) == hits  # nothing was fetched

    # unreachable data: the job fails with SYS.1002 (cause SYS.1006) and the image is gone
    missing = job_uuid()
    err = z.error("POST", "/images", "SYS.1002", json={"params": {"name": "unreachable", "url": origin.url("/zs/absent.raw"),
                                                                  "format": "raw", "backupStorageUuids": [primary],
                                                                  "resourceUuid": missing}})
    assert err["details"].startswith("Failed to download image[name:unreachable]") and err["cause"]["code"] == "SYS.1006"
    assert z.get_image(missing) is None
    # a hostile disk (qcow2 naming a backing file on the host): refused by the inspection, nothing kept
    backed = origin.serve("/zs/backed.qcow2", disk.qcow2_with_backing_to_host_file())
    hostile_id = job_uuid()
    err = z.error("POST", "/images", "SYS.1002", json={"params": {"name": "backed", "url": backed, "format": "qcow2",
                                                                  "backupStorageUuids": [primary], "resourceUuid": hostile_id}})
    assert "backing" in err["cause"]["details"].lower(), err
    assert z.get_image(hostile_id) is None
    assert not (srv.data_dir / "stores" / "primary" / "images" / str(uuid.UUID(hostile_id))).exists()
    after = {i["id"] for i in Raw(srv.url, "alice").get("/v2/images").json()["images"]}
    assert after == before  # no image left behind by any refused or failed AddImage

    # a deleted image's uuid stays taken (the catalog keeps deleted rows); so does a live one's
    err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "again", "url": good, "format": "raw",
                                                                  "backupStorageUuids": [primary], "resourceUuid": missing}})
    assert "already used" in err["details"]
    missing = job_uuid()
    first = z.add_image(name="dup", url=good, format="raw", backupStorageUuids=[primary], resourceUuid=missing)
    assert first.status_code == 200, first.text
    err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "dup2", "url": good, "format": "raw",
                                                                  "backupStorageUuids": [primary], "resourceUuid": missing}})
    assert "already used" in err["details"]
    job = job_uuid()
    assert z.call("PUT", f"/images/{missing}/actions", job, json={"syncImageSize": {}}).status_code == 202
    r = z.call("PUT", f"/images/{missing}/actions", job, json={"syncImageSize": {}})
    assert r.status_code == 400 and r.text == f"Duplicate job uuid[{job}]"

    # bad values in actions and queries
    err = z.error("PUT", f"/images/{missing}/actions", "SYS.1007", json={"changeImageState": {"stateEvent": "pause"}})
    assert "[enable, disable], but pause found" in err["details"]
    z.error("PUT", f"/images/{missing}/actions", "SYS.1007", json={"updateImage": {"format": "vmdk"}})
    z.error("PUT", f"/images/{missing}/actions", "SYS.1007", json={"updateImage": {"mediaType": "Floppy"}})
    z.error("PUT", "/images/not-a-uuid/actions", "SYS.1003", json={"updateImage": {"name": "n"}})
    z.error("PUT", f"/images/{missing}/actions", "SYS.1007", json={"calculateImageHash": {"algorithm": "MD5"}})  # no backupStorageUuid
    z.error("PUT", f"/images/{missing}/actions", "SYS.1014", json={"exportImageFromBackupStorage": {"imageUuid": missing}})
    z.error("DELETE", f"/images/{missing}", "SYS.1007", params={"deleteMode": "Sometimes"})
    z.error("DELETE", f"/images/{missing}", "SYS.1003", params={"backupStorageUuids": job_uuid()})
    r = z.call("GET", "/images", params={"q": "colour=red"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"
    r = z.call("GET", "/images", params={"q": "size>big"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"
    r = z.call("GET", "/images", params={"sort": "-colour"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"
    assert z.get_image(missing)["name"] == "dup"  # none of it changed the image


def test_zstack_session_expires(tmp_path, origin):
    srv = ImagedServer(tmp_path / "short", "--zstack-session-seconds", "2")
    srv.start()
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        assert z.query()["inventories"] == []
        time.sleep(3)
        r = z.call("GET", "/images")
        assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001"
        assert z.http.get(f"{z.base}/accounts/sessions/{z.session}/valid").json() == {"valid": False}
    finally:
        srv.kill()


def test_zstack_add_image_job_survives_sigkill(tmp_path, origin):
    """SIGKILL imaged while an AddImage job runs: after the restart the job's location answers, it never hangs."""
    srv = ImagedServer(tmp_path / "killed", "--store", "primary=file", "--store", "replica=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       "--task-lease-seconds", "3")
    srv.start()
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        both = [b["uuid"] for b in storages(z).values()]
        payload = random_bytes(6 << 20, 21)
        url = origin.slow("/zs/slow.raw", payload, chunk=256 << 10, delay=0.1)
        r = z.call("POST", "/images", json={"params": {"name": "zs-killed", "url": url, "format": "raw", "backupStorageUuids": both}})
        assert r.status_code == 202, r.text
        location = r.json()["location"]
        wait_for(lambda: origin.hits.count("/zs/slow.raw") >= 1, what="download started")
        assert z.http.get(location, headers=z.headers()).status_code == 202
        time.sleep(0.5)
        srv.kill(signal.SIGKILL)
        srv.start(port=srv.port)
        z = ZStack.login(srv.url, "zs-alice")  # a new session: the old one is still valid, but take the usual path
        final = z.poll(location, timeout=120)
        assert final.status_code in (200, 503), final.text
        if final.status_code == 200:
            inv = final.json()["inventory"]
            assert inv["status"] == "Ready" and inv["md5Sum"] == md5(payload) and inv["actualSize"] == len(payload)
            assert {ref["status"] for ref in inv["backupStorageRefs"]} == {"Ready"} and len(inv["backupStorageRefs"]) == 2
        else:
            assert final.json()["error"]["code"] == "SYS.1002"
            assert z.query(params=[("q", "name=zs-killed")])["inventories"] == []
    finally:
        srv.kill()


def test_zstack_upload_url(zs_server, disk):
    """`upload://`: the job completes at once with the image Downloading and the ref's installPath an upload URL;
    the client POSTs the bytes there (multipart, X-IMAGE-UUID, X-IMAGE-SIZE), as to ZStack's backup storage agent."""
    z = ZStack.login(zs_server.url, "zs-alice")
    bs = storages(z)
    image_uuid = job_uuid()
    err = z.error("POST", "/images", "SYS.1007", json={"params": {
        "name": "zs-up", "url": f"upload://{image_uuid}", "format": "qcow2", "resourceUuid": image_uuid,
        "backupStorageUuids": [bs["primary"]["uuid"], bs["replica"]["uuid"]]}})
    assert "one backup storage" in err["details"]
    inv = z.add_image(name="zs-up", url=f"upload://{image_uuid}", format="qcow2", resourceUuid=image_uuid,
                      backupStorageUuids=[bs["replica"]["uuid"]]).json()["inventory"]
    assert (inv["uuid"], inv["status"], inv["size"], inv["actualSize"]) == (image_uuid, "Downloading", 0, 0)
    [ref] = inv["backupStorageRefs"]
    upload_url = ref["installPath"]
    assert ref["status"] == "Downloading" and upload_url.startswith(f"{zs_server.url}/zstack/v1/uploads/{image_uuid}/")
    assert z.get_image(image_uuid)["backupStorageRefs"][0]["installPath"] == upload_url

    qcow2 = disk.qcow2("zs-up.qcow2", virtual=32 << 20, seed=9)
    payload = qcow2.read_bytes()
    headers = {"X-IMAGE-UUID": image_uuid, "X-IMAGE-SIZE": str(len(payload))}
    # a wrong token names nothing; a short body is an incomplete upload and the image keeps waiting
    assert requests.post(upload_url[:-4] + "0000", files={"file": ("zs-up.qcow2", payload)}, headers=headers).status_code == 404
    short = requests.post(upload_url, files={"file": ("zs-up.qcow2", payload[: len(payload) // 2])}, headers=headers)
    assert short.status_code == 400 and short.text.startswith("incomplete upload"), short.text
    r = requests.post(upload_url, files={"file": ("zs-up.qcow2", payload)}, headers=dict(headers, **{"X-IMAGE-UUID": job_uuid()}))
    assert r.status_code == 400
    assert z.get_image(image_uuid)["status"] == "Downloading"
    # a pinned digest (issue 21): an unknown algorithm and a wrong digest are refused, nothing is kept
    r = requests.post(upload_url, files={"file": ("zs-up.qcow2", payload)}, headers=dict(headers, **{"X-Image-Meta-Expected-Hash": "crc32:00"}))
    assert r.status_code == 400 and "Unsupported hash algorithm 'crc32'" in r.text, r.text
    wrong = dict(headers, **{"X-Image-Meta-Expected-Hash": "md5:" + md5(payload[::-1])})
    r = requests.post(upload_url, files={"file": ("zs-up.qcow2", payload)}, headers=wrong)
    assert r.status_code == 400 and r.text.startswith("incomplete upload: Checksum verification failed"), r.text
    assert z.get_image(image_uuid)["status"] == "Downloading"
    assert not (zs_server.data_dir / "stores" / "replica" / "images" / str(uuid.UUID(image_uuid))).exists()
    # the real upload, pinned
    headers["X-Image-Meta-Expected-Hash"] = "md5:" + md5(payload)
    r = requests.post(upload_url, files={"file": ("zs-up.qcow2", payload)}, headers=headers)
    assert r.status_code == 200, r.text
    done = z.get_image(image_uuid)
    assert (done["status"], done["md5Sum"], done["actualSize"], done["size"]) == ("Ready", md5(payload), len(payload), 32 << 20)
    assert done["backupStorageRefs"][0]["installPath"] == f"imaged://replica/images/{uuid.UUID(image_uuid)}"
    assert (zs_server.data_dir / "stores" / "replica" / "images" / str(uuid.UUID(image_uuid))).read_bytes() == payload
    # the slot is used up
    assert requests.post(upload_url, files={"file": ("zs-up.qcow2", payload)}, headers=headers).status_code == 404


def test_zstack_deleted_images_are_expunged_after_their_period(tmp_path, origin):
    """`--expunge-after-seconds` (ZStack's image.expungePeriod): a Deleted image is recoverable within the period,
    then expunged with its data by the server itself."""
    srv = ImagedServer(tmp_path / "expunging", "--expunge-after-seconds", "3", "--store", "primary=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        [primary] = [b["uuid"] for b in storages(z).values()]
        url = origin.serve("/zs/expunged.raw", b"e" * 65536)
        kept = z.add_image(name="kept", url=url, format="raw", backupStorageUuids=[primary]).json()["inventory"]
        dropped = z.add_image(name="dropped", url=url, format="raw", backupStorageUuids=[primary]).json()["inventory"]
        for inv in (kept, dropped):
            assert z.ok("DELETE", f"/images/{inv['uuid']}") == {}
        assert z.ok("PUT", f"/images/{kept['uuid']}/actions", json={"recoverImage": {}})["inventory"]["status"] == "Ready"
        blob = srv.data_dir / "stores" / "primary" / "images" / str(uuid.UUID(dropped["uuid"]))
        assert blob.exists() and z.get_image(dropped["uuid"])["status"] == "Deleted"
        wait_for(lambda: z.get_image(dropped["uuid"]) is None and not blob.exists(), timeout=20, what="automatic expunge")
        assert z.get_image(kept["uuid"])["status"] == "Ready"
        assert "softly deleted image expunged" in srv.log_text()
    finally:
        srv.kill()


def test_zstack_flows_on_the_default_single_store_server(tmp_path, origin, disk):
    """`imaged serve` with no store options (one store): AddImage from a URL and `upload://` both work, and the bytes
    POSTed to the upload URL make the image Ready with the md5 of what was sent (they were refused with an
    OpenStack-only multi-store message)."""
    srv = ImagedServer(tmp_path / "default", "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        [only] = z.query("/backup-storage")["inventories"]
        # upload://
        image_uuid = job_uuid()
        added = z.add_image(name="zs-default-up", url=f"upload://{image_uuid}", format="qcow2", resourceUuid=image_uuid,
                            backupStorageUuids=[only["uuid"]])
        assert added.status_code == 200, added.text
        inv = added.json()["inventory"]
        [ref] = inv["backupStorageRefs"]
        assert (inv["status"], ref["backupStorageUuid"]) == ("Downloading", only["uuid"])
        payload = disk.qcow2("zs-default-up.qcow2", virtual=16 << 20, seed=21).read_bytes()
        r = requests.post(ref["installPath"], files={"file": ("zs-default-up.qcow2", payload)},
                          headers={"X-IMAGE-UUID": image_uuid, "X-IMAGE-SIZE": str(len(payload))})
        assert r.status_code == 200, r.text
        done = z.get_image(image_uuid)
        assert (done["status"], done["md5Sum"], done["actualSize"]) == ("Ready", md5(payload), len(payload))
        assert Raw(srv.url, "alice").get(f"/v2/images/{uuid.UUID(image_uuid)}/file").content == payload
        # AddImage from a URL, onto the only backup storage named explicitly
        data = random_bytes(3 << 20, 77)
        origin.serve("/zs-default.raw", data)
        inv = z.add_image(name="zs-default-url", url=origin.url("/zs-default.raw"), format="raw",
                          backupStorageUuids=[only["uuid"]]).json()["inventory"]
        assert (inv["status"], inv["md5Sum"], inv["actualSize"]) == ("Ready", md5(data), len(data))
        # OpenStack keeps Glance's single-store refusal of X-Image-Meta-Store.
        alice = Raw(srv.url, "alice")
        img = alice.create(name="os-default", disk_format="raw", container_format="bare")
        r = alice.put(f"/v2/images/{img['id']}/file", data=b"x" * 10,
                      headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Store": only["name"]})
        assert r.status_code == 400 and "Multi backend is not supported" in r.text
    finally:
        srv.kill()
