"""`--import-private admin|all|none` (issue 18, point 1) through the four APIs that import from a URL: OpenStack
web-download, Avi `POST /api/image {url}` (avisdk), ZStack AddImage (REST conventions), Danube `POST /image/<name>`
with a manifest (esdc-api).

Traffic goes to loopback only, so the address classes a test can reach for real are the loopback origin (opened by
`--import-allow-cidr 127.0.0.1/32`) on an odd port — the policy's port dimension, admin vs member — and the refusals
made before any connection (other loopback addresses, link-local, metadata, unspecified, and a private literal for
a member). Every private-range × role × policy × port case is in the guard's unit tests
(`Tests/OutboundTests/ImportPolicyTests.swift`). Each refusal names the option that opens it, in the API's own
format, and leaves nothing behind."""

import hashlib
import json
import subprocess
import time
import uuid

import pytest
import requests
from avi.sdk.avi_api import ApiSession
from esdc_api import Client
from esdc_api.exceptions import ClientError

from conftest import ImagedServer, Raw, imaged_bin, random_bytes, unique, wait_for, wait_status
from test_zstack import ZStack

PASSWORD = "import-policy-password"
ACCOUNTS = [("ip-member", "p-alice", "member"), ("ip-admin", "admin", "admin")]
APIS = ["openstack", "avi", "zstack", "danube"]


def start(tmp_path, origin, policy: str | None) -> ImagedServer:
    args = ["--import-allow-cidr", "127.0.0.1/32"]
    if policy:
        args += ["--import-private", policy]
    srv = ImagedServer(tmp_path / f"policy-{policy or 'default'}", *args)
    srv.start()
    for name, project, role in ACCOUNTS:
        out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                              "--password-stdin", "--data-dir", str(srv.data_dir)],
                             input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    return srv


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Importer:
    """One API's import, as its users make it: `refused(url)` → the error text in that API's format (asserting
    its shape and that nothing was created); `imports(url, data)` → the image's md5 once the import is done."""

    def __init__(self, api: str, srv: ImagedServer, admin: bool):
        self.api, self.srv, self.admin = api, srv, admin
        self.account = "ip-admin" if admin else "ip-member"

    def names(self) -> set[str]:
        images = Raw(self.srv.url, "admin").get("/v2/images", params={"limit": 1000}).json()["images"]
        return {i["name"] for i in images}

    def refused(self, url: str) -> str:
        before = self.names()
        text = getattr(self, f"_refused_{self.api}")(url)
        assert self.names() == before, "a refused import left an image behind"
        return text

    # --- OpenStack: web-download on a queued image; 400 with Glance's text, the image stays queued, no task.
    def _openstack(self) -> Raw:
        return Raw(self.srv.url, "admin" if self.admin else "alice")

    def _refused_openstack(self, url: str) -> str:
        os_ = self._openstack()
        iid = os_.create(name=unique("ip"), disk_format="raw", container_format="bare")["id"]
        r = os_.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": url}})
        assert r.status_code == 400, r.text
        image = os_.get(f"/v2/images/{iid}").json()
        assert image["status"] == "queued" and os_.get(f"/v2/images/{iid}/tasks").json()["tasks"] == []
        os_.delete(f"/v2/images/{iid}")
        return r.text

    def _imports_openstack(self, url: str) -> str:
        os_ = self._openstack()
        iid = os_.create(name=unique("ip"), disk_format="raw", container_format="bare")["id"]
        r = os_.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": url}})
        assert r.status_code == 202, r.text
        return wait_status(os_, iid, "active")["checksum"]

    # --- Avi (avisdk): POST image {name, url}; 400 {"error": …}.
    def _avi(self) -> ApiSession:
        ApiSession.clear_cached_sessions()
        return ApiSession(controller_ip=self.srv.url, username=self.account, password=PASSWORD,
                          tenant="admin" if self.admin else "p-alice", api_version="30.2.1")

    def _refused_avi(self, url: str) -> str:
        r = self._avi().post("image", data={"name": unique("ip-avi"), "url": url})
        body = json.loads(r.text)  # avisdk's r.json() raises APIError for a 4xx
        assert r.status_code == 400 and set(body) == {"error"}, r.text
        return body["error"]

    def _imports_avi(self, url: str) -> str:
        api, name = self._avi(), unique("ip-avi")
        r = api.post("image", data={"name": name, "url": url})
        assert r.status_code == 201, r.text

        def done():
            found = api.get_object_by_name("image", name)
            return found if found["img_state"]["state"] == "IMAGE_FSM_COMPLETED" else None
        image = wait_for(done, timeout=60, interval=0.2, what="the Avi import")
        return Raw(self.srv.url, "admin").get(f"/v2/images/{image['uuid'][len('image-'):]}").json()["checksum"]

    # --- ZStack: AddImage; the job fails with SYS.1007 naming the url in `details`.
    def _zstack(self) -> ZStack:
        z = ZStack(self.srv.url)
        r = z.http.put(z.base + "/accounts/login", json={"logInByAccount": {
            "accountName": self.account, "password": hashlib.sha512(PASSWORD.encode()).hexdigest()}})
        assert r.status_code == 200, r.text
        z.session = r.json()["inventory"]["uuid"]
        return z

    def _add(self, z: ZStack, url: str):
        storage = z.query("/backup-storage")["inventories"][0]["uuid"]
        return z.run("POST", "/images", json={"params": {"name": unique("ip-zs"), "url": url, "format": "raw",
                                                         "backupStorageUuids": [storage]}})

    def _refused_zstack(self, url: str) -> str:
        r = self._add(self._zstack(), url)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "SYS.1007" and err["description"], err
        return err["details"]

    def _imports_zstack(self, url: str) -> str:
        r = self._add(self._zstack(), url)
        assert r.status_code == 200, r.text
        return r.json()["inventory"]["md5Sum"]

    # --- Danube (esdc-api): POST /image/<name> with a manifest; 400 {"manifest_url": [...]} before any task.
    def _danube(self) -> Client:
        es = Client(api_url=self.srv.url + "/api")
        assert es.login(self.account, PASSWORD).ok
        return es

    def _refused_danube(self, url: str) -> str:
        with pytest.raises(ClientError) as e:
            self._danube().post("/image/" + unique("ipdn")[:30], manifest_url=url, dc="main").content
        assert e.value.status_code == 400, e.value.detail
        assert list(e.value.detail) == ["manifest_url"], e.value.detail
        return e.value.detail["manifest_url"][0]

    def _imports_danube(self, url: str) -> str:
        es, name = self._danube(), unique("ipdn")[:30]
        content = es.post("/image/" + name, manifest_url=url, dc="main").content
        deadline = time.time() + 60
        while content.task_status in ("PENDING", "STARTED"):
            assert time.time() < deadline
            time.sleep(0.2)
            content = es.get("/task/%s/status" % content.task_id).content
        assert content.task_status == "SUCCESS", content.result
        image = [i for i in Raw(self.srv.url, "admin").get("/v2/images", params={"name": name}).json()["images"]]
        return image[0]["checksum"]

    def imports(self, origin, data: bytes) -> str:
        """Serves `data` on the origin (odd port, loopback) the way this API imports it; returns the md5 it got."""
        path = f"/ip/{uuid.uuid4().hex}"
        if self.api == "danube":
            m = {"v": 2, "uuid": str(uuid.uuid4()), "name": "policy", "version": "1", "type": "zvol", "os": "linux",
                 "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
            origin.serve(f"{path}/file", data)
            url = origin.serve(path, json.dumps(m).encode(), content_type="application/json")
        else:
            url = origin.serve(path, data)
        return getattr(self, f"_imports_{self.api}")(url)

    def source(self, origin) -> str:
        """A URL on the origin this API would import from (Danube's is a manifest)."""
        return origin.url(f"/ip/{uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def default_server(tmp_path_factory, origin):
    srv = start(tmp_path_factory.mktemp("import-policy"), origin, None)
    yield srv
    srv.kill()


@pytest.mark.parametrize("api", APIS)
def test_default_policy_admins_import_from_any_port_members_are_told_which_option(default_server, origin, api):
    data = random_bytes(300_000 + APIS.index(api), 1800 + APIS.index(api))
    admin, member = Importer(api, default_server, True), Importer(api, default_server, False)
    hits = len(origin.hits)
    # The operator's path: an admin imports from an internal web server on an odd port, no flag needed.
    assert admin.imports(origin, data) == md5(data)
    assert len(origin.hits) > hits
    # A member: the port is refused before any connection, and the refusal says which option opens it.
    hits = len(origin.hits)
    text = member.refused(member.source(origin))
    assert f"port {origin.port} is not allowed" in text and "--import-private admin" in text, text
    assert f"--import-allow-port {origin.port}" in text, text
    # A private address: refused for a member, naming --import-private (nothing is sent: refused at the request).
    text = member.refused("http://10.20.30.40/images/cirros.qcow2")
    assert "is private (10.0.0.0/8)" in text and "only admins may import from private addresses" in text, text
    assert "--import-private all" in text and "--import-allow-cidr 10.20.30.40/32" in text, text
    assert len(origin.hits) == hits


CLOSED = [
    ("http://127.0.0.2/x", "address 127.0.0.2 is loopback (127.0.0.0/8), refused for every user; an operator opens it "
                           "with --import-allow-cidr 127.0.0.2/32"),
    ("http://169.254.169.254/latest/meta-data/", "is link-local/metadata (169.254.0.0/16), refused for every user"),
    ("http://[fe80::1]/x", "is link-local (fe80::/10), refused for every user"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "is cloud metadata (AWS IPv6)"),
    ("http://100.100.100.200/latest/meta-data/", "is cloud metadata (Alibaba)"),
    ("http://[::1]/x", "address ::1 is loopback, refused for every user; an operator opens it with --import-allow-cidr ::1/128"),
    ("http://0.0.0.0/x", "is unspecified/this-network (0.0.0.0/8), refused for every user"),
    ("http://[::ffff:127.0.0.2]/x", "embeds IPv4 127.0.0.2 (IPv4-mapped)"),
]


@pytest.mark.parametrize("api", APIS)
def test_loopback_link_local_and_metadata_stay_closed_to_admins(default_server, origin, api):
    admin = Importer(api, default_server, True)
    hits = len(origin.hits)
    for url, expected in CLOSED:
        text = admin.refused(url)
        assert expected in text, (url, text)
        assert "--import-allow-cidr" in text, (url, text)
    assert len(origin.hits) == hits


@pytest.mark.parametrize("policy", ["all", "none"])
def test_the_other_policies(tmp_path, origin, policy):
    srv = start(tmp_path, origin, policy)
    try:
        for api in APIS:
            data = random_bytes(200_000 + APIS.index(api), 1900 + APIS.index(api))
            admin, member = Importer(api, srv, True), Importer(api, srv, False)
            if policy == "all":
                # Everyone gets private ranges and any port; loopback still only through the CIDR.
                assert member.imports(origin, data) == md5(data), api
                assert "refused for every user" in member.refused("http://127.0.0.2/x")
            else:
                # Nobody does, admins included: the refusal names both ways to open it.
                text = admin.refused(admin.source(origin))
                assert f"--import-allow-port {origin.port} opens it" in text and "admins may" not in text, (api, text)
                text = admin.refused("http://192.168.1.20/x")
                assert "imports from private addresses are off (--import-private none)" in text, (api, text)
                assert "--import-allow-cidr 192.168.1.20/32" in text, (api, text)
    finally:
        srv.kill()


def test_an_unknown_policy_is_refused_at_start(tmp_path):
    out = subprocess.run([str(imaged_bin()), "serve", "--data-dir", str(tmp_path), "--import-private", "tenants",
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--import-private: 'tenants' is not one of admin, all, none" in out.stderr, out.stderr
