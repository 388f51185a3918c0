"""Interoperable image import (reference §6.9–6.15) with the real clients: the `glance` CLI's
`image-create-via-import` (web-download from a local HTTP server, glance-direct from a file),
openstacksdk's create/download/import, glanceclient's upload/data, and the tasks endpoints.

Imports run on `import_server`, which may fetch from the test's origin (127.0.0.1, its port only)."""

import io
import json

import pytest
from glanceclient import exc as gexc

from conftest import (GlanceCLI, ImagedServer, Raw, assert_data_facts, assert_nothing_kept, digests, glance_table, qemu_info,
                      random_bytes, tasks_of, unique, upload, wait_status, wait_task_finished)

MiB = 1 << 20


def task_input(task: dict) -> dict:
    value = task["input"]
    return json.loads(value) if isinstance(value, str) else value


def only_task(client: Raw, image_id: str) -> dict:
    tasks = tasks_of(client, image_id)
    assert len(tasks) == 1, tasks
    return tasks[0]


def test_info_import_and_stores(raw):
    r = raw["alice"].get("/v2/info/import")
    assert r.status_code == 200
    methods = r.json()["import-methods"]
    assert methods["type"] == "array" and methods["description"]
    assert {"glance-direct", "web-download"} <= set(methods["value"])
    r = raw["alice"].get("/v2/info/stores")
    assert r.status_code == 404  # single store
    assert "Multi backend is not supported" in r.text


def test_glance_cli_web_download_qcow2(import_server, origin, disk):
    srv = import_server
    alice, admin = Raw(srv.url, "alice"), Raw(srv.url, "admin")
    src = disk.qcow2("web.qcow2", virtual=48 * MiB, seed=61)
    want = digests(src)
    path = f"/{unique('web')}/x.qcow2"
    uri = origin.serve(path, src)
    name = unique("gl-web")

    proc = GlanceCLI(srv.url, "alice").run(
        "image-create-via-import", "--import-method", "web-download", "--uri", uri,
        "--disk-format", "qcow2", "--container-format", "bare", "--name", name)
    shown = glance_table(proc.stdout)
    iid = shown["id"]
    assert shown["name"] == name and shown["disk_format"] == "qcow2"

    image = wait_status(alice, iid, ["active", "queued"], timeout=120)
    assert_data_facts(image, want)
    assert image["virtual_size"] == qemu_info(src)["virtual-size"]
    assert origin.hits.count(path) == 1
    # Glance leaves its import progress lists on the image, present and empty
    assert "os_glance_import_task" not in image and image["os_glance_failed_import"] == ""
    assert image["os_glance_importing_to_stores"] == ""

    # the data is what the origin served
    r = alice.get(f"/v2/images/{iid}/file")
    assert r.status_code == 200 and r.content == src.read_bytes()

    # the image's tasks (raw DB shape, readable by the owner) show one successful import
    task = only_task(alice, iid)
    assert task["status"] == "success", task
    assert task["type"] == "api_image_import"
    assert task["image_id"] == iid
    assert task_input(task)["import_req"]["method"] == {"name": "web-download", "uri": uri}
    assert not task["created_at"].endswith("Z")  # Glance's raw timestamps
    for key in ("id", "owner", "request_id", "user_id", "result", "message", "expires_at", "updated_at",
                "deleted_at", "deleted"):
        assert key in task, key
    # the tasks API is admin-only
    assert alice.get(f"/v2/tasks/{task['id']}").status_code == 403
    r = admin.get(f"/v2/tasks/{task['id']}")
    assert r.status_code == 200
    full = r.json()
    assert full["status"] == "success" and full["image_id"] == iid
    assert full["self"] == f"/v2/tasks/{task['id']}" and full["schema"] == "/v2/schemas/task"
    assert task["id"] in [t["id"] for t in admin.get("/v2/tasks").json()["tasks"]]


def test_glance_cli_glance_direct_file(import_server, disk):
    srv = import_server
    alice = Raw(srv.url, "alice")
    src = disk.vmdk("streamOptimized")
    want = digests(src)
    proc = GlanceCLI(srv.url, "alice").run(
        "image-create-via-import", "--import-method", "glance-direct", "--file", str(src),
        "--disk-format", "vmdk", "--container-format", "bare", "--name", unique("gl-direct"))
    iid = glance_table(proc.stdout)["id"]
    image = wait_status(alice, iid, ["active", "queued"], timeout=120)
    assert_data_facts(image, want)
    assert image["virtual_size"] == qemu_info(src)["virtual-size"]
    assert not srv.staging_path(iid).exists()
    task = only_task(alice, iid)
    assert task["status"] == "success"
    assert task_input(task)["import_req"]["method"]["name"] == "glance-direct"
    # glance image-download returns the bytes (glanceclient verifies os_hash_value)
    out = srv.workdir / f"{iid}.out"
    GlanceCLI(srv.url, "alice").run("image-download", "--file", str(out), iid)
    assert out.read_bytes() == src.read_bytes()
    out.unlink()


def test_stage_then_import_preconditions(raw, server):
    alice = raw["alice"]
    data = random_bytes(3 * MiB + 17, 71)
    iid = alice.create(name=unique("stage"), disk_format="raw", container_format="bare")["id"]
    # glance-direct needs staged data
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 409, r.text
    # unknown method / missing name
    assert alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "no-such"}}).status_code == 400
    assert alice.post(f"/v2/images/{iid}/import", json={"method": {}}).status_code == 400
    # stage: uploading, size recorded, the data is not downloadable yet
    r = alice.put(f"/v2/images/{iid}/stage", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    staged = alice.get(f"/v2/images/{iid}").json()
    assert staged["status"] == "uploading"
    assert staged["size"] == len(data)
    assert server.staging_path(iid).exists() and not server.blob_path(iid).exists()
    assert alice.get(f"/v2/images/{iid}/file").status_code == 204
    # staging twice, uploading to /file, web-download: all 409 while uploading
    r = alice.put(f"/v2/images/{iid}/stage", data=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 409
    assert upload(alice, iid, b"x").status_code == 409
    # another project can't import it
    r = raw["bob"].post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code in (403, 404)

    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    assert r.content == b""
    image = wait_status(alice, iid, ["active", "queued"], timeout=120)
    assert_data_facts(image, digests(data))
    assert not server.staging_path(iid).exists()
    assert alice.get(f"/v2/images/{iid}/file").content == data
    # an active image takes no glance-direct import
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 409


def test_formats_must_be_set(raw, server):
    """Upload without disk/container format: 400; import of staged data without them: 409."""
    alice = raw["alice"]
    iid = alice.create(name=unique("nofmt"))["id"]
    r = upload(alice, iid, b"abc")
    assert r.status_code == 400, r.text
    assert "disk_format" in r.text and "container_format" in r.text
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(server, iid)
    r = alice.put(f"/v2/images/{iid}/stage", data=b"abc", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 409, r.text
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "uploading"


def test_web_download_failure_then_retry(import_server, origin, disk):
    """The origin answers 404: the task fails, the image is queued with os_glance_failed_import and
    nothing stored; a second import with a good URL makes it active (the image stays usable)."""
    srv = import_server
    alice = Raw(srv.url, "alice")
    iid = alice.create(name=unique("web-retry"), disk_format="qcow2", container_format="bare")["id"]
    missing = origin.url(f"/{unique('missing')}.qcow2")
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": missing}})
    assert r.status_code == 202, r.text
    task = wait_task_finished(alice, iid)
    assert task["status"] == "failure"
    assert task["message"] and "404" in task["message"], task
    image = wait_status(alice, iid, "queued", timeout=30)
    assert "os_glance_failed_import" in image, image
    assert image["size"] is None and image["checksum"] is None
    assert "os_glance_import_task" not in image
    assert_nothing_kept(srv, iid)

    src = disk.qcow2("web-retry.qcow2", virtual=16 * MiB, seed=63)
    uri = origin.serve(f"/{unique('retry')}.qcow2", src)
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 202, r.text
    image = wait_status(alice, iid, ["active"], timeout=120)
    assert_data_facts(image, digests(src))
    assert sorted(t["status"] for t in tasks_of(alice, iid)) == ["failure", "success"]
    # an active image takes no further web-download
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 409, r.text


def test_sdk_create_with_data_and_download(sdk, raw, tmp_path):
    c = sdk["alice"]
    data = random_bytes(5 * MiB + 3, 81)
    want = digests(data)
    img = c.image.create_image(name=unique("sdk-data"), data=data, disk_format="raw",
                               container_format="bare", allow_duplicates=True, validate_checksum=True,
                               md5=want["md5"])
    got = c.image.get_image(img.id)
    assert got.status == "active"
    assert got.size == len(data) and got.checksum == want["md5"]
    assert got.hash_algo == "sha512" and got.hash_value == want["sha512"]
    assert got.virtual_size == len(data)
    # in memory (the SDK checks os_hash_value) and to a file
    assert c.image.download_image(got).content == data
    out = tmp_path / "sdk.out"
    c.image.download_image(got, output=str(out))
    assert out.read_bytes() == data
    # streamed
    resp = c.image.download_image(got, stream=True)
    assert b"".join(resp.iter_content(64 * 1024)) == data


def test_sdk_glance_direct_and_web_download(import_server, origin, disk):
    import openstack

    srv = import_server
    c = openstack.connect(load_yaml_config=False, load_envvars=False, auth_type="admin_token",
                          auth={"endpoint": srv.url + "/v2", "token": "alicetok"})
    alice = Raw(srv.url, "alice")

    # glance-direct: create_image(use_import=True) stages and imports
    data = random_bytes(2 * MiB, 91)
    img = c.image.create_image(name=unique("sdk-direct"), data=io.BytesIO(data), disk_format="raw",
                               container_format="bare", allow_duplicates=True, use_import=True)
    image = wait_status(alice, img.id, ["active", "queued"], timeout=120)
    assert_data_facts(image, digests(data))

    # web-download: import_image on an existing queued image
    src = disk.vhd()
    uri = origin.serve(f"/{unique('sdk')}.vhd", src)
    img = c.image.create_image(name=unique("sdk-web"), disk_format="vhd", container_format="bare",
                               allow_duplicates=True)
    c.image.import_image(img, method="web-download", uri=uri)
    image = wait_status(alice, img.id, ["active", "queued"], timeout=120)
    assert_data_facts(image, digests(src))
    assert c.image.download_image(img.id).content == src.read_bytes()


def test_glanceclient_upload_and_data(glance, raw):
    g = glance["alice"]
    data = random_bytes(4 * MiB + 5, 101)
    img = g.images.create(name=unique("gc-data"), disk_format="raw", container_format="bare")
    g.images.upload(img.id, io.BytesIO(data), image_size=len(data))
    got = g.images.get(img.id)
    assert got.status == "active" and got.size == len(data)
    assert got.checksum == digests(data)["md5"]
    body = g.images.data(img.id)  # verifies os_hash_value while reading
    assert b"".join(body) == data
    # a second upload is refused: 409
    with pytest.raises(gexc.HTTPConflict):
        g.images.upload(img.id, io.BytesIO(b"again"))
    assert g.images.get(img.id).checksum == digests(data)["md5"]


def test_hash_algorithm_sha256(tmp_path):
    srv = ImagedServer(tmp_path, "--hash-algorithm", "sha256")
    srv.start()
    try:
        alice = Raw(srv.url, "alice")
        data = random_bytes(MiB + 1, 111)
        image = alice.create(name=unique("sha256"), disk_format="raw", container_format="bare")
        assert upload(alice, image["id"], data).status_code == 204
        got = alice.get(f"/v2/images/{image['id']}").json()
        assert_data_facts(got, digests(data), algo="sha256")
    finally:
        srv.kill()
