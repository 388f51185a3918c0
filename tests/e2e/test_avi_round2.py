"""Avi, round two (issue 18): what the seed pages and avisdk users hit next. HTTP basic authentication
(the seed's curl form, and avisdk's `user_hdrs`), PATCH with the seed's whole Image body, an optional
PATCH body, `?name=` on an image's URL, `tenant_ref` on input, nested objects validated key by key, and
`*_ref` fields resolved to real images. Every refusal is checked to change nothing."""

import base64
import copy
import hashlib
import json
import subprocess

import pytest
import requests
from avi.sdk.avi_api import APIError, ApiSession, ObjectNotFound

from conftest import ImagedServer, Raw, imaged_bin, random_bytes

PASSWORDS = {"r2-alice": "alice-r2-password", "r2-bob": "bob-r2-password", "r2-root": "root-r2-password",
             "r2-dora": "dora-r2-password"}
VERSION = "30.2.1"


def account(srv, name, project, role):
    out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                          "--password-stdin", "--data-dir", str(srv.data_dir)],
                         input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # The default server: no store, import or front-end options.
    s = ImagedServer(tmp_path_factory.mktemp("imaged-avi-r2"))
    s.start()
    for name, project, role in [("r2-alice", "p-alice", "member"), ("r2-bob", "p-bob", "member"),
                                ("r2-root", "admin", "admin"), ("r2-dora", "p-dora", "member")]:
        account(s, name, project, role)
    yield s
    s.kill()


def session(srv, who, tenant, version=VERSION):
    ApiSession.clear_cached_sessions()
    return ApiSession(controller_ip=srv.url, username=who, password=PASSWORDS[who], tenant=tenant, api_version=version)


def basic(who, password=None):
    pair = f"{who}:{PASSWORDS[who] if password is None else password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def curl(srv, method, path, who=None, password=None, tenant=None, version=VERSION, **kw):
    """The seed's curl form: `Authorization` and `Content-Type: application/json`, no session, no CSRF."""
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    if who:
        headers["Authorization"] = basic(who, password)
    if tenant:
        headers["X-Avi-Tenant"] = tenant
    if version:
        headers["X-Avi-Version"] = version
    return requests.request(method, srv.url + path, headers=headers, timeout=60, **kw)


def names(srv, who, tenant):
    r = curl(srv, "GET", "/api/image?page_size=200", who, tenant=tenant)
    assert r.status_code == 200, r.text
    return sorted(o["name"] for o in r.json()["results"])


def err(r):
    """The `error` of an Avi refusal (avisdk's `.json()` raises on non-2xx answers)."""
    assert r.headers["Content-Type"].startswith("application/json"), r.text
    return json.loads(r.text)["error"]


def raw_session(srv, who):
    """A logged-in cookie session for requests the SDK cannot make (a PATCH without a body)."""
    r = requests.post(srv.url + "/login", data={"username": who, "password": PASSWORDS[who]}, timeout=60)
    assert r.status_code == 200, r.text
    s = requests.Session()
    s.cookies.update({"sessionid": r.cookies["sessionid"], "csrftoken": r.cookies["csrftoken"]})
    s.headers.update({"X-CSRFToken": r.cookies["csrftoken"], "Referer": srv.url, "X-Avi-Version": VERSION})
    return s


# --- Basic authentication -------------------------------------------------------------------------------

def test_basic_auth_the_seeds_curl_form(srv):
    before = names(srv, "r2-alice", "p-alice")
    # POST exactly as the seed's curl line (Authorization + Content-Type, nothing else).
    r = requests.post(srv.url + "/api/image", headers={"Authorization": basic("r2-alice"), "Content-Type": "application/json"},
                      data='{"name": "curl-img"}', timeout=60)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["name"] == "curl-img" and made["uuid"].startswith("image-")
    assert made["tenant_ref"].endswith("/api/tenant/p-alice#p-alice") and "Set-Cookie" not in r.headers
    path = "/api/image/" + made["uuid"]
    # Every method works with the headers the seed and avisdk send (X-Avi-Version, X-Avi-Tenant).
    got = curl(srv, "GET", path, "r2-alice", tenant="p-alice")
    assert got.status_code == 200 and got.headers["avi_api_version"] == VERSION and got.json()["name"] == "curl-img"
    p = curl(srv, "PATCH", path, "r2-alice", tenant="p-alice", json={"replace": {"type": "IMAGE_TYPE_PATCH"}})
    assert p.status_code == 200 and p.json()["type"] == "IMAGE_TYPE_PATCH", p.text
    body = dict(p.json(), uber_bundle=True)
    u = curl(srv, "PUT", path, "r2-alice", tenant="p-alice", json=body)
    assert u.status_code == 200 and u.json()["uber_bundle"] is True, u.text
    assert curl(srv, "GET", path, "r2-alice", tenant="p-alice").json()["uber_bundle"] is True
    # X-Avi-Tenant-UUID works the same way.
    assert curl(srv, "GET", path, "r2-alice", headers={"X-Avi-Tenant-UUID": "p-alice"}).status_code == 200
    assert names(srv, "r2-alice", "p-alice") == sorted(before + ["curl-img"])
    assert curl(srv, "DELETE", path, "r2-alice", tenant="p-alice").status_code == 204
    assert curl(srv, "GET", path, "r2-alice", tenant="p-alice").status_code == 404
    assert names(srv, "r2-alice", "p-alice") == before


def test_basic_auth_refusals_change_nothing(srv):
    before = names(srv, "r2-alice", "p-alice")
    for header in [basic("r2-alice", "wrong-password"), basic("r2-alice", ""), "Basic " + base64.b64encode(b"nobody:x").decode(),
                   "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc"]:
        r = requests.post(srv.url + "/api/image", headers={"Authorization": header, "Content-Type": "application/json"},
                          json={"name": "must-not-exist"}, timeout=60)
        assert r.status_code == 401, (header, r.text)
        assert r.headers["Content-Type"].startswith("application/json") and r.json() == {"error": "log in failed"}
    # A member naming another tenant: the controller's 403, nothing made there or here.
    r = curl(srv, "POST", "/api/image", "r2-alice", tenant="p-bob", json={"name": "must-not-exist"})
    assert r.status_code == 403 and err(r) == "Tenant 'p-bob' does not exist!"
    assert names(srv, "r2-alice", "p-alice") == before
    assert "must-not-exist" not in names(srv, "r2-bob", "p-bob")


def test_basic_auth_admin_tenant_header_and_password_change(srv):
    r = curl(srv, "POST", "/api/image", "r2-root", tenant="p-bob", json={"name": "root-made-for-bob"})
    assert r.status_code == 201 and r.json()["tenant_ref"].endswith("/api/tenant/p-bob#p-bob"), r.text
    assert "root-made-for-bob" in names(srv, "r2-bob", "p-bob")
    # A changed password takes effect on the next request (the verified pair is not trusted any more).
    assert curl(srv, "GET", "/api/image", "r2-dora", tenant="p-dora").status_code == 200
    out = subprocess.run([str(imaged_bin()), "account", "passwd", "r2-dora", "--data-dir", str(srv.data_dir)],
                         input="dora-new-password\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    old = curl(srv, "GET", "/api/image", "r2-dora", tenant="p-dora")
    assert old.status_code == 401 and old.json() == {"error": "log in failed"}
    assert curl(srv, "GET", "/api/image", "r2-dora", password="dora-new-password", tenant="p-dora").status_code == 200


def test_avisdk_with_basic_auth_user_headers(srv):
    ApiSession.clear_cached_sessions()
    # avisdk skips /login when `user_hdrs` carries Authorization, and sends no CSRF token or cookies.
    api = ApiSession(controller_ip=srv.url, username="r2-bob", password=PASSWORDS["r2-bob"], tenant="p-bob",
                     api_version=VERSION, user_hdrs={"Authorization": basic("r2-bob")})
    made = api.post("image", data={"name": "sdk-basic", "type": "IMAGE_TYPE_SYSTEM"})
    assert made.status_code == 201, made.text
    uuid = api.get_obj_uuid(made.json())
    assert api.get_object_by_name("image", "sdk-basic")["type"] == "IMAGE_TYPE_SYSTEM"
    assert api.patch("image/" + uuid, data={"replace": {"progress": 40}}).json()["progress"] == 40
    assert api.delete("image/" + uuid).status_code == 204
    with pytest.raises(ObjectNotFound):
        api.get("image/" + uuid).json()
    ApiSession.clear_cached_sessions()
    bad = ApiSession(controller_ip=srv.url, username="r2-bob", password="x", tenant="p-bob", api_version=VERSION,
                     user_hdrs={"Authorization": basic("r2-bob", "wrong")}, max_api_retries=1)
    with pytest.raises(APIError):
        bad.post("image", data={"name": "sdk-basic-refused"})
    assert "sdk-basic-refused" not in names(srv, "r2-bob", "p-bob")


def test_package_upload_with_basic_auth_on_the_default_server(srv):
    """Ansible's multipart upload with Basic credentials instead of a session, on a server with no options."""
    data = random_bytes(3 << 20, 1818)
    boundary = "r2avi"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"se_patch.pkg\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = curl(srv, "POST", "/api/image", "r2-bob", tenant="p-bob", data=body,
             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["name"] == "se_patch.pkg" and done["progress"] == 100 and done["img_state"]["state"] == "IMAGE_FSM_COMPLETED"
    assert done["tenant_ref"].endswith("/api/tenant/p-bob#p-bob")
    bob = Raw(srv.url, "bob")
    core = done["uuid"][len("image-"):]
    assert bob.get(f"/v2/images/{core}").json()["checksum"] == hashlib.md5(data).hexdigest()
    assert bob.get(f"/v2/images/{core}/file").content == data
    # The same upload with a wrong password: 401, and no image is left behind.
    r = curl(srv, "POST", "/api/image", "r2-bob", password="wrong", tenant="p-bob", data=body,
             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 401 and r.json() == {"error": "log in failed"}
    assert names(srv, "r2-bob", "p-bob").count("se_patch.pkg") == 1


def test_package_upload_checks_a_pinned_digest(srv):
    """Issue 21: the upload headers every API accepts pin the file part's digest. The right one is recorded;
    one flipped byte is 400 in Avi's words with no data kept; an unknown algorithm is 400 before an image exists."""
    data = random_bytes(1 << 20, 2121)
    boundary = "pinavi"

    def post(name, payload, pin):
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
        return curl(srv, "POST", "/api/image", "r2-bob", tenant="p-bob", data=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **pin})

    bob = Raw(srv.url, "bob")
    pin = {"Repr-Digest": "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"}
    r = post("pinned-ok.pkg", data, pin)
    assert r.status_code == 201, r.text
    core = r.json()["uuid"][len("image-"):]
    assert bob.get(f"/v2/images/{core}").json()["imaged_pinned_digest"] == "sha256:" + hashlib.sha256(data).hexdigest()

    flipped = data[:500] + bytes([data[500] ^ 1]) + data[501:]
    r = post("pinned-bad.pkg", flipped, pin)
    assert r.status_code == 400 and "Checksum verification failed" in err(r), r.text
    [bad] = [o for o in curl(srv, "GET", "/api/image?page_size=200", "r2-bob", tenant="p-bob").json()["results"]
             if o["name"] == "pinned-bad.pkg"]
    assert bad["img_state"]["state"] == "IMAGE_FSM_FAILED"
    core_bad = bob.get(f"/v2/images/{bad['uuid'][len('image-'):]}").json()
    assert core_bad["status"] == "queued" and core_bad["size"] is None and "imaged_pinned_digest" not in core_bad

    r = post("pinned-odd.pkg", data, {"X-Image-Meta-Expected-Hash": "crc32:deadbeef"})
    assert r.status_code == 400 and "Unsupported hash algorithm 'crc32'" in err(r), r.text
    assert "pinned-odd.pkg" not in names(srv, "r2-bob", "p-bob")


# --- PATCH: the seed's whole body, an optional body, ?name= ---------------------------------------------

def test_patch_with_the_whole_image_body(srv):
    api = session(srv, "r2-alice", "p-alice")
    uuid = api.get_obj_uuid(api.post("image", data={"name": "whole-1", "type": "IMAGE_TYPE_SYSTEM", "progress": 5}).json())
    whole = api.get("image/" + uuid).json()
    assert {"uuid", "url", "_last_modified", "tenant_ref"} <= set(whole)
    # As read, changed, sent back whole: plain and under `replace`.
    r = api.patch("image/" + uuid, data=dict(whole, progress=50, se_patch_name="se-p1"))
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == 50 and r.json()["se_patch_name"] == "se-p1" and r.json()["uuid"] == uuid
    now = api.get("image/" + uuid).json()
    r = api.patch("image/" + uuid, data={"replace": dict(now, progress=60, url="https://elsewhere/api/image/x")})
    assert r.status_code == 200 and r.json()["progress"] == 60, r.text
    after = api.get("image/" + uuid).json()
    assert after["progress"] == 60 and after["url"].endswith("/api/image/" + uuid) and after["tenant_ref"] == now["tenant_ref"]

    # Refused, each changing nothing: a stale _last_modified (412), another image's uuid, another tenant.
    refusals = [
        (dict(whole, progress=70), 412, "reload"),                              # `whole` is stale now
        (dict(after, progress=70, uuid="image-00000000-0000-4000-8000-000000000000"), 400, "uuid"),
        (dict(after, progress=70, tenant_ref=srv.url + "/api/tenant/p-bob"), 400, "tenant_ref"),
        ({"replace": dict(after, progress=70, _last_modified="1")}, 412, "reload"),
        (dict(after, progress=70, _last_modified=123), 400, "_last_modified"),
        ({"delete": {"uuid": uuid}}, 400, "read-only"),
    ]
    for body, status, phrase in refusals:
        r = api.patch("image/" + uuid, data=body)
        assert r.status_code == status and phrase in err(r), (body, r.text)
    assert api.get("image/" + uuid).json() == after


def test_patch_body_is_optional(srv):
    api = session(srv, "r2-alice", "p-alice")
    uuid = api.get_obj_uuid(api.post("image", data={"name": "opt-body", "progress": 7}).json())
    before = api.get("image/" + uuid).json()
    s = raw_session(srv, "r2-alice")
    for body in [None, b"", b"{}", b"null", b"  \n"]:
        r = s.patch(srv.url + "/api/image/" + uuid, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["progress"] == 7 and r.json()["_last_modified"] == before["_last_modified"]
        assert r.json()["url"].endswith("#opt-body")
    # avisdk's patch() without data sends no body.
    r = api.patch("image/" + uuid)
    assert r.status_code == 200 and r.json()["uuid"] == uuid
    assert api.get("image/" + uuid).json() == before
    # Without a CSRF token an empty PATCH is still refused (401, the controller's plain text).
    r = requests.patch(srv.url + "/api/image/" + uuid, cookies=s.cookies, timeout=60)
    assert r.status_code == 401 and r.text == "CSRF token missing or incorrect."


def test_name_query_narrows_the_object(srv):
    api = session(srv, "r2-alice", "p-alice")
    uuid = api.get_obj_uuid(api.post("image", data={"name": "named-1", "progress": 1}).json())
    r = api.patch("image/" + uuid, data={"replace": {"progress": 2}}, params={"name": "named-1"})
    assert r.status_code == 200 and r.json()["progress"] == 2, r.text
    before = api.get("image/" + uuid).json()
    # The wrong name: no such object, for every method, and nothing changes.
    for call in [lambda: api.patch("image/" + uuid, data={"replace": {"progress": 3}}, params={"name": "other"}),
                 lambda: api.patch("image/" + uuid, data={"json_patch": [{"op": "replace", "path": "/progress", "value": 3}]},
                                   params={"name": "other"}),
                 lambda: api.patch("image/" + uuid, params={"name": "other"}),
                 lambda: api.put("image/" + uuid, data=dict(before, progress=3), params={"name": "other"}),
                 lambda: api.delete("image/" + uuid, params={"name": "other"})]:
        r = call()
        assert r.status_code == 404 and err(r) == "Image object not found!", r.text
    with pytest.raises(ObjectNotFound):
        api.get("image/" + uuid, params={"name": "other"}).json()
    assert api.get("image/" + uuid, params={"name": "named-1"}).json() == before
    assert api.get("image/" + uuid).json() == before
    # A rename under ?name= of the old name.
    r = api.patch("image/" + uuid, data={"replace": {"name": "named-2"}}, params={"name": "named-1"})
    assert r.status_code == 200 and r.json()["name"] == "named-2"


# --- tenant_ref on input --------------------------------------------------------------------------------

def test_tenant_ref_on_create(srv):
    alice = session(srv, "r2-alice", "p-alice")
    for i, ref in enumerate(["/api/tenant/p-alice", srv.url + "/api/tenant/p-alice#p-alice", "/api/tenant?name=p-alice",
                             "/api/tenant/?name=p-alice", "https://avi-controller/api/tenant/p-alice"]):
        r = alice.post("image", data={"name": f"tref-{i}", "tenant_ref": ref})
        assert r.status_code == 201 and r.json()["tenant_ref"].endswith("/api/tenant/p-alice#p-alice"), (ref, r.text)
    before_alice, before_bob = names(srv, "r2-alice", "p-alice"), names(srv, "r2-bob", "p-bob")
    # A tenant the member may not use: Avi's 403; a ref that is no tenant ref: 400. Nothing is created.
    for ref, status, phrase in [("/api/tenant/p-bob", 403, "Tenant 'p-bob' does not exist!"),
                                ("/api/tenant?name=p-bob", 403, "Tenant 'p-bob' does not exist!"),
                                ("p-bob", 400, "tenant_ref"), ("/api/image/p-bob", 400, "tenant_ref"),
                                ("/api/tenant?name=", 400, "tenant_ref")]:
        r = alice.post("image", data={"name": "tref-refused", "tenant_ref": ref})
        assert r.status_code == status and phrase in err(r), (ref, r.text)
    r = alice.post("image", data={"name": "tref-refused", "tenant_ref": 5})
    assert r.status_code == 400 and "tenant_ref" in err(r)
    assert names(srv, "r2-alice", "p-alice") == before_alice and names(srv, "r2-bob", "p-bob") == before_bob

    # An admin may name another tenant: the image is that tenant's (its member sees it, OpenStack shows the owner).
    root = session(srv, "r2-root", "admin")
    r = root.post("image", data={"name": "root-for-bob", "tenant_ref": "/api/tenant?name=p-bob"})
    assert r.status_code == 201 and r.json()["tenant_ref"].endswith("/api/tenant/p-bob#p-bob"), r.text
    bob = session(srv, "r2-bob", "p-bob")
    found = bob.get_object_by_name("image", "root-for-bob")
    assert found and found["uuid"] == r.json()["uuid"]
    assert Raw(srv.url, "bob").get("/v2/images/" + found["uuid"][len("image-"):]).json()["owner"] == "p-bob"


def test_tenant_ref_on_update_must_be_the_images(srv):
    api = session(srv, "r2-alice", "p-alice")
    made = api.post("image", data={"name": "tref-upd", "progress": 1}).json()
    uuid = api.get_obj_uuid(made)
    got = api.get("image/" + uuid).json()
    r = api.put("image/" + uuid, data=dict(got, progress=2, tenant_ref="/api/tenant?name=p-alice"))
    assert r.status_code == 200 and r.json()["progress"] == 2, r.text
    now = api.get("image/" + uuid).json()
    for ref in ["/api/tenant/p-bob", "/api/tenant/admin"]:
        r = api.put("image/" + uuid, data=dict(now, progress=3, tenant_ref=ref))
        assert r.status_code == 400 and "tenant_ref" in err(r), r.text
        r = api.patch("image/" + uuid, data={"replace": {"tenant_ref": ref, "progress": 3}})
        assert r.status_code == 400 and "tenant_ref" in err(r), r.text
    assert api.get("image/" + uuid).json() == now


# --- nested objects -------------------------------------------------------------------------------------

FULL = {
    "type": "IMAGE_TYPE_SYSTEM", "uber_bundle": False,
    "controller_info": {
        "build": {"build_no": 9056, "date": "2024-03-14T10:12:01+00:00", "min_version": "22.1.1", "patch_version": "",
                  "product": "controller", "product_name": "Avi Cloud Controller", "remote_image_ref": "reg/ctl:30.2.1",
                  "tag": "30.2.1-9056-20240314.101201", "version": "30.2.1"},
        "hash": "5d41402abc4b2a76b9719d911017c592",
        "patch": {"patch_type": "minor", "reboot": True, "reboot_list": [{"patch_version": "2p1", "reboot": False}]},
        "path": "/host/pkgs/30.2.1-9056-20240314.101201/controller.pkg"},
    "se_info": {"build": {"build_no": 9056, "product": "se", "version": "30.2.1"}, "hash": "7d79", "path": "/host/pkgs/se.pkg"},
    "migrations": {"api_version": "22.1.1", "min_supported_api_version": "21.1.1", "versions": ["22.1.3", "30.1.1"],
                   "max_active_versions": 2, "controller_min_cores": 8, "controller_min_memory": 24,
                   "controller_min_total_disk": 128, "controller_min_free_disk_size": 10,
                   "controller_host_min_free_disk_size": 10, "controller_min_docker_version": "1.6.1",
                   "podman_controller_host_min_free_disk_size": 24, "podman_se_host_min_free_disk_size": 12,
                   "rollback_controller_disk_space": 2, "rollback_se_disk_space": 1, "se_min_cores": 2, "se_min_memory": 2,
                   "se_min_total_disk": 10, "se_min_free_disk_size": 5, "se_host_min_free_disk_size": 5,
                   "dryrun_min_cores": 4, "dryrun_min_free_disk_size": 8, "dryrun_min_memory": 6.5},
    "cloud_info_values": [{"cloud_name": "aws", "cloud_data_values": [{"key": "ami", "values": ["ami-1", "ami-2"]}]}],
    "progress": 100,
    "img_state": {"state": "IMAGE_FSM_COMPLETED", "reason": "", "last_changed_time": {"secs": 1732345678, "usecs": 123456}},
    "start_time": "2024-11-23 07:40:01", "end_time": "2024-11-23 07:42:31", "duration": 150,
    "tasks_completed": 5, "total_tasks": 5,
    "events": [{"task_name": "ImageUpload",
                "nodes_events": [{"ip": {"addr": "10.10.1.101", "type": "V4"}, "status": "SYSERR_SUCCESS", "message": "",
                                  "start_time": "2024-11-23 07:40:01", "end_time": "2024-11-23 07:42:31", "duration": 150,
                                  "sub_tasks": ["copy"]}],
                "sub_events": [{"status": "SYSERR_FAILURE", "ip": {"addr": "ctl.example", "type": "DNS"}}]}],
    "fips_mode_transition_applicable": False,
}


def at(doc, path, value):
    """A copy of `doc` with the value at a path of keys/indices replaced (or added)."""
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BAD_NESTED = [
    (("controller_info", "build", "colour"), "red", "controller_info.build.colour"),
    (("controller_info", "build", "build_no"), "9056", "controller_info.build.build_no"),
    (("controller_info", "build", "build_no"), 1 << 40, "controller_info.build.build_no"),
    (("controller_info", "hash"), None, "controller_info.hash"),
    (("se_info", "patch"), {"reboot_list": [{"reboot": "yes"}]}, "se_info.patch.reboot_list[0].reboot"),
    (("se_info", "path"), ["/a"], "se_info.path"),
    (("migrations", "se_min_cores"), 2.5, "migrations.se_min_cores"),
    (("migrations", "versions"), ["22.1.3", 30], "migrations.versions[1]"),
    (("migrations", "warp_drive"), True, "migrations.warp_drive"),
    (("migrations", "dryrun_min_memory"), "number", "migrations.dryrun_min_memory"),
    (("cloud_info_values", 0, "cloud_data_values", 0, "values"), "ami-1", "cloud_info_values[0].cloud_data_values[0].values"),
    (("cloud_info_values",), ["aws"], "cloud_info_values[0]"),
    (("events", 0, "nodes_events", 0, "ip", "type"), "V5", "events[0].nodes_events[0].ip.type"),
    (("events", 0, "nodes_events", 0, "status"), "OK", "events[0].nodes_events[0].status"),
    (("events", 0, "nodes_events", 0, "duration"), -1, "events[0].nodes_events[0].duration"),
    (("events", 0, "sub_events", 0, "colour"), "red", "events[0].sub_events[0].colour"),
    (("events", 0, "task_name"), 7, "events[0].task_name"),
    (("img_state", "last_changed_time", "secs"), "now", "img_state.last_changed_time.secs"),
    (("img_state", "state"), "IMAGE_FSM_DANCING", "img_state.state"),
]


def test_nested_objects_are_stored_exactly_when_valid(srv):
    api = session(srv, "r2-alice", "p-alice")
    r = api.post("image", data=dict(FULL, name="nested-ok"))
    assert r.status_code == 201, r.text
    got = api.get("image/" + r.json()["uuid"]).json()
    for key, value in FULL.items():
        assert got[key] == value, key
    # remote_image_ref came in 30.1.1: refused when the client speaks 22.1.3, left out of its view.
    old = session(srv, "r2-alice", "p-alice", version="22.1.3")
    legacy = {k: v for k, v in FULL.items() if k not in ("fips_mode_transition_applicable",)}
    r = old.post("image", data=dict(legacy, name="nested-old"))
    assert r.status_code == 400 and "controller_info.build.remote_image_ref" in err(r) and "30.1.1" in err(r)
    assert api.get_object_by_name("image", "nested-old") is None


@pytest.mark.parametrize("path,value,named", BAD_NESTED, ids=[b[2] for b in BAD_NESTED])
def test_nested_objects_refused_change_nothing(srv, path, value, named):
    api = session(srv, "r2-bob", "p-bob")
    name = "nested-bad-" + "-".join(str(p) for p in path)
    r = api.post("image", data=dict(at(FULL, path, value), name=name))
    assert r.status_code == 400 and f"'{named}" in err(r), r.text
    assert api.get_object_by_name("image", name) is None
    # The same through every kind of write on an existing image: nothing changes.
    target = api.get_object_by_name("image", "nested-target")
    if target is None:
        target = api.post("image", data=dict(FULL, name="nested-target")).json()
    uuid = api.get_obj_uuid(target)
    before = api.get("image/" + uuid).json()
    top = path[0]
    bad = at(FULL, path, value)[top]
    for r in [api.patch("image/" + uuid, data={"replace": {top: bad}}),
              api.patch("image/" + uuid, data={"add": {top: bad}}),
              api.patch("image/" + uuid, data={"json_patch": [{"op": "replace", "path": "/" + top, "value": bad}]}),
              api.put("image/" + uuid, data=dict(before, **{top: bad}))]:
        assert r.status_code == 400 and named in err(r), r.text
    assert api.get("image/" + uuid).json() == before


# --- *_ref fields ---------------------------------------------------------------------------------------

def test_image_refs_resolve_and_dangling_refs_are_refused(srv):
    api = session(srv, "r2-alice", "p-alice")
    ctl = api.post("image", data={"name": "ctl-patch-1", "type": "IMAGE_TYPE_PATCH"}).json()
    se = api.post("image", data={"name": "se-patch-1", "type": "IMAGE_TYPE_PATCH"}).json()
    ctl_uuid, se_uuid = api.get_obj_uuid(ctl), api.get_obj_uuid(se)
    # By URL (as the server wrote it, with #name) and by name.
    r = api.post("image", data={"name": "uber-1", "uber_bundle": True, "controller_patch_ref": ctl["url"],
                                "se_patch_ref": "/api/image?name=se-patch-1"})
    assert r.status_code == 201, r.text
    uber = r.json()
    assert uber["controller_patch_ref"] == f"{srv.url}/api/image/{ctl_uuid}#ctl-patch-1"
    assert uber["se_patch_ref"] == f"{srv.url}/api/image/{se_uuid}#se-patch-1"
    uuid = api.get_obj_uuid(uber)
    got = api.get("image/" + uuid).json()
    assert got["controller_patch_ref"] == f"{srv.url}/api/image/{ctl_uuid}" and got["se_patch_ref"] == f"{srv.url}/api/image/{se_uuid}"
    named = api.get("image/" + uuid, params={"include_name": "true"}).json()
    assert named["se_patch_ref"].endswith("#se-patch-1")
    # The SDK's GET-change-PUT keeps the refs; the other forms work in PATCH and json_patch.
    r = api.put("image/" + uuid, data=dict(got, progress=1))
    assert r.status_code == 200 and r.json()["controller_patch_ref"].startswith(f"{srv.url}/api/image/{ctl_uuid}"), r.text
    r = api.patch("image/" + uuid, data={"replace": {"controller_patch_ref": f"/api/image/{se_uuid}"}})
    assert r.status_code == 200 and r.json()["controller_patch_ref"] == f"{srv.url}/api/image/{se_uuid}#se-patch-1", r.text
    r = api.patch("image/" + uuid, data={"json_patch": [{"op": "replace", "path": "/se_patch_ref", "value": "/api/image/?name=ctl-patch-1"}]})
    assert r.status_code == 200 and r.json()["se_patch_ref"] == f"{srv.url}/api/image/{ctl_uuid}#ctl-patch-1", r.text
    before = api.get("image/" + uuid).json()

    # Dangling, invisible and malformed refs: 400, nothing created or changed.
    bob = session(srv, "r2-bob", "p-bob")
    bobs = bob.post("image", data={"name": "bobs-patch"}).json()
    for ref, phrase in [("/api/image/image-00000000-0000-4000-8000-000000000000", "does not exist"),
                        ("/api/image?name=no-such-patch", "does not exist"),
                        (bobs["url"], "does not exist"),
                        ("/api/image?name=bobs-patch", "does not exist"),
                        ("ctl-patch-1", "must reference an image"),
                        ("/api/tenant/p-alice", "must reference an image"),
                        ("/api/image/not-a-uuid", "does not exist")]:
        r = api.post("image", data={"name": "uber-refused", "controller_patch_ref": ref})
        assert r.status_code == 400 and phrase in err(r) and "controller_patch_ref" in err(r), (ref, r.text)
        for r in [api.patch("image/" + uuid, data={"replace": {"se_patch_ref": ref}}),
                  api.patch("image/" + uuid, data={"json_patch": [{"op": "add", "path": "/se_patch_ref", "value": ref}]}),
                  api.put("image/" + uuid, data=dict(before, se_patch_ref=ref))]:
            assert r.status_code == 400 and "se_patch_ref" in err(r), (ref, r.text)
    assert api.get_object_by_name("image", "uber-refused") is None
    assert api.get("image/" + uuid).json() == before
