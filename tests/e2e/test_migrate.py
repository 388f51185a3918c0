"""`imaged migrate`: an embedded installation of 1,000 images with data moves to PostgreSQL + S3 (interrupted
once with SIGKILL, then run again), is served from there identically, and moves back to a fresh embedded
data directory, again identical. The tool itself re-digests every blob; the tests compare what the API
shows and the bytes it serves."""

import concurrent.futures
import random
import signal
import subprocess
import uuid

import pytest

from conftest import (ImagedServer, Raw, imaged_bin, postgres_url, random_bytes, s3_env, scale_out_config, unique,
                      upload)

COUNT = 1000


def list_all(client: Raw) -> dict:
    """Every image the admin sees, by id, following `next` links."""
    out, path = {}, "/v2/images?limit=200&visibility=all&sort=created_at:asc,id:asc"
    while path:
        r = client.get(path)
        assert r.status_code == 200, r.text
        body = r.json()
        for image in body["images"]:
            out[image["id"]] = image
        path = body.get("next")
    return out


def members_of(client: Raw, ids) -> dict:
    return {i: sorted((m["member_id"], m["status"]) for m in client.get(f"/v2/images/{i}/members").json()["members"])
            for i in ids}


def populate(srv: ImagedServer) -> dict:
    """1,000 images (alice's; the public ones the admin's): most with data, some queued, tags, properties, shares; a few deleted."""
    alice, bob = Raw(srv.url, "alice"), Raw(srv.url, "bob")
    data = {}

    def make(n: int):
        # public images are admin-only in Glance's policy
        client = Raw(srv.url, "admin" if n % 4 == 2 else "alice")
        body = {"name": f"mig-{n:04d}", "disk_format": "raw", "container_format": "bare",
                "visibility": ["private", "shared", "public", "community"][n % 4], "tags": [f"t{n % 5}"],
                f"prop_{n % 3}": f"value {n}"}
        image = client.create(**body)
        if n % 10 != 9:
            blob = random_bytes(4096 + (n * 37) % 20000, 7000 + n)
            r = upload(client, image["id"], blob)
            assert r.status_code == 204, r.text
            return image["id"], blob
        return image["id"], None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for image_id, blob in pool.map(make, range(COUNT)):
            data[image_id] = blob
    ids = sorted(data)
    shared = [i for i in ids if alice.get(f"/v2/images/{i}").json()["visibility"] == "shared"][:40]
    for i in shared:
        assert alice.post(f"/v2/images/{i}/members", json={"member": "p-bob"}).status_code == 200
    for i in shared[:20]:
        assert bob.put(f"/v2/images/{i}/members/p-bob", json={"status": "accepted"}).status_code == 200
    admin = Raw(srv.url, "admin")  # some are the admin's public images
    for i in [i for i in ids if i not in shared][:5]:  # the shares stay countable
        assert admin.delete(f"/v2/images/{i}").status_code == 204
        del data[i]
    return data


def run_migrate(*args, env, kill_after_images: int | None = None) -> str:
    argv = [str(imaged_bin()), "migrate", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = []
    for line in proc.stdout:
        out.append(line)
        if kill_after_images and "images so far" in line and int(line.split("migrate: ")[1].split()[0]) >= kill_after_images:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=600)
    text = "".join(out)
    if kill_after_images:
        assert proc.returncode == -signal.SIGKILL, text
    else:
        assert proc.returncode == 0, text
    return text


def check_same(before: dict, members_before: dict, srv: ImagedServer, data: dict, sample: list[str]):
    admin = Raw(srv.url, "admin")
    after = list_all(admin)
    assert after.keys() == before.keys()
    for i in before:
        assert after[i] == before[i], i
    assert members_of(admin, members_before) == members_before
    alice = Raw(srv.url, "alice")
    for i in sample:
        r = alice.get(f"/v2/images/{i}/file")
        assert r.status_code == 200 and r.content == data[i], i


@pytest.fixture
def servers():
    """Servers a test starts; killed at the end whatever happened."""
    made: list[ImagedServer] = []
    yield made
    for srv in made:
        srv.kill()


def test_migrate_embedded_to_postgres_s3_and_back(tmp_path, servers):
    embedded = ImagedServer(tmp_path / "embedded")
    servers.append(embedded)
    embedded.start()
    data = populate(embedded)
    admin = Raw(embedded.url, "admin")
    before = list_all(admin)
    assert len(before) == COUNT - 5
    members_before = members_of(admin, [i for i, img in before.items() if img["visibility"] == "shared"])
    assert sum(len(m) for m in members_before.values()) == 40
    embedded.kill(signal.SIGTERM)

    tag = uuid.uuid4().hex[:12]
    cluster_args, env = scale_out_config(tag)
    s3 = s3_env()
    catalog = postgres_url(f"e2e_{tag}")
    to_scale_out = ["--data-dir", str(embedded.data_dir), "--to-catalog", catalog, "--to-blob-store", f"s3:{s3['S3_BUCKET']}",
                    "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-region", s3["S3_REGION"], "--to-s3-key-prefix", f"e2e-{tag}/",
                    "--s3-part-mib", "5"]
    first = run_migrate(*to_scale_out, env=env, kill_after_images=200)
    assert "done" not in first
    second = run_migrate(*to_scale_out, env=env)
    done = [l for l in second.splitlines() if "migrate: done" in l]
    assert done, second
    assert f"images {COUNT} (" in done[0] and "digests verified" in done[0], done[0]
    skipped = int(done[0].split("(")[1].split()[0])
    assert skipped >= 200, done[0]

    sample = random.Random(5).sample(sorted(i for i, b in data.items() if b is not None), 60)
    scale_out = ImagedServer(tmp_path / "scale-out", *cluster_args, env=env)
    servers.append(scale_out)
    scale_out.start()
    check_same(before, members_before, scale_out, data, sample)
    scale_out.kill(signal.SIGTERM)

    back_dir = tmp_path / "back"
    back = ["--from-catalog", catalog, "--from-blob-store", f"s3:{s3['S3_BUCKET']}", "--from-s3-key-prefix", f"e2e-{tag}/",
            "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-region", s3["S3_REGION"],
            "--to-data-dir", str(back_dir / "data"), "--to-catalog", "sqlite", "--to-blob-store", "file"]
    out = run_migrate(*back, env=env)
    assert f"images {COUNT} (0 already there)" in out, out
    returned = ImagedServer(back_dir)
    servers.append(returned)
    returned.start()
    check_same(before, members_before, returned, data, sample)
    # The files are where the embedded layout keeps them, byte for byte.
    for i in sample[:10]:
        assert returned.blob_path(i).read_bytes() == data[i]
    returned.kill(signal.SIGTERM)
