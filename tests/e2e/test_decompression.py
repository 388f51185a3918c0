"""Compressed images (issue 21, point 4): gzip, xz, zstd and bzip2 data is recognised from its first bytes on
upload, stage and import and decompressed in the stream. The image is what was inside: `size`, `checksum`,
`os_hash_value` and the downloaded bytes are the uncompressed image's, `disk_format` is checked on the
decompressed bytes (a compressed qcow2 with a backing file is still 415), and `imaged_source_compression`
records the compression. A pinned digest is of the bytes as sent. Corrupt compressed data is 400, nothing kept.
Images are made by qemu-img and compressed by Debian's gzip/xz/zstd/bzip2."""
import base64
import hashlib
import signal
import subprocess

import pytest

from conftest import (ImagedServer, Raw, assert_data_facts, assert_nothing_kept, digests, qemu_info, unique, upload,
                      wait_for, wait_task_finished)

COMPRESSORS = {"gzip": ["gzip", "-c"], "xz": ["xz", "-c", "-T1", "-1"], "zstd": ["zstd", "-q", "-c"], "bzip2": ["bzip2", "-c"]}


def compress(path, how: str) -> bytes:
    return subprocess.run([*COMPRESSORS[how], str(path)], capture_output=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def images(disk):
    """A qcow2 (64 MiB virtual), a raw disk (16 MiB, 2 MiB of data) and a qcow2 with a backing file."""
    return {"qcow2": disk.qcow2("decompress.qcow2"),
            "raw": disk.raw_with_data("decompress.raw", virtual=16 << 20, data=2 << 20, seed=2104),
            "backed": disk.qcow2_with_backing_file("decompress-backed.qcow2")}


@pytest.fixture
def alice(raw) -> Raw:
    return raw["alice"]


def new_image(client: Raw, disk_format: str) -> dict:
    return client.create(name=unique("compressed"), disk_format=disk_format, container_format="bare")


def assert_is_the_image(client: Raw, image_id: str, path, compression: str | None, disk_format: str) -> dict:
    """Active with the uncompressed file's size and digests, downloads byte-equal, compression recorded."""
    got = client.get(f"/v2/images/{image_id}").json()
    assert_data_facts(got, digests(path))
    assert got["disk_format"] == disk_format
    assert got["virtual_size"] == qemu_info(path)["virtual-size"], got
    assert got.get("imaged_source_compression") == compression, got
    r = client.get(f"/v2/images/{image_id}/file")
    assert r.status_code == 200 and r.content == path.read_bytes()
    return got


@pytest.mark.parametrize("how, kind", [("xz", "qcow2"), ("gzip", "raw"), ("zstd", "raw"), ("bzip2", "raw")])
def test_a_compressed_upload_stores_the_image_inside(alice, images, how, kind):
    image = new_image(alice, kind)
    r = upload(alice, image["id"], compress(images[kind], how))
    assert r.status_code == 204, r.text
    assert_is_the_image(alice, image["id"], images[kind], how, kind)


def test_a_pin_is_of_the_bytes_as_sent(alice, server, images):
    sent = compress(images["raw"], "gzip")
    image = new_image(alice, "raw")
    pin = "sha-256=:" + base64.b64encode(hashlib.sha256(sent).digest()).decode() + ":"
    assert upload(alice, image["id"], sent, headers={"Repr-Digest": pin}).status_code == 204
    got = assert_is_the_image(alice, image["id"], images["raw"], "gzip", "raw")
    assert got["imaged_pinned_digest"] == "sha256:" + hashlib.sha256(sent).hexdigest()
    # The digest of the decompressed image is not what was sent: refused, nothing kept.
    image = new_image(alice, "raw")
    inner = "sha256:" + hashlib.sha256(images["raw"].read_bytes()).hexdigest()
    r = upload(alice, image["id"], sent, headers={"X-Image-Meta-Expected-Hash": inner})
    assert r.status_code == 400 and "as sent" in r.text, r.text
    assert_nothing_kept(server, image["id"])
    # Content-MD5 is of the body too: the .gz's MD5 passes (and is not recorded as a pin), the image's does not.
    image = new_image(alice, "raw")
    r = upload(alice, image["id"], sent, headers={"Content-MD5": base64.b64encode(hashlib.md5(sent).digest()).decode()})
    assert r.status_code == 204, r.text
    got = assert_is_the_image(alice, image["id"], images["raw"], "gzip", "raw")
    assert "imaged_pinned_digest" not in got
    image = new_image(alice, "raw")
    r = upload(alice, image["id"], sent, headers={"Content-MD5": hashlib.md5(images["raw"].read_bytes()).hexdigest()})
    assert r.status_code == 400 and "Checksum verification failed" in r.text, r.text
    assert_nothing_kept(server, image["id"])


def test_a_compressed_qcow2_with_a_backing_file_is_415(alice, server, images):
    image = new_image(alice, "qcow2")
    r = upload(alice, image["id"], compress(images["backed"], "xz"))
    assert r.status_code == 415 and "backing" in r.text.lower(), r.text
    got = alice.get(f"/v2/images/{image['id']}").json()
    assert got["status"] == "queued" and got["size"] is None and "imaged_source_compression" not in got, got
    assert_nothing_kept(server, image["id"])


def test_corrupt_or_truncated_compressed_data_is_400(alice, server, images):
    good = compress(images["raw"], "gzip")
    corrupt = good[:len(good) // 2] + bytes(b ^ 0x55 for b in good[len(good) // 2:len(good) // 2 + 512]) + good[len(good) // 2 + 512:]
    for bad in [corrupt, good[:-100]]:
        image = new_image(alice, "raw")
        r = upload(alice, image["id"], bad)
        assert r.status_code == 400 and "not valid gzip data" in r.text, r.text
        assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
        assert_nothing_kept(server, image["id"])


def test_the_recorded_compression_is_reserved(alice):
    r = alice.post("/v2/images", json={"name": unique("c"), "imaged_source_compression": "gzip"})
    assert r.status_code == 403, r.text


def test_staged_bytes_are_decompressed_by_the_import(alice, images):
    image = new_image(alice, "qcow2")
    sent = compress(images["qcow2"], "zstd")
    r = alice.put(f"/v2/images/{image['id']}/stage", data=sent, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert alice.get(f"/v2/images/{image['id']}").json()["size"] == len(sent)  # staged as sent
    assert alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    assert wait_task_finished(alice, image["id"], timeout=60)["status"] == "success"
    assert_is_the_image(alice, image["id"], images["qcow2"], "zstd", "qcow2")


def test_web_download_decompresses(import_server, origin, images):
    client = Raw(import_server.url, "alice")
    image = new_image(client, "raw")
    uri = origin.serve(f"/{unique('disk')}.img.zst", compress(images["raw"], "zstd"))
    assert client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}}).status_code == 202
    task = wait_task_finished(client, image["id"], timeout=60)
    assert task["status"] == "success", task
    assert_is_the_image(client, image["id"], images["raw"], "zstd", "raw")
    # Truncated xz from the origin: the task fails with the reason, nothing kept.
    image = new_image(client, "raw")
    uri = origin.serve(f"/{unique('cut')}.raw.xz", compress(images["raw"], "xz")[:-64])
    assert client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}}).status_code == 202
    task = wait_task_finished(client, image["id"], timeout=60)
    assert task["status"] == "failure" and "not valid xz data" in task["message"], task
    wait_for(lambda: client.get(f"/v2/images/{image['id']}").json()["status"] == "queued", timeout=30, what="queued again")
    assert_nothing_kept(import_server, image["id"])


def test_decompress_off_stores_the_bytes_as_sent(tmp_path, images):
    srv = ImagedServer(tmp_path, "--decompress", "off")
    srv.start()
    try:
        client = Raw(srv.url, "alice")
        image = new_image(client, "raw")
        sent = compress(images["raw"], "gzip")
        assert upload(client, image["id"], sent).status_code == 204
        got = client.get(f"/v2/images/{image['id']}").json()
        assert_data_facts(got, digests(sent))
        assert "imaged_source_compression" not in got
        assert client.get(f"/v2/images/{image['id']}/file").content == sent
    finally:
        srv.kill(signal.SIGTERM)


def test_an_import_may_keep_the_compressed_bytes(import_server, origin, images):
    client = Raw(import_server.url, "alice")
    sent = compress(images["raw"], "xz")
    uri = origin.serve(f"/{unique('keep')}.raw.xz", sent)
    image = new_image(client, "raw")
    r = client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}, "decompress": "no"})
    assert r.status_code == 400 and "decompress" in r.text, r.text
    assert client.post(f"/v2/images/{image['id']}/import",
                       json={"method": {"name": "web-download", "uri": uri}, "decompress": False}).status_code == 202
    assert wait_task_finished(client, image["id"], timeout=60)["status"] == "success"
    got = client.get(f"/v2/images/{image['id']}").json()
    assert_data_facts(got, digests(sent))
    assert "imaged_source_compression" not in got
