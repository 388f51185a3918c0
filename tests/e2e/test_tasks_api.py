"""The tasks API (glance/api/v2/tasks.py): `POST /v2/tasks` runs Glance's legacy `import` task
(create an image from `image_properties`, fill it from `import_from`) on the same task engine and
URL guard as web-download; `GET /v2/tasks` filters, sorts and pages as Glance does. Admin only
(Glance's `tasks_api_access`). Imports fetch from the test's origin (127.0.0.1, its port only)."""

import signal
import urllib.parse

import pytest

from conftest import ImagedServer, Raw, digests, random_bytes, unique, wait_for

MiB = 1 << 20


def wait_task(admin: Raw, task_id: str, timeout: float = 60.0) -> dict:
    def done():
        r = admin.get(f"/v2/tasks/{task_id}")
        assert r.status_code == 200, r.text
        t = r.json()
        return t if t["status"] in ("success", "failure") else None
    return wait_for(done, timeout=timeout, interval=0.2, what=f"task {task_id} to finish")


def import_task(uri: str, **properties) -> dict:
    props = {"name": unique("task-img"), "disk_format": "raw", "container_format": "bare"}
    props.update(properties)
    return {"type": "import", "input": {"import_from": uri, "import_from_format": "raw", "image_properties": props}}


def test_import_task_creates_and_fills_an_image(import_server, origin):
    srv = import_server
    admin = Raw(srv.url, "admin")
    data = random_bytes(3 * MiB + 17, 2001)
    want = digests(data)
    path = f"/{unique('task')}/disk.raw"
    body = import_task(origin.serve(path, data), visibility="public", hw_cpu_cores="2")

    r = admin.post("/v2/tasks", json=body, headers={"X-OpenStack-Request-ID": "req-tasks-e2e-1"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert r.headers["Location"] == f"/v2/tasks/{task['id']}"
    assert task["type"] == "import" and task["status"] in ("pending", "processing")
    assert task["input"] == body["input"]  # shown as sent, nothing of the engine's own input
    assert task["result"] is None and task["message"] == ""
    assert task["self"] == f"/v2/tasks/{task['id']}" and task["schema"] == "/v2/schemas/task"
    assert task["request_id"] == "req-tasks-e2e-1"
    assert "expires_at" not in task  # set when it finishes

    done = wait_task(admin, task["id"])
    assert done["status"] == "success", done
    image_id = done["result"]["image_id"]
    assert done["expires_at"] and done["input"] == body["input"]
    from test_audit import Audit, expect
    # Audited as a task creation, naming the image the task made.
    expect(Audit(srv).of(r), api="openstack", method="POST", path="/v2/tasks", action="task.create", image_id=image_id,
           user="u-admin", project="p-admin", status=201)
    image = admin.get(f"/v2/images/{image_id}").json()
    assert image["status"] == "active" and image["visibility"] == "public"
    assert image["name"] == body["input"]["image_properties"]["name"] and image["hw_cpu_cores"] == "2"
    assert image["disk_format"] == "raw" and image["container_format"] == "bare"
    assert image["size"] == len(data) and image["checksum"] == want["md5"] and image["os_hash_value"] == want["sha512"]
    assert admin.get(f"/v2/images/{image_id}/file").content == data
    assert origin.hits.count(path) == 1
    # The legacy task is not one of the image's import tasks (Glance keeps no image_id on it).
    assert admin.get(f"/v2/images/{image_id}/tasks").json()["tasks"] == []


def test_failed_import_task_deletes_its_image(import_server, origin):
    admin = Raw(import_server.url, "admin")
    name = unique("task-gone")
    r = admin.post("/v2/tasks", json=import_task(origin.url(f"/{unique('missing')}.raw"), name=name))
    assert r.status_code == 201, r.text
    done = wait_task(admin, r.json()["id"])
    assert done["status"] == "failure" and done["result"] is None
    assert "404" in done["message"], done["message"]
    # Glance's flow reverts its image: nothing named so is left.
    assert admin.get("/v2/images", params={"name": name}).json()["images"] == []


def test_tasks_api_is_admin_only(import_server, origin):
    srv = import_server
    admin, alice, carol = Raw(srv.url, "admin"), Raw(srv.url, "alice"), Raw(srv.url, "carol")
    body = import_task(origin.serve(f"/{unique('t')}.raw", b"x" * 512))
    for who in (alice, carol):
        r = who.post("/v2/tasks", json=body)
        assert r.status_code == 403 and "tasks API" in r.text, r.text
        assert who.get("/v2/tasks").status_code == 403
    r = admin.post("/v2/tasks", json=body)
    assert r.status_code == 201
    assert alice.get(f"/v2/tasks/{r.json()['id']}").status_code == 403
    # Nothing was created for the refused members.
    assert alice.get("/v2/images", params={"name": body["input"]["image_properties"]["name"]}).json()["images"] == []
    wait_task(admin, r.json()["id"])


@pytest.mark.parametrize("body, fragment", [
    (None, "Body expected"),
    ([], "JSON object"),
    ({"input": {}}, "Task 'type' is required"),
    ({"type": "import"}, "Task 'input' is required"),
    ({"type": "teleport", "input": {}}, "is not one of"),
    ({"type": 5, "input": {}}, "is not one of"),
    ({"type": "api_image_import", "input": {}}, "image import API"),
    ({"type": "import", "input": "http://x"}, "is not of type 'null', 'object'"),
    ({"type": "import", "input": {}, "extra": 1}, "'extra' was unexpected"),
    ({"type": "import", "input": {"import_from_format": "raw", "image_properties": {}}}, "'import_from'"),
    ({"type": "import", "input": {"import_from": "http://a/b", "image_properties": {}}}, "'import_from_format'"),
    ({"type": "import", "input": {"import_from": "http://a/b", "import_from_format": "raw"}}, "'image_properties'"),
    ({"type": "import", "input": {"import_from": "file:///etc/passwd", "import_from_format": "raw", "image_properties": {}}},
     "File based imports are not allowed"),
    ({"type": "import", "input": {"import_from": "ftp://a/b", "import_from_format": "raw", "image_properties": {}}},
     "The given uri is not valid"),
    ({"type": "import", "input": {"import_from": "http://169.254.169.254/latest", "import_from_format": "raw",
                                  "image_properties": {}}}, "does not pass filtering"),
    ({"type": "import", "input": {"import_from": "http://a/b", "import_from_format": "raw",
                                  "image_properties": {"disk_format": "floppy"}}}, "disk_format"),
])
def test_bad_create_bodies_are_glance_400s(import_server, body, fragment):
    admin = Raw(import_server.url, "admin")
    before = admin.get("/v2/tasks", params={"limit": 1000}).json()["tasks"]
    if body is None:
        r = admin.post("/v2/tasks", data=b"", headers={"Content-Type": "application/json", "Accept": "application/json"})
    else:
        r = admin.post("/v2/tasks", json=body, headers={"Accept": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()
    assert err["code"] == "400 Bad Request" and fragment in err["message"], err
    assert len(admin.get("/v2/tasks", params={"limit": 1000}).json()["tasks"]) == len(before)


def test_list_filters_sorting_and_paging(import_server, origin):
    admin = Raw(import_server.url, "admin")
    ok_uri = origin.serve(f"/{unique('ok')}.raw", b"y" * 1024)
    ids = []
    for i in range(3):
        r = admin.post("/v2/tasks", json=import_task(ok_uri))
        assert r.status_code == 201
        ids.append(r.json()["id"])
    failing = admin.post("/v2/tasks", json=import_task(origin.url(f"/{unique('nope')}.raw"))).json()["id"]
    for t in ids + [failing]:
        wait_task(admin, t)

    listed = admin.get("/v2/tasks", params={"limit": 1000}).json()
    assert listed["first"] == "/v2/tasks?limit=1000" and listed["schema"] == "/v2/schemas/tasks" and "next" not in listed
    stub = next(t for t in listed["tasks"] if t["id"] == ids[0])
    assert set(stub) == {"id", "type", "status", "owner", "created_at", "updated_at", "expires_at", "self", "schema"}
    created = [t["created_at"] for t in listed["tasks"]]
    assert created == sorted(created, reverse=True)  # newest first by default

    failed = admin.get("/v2/tasks", params={"status": "failure", "type": "import", "limit": 1000}).json()["tasks"]
    assert failing in [t["id"] for t in failed] and all(t["status"] == "failure" for t in failed)
    assert not set(ids) & {t["id"] for t in failed}
    imports = admin.get("/v2/tasks", params={"type": "import", "limit": 1000}).json()["tasks"]
    assert {t["type"] for t in imports} == {"import"}

    # Pages of 2 in id order walk every task once, through the `next` links.
    seen, url, pages = [], "/v2/tasks?sort_key=id&sort_dir=asc&limit=2", 0
    while url:
        page = admin.get(url).json()
        assert len(page["tasks"]) <= 2 and page["first"] == "/v2/tasks?sort_key=id&sort_dir=asc&limit=2"
        seen += [t["id"] for t in page["tasks"]]
        url = page.get("next")
        if url:
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            assert q["marker"] == page["tasks"][-1]["id"] and q["limit"] == "2"
        pages += 1
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and set(ids + [failing]) <= set(seen)
    assert pages >= 3

    page = admin.get("/v2/tasks", params={"limit": 0}).json()
    assert page["tasks"] == [] and "next" not in page


@pytest.mark.parametrize("query, fragment", [
    ("status=done", "Invalid status value: done"),
    ("type=api_image_import", "Invalid type value: api_image_import"),
    ("sort_dir=up", "Invalid sort direction: up"),
    ("sort_key=colour", "Invalid sort key: colour"),
    ("limit=x", "limit param must be an integer"),
    ("limit=-1", "limit param must be positive"),
    ("marker=abc", "Invalid marker format"),
    ("marker=00000000-0000-4000-8000-000000000000", "could not be found"),
])
def test_bad_list_queries_are_400(import_server, query, fragment):
    r = Raw(import_server.url, "admin").get(f"/v2/tasks?{query}", headers={"Accept": "application/json"})
    assert r.status_code == 400 and fragment in r.json()["message"], r.text


def test_import_task_survives_a_killed_node(tmp_path, origin):
    """A node SIGKILLed mid-fetch: the restarted node takes the task over when the lease lapses and finishes it."""
    data = random_bytes(2 * MiB, 2002)
    path = f"/{unique('slow')}.raw"
    uri = origin.slow(path, data, chunk=256 * 1024, delay=0.25)
    args = ("--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port), "--task-lease-seconds", "3")
    srv = ImagedServer(tmp_path, *args)
    srv.start()
    try:
        admin = Raw(srv.url, "admin")
        task_id = admin.post("/v2/tasks", json=import_task(uri)).json()["id"]
        wait_for(lambda: admin.get(f"/v2/tasks/{task_id}").json()["status"] == "processing", timeout=20)
        # "processing" is written before the fetch starts: kill only once the origin has seen the first GET.
        wait_for(lambda: origin.hits.count(path) == 1, timeout=20)
        srv.kill(signal.SIGKILL)
        srv.start(port=srv.port)
        done = wait_task(admin, task_id, timeout=60)
        assert done["status"] == "success", done
        image = admin.get(f"/v2/images/{done['result']['image_id']}").json()
        assert image["status"] == "active" and image["checksum"] == digests(data)["md5"]
        assert origin.hits.count(path) == 2  # fetched again from the start by the second run
    finally:
        srv.kill(signal.SIGTERM)
