"""imaged with its image bytes in S3 (`--blob-store s3:BUCKET`), against the real Ceph RGW that
scripts/test.sh starts (IMAGED_TEST_S3_ENV names its env file). The bucket is inspected with boto3."""

import os
import signal
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from conftest import (ImagedServer, Raw, assert_data_facts, digests, random_bytes, s3_env, s3_process_env, unique, upload,
                      wait_for, wait_status)
from test_data_faults import SocketUpload

MiB = 1 << 20


class Store:
    def __init__(self, workdir, prefix):
        self.env = s3_env()
        self.prefix = prefix
        self.bucket = self.env["S3_BUCKET"]
        self.s3 = boto3.client("s3", endpoint_url=self.env["S3_ENDPOINT"], region_name=self.env["S3_REGION"],
                               aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                               config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
        self.server = ImagedServer(workdir, "--blob-store", f"s3:{self.bucket}", "--s3-endpoint", self.env["S3_ENDPOINT"],
                                   "--s3-region", self.env["S3_REGION"], "--s3-key-prefix", prefix,
                                   "--s3-part-mib", "5", env=s3_process_env(self.env))

    def objects(self, sub=""):
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + sub):
            for o in page.get("Contents", []):
                out[o["Key"][len(self.prefix):]] = o["Size"]
        return out

    def open_uploads(self):
        r = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [u["Key"] for u in r.get("Uploads", [])]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("s3store"), f"e2e-{uuid.uuid4().hex[:12]}/")
    s.server.start()
    yield s
    s.server.kill()


@pytest.fixture()
def alice(store):
    return Raw(store.server.url, "alice")


def test_start_line_names_the_bucket_and_no_file_blobs_are_made(store):
    log = store.server.log_text()
    assert f"S3 blobs in {store.env['S3_ENDPOINT']} bucket {store.bucket} under {store.prefix}" in log
    assert not (store.server.data_dir / "blobs").exists()


def test_upload_download_and_delete_through_s3(store, alice, tmp_path):
    data = random_bytes(12 * MiB + 321, 5)   # three parts of 5 MiB, the last one short
    image = alice.create(name=unique("s3"), disk_format="raw", container_format="bare")
    iid = image["id"]
    assert upload(alice, iid, data).status_code == 204
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(data))
    assert store.objects("images/") == {f"images/{iid}": len(data)}
    assert store.open_uploads() == []

    got = alice.get(f"/v2/images/{iid}/file", timeout=120)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-MD5"] == digests(data)["md5"]
    part = alice.get(f"/v2/images/{iid}/file", headers={"Range": "bytes=5242870-5242889"})
    assert part.status_code == 206 and part.content == data[5242870:5242890]
    assert part.headers["Content-Range"] == f"bytes 5242870-5242889/{len(data)}"

    assert alice.delete(f"/v2/images/{iid}").status_code == 204
    wait_for(lambda: f"images/{iid}" not in store.objects("images/"), timeout=30, what="object deleted")


def test_client_gone_mid_upload_leaves_no_object_and_no_parts(store, alice):
    iid = alice.create(name=unique("s3-drop"), disk_format="raw", container_format="bare")["id"]
    up = SocketUpload(store.server.url, iid, content_length=64 * MiB, send_bytes=16 * MiB).start()
    up.done.wait(60)
    wait_status(alice, iid, "saving", timeout=30)
    wait_for(lambda: store.open_uploads() != [], timeout=30, what="multipart upload started")
    up.close()
    image = wait_status(alice, iid, "queued", timeout=30)
    assert image["size"] is None and image["checksum"] is None
    wait_for(lambda: store.open_uploads() == [], timeout=30, what="multipart upload aborted")
    assert f"images/{iid}" not in store.objects("images/")


def test_glance_direct_stages_in_s3_and_cleans_up(store, alice):
    data = random_bytes(7 * MiB, 9)
    iid = alice.create(name=unique("s3-stage"), disk_format="raw", container_format="bare")["id"]
    r = alice.put(f"/v2/images/{iid}/stage", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert store.objects("staging/") == {f"staging/{iid}": len(data)}
    assert alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    image = wait_status(alice, iid, "active", timeout=120)
    assert_data_facts(image, digests(data))
    assert store.objects("images/").get(f"images/{iid}") == len(data)
    wait_for(lambda: f"staging/{iid}" not in store.objects("staging/"), timeout=30, what="staged object removed")


def test_sigkill_mid_upload_then_restart_aborts_the_open_upload(store, alice):
    iid = alice.create(name=unique("s3-kill"), disk_format="raw", container_format="bare")["id"]
    up = SocketUpload(store.server.url, iid, content_length=64 * MiB, send_bytes=20 * MiB).start()
    up.done.wait(60)
    wait_for(lambda: store.open_uploads() != [], timeout=30, what="multipart upload started")
    store.server.kill(signal.SIGKILL)
    up.close()
    assert store.open_uploads() != []           # the crash left it open
    store.server.start(port=None)
    assert store.open_uploads() == []           # the start-up scrub aborted it
    image = Raw(store.server.url, "alice").get(f"/v2/images/{iid}").json()
    assert image["status"] == "queued"
    assert f"images/{iid}" not in store.objects("images/")
    assert "removed 1 unfinished blob write(s) left by a crash" in store.server.log_text()


def test_wrong_credentials_stop_the_server_at_start(tmp_path):
    env = s3_env()
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc_env.update(AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY="wrong-secret")
    srv = ImagedServer(tmp_path, "--blob-store", f"s3:{env['S3_BUCKET']}", "--s3-endpoint", env["S3_ENDPOINT"],
                       env=proc_env)
    with pytest.raises(RuntimeError) as err:
        srv.start(timeout=30)
    assert "SignatureDoesNotMatch" in str(err.value) or "403" in str(err.value)
