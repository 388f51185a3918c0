"""The Avi front-end driven by the vendor's own SDK (`avisdk` from PyPI, `ApiSession`): login with a local
account, image CRUD, paging, PATCH semantics, tenants, logout — and the same catalog seen through the
OpenStack API."""

import hashlib
import subprocess
import threading
import time
import uuid

import pytest
import requests
from avi.sdk.avi_api import APIError, ApiSession, ObjectNotFound

from conftest import ImagedServer, Raw, imaged_bin, random_bytes, wait_for

PASSWORDS = {"avi-alice": "alice-avi-password", "avi-bob": "bob-avi-password", "avi-root": "root-avi-password"}


@pytest.fixture(scope="module")
def avi_server(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-avi"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port))
    srv.start()
    # Local accounts, created with the admin command while the server runs. avi-alice shares the
    # project of the OpenStack token `alicetok` (p-alice), so both APIs see one tenant.
    for name, project, role in [("avi-alice", "p-alice", "member"), ("avi-bob", "p-bob", "member"),
                                ("avi-root", "admin", "admin")]:
        out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                              "--password-stdin", "--data-dir", str(srv.data_dir)],
                             input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    yield srv
    srv.kill()


def session(srv, who, tenant, version="30.2.1"):
    ApiSession.clear_cached_sessions()
    return ApiSession(controller_ip=srv.url, username=who, password=PASSWORDS[who], tenant=tenant, api_version=version)


def test_avisdk_lifecycle(avi_server):
    api = session(avi_server, "avi-alice", "p-alice")
    img = api.post("image", data={"name": "avi-img1", "type": "IMAGE_TYPE_SYSTEM", "uber_bundle": False,
                                  "controller_info": {"build": {"version": "30.2.1", "build_no": 9056}, "hash": "abc"}}).json()
    uuid = api.get_obj_uuid(img)
    assert uuid.startswith("image-") and img["url"].endswith("#avi-img1")
    assert img["tenant_ref"].endswith("/api/tenant/p-alice#p-alice")

    # get by uuid and by name
    got = api.get("image/" + uuid).json()
    assert got["uuid"] == uuid and got["controller_info"] == {"build": {"version": "30.2.1", "build_no": 9056}, "hash": "abc"}
    assert api.get_object_by_name("image", "avi-img1")["uuid"] == uuid
    assert api.get_object_by_name("image", "no-such-image") is None

    # paging across several pages: the SDK follows `next` until it is absent
    for i in range(7):
        assert api.post("image", data={"name": f"avi-page-{i}"}).status_code == 201
    names = [o["name"] for o in api.get_objects_iter("image", params={"page_size": 3})]
    assert sorted(names) == sorted(["avi-img1"] + [f"avi-page-{i}" for i in range(7)])
    assert api.get("image", params={"page_size": 3}).json()["count"] == 8

    # PATCH add / replace / delete, each read back
    r = api.patch("image/" + uuid, data={"add": {"events": [{"task_name": "ImageUpload"}], "progress": 10}})
    assert r.status_code == 200, r.text
    r = api.patch("image/" + uuid, data={"replace": {"name": "avi-img2", "type": "IMAGE_TYPE_PATCH"}})
    assert r.status_code == 200 and r.json()["name"] == "avi-img2"
    r = api.patch("image/" + uuid, data={"delete": {"controller_info": {}}})
    assert r.status_code == 200
    back = api.get("image/" + uuid).json()
    assert back["name"] == "avi-img2" and back["type"] == "IMAGE_TYPE_PATCH" and back["progress"] == 10
    assert back["events"] == [{"task_name": "ImageUpload"}] and "controller_info" not in back

    # PUT through the SDK's helper (GET by name, then PUT the changed object)
    r = api.put_by_name("image", "avi-img2", data=dict(back, name="avi-img3", uber_bundle=True))
    assert r.status_code == 200, r.text
    assert api.get("image/" + uuid).json()["name"] == "avi-img3"

    # the same image through the OpenStack API
    core_id = uuid[len("image-"):]
    openstack = Raw(avi_server.url, "alice").get(f"/v2/images/{core_id}").json()
    assert openstack["name"] == "avi-img3" and openstack["owner"] == "p-alice"
    made = Raw(avi_server.url, "alice").create(name="from-openstack", disk_format="raw", container_format="bare")
    assert api.get_object_by_name("image", "from-openstack")["uuid"] == "image-" + made["id"]

    # delete, then the SDK raises ObjectNotFound
    assert api.delete("image/" + uuid).status_code == 204
    with pytest.raises(ObjectNotFound):
        api.get("image/" + uuid).json()

    # log out through the SDK (POST /logout with its CSRF token): the session is over server-side
    sid = api.session_id
    assert api.post("logout").status_code == 200
    assert requests.get(avi_server.url + "/api/image", cookies={"sessionid": sid}, timeout=10).status_code == 401


def test_tenants_do_not_see_each_other(avi_server):
    alice = session(avi_server, "avi-alice", "p-alice")
    mine = alice.post("image", data={"name": "alice-only"}).json()
    bob = session(avi_server, "avi-bob", "p-bob")
    assert bob.get_object_by_name("image", "alice-only") is None
    with pytest.raises(ObjectNotFound):
        bob.get("image/" + mine["uuid"]).json()
    root = session(avi_server, "avi-root", "p-alice")
    assert root.get_object_by_name("image", "alice-only")["uuid"] == mine["uuid"]


def test_bad_login_and_stale_sessions(avi_server):
    ApiSession.clear_cached_sessions()
    with pytest.raises(APIError):
        ApiSession(controller_ip=avi_server.url, username="avi-alice", password="wrong", tenant="p-alice")
    # A request with a forged session cookie is 401 (the SDK would log in again).
    r = requests.get(avi_server.url + "/api/image", cookies={"sessionid": "forged", "csrftoken": "x"}, timeout=10)
    assert r.status_code == 401 and "error" in r.json()
    # The SDK recovers from a session that ended server-side: it logs in again and retries.
    api = session(avi_server, "avi-alice", "p-alice")
    token = api.avi_credentials.csrftoken  # the SDK's record of the login-time token
    assert token
    out = requests.post(avi_server.url + "/logout", cookies={"sessionid": api.session_id, "csrftoken": token},
                        headers={"X-CSRFToken": token}, timeout=10)
    assert out.status_code == 200
    gone = requests.get(avi_server.url + "/api/image", cookies={"sessionid": api.session_id}, timeout=10)
    assert gone.status_code == 401
    assert api.get("image").status_code == 200


class SlowMultipart:
    """A multipart/form-data body with one part `file`, read slowly: requests streams it with a
    Content-Length (from __len__), and the server's progress can be watched while it arrives."""

    def __init__(self, boundary: str, filename: str, data: bytes, chunk: int, delay: float):
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        self.buf = head + data + f"\r\n--{boundary}--\r\n".encode()
        self.pos, self.chunk, self.delay = 0, chunk, delay

    def __len__(self):
        return len(self.buf) - self.pos

    def read(self, n=-1):
        if self.pos >= len(self.buf):
            return b""
        if self.pos > 0:
            time.sleep(self.delay)
        out = self.buf[self.pos:self.pos + self.chunk]
        self.pos += len(out)
        return out


def test_package_upload_progress_through_the_sdk_session(avi_server):
    api = session(avi_server, "avi-alice", "p-alice")
    token = api.avi_credentials.csrftoken
    data = random_bytes(6 << 20, 611)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            found = api.get_object_by_name("image", "slow-controller.pkg")
            if found and "progress" in found:
                seen.append((found["progress"], found["img_state"]["state"]))
            stop.wait(0.2)  # the sampling interval (and a prompt end when stopped)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = requests.post(avi_server.url + "/api/image", data=SlowMultipart("imagedavi", "slow-controller.pkg", data, 512 << 10, 0.35),
                          headers={"Content-Type": "multipart/form-data; boundary=imagedavi", "X-CSRFToken": token,
                                   "Referer": avi_server.url, "X-Avi-Tenant": "p-alice"},
                          cookies={"sessionid": api.session_id, "csrftoken": token}, timeout=120)
        if r.status_code == 201:
            # the watcher sees the package complete too
            wait_for(lambda: seen and seen[-1] == (100, "IMAGE_FSM_COMPLETED"), timeout=20, what="the watcher to see the package complete")
    finally:
        stop.set()
        watcher.join()
    assert r.status_code == 201, r.text
    done = r.json()
    assert done["progress"] == 100 and done["img_state"]["state"] == "IMAGE_FSM_COMPLETED"
    assert done["events"][0]["nodes_events"][0]["status"] == "SYSERR_SUCCESS" and done["duration"] >= 1
    # Progress was watched climbing, never going back, and ended complete.
    values = [p for p, _ in seen]
    assert values == sorted(values), seen
    assert any(0 < p < 100 for p in values), seen
    assert ("IMAGE_FSM_IN_PROGRESS" in {s for _, s in seen}) and seen[-1] == (100, "IMAGE_FSM_COMPLETED"), seen
    # The package is an image of the shared catalog: same bytes and digests through OpenStack.
    core_id = done["uuid"][len("image-"):]
    alice = Raw(avi_server.url, "alice")
    image = alice.get(f"/v2/images/{core_id}").json()
    assert image["checksum"] == hashlib.md5(data).hexdigest() and image["size"] == len(data)
    assert alice.get(f"/v2/images/{core_id}/file").content == data


def test_image_from_a_url_is_an_import_task_with_live_state(avi_server, origin):
    api = session(avi_server, "avi-alice", "p-alice")
    data = random_bytes(3 << 20, 612)
    uri = origin.slow(f"/{uuid.uuid4().hex}.pkg", data, 256 << 10, 0.15)
    made = api.post("image", data={"name": "from-url", "url": uri, "type": "IMAGE_TYPE_PATCH"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["img_state"]["state"] in ("IMAGE_FSM_STARTED", "IMAGE_FSM_IN_PROGRESS") and body["progress"] < 100
    assert body["url"].endswith("#from-url") and "/api/image/image-" in body["url"]

    def completed():
        found = api.get_object_by_name("image", "from-url")
        return found if found["img_state"]["state"] == "IMAGE_FSM_COMPLETED" else None
    done = wait_for(completed, timeout=60, interval=0.3, what="the url import to complete")
    assert done["progress"] == 100 and done["tasks_completed"] == 1 and done["type"] == "IMAGE_TYPE_PATCH"
    image = Raw(avi_server.url, "alice").get(f"/v2/images/{done['uuid'][len('image-'):]}").json()
    assert image["status"] == "active" and image["checksum"] == hashlib.md5(data).hexdigest()

    # A URL the guard refuses: 400 in Avi's shape, nothing created.
    refused = api.post("image", data={"name": "metadata-thief", "url": "http://169.254.169.254/latest/meta-data"})
    assert refused.status_code == 400 and "does not pass filtering" in refused.text  # (.json() would raise APIError)
    assert api.get_object_by_name("image", "metadata-thief") is None

    # An origin that answers 404: the image shows IMAGE_FSM_FAILED with the reason.
    api.post("image", data={"name": "from-nowhere", "url": origin.url(f"/{uuid.uuid4().hex}-missing.pkg")})

    def failed():
        found = api.get_object_by_name("image", "from-nowhere")
        return found if found["img_state"]["state"] == "IMAGE_FSM_FAILED" else None
    broken = wait_for(failed, timeout=60, interval=0.3, what="the failed import to show")
    assert "404" in broken["img_state"]["reason"], broken
