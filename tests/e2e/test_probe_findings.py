"""Issue 19, point 6: the attacker's probe findings other than sessions and PBKDF2, each shown refused while the
legitimate path keeps working — ZStack api-jobs (caller's project only, ZStack jobs only, no nil job uuid, bounded
per project, no job tied to an image the caller cannot see), list `limit` caps, secrets kept out of the request log,
error messages that name no other tenant's objects nor what an internal name resolves to, and Avi's Origin check."""

import json
import sqlite3
import subprocess
import uuid

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin, random_bytes, token, wait_for

PASSWORDS = {"zs-alice": "alice-zstack-password", "zs-bob": "bob-zstack-password", "zs-flood": "flood-zstack-password",
             "zs-root": "root-zstack-password", "dn-alice": "alice-danube-password", "avi-alice": "alice-avi-password",
             "avi-root": "root-avi-password"}
ACCOUNTS = [("zs-alice", "p-alice", "member"), ("zs-bob", "p-bob", "member"), ("zs-flood", "p-flood", "member"),
            ("zs-root", "admin", "admin"), ("dn-alice", "p-alice", "member"), ("avi-alice", "p-alice", "member"),
            ("avi-root", "admin", "admin")]
MAX_JOBS = 30
NIL_JOB = "0" * 32


@pytest.fixture(scope="module")
def srv(tmp_path_factory, origin):
    s = ImagedServer(tmp_path_factory.mktemp("imaged-probe"), "--import-allow-cidr", "127.0.0.1/32",
                     "--import-allow-port", str(origin.port), "--zstack-max-jobs", str(MAX_JOBS), "--task-lease-seconds", "3")
    s.start()
    for name, project, role in ACCOUNTS:
        out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", project, "--role", role,
                              "--password-stdin", "--data-dir", str(s.data_dir)],
                             input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    yield s
    s.kill()


def sha512(text: str) -> str:
    import hashlib
    return hashlib.sha512(text.encode()).hexdigest()


class ZS:
    def __init__(self, srv: ImagedServer, who: str):
        self.base = srv.url + "/zstack/v1"
        r = requests.put(self.base + "/accounts/login", timeout=30,
                         json={"logInByAccount": {"accountName": who, "password": sha512(PASSWORDS[who])}})
        assert r.status_code == 200, r.text
        self.session = r.json()["inventory"]["uuid"]

    def call(self, method: str, path: str, job: str | None = None, auth: bool = True, **kw) -> requests.Response:
        headers = {"X-Job-UUID": job or uuid.uuid4().hex, **kw.pop("headers", {})}
        if auth:
            headers["Authorization"] = f"OAuth {self.session}"
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def poll(self, job: str, auth: bool = True, timeout: float = 30) -> requests.Response:
        def answered():
            r = self.call("GET", f"/api-jobs/{job}", auth=auth)
            return r if r.status_code != 202 else None
        return wait_for(answered, timeout=timeout, what=f"job {job}")

    def delete_job(self, image_uuid: str) -> str:
        """DeleteImage (success even when the image is not there): one job, its uuid."""
        job = uuid.uuid4().hex
        r = self.call("DELETE", f"/images/{image_uuid}", job)
        assert r.status_code == 202, r.text
        assert r.json()["location"].endswith(f"/api-jobs/{job}")
        return job


def job_rows(srv: ImagedServer, job: str) -> list[tuple]:
    """The catalog's own record of a job (read from the SQLite file, as an operator would)."""
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT owner, image_id, type FROM tasks WHERE id = ?", (str(uuid.UUID(job)),)).fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# 1. ZStack api-jobs


def test_zstack_jobs_answer_only_the_callers_project(srv):
    alice, bob = ZS(srv, "zs-alice"), ZS(srv, "zs-bob")
    job = alice.delete_job(uuid.uuid4().hex)
    # the owner polls it: 200 with the result
    done = alice.poll(job)
    assert done.status_code == 200 and done.json() == {}, done.text
    # no credentials: refused (plain 400 without Authorization; ID.1001 with a session that is not one)
    anon = alice.call("GET", f"/api-jobs/{job}", auth=False)
    assert anon.status_code == 400 and "{}" not in anon.text, anon.text
    forged = alice.call("GET", f"/api-jobs/{job}", auth=False, headers={"Authorization": "OAuth " + "f" * 32})
    assert forged.status_code == 503 and forged.json()["error"]["code"] == "ID.1001", forged.text
    # another project's account: the job is unknown to it
    other = bob.call("GET", f"/api-jobs/{job}")
    assert (other.status_code, other.text) == (404, "the job has been expired")


def test_zstack_jobs_never_answer_other_apis_tasks_or_others_uploads(srv, origin):
    alice, bob = ZS(srv, "zs-alice"), ZS(srv, "zs-bob")
    # an OpenStack web-download task of alice's own project (alicetok is p-alice too)
    os_alice = Raw(srv.url, "alice")
    image = os_alice.create(name="os-secret-name", disk_format="raw", container_format="bare")
    url = origin.serve("/probe/os.raw", random_bytes(65536, 61))
    r = os_alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": url}})
    assert r.status_code == 202, r.text
    tasks = wait_for(lambda: os_alice.get(f"/v2/images/{image['id']}/tasks").json()["tasks"] or None, what="task")
    task_id = tasks[0]["id"]
    via_zstack = alice.call("GET", f"/api-jobs/{uuid.UUID(task_id).hex}")
    assert (via_zstack.status_code, via_zstack.text) == (404, "the job has been expired")
    assert "os-secret-name" not in via_zstack.text

    # an upload:// AddImage: its result carries the upload URL (a credential); only alice's project reads it
    bs = alice.call("GET", "/backup-storage").json()["inventories"][0]["uuid"]
    image_uuid, job = uuid.uuid4().hex, uuid.uuid4().hex
    r = alice.call("POST", "/images", job, json={"params": {"name": "zs-up", "url": f"upload://{image_uuid}", "format": "raw",
                                                            "resourceUuid": image_uuid, "backupStorageUuids": [bs]}})
    assert r.status_code == 202, r.text
    mine = alice.poll(job)
    upload_url = mine.json()["inventory"]["backupStorageRefs"][0]["installPath"]
    assert mine.status_code == 200 and "/zstack/v1/uploads/" in upload_url
    theirs = bob.call("GET", f"/api-jobs/{job}")
    assert (theirs.status_code, theirs.text) == (404, "the job has been expired")
    assert upload_url.rsplit("/", 1)[1] not in theirs.text


def test_zstack_nil_job_uuid_is_refused(srv):
    alice = ZS(srv, "zs-alice")
    r = alice.call("DELETE", f"/images/{uuid.uuid4().hex}", NIL_JOB)
    assert r.status_code == 400 and r.text.startswith("Invalid header[X-Job-UUID]"), r.text
    assert job_rows(srv, NIL_JOB) == []
    assert alice.call("GET", f"/api-jobs/{NIL_JOB}").status_code == 404
    # an ordinary job uuid still works
    assert alice.poll(alice.delete_job(uuid.uuid4().hex)).status_code == 200


def test_zstack_jobs_are_bounded_per_project(srv):
    flood, alice = ZS(srv, "zs-flood"), ZS(srv, "zs-alice")
    jobs = [flood.delete_job(uuid.uuid4().hex) for _ in range(MAX_JOBS)]
    refused_job = uuid.uuid4().hex
    r = flood.call("DELETE", f"/images/{uuid.uuid4().hex}", refused_job)
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "ID.1003" and f"{MAX_JOBS} unexpired api jobs" in err["details"], err
    # nothing was stored for the refused call; the accepted ones still answer
    assert job_rows(srv, refused_job) == []
    assert flood.call("GET", f"/api-jobs/{refused_job}").status_code == 404
    assert all(flood.poll(j).status_code == 200 for j in jobs)
    # another project is not affected
    assert alice.poll(alice.delete_job(uuid.uuid4().hex)).status_code == 200


def test_zstack_job_on_an_invisible_image_records_no_image(srv):
    alice, bob = ZS(srv, "zs-alice"), ZS(srv, "zs-bob")
    theirs = Raw(srv.url, "bob").create(name="bob-private", disk_format="raw", container_format="bare")
    job = alice.delete_job(uuid.UUID(theirs["id"]).hex)
    assert alice.poll(job).status_code == 200  # as if not there (successIfResourceNotExisting)
    assert job_rows(srv, job) == [("p-alice", None, "zstack_api_job")]
    assert Raw(srv.url, "bob").get(f"/v2/images/{theirs['id']}").json()["status"] == "queued"
    # on the caller's own image the job names it
    own = Raw(srv.url, "alice").create(name="alice-own", disk_format="raw", container_format="bare")
    job = alice.delete_job(uuid.UUID(own["id"]).hex)
    assert alice.poll(job).status_code == 200
    assert job_rows(srv, job) == [("p-alice", own["id"], "zstack_api_job")]


# ---------------------------------------------------------------------------------------------
# 2. list limits


def test_list_limits_are_capped_as_documented(srv):
    # 1001 images in one project, so every cap (ZStack and OpenStack 1000, Avi 200) has something to cut
    admin = Raw(srv.url, "admin")
    for i in range(1001):
        r = admin.post("/v2/images", json={"name": f"cap-{i}", "owner": "p-cap", "visibility": "private"})
        assert r.status_code == 201, r.text
    # OpenStack: limit=5000 is served 1000, with a next link
    page = admin.get("/v2/images", params={"limit": 5000, "owner": "p-cap"}).json()
    assert len(page["images"]) == 1000 and "next" in page
    # ZStack: limit=5000 is served 1000 (the count says there are more); a small limit is kept
    root = ZS(srv, "zs-root")
    q = root.call("GET", "/images", params={"limit": 5000, "q": "name~=cap-%"}).json()
    assert len(q["inventories"]) == 1000, len(q["inventories"])
    assert root.call("GET", "/images", params={"count": "true", "q": "name~=cap-%"}).json()["total"] == 1001
    assert len(root.call("GET", "/images", params={"limit": 3}).json()["inventories"]) == 3
    # Avi: page_size=5000 is served 200, with a next page
    avi = requests.get(srv.url + "/api/image", params={"page_size": 5000}, timeout=60,
                       auth=("avi-root", PASSWORDS["avi-root"]), headers={"X-Avi-Tenant": "p-cap"})
    assert avi.status_code == 200, avi.text
    assert len(avi.json()["results"]) == 200 and avi.json()["count"] >= 1001 and "next" in avi.json()
    # IMGAPI refuses a limit above its documented 1000 in its own format
    r = requests.get(srv.url + "/imgapi/images", params={"limit": 1001}, timeout=30)
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"


# ---------------------------------------------------------------------------------------------
# 3. secrets in logs


def test_secrets_in_paths_stay_out_of_the_log(srv):
    alice = ZS(srv, "zs-alice")
    sid = alice.session
    requests.get(f"{alice.base}/accounts/sessions/{sid}/valid", timeout=30)
    bs = alice.call("GET", "/backup-storage").json()["inventories"][0]["uuid"]
    image_uuid, job = uuid.uuid4().hex, uuid.uuid4().hex
    assert alice.call("POST", "/images", job, json={"params": {"name": "zs-log", "url": f"upload://{image_uuid}", "format": "raw",
                                                               "resourceUuid": image_uuid, "backupStorageUuids": [bs]}}).status_code == 202
    upload_url = alice.poll(job).json()["inventory"]["backupStorageRefs"][0]["installPath"]
    upload_token = upload_url.rsplit("/", 1)[1]
    data = random_bytes(4096, 62)
    r = requests.post(upload_url, files={"file": ("x.raw", data)},
                      headers={"X-IMAGE-UUID": image_uuid, "X-IMAGE-SIZE": str(len(data))}, timeout=30)
    assert r.status_code == 200, r.text  # the legitimate upload works
    # an export URL: its token is the credential that serves the bytes
    job = uuid.uuid4().hex
    assert alice.call("PUT", f"/backup-storage/{bs}/actions", job,
                      json={"exportImageFromBackupStorage": {"imageUuid": image_uuid}}).status_code == 202
    export_url = alice.poll(job).json()["imageUrl"]
    export_token = export_url.split("/")[-2]
    assert requests.get(export_url, timeout=30).content == data
    query_secret = uuid.uuid4().hex
    requests.get(srv.url + "/v2/images", params={"token": query_secret, "X-Amz-Signature": query_secret},
                 headers={"X-Auth-Token": token("alice")}, timeout=30)
    logs = wait_for(lambda: (lambda t: t if f"/zstack/v1/exports/{bs}/{image_uuid}/" in t else None)(srv.all_logs()), what="log lines")
    assert "/zstack/v1/accounts/sessions/<redacted>/valid" in logs
    assert f"/zstack/v1/uploads/{image_uuid}/<redacted>" in logs
    assert f"/zstack/v1/exports/{bs}/{image_uuid}/<redacted>/" in logs
    for secret in (sid, upload_token, export_token, query_secret):
        assert secret not in logs, secret


# ---------------------------------------------------------------------------------------------
# 4. messages that name other tenants' objects or internal addresses


def test_danube_import_of_a_taken_uuid_names_no_other_tenants_image(srv, origin):
    from esdc_api import Client
    from esdc_api.exceptions import ClientError

    es = Client(api_url=srv.url + "/api")
    assert es.login("dn-alice", PASSWORDS["dn-alice"]).ok

    def manifest_url(image_uuid: str) -> str:
        import hashlib
        data = random_bytes(4096, 63)
        m = {"v": 2, "uuid": image_uuid, "name": "m", "version": "1.0", "type": "zvol", "os": "linux", "image_size": 64,
             "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
        origin.serve(f"/probe-imgs/{image_uuid}", json.dumps(m).encode(), content_type="application/json")
        origin.serve(f"/probe-imgs/{image_uuid}/file", data)
        return origin.url(f"/probe-imgs/{image_uuid}")

    def refusal(name: str, url: str):
        with pytest.raises(ClientError) as e:
            es.post(f"/image/{name}", manifest_url=url, dc="main").content
        return e.value

    theirs = Raw(srv.url, "bob").create(name="bob-secret-image", disk_format="raw", container_format="bare")
    e = refusal("dn-steal", manifest_url(theirs["id"]))
    assert (e.status_code, e.detail) == (400, {"manifest_url": ["Image UUID is already registered."]})
    assert "bob-secret-image" not in json.dumps(e.detail)
    # the caller's own image is still named, as Danube does
    mine = Raw(srv.url, "alice").create(name="alice-known-image", disk_format="raw", container_format="bare")
    e = refusal("dn-again", manifest_url(mine["id"]))
    assert e.detail == {"manifest_url": ['Image UUID is already registered by image "alice-known-image".']}


def test_url_guard_tells_members_the_rule_but_not_the_address(raw):
    # the default server: no --import-allow-cidr, so `localhost` (127.0.0.1) is refused for everyone
    for who, shows_address in (("alice", False), ("admin", True)):
        image = raw[who].create(name=f"guard-{who}", disk_format="raw", container_format="bare")
        r = raw[who].post(f"/v2/images/{image['id']}/import",
                          json={"method": {"name": "web-download", "uri": "http://localhost/disk.raw"}})
        assert r.status_code == 400, r.text
        assert "host 'localhost' resolves to a forbidden address" in r.text and "loopback" in r.text, r.text
        assert ("127.0.0.1" in r.text) == shows_address, r.text


# ---------------------------------------------------------------------------------------------
# 5. Avi: Origin on cookie sessions


def test_avi_cookie_requests_from_a_foreign_origin_are_refused(srv):
    login = requests.post(srv.url + "/login", data={"username": "avi-alice", "password": PASSWORDS["avi-alice"]}, timeout=60)
    assert login.status_code == 200, login.text
    cookies = {"sessionid": login.cookies["sessionid"], "csrftoken": login.cookies["csrftoken"]}
    csrf = {"X-CSRFToken": login.cookies["csrftoken"], "X-Avi-Tenant": "p-alice"}

    def create(name: str, **headers) -> requests.Response:
        return requests.post(srv.url + "/api/image", json={"name": name}, cookies=cookies, headers={**csrf, **headers}, timeout=30)

    def names() -> set:
        r = requests.get(srv.url + "/api/image", params={"page_size": 200}, cookies=cookies, headers=csrf, timeout=30)
        return {i["name"] for i in r.json()["results"]}

    evil = create("from-evil", Origin="http://evil.example")
    assert evil.status_code == 403 and "Origin checking failed - http://evil.example" in evil.json()["error"], evil.text
    sandboxed = create("from-null", Origin="null")
    assert sandboxed.status_code == 403, sandboxed.text
    referer = create("from-referer", Referer="http://evil.example/page")
    assert referer.status_code == 403 and "Referer checking failed" in referer.json()["error"], referer.text
    assert not {"from-evil", "from-null", "from-referer"} & names()
    # the server's own origin (and no Origin at all, as the SDK sends) still work
    assert create("from-us", Origin=srv.url).status_code == 201
    assert create("from-sdk").status_code == 201
    # Basic credentials carry no cookie: a foreign Origin is no CSRF there
    basic = requests.post(srv.url + "/api/image", json={"name": "from-basic"}, auth=("avi-alice", PASSWORDS["avi-alice"]),
                          headers={"Origin": "http://evil.example", "X-Avi-Tenant": "p-alice"}, timeout=60)
    assert basic.status_code == 201, basic.text
    assert {"from-us", "from-sdk", "from-basic"} <= names()
