"""Issue 21 point 5: the file store leaves aligned 4 KiB blocks of zeros as holes. A blob keeps its
logical size and digests and downloads byte-equal; `GET /v2/info/usage` (sibling key `imaged_storage`)
and `/metrics` (`imaged_store_bytes{store,kind}`) report logical and physical bytes; quotas keep
counting logical bytes; `sparse=false` in a file store spec writes every byte; S3 counts physical =
logical in usage and is not listed for the gauges."""

import hashlib
import os
import re
import uuid

import pytest
import requests

from conftest import config_check, download_digest, GlanceCLI, ImagedServer, Raw, random_bytes, s3_env, s3_process_env, unique, upload, wait_status

MiB = 1 << 20
GiB = 1 << 30


def physical(path) -> int:
    """Bytes the file takes on disk (st_blocks is in 512-byte units whatever the file system)."""
    return os.stat(path).st_blocks * 512


def store_bytes(base: str, store: str, kind: str) -> int:
    text = requests.get(base + "/metrics", timeout=30).text
    m = re.search(r'^imaged_store_bytes\{(?=[^}]*store="%s")(?=[^}]*kind="%s")[^}]*\} (\S+)$' % (store, kind), text, re.M)
    assert m, f"no imaged_store_bytes for {store}/{kind} in /metrics"
    return int(float(m.group(1)))


def storage(client: Raw) -> dict:
    r = client.get("/v2/info/usage")
    assert r.status_code == 200, r.text
    return r.json()


def sparse_source(path, size: int, pieces: list[tuple[int, int]]) -> str:
    """A sparse file of `size` bytes with random data at the (offset, length) pieces (in order, apart),
    and its sha256, hashed as it is made (reading 4 GiB back, holes included, would take seconds)."""
    h, zeros, at = hashlib.sha256(), bytes(4 * MiB), 0
    with open(path, "wb") as f:
        f.truncate(size)
        for i, (offset, length) in enumerate(pieces):
            for j in range(at, offset, len(zeros)):
                h.update(zeros[:min(len(zeros), offset - j)])
            f.seek(offset)
            for j in range(0, length, 4 * MiB):
                chunk = random_bytes(min(4 * MiB, length - j), seed=1000 * i + j // (4 * MiB))
                f.write(chunk)
                h.update(chunk)
            at = offset + length
        for j in range(at, size, len(zeros)):
            h.update(zeros[:min(len(zeros), size - j)])
    return h.hexdigest()


def test_4gib_raw_image_with_256mib_of_data_stays_sparse(tmp_path):
    srv = ImagedServer(tmp_path / "srv")
    srv.start()
    try:
        alice = Raw(srv.url, "alice")
        # 256 MiB of data in four runs (one not 4 KiB-aligned, one at the very end), 3.75 GiB of zeros.
        pieces = [(0, 64 * MiB), (GiB + 12345, 64 * MiB), (3 * GiB, 64 * MiB), (4 * GiB - 64 * MiB, 64 * MiB)]
        source = tmp_path / "disk.raw"
        sha256 = sparse_source(source, 4 * GiB, pieces)
        image = alice.create(name=unique("sparse"), disk_format="raw", container_format="bare")
        with open(source, "rb") as f:
            # The pin proves the digests are of the logical bytes, zeros included.
            r = upload(alice, image["id"], f, headers={"X-Image-Meta-Expected-Hash": "sha256:" + sha256})
        assert r.status_code == 204, r.text
        got = wait_status(alice, image["id"], "active")
        assert got["size"] == 4 * GiB

        blob = srv.blob_path(image["id"])
        assert os.stat(blob).st_size == 4 * GiB
        on_disk = physical(blob)
        assert 256 * MiB <= on_disk <= 300 * MiB, f"{on_disk / MiB:.1f} MiB on disk"

        assert download_digest(alice, image["id"], "sha256") == (sha256, 4 * GiB)

        # Usage: the quota's figure stays logical (MiB); the sibling key gives both, in bytes.
        u = storage(alice)
        assert u["usage"]["image_size_total"]["usage"] == 4096
        assert u["imaged_storage"] == {"logical_bytes": 4 * GiB, "physical_bytes": on_disk}
        # Another project sees none of it.
        assert storage(Raw(srv.url, "bob"))["imaged_storage"] == {"logical_bytes": 0, "physical_bytes": 0}

        assert store_bytes(srv.url, "file", "logical") == 4 * GiB
        assert store_bytes(srv.url, "file", "physical") == on_disk
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def three_stores(tmp_path_factory):
    """A sparse file store, a file store with `sparse=false` and an S3 store."""
    s3 = s3_env()
    prefix = f"e2e-sparse-{uuid.uuid4().hex[:10]}/"
    # Through IMAGED_STORE (a comma-separated list): the spec's option must not need a comma.
    env = {**s3_process_env(s3), "IMAGED_STORE": f"thin=file, thick=file?sparse=false, bucket=s3:{s3['S3_BUCKET']}"}
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-sparse-stores"),
                       "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-region", s3["S3_REGION"], "--s3-key-prefix", prefix,
                       "--s3-part-mib", "5", env=env)
    srv.start()
    yield srv
    srv.kill()


def test_sparse_false_and_s3_count_every_byte(three_stores):
    srv = three_stores
    bob = Raw(srv.url, "bob")
    # 1 MiB of data, 15 MiB of zeros, and an odd tail: 16 MiB + 3 bytes.
    data = random_bytes(MiB, seed=5) + bytes(15 * MiB) + b"end"
    want = hashlib.sha256(data).hexdigest()
    ids = {}
    for store in ("thin", "thick", "bucket"):
        image = bob.create(name=unique(store), disk_format="raw", container_format="bare")
        r = upload(bob, image["id"], data, headers={"X-Image-Meta-Store": store})
        assert r.status_code == 204, r.text
        got = wait_status(bob, image["id"], "active")
        assert got["stores"] == store and got["size"] == len(data) and got["os_hash_value"] == hashlib.sha512(data).hexdigest()
        r = bob.get(f"/v2/images/{image['id']}/file")
        assert hashlib.sha256(r.content).hexdigest() == want
        ids[store] = image["id"]

    thin = srv.data_dir / "stores" / "thin" / "images" / ids["thin"]
    thick = srv.data_dir / "stores" / "thick" / "images" / ids["thick"]
    assert os.stat(thin).st_size == os.stat(thick).st_size == len(data)
    assert physical(thin) <= MiB + 8192
    assert physical(thick) >= len(data)

    detail = {s["id"]: s for s in Raw(srv.url, "admin").get("/v2/info/stores/detail").json()["stores"]}
    assert detail["thin"]["properties"]["thin_provisioning"] is True
    assert detail["thick"]["properties"]["thin_provisioning"] is False

    u = storage(bob)
    assert u["usage"]["image_size_total"]["usage"] == 49  # 3 × (16 MiB + 3 bytes), rounded up to MiB
    assert u["imaged_storage"] == {"logical_bytes": 3 * len(data),
                                   "physical_bytes": physical(thin) + physical(thick) + len(data)}

    # The real glance CLI reads `usage` only: the sibling key leaves its table as it was.
    table = GlanceCLI(srv.url, "bob").run("usage").stdout
    found = re.findall(r"^\|\s*(image_\w+)\s*\|\s*(-?\d+)\s*\|\s*(\d+)\s*\|$", table, re.M)
    rows = {quota: int(used) for quota, _limit, used in found}
    assert rows == {"image_size_total": 49, "image_stage_total": 0, "image_count_total": 3, "image_count_uploading": 0}, table

    assert store_bytes(srv.url, "thin", "physical") == physical(thin)
    assert store_bytes(srv.url, "thick", "physical") == physical(thick)
    # No bucket listing per scrape: S3 stores have no gauge (their physical bytes are their size, as in usage).
    assert 'store="bucket"' not in requests.get(srv.url + "/metrics", timeout=30).text


def test_the_sparse_and_direct_options_of_a_file_store_spec(tmp_path):
    def check(*args):
        return config_check("--data-dir", str(tmp_path), *args)

    r = check("--blob-store", "file?sparse=false")
    assert r.returncode == 0, r.stderr
    assert f"file {tmp_path}/blobs (not sparse)" in r.stdout
    r = check("--store", "a=file:/srv/a?sparse=true", "--store", "b=file")
    assert r.returncode == 0, r.stderr
    assert "file /srv/a\n" in r.stdout + "\n" and "(not sparse)" not in r.stdout
    # Direct writes are the default; `direct=false` keeps uploads in the page cache.
    assert "(page cache writes)" not in r.stdout
    r = check("--blob-store", "file:/srv/b?direct=false&sparse=false")
    assert r.returncode == 0, r.stderr
    assert "file /srv/b (not sparse) (page cache writes)" in r.stdout
    for bad in ("file?sparse=maybe", "file,sparse=false", "file:?sparse=false", "file?convert=vhd", "file?colour=red",
                "s3:b?sparse=false", "file?sparse=false&sparse=true", "file?direct=no", "s3:b?direct=false",
                "file?direct=false&direct=true"):
        r = check("--blob-store", bad)
        assert r.returncode != 0 and "a blob store is file, file:DIR" in r.stderr, (bad, r.stdout, r.stderr)
