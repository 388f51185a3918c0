"""Conversion on ingest (issue 21, point 4): an import's "convert_to" or a store's `?convert=` stores the image in
another disk format, made by a sandboxed `qemu-img convert` after the sent bytes were decompressed and inspected.
The converted raw is byte-equal to `qemu-img convert -O raw` of the source; `disk_format` becomes the target,
`imaged_source_format` records the format sent, pins stay those of the bytes as sent, and an unsafe source
(a qcow2 with a backing file) is refused before qemu-img ever sees it. Images are made by qemu-img and
compressed by Debian's xz/zstd."""
import hashlib
import signal
import subprocess

import pytest

from conftest import (ImagedServer, Raw, assert_data_facts, assert_nothing_kept, digests, qemu_info, run_tool, unique,
                      upload, wait_for, wait_task_finished)


def compress(path, how: str) -> bytes:
    argv = {"xz": ["xz", "-c", "-T1", "-1"], "zstd": ["zstd", "-q", "-c"], "gzip": ["gzip", "-c"]}[how]
    return subprocess.run([*argv, str(path)], capture_output=True, check=True, timeout=60).stdout


def as_raw(path, tmp_path, fmt: str) -> bytes:
    """What `qemu-img convert -O raw` makes of the file: the reference every converted image must equal."""
    out = tmp_path / f"{path.name}.reference.raw"
    run_tool("qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out))
    return out.read_bytes()


@pytest.fixture(scope="module")
def images(disk):
    return {"qcow2": disk.qcow2("convert.qcow2", virtual=48 << 20, seed=2201),
            "raw": disk.raw_with_data("convert.raw", virtual=24 << 20, data=3 << 20, seed=2202),
            "vmdk": disk.vmdk("monolithicSparse", name="convert.vmdk"),
            "backed": disk.qcow2_with_backing_file("convert-backed.qcow2")}


def scratch_files(srv: ImagedServer) -> list[str]:
    d = srv.data_dir / "convert"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def assert_converted(client: Raw, image_id: str, expected: bytes, source_format: str, compression: str | None,
                     disk_format: str = "raw") -> dict:
    got = client.get(f"/v2/images/{image_id}").json()
    assert got["status"] == "active", got
    assert got["disk_format"] == disk_format, got
    assert got.get("imaged_source_format") == source_format, got
    assert got.get("imaged_source_compression") == compression, got
    body = client.get(f"/v2/images/{image_id}/file").content
    if disk_format == "raw":
        assert_data_facts(got, digests(expected))
        assert got["virtual_size"] == len(expected), got
        assert body == expected
    return got


def test_web_download_converts_a_qcow2_xz_to_raw(import_server, origin, images, tmp_path):
    client = Raw(import_server.url, "alice")
    sent = compress(images["qcow2"], "xz")
    uri = origin.serve(f"/{unique('conv')}.qcow2.xz", sent)
    image = client.create(name=unique("conv"), disk_format="qcow2", container_format="bare")
    pin = "sha256:" + hashlib.sha256(sent).hexdigest()
    r = client.post(f"/v2/images/{image['id']}/import",
                    json={"method": {"name": "web-download", "uri": uri}, "convert_to": "raw", "expected_hash": pin})
    assert r.status_code == 202, r.text
    task = wait_task_finished(client, image["id"], timeout=90)
    assert task["status"] == "success", task
    got = assert_converted(client, image["id"], as_raw(images["qcow2"], tmp_path, "qcow2"), "qcow2", "xz")
    assert got["size"] == qemu_info(images["qcow2"])["virtual-size"] == 48 << 20
    assert got["imaged_pinned_digest"] == pin  # of what was sent, not of what is stored
    assert scratch_files(import_server) == []


def test_convert_to_is_checked_at_the_request(import_server, origin, images):
    client = Raw(import_server.url, "alice")
    uri = origin.serve(f"/{unique('conv')}.qcow2", images["qcow2"].read_bytes())
    image = client.create(name=unique("conv"), disk_format="qcow2", container_format="bare")
    for bad in ["vhd", 7, "RAW"]:
        r = client.post(f"/v2/images/{image['id']}/import",
                        json={"method": {"name": "web-download", "uri": uri}, "convert_to": bad})
        assert r.status_code == 400 and "convert_to" in r.text, (bad, r.text)
    got = client.get(f"/v2/images/{image['id']}").json()
    assert got["status"] == "queued" and client.get(f"/v2/images/{image['id']}/tasks").json()["tasks"] == [], got


def test_a_backed_qcow2_is_refused_before_conversion(import_server, origin, images):
    client = Raw(import_server.url, "alice")
    uri = origin.serve(f"/{unique('backed')}.qcow2.xz", compress(images["backed"], "xz"))
    image = client.create(name=unique("backed"), disk_format="qcow2", container_format="bare")
    r = client.post(f"/v2/images/{image['id']}/import",
                    json={"method": {"name": "web-download", "uri": uri}, "convert_to": "raw"})
    assert r.status_code == 202, r.text
    task = wait_task_finished(client, image["id"], timeout=60)
    assert task["status"] == "failure" and "backing" in task["message"].lower(), task
    wait_for(lambda: client.get(f"/v2/images/{image['id']}").json()["status"] == "queued", timeout=30, what="queued again")
    got = client.get(f"/v2/images/{image['id']}").json()
    assert got["disk_format"] == "qcow2" and "imaged_source_format" not in got, got
    assert_nothing_kept(import_server, image["id"])
    assert scratch_files(import_server) == []


def test_glance_direct_converts_raw_to_qcow2(import_server, images, tmp_path):
    client = Raw(import_server.url, "alice")
    source = images["raw"].read_bytes()
    image = client.create(name=unique("toq"), disk_format="raw", container_format="bare")
    sent = compress(images["raw"], "zstd")
    r = client.put(f"/v2/images/{image['id']}/stage", data=sent, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "glance-direct"}, "convert_to": "qcow2"})
    assert r.status_code == 202, r.text
    assert wait_task_finished(client, image["id"], timeout=90)["status"] == "success"
    got = assert_converted(client, image["id"], source, "raw", "zstd", disk_format="qcow2")
    stored = tmp_path / "stored.qcow2"
    stored.write_bytes(client.get(f"/v2/images/{image['id']}/file").content)
    info = qemu_info(stored)
    assert info["format"] == "qcow2" and info["virtual-size"] == len(source) == got["virtual_size"], info
    assert_data_facts(got, digests(stored))
    assert as_raw(stored, tmp_path, "qcow2") == source


def test_a_store_that_converts_stores_raw(tmp_path, images):
    """`--store ceph=file:DIR?convert=raw`: uploads and imports into it are raw; an image already raw is stored as
    sent; another store keeps what it is given."""
    srv = ImagedServer(tmp_path / "srv", "--store", f"ceph=file:{tmp_path}/ceph?convert=raw", "--store", "fast=file")
    srv.start()
    try:
        client = Raw(srv.url, "alice")
        # qcow2 in xz, uploaded: stored as raw in ceph.
        image = client.create(name=unique("ceph"), disk_format="qcow2", container_format="bare")
        assert upload(client, image["id"], compress(images["qcow2"], "xz")).status_code == 204
        got = assert_converted(client, image["id"], as_raw(images["qcow2"], tmp_path, "qcow2"), "qcow2", "xz")
        assert got["stores"] == "ceph", got
        # A vmdk, uncompressed.
        image = client.create(name=unique("ceph"), disk_format="vmdk", container_format="bare")
        assert upload(client, image["id"], images["vmdk"].read_bytes()).status_code == 204
        assert_converted(client, image["id"], as_raw(images["vmdk"], tmp_path, "vmdk"), "vmdk", None)
        # Already raw: stored as it was sent, nothing recorded.
        image = client.create(name=unique("ceph"), disk_format="raw", container_format="bare")
        assert upload(client, image["id"], images["raw"].read_bytes()).status_code == 204
        got = client.get(f"/v2/images/{image['id']}").json()
        assert got["disk_format"] == "raw" and "imaged_source_format" not in got, got
        assert_data_facts(got, digests(images["raw"]))
        # The other store converts nothing.
        image = client.create(name=unique("fast"), disk_format="qcow2", container_format="bare")
        r = upload(client, image["id"], images["qcow2"].read_bytes(), headers={"X-Image-Meta-Store": "fast"})
        assert r.status_code == 204, r.text
        got = client.get(f"/v2/images/{image['id']}").json()
        assert got["disk_format"] == "qcow2" and "imaged_source_format" not in got and got["stores"] == "fast", got
        assert_data_facts(got, digests(images["qcow2"]))
        # The converted-from format is the ingest's to record: a client cannot claim it.
        r = client.post("/v2/images", json={"name": unique("c"), "imaged_source_format": "qcow2"})
        assert r.status_code == 403, r.text
        assert scratch_files(srv) == []
    finally:
        srv.kill(signal.SIGTERM)


def test_a_conversion_that_cannot_fit_keeps_nothing(tmp_path, images):
    """The converted size is the virtual size: over --image-size-cap it is 413 before qemu-img runs, the image is
    queued again and no blob or scratch file is left."""
    srv = ImagedServer(tmp_path / "srv", "--blob-store", "file?convert=raw", "--image-size-cap", str(32 << 20))
    srv.start()
    try:
        client = Raw(srv.url, "alice")
        image = client.create(name=unique("big"), disk_format="qcow2", container_format="bare")
        sent = images["qcow2"].read_bytes()
        assert len(sent) < 32 << 20 < qemu_info(images["qcow2"])["virtual-size"]
        r = upload(client, image["id"], sent)
        assert r.status_code == 413 and "converted to raw" in r.text, r.text
        got = client.get(f"/v2/images/{image['id']}").json()
        assert got["status"] == "queued" and got["size"] is None and got["disk_format"] == "qcow2", got
        assert_nothing_kept(srv, image["id"])
        assert scratch_files(srv) == []
    finally:
        srv.kill(signal.SIGTERM)


def test_without_qemu_img_conversion_is_refused(tmp_path, images):
    """No qemu-img: convert_to is 400 at the request, and a store that converts does not start."""
    missing = str(tmp_path / "no-such-qemu-img")
    srv = ImagedServer(tmp_path / "srv", "--qemu-img", missing)
    srv.start()
    try:
        client = Raw(srv.url, "alice")
        image = client.create(name=unique("noq"), disk_format="raw", container_format="bare")
        assert client.put(f"/v2/images/{image['id']}/stage", data=images["raw"].read_bytes(),
                          headers={"Content-Type": "application/octet-stream"}).status_code == 204
        r = client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "glance-direct"}, "convert_to": "qcow2"})
        assert r.status_code == 400 and "not available" in r.text, r.text
        assert client.get(f"/v2/images/{image['id']}").json()["status"] == "uploading"
    finally:
        srv.kill(signal.SIGTERM)
    bad = ImagedServer(tmp_path / "bad", "--qemu-img", missing, "--blob-store", "file?convert=raw")
    with pytest.raises(RuntimeError) as refused:
        bad.start(timeout=20)
    assert "qemu-utils" in str(refused.value)
