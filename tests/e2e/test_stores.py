"""Several named stores at once (`--store fast=file --store archive=s3:BUCKET`): Glance's multiple backends,
driven by the real `glance` CLI and openstacksdk. One store is local files, the other the real S3
server scripts/test.sh starts; the bucket is checked with boto3."""

import io
import uuid

import boto3
import openstack
import pytest
from botocore.config import Config

from conftest import (GlanceCLI, ImagedServer, Raw, assert_data_facts, digests, glance_table, random_bytes, s3_env,
                      s3_process_env, tasks_of, token, unique, wait_for, wait_status)

MiB = 1 << 20


@pytest.fixture(scope="module")
def stores_server(tmp_path_factory, origin):
    s3 = s3_env()
    prefix = f"e2e-stores-{uuid.uuid4().hex[:10]}/"
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-stores"), "--store", "fast=file", "--store", f"archive=s3:{s3['S3_BUCKET']}",
                       "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-region", s3["S3_REGION"], "--s3-key-prefix", prefix,
                       "--s3-part-mib", "5", "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       env=s3_process_env(s3))
    srv.start()
    bucket = boto3.client("s3", endpoint_url=s3["S3_ENDPOINT"], region_name=s3["S3_REGION"],
                          aws_access_key_id=s3["AWS_ACCESS_KEY_ID"], aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
                          config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))

    def in_archive(image_id: str) -> bool:
        r = bucket.list_objects_v2(Bucket=s3["S3_BUCKET"], Prefix=f"{prefix}images/{image_id}")
        return r.get("KeyCount", 0) == 1

    def in_fast(image_id: str) -> bool:
        return (srv.data_dir / "stores" / "fast" / "images" / image_id).exists()

    srv.in_archive, srv.in_fast = in_archive, in_fast
    yield srv
    srv.kill()


def test_stores_info_and_upload_to_a_chosen_store(stores_server, tmp_path):
    srv = stores_server
    cli = GlanceCLI(srv.url, "alice")
    out = cli.run("stores-info").stdout
    assert "fast" in out and "archive" in out, out
    assert "starting listening" not in out
    data = random_bytes(3 * MiB + 5, 801)
    f = tmp_path / "d.raw"
    f.write_bytes(data)
    name = unique("to-archive")
    shown = glance_table(cli.run("image-create", "--name", name, "--disk-format", "raw", "--container-format", "bare",
                                 "--file", str(f), "--store", "archive").stdout)
    alice = Raw(srv.url, "alice")
    image = wait_status(alice, shown["id"], "active")
    assert_data_facts(image, digests(data))
    assert image["stores"] == "archive"
    assert srv.in_archive(image["id"]) and not srv.in_fast(image["id"])
    assert alice.get(f"/v2/images/{image['id']}/file").content == data


def test_copy_image_with_the_glance_cli_and_the_sdk(stores_server, tmp_path):
    srv = stores_server
    alice = Raw(srv.url, "alice")
    data = random_bytes(6 * MiB, 802)
    image = alice.create(name=unique("copy"), disk_format="raw", container_format="bare")
    r = alice.put(f"/v2/images/{image['id']}/file", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert alice.get(f"/v2/images/{image['id']}").json()["stores"] == "fast"

    GlanceCLI(srv.url, "alice").run("image-import", image["id"], "--import-method", "copy-image", "--stores", "archive")
    # Glance's `stores` is sorted (Tempest compares it with the sorted store ids), not in write order.
    wait_for(lambda: alice.get(f"/v2/images/{image['id']}").json().get("stores") == "archive,fast",
             timeout=60, what="the copy to archive")
    assert srv.in_archive(image["id"]) and srv.in_fast(image["id"])
    assert [t["status"] for t in tasks_of(alice, image["id"])] == ["success"]
    # Glance leaves its progress lists on the image, present and empty, after the copy.
    copied = alice.get(f"/v2/images/{image['id']}").json()
    assert copied["os_glance_importing_to_stores"] == "" and copied["os_glance_failed_import"] == ""

    # openstacksdk: create_image stages, then imports (glance-direct) into both stores at once.
    conn = openstack.connect(load_yaml_config=False, load_envvars=False, auth_type="admin_token",
                             auth={"endpoint": srv.url + "/v2", "token": token("alice")})
    other = random_bytes(2 * MiB, 803)
    sdk_image = conn.image.create_image(name=unique("sdk-stores"), data=io.BytesIO(other), disk_format="raw",
                                        container_format="bare", allow_duplicates=True, use_import=True,
                                        stores=["fast", "archive"])
    done = wait_status(alice, sdk_image.id, ["active", "queued"], timeout=60)
    assert_data_facts(done, digests(other))
    assert done["stores"] == "archive,fast"
    assert srv.in_archive(sdk_image.id) and srv.in_fast(sdk_image.id)
    # Deleting removes the data from both stores.
    assert alice.delete(f"/v2/images/{sdk_image.id}").status_code == 204
    wait_for(lambda: not srv.in_archive(sdk_image.id) and not srv.in_fast(sdk_image.id), timeout=15, what="both copies gone")


def test_web_download_to_all_stores(stores_server, origin):
    srv = stores_server
    alice = Raw(srv.url, "alice")
    data = random_bytes(4 * MiB + 3, 804)
    uri = origin.serve(f"/{unique('stores-web')}.raw", data)
    image = alice.create(name=unique("web-all"), disk_format="raw", container_format="bare")
    r = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}, "all_stores": True})
    assert r.status_code == 202, r.text
    done = wait_status(alice, image["id"], ["active", "queued"], timeout=60)
    assert_data_facts(done, digests(data))
    assert done["stores"] == "archive,fast"
    assert srv.in_archive(image["id"]) and srv.in_fast(image["id"])
    bad = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "copy-image"}, "stores": ["tape"]})
    assert bad.status_code == 409 and "Unknown store" in bad.text


def test_import_progress_lists_during_and_after_an_import_to_every_store(stores_server, origin):
    """os_glance_importing_to_stores names the stores still to write (sorted) while the import runs and is
    present and empty after it; os_glance_failed_import is present and empty; both as Glance sets them."""
    srv = stores_server
    alice = Raw(srv.url, "alice")
    data = random_bytes(2 * MiB, 805)
    # 64 KiB every 30 ms: about a second, long enough to watch the import run.
    uri = origin.slow(f"/{unique('stores-slow')}.raw", data, chunk=64 * 1024, delay=0.03)
    image = alice.create(name=unique("progress"), disk_format="raw", container_format="bare")
    r = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}, "all_stores": True})
    assert r.status_code == 202, r.text
    during = wait_for(lambda: (lambda i: i if i["status"] == "importing" else None)(alice.get(f"/v2/images/{image['id']}").json()),
                      timeout=10, interval=0.02, what="the image importing")
    assert during["os_glance_importing_to_stores"] == "archive,fast", during
    assert during["os_glance_failed_import"] == ""
    done = wait_status(alice, image["id"], ["active", "queued"], timeout=60)
    assert done["status"] == "active", done
    assert done["stores"] == "archive,fast"
    assert done["os_glance_importing_to_stores"] == "" and done["os_glance_failed_import"] == ""
    assert "os_glance_import_task" not in done

    # A copy-image of an image already everywhere is refused before anything changes.
    again = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "copy-image"}, "all_stores": True})
    assert again.status_code == 409, again.text
    assert alice.get(f"/v2/images/{image['id']}").json()["os_glance_importing_to_stores"] == ""
