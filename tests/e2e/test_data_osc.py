"""Image data through the `openstack` CLI (issue 3 acceptance): `image create --file` of a real qcow2
made by qemu-img and of a 1 GiB raw file, `image save` returns identical bytes, and the recorded
checksum / os_hash_value / virtual_size agree with md5sum, sha512sum and `qemu-img info`."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import (assert_nothing_kept, digests, qemu_info, random_bytes, run_tool, unique, wait_status)

GiB = 1 << 30
MiB = 1 << 20


def coreutils_digests(path: Path) -> dict:
    """md5sum and sha512sum of the file, run concurrently (the reference the issue names)."""
    def tool(name):
        return run_tool(name, str(path)).split()[0]
    with ThreadPoolExecutor(2) as pool:
        md5, sha512 = pool.map(tool, ["md5sum", "sha512sum"])
    return {"md5": md5, "sha512": sha512, "size": path.stat().st_size}


def test_osc_create_qcow2_file_and_save(osc, raw, server, disk, tmp_path):
    alice = osc["alice"]
    src = disk.qcow2("osc.qcow2", virtual=96 * MiB, seed=3)
    info = qemu_info(src)
    assert info["format"] == "qcow2" and info["virtual-size"] == 96 * MiB
    want = coreutils_digests(src)
    name = unique("osc-qcow2")

    created = alice.run("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", str(src), name)
    iid = created["id"]
    shown = alice.run("image", "show", iid)
    stored = raw["alice"].get(f"/v2/images/{iid}").json()
    for image in (shown, stored):
        assert image["status"] == "active", image
        assert image["size"] == want["size"]
        assert image["checksum"] == want["md5"]
        assert image["virtual_size"] == info["virtual-size"], (
            f"virtual_size {image['virtual_size']} != qemu-img info virtual-size {info['virtual-size']}")
    assert stored["os_hash_algo"] == "sha512"
    assert stored["os_hash_value"] == want["sha512"]
    assert stored["disk_format"] == "qcow2" and stored["container_format"] == "bare"

    out = tmp_path / "saved.qcow2"
    alice.run("image", "save", "--file", str(out), iid, json_out=False)
    assert coreutils_digests(out) == want
    assert out.read_bytes() == src.read_bytes()
    # what came back is still a valid qcow2 of the same disk
    assert qemu_info(out)["virtual-size"] == info["virtual-size"]
    assert run_tool("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(src), str(out)).startswith("Images are identical")

    alice.run("image", "delete", iid, json_out=False)
    assert raw["alice"].get(f"/v2/images/{iid}").status_code == 404
    assert_nothing_kept(server, iid)


@pytest.fixture
def one_gib_file(tmp_path):
    """1 GiB of incompressible data, written fast: a random 1 MiB block whose first 16 bytes carry
    the block number, so every MiB is distinct and a dropped, repeated or misplaced block changes
    every digest (the file has no holes)."""
    path = tmp_path / "one-gib.raw"
    base = bytearray(random_bytes(MiB, 1234))
    with open(path, "wb") as f:
        for i in range(GiB // MiB):
            base[0:16] = i.to_bytes(8, "big") + (i * 2654435761 % (1 << 64)).to_bytes(8, "big")
            f.write(base)
    yield path
    path.unlink(missing_ok=True)


def test_osc_create_1gib_raw_file_and_save(osc, raw, server, one_gib_file, tmp_path):
    alice = osc["alice"]
    src = one_gib_file
    want = coreutils_digests(src)
    assert want["size"] == GiB
    name = unique("osc-1g")

    created = alice.run("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(src), name, timeout=900)
    iid = created["id"]
    stored = raw["alice"].get(f"/v2/images/{iid}").json()
    assert stored["status"] == "active"
    assert stored["size"] == GiB
    assert stored["checksum"] == want["md5"]
    assert stored["os_hash_algo"] == "sha512" and stored["os_hash_value"] == want["sha512"]
    assert stored["virtual_size"] == GiB  # raw: the virtual size is the byte size
    assert server.blob_path(iid).stat().st_size == GiB
    assert server.temporaries() == []

    out = tmp_path / "saved.raw"
    alice.run("image", "save", "--file", str(out), iid, json_out=False, timeout=900)
    got = coreutils_digests(out)
    assert got == want, "openstack image save returned different bytes"
    out.unlink()

    alice.run("image", "delete", iid, json_out=False)
    assert_nothing_kept(server, iid)


def test_osc_create_with_import_glance_direct(osc, raw, server, disk):
    """`openstack image create --import` stages the file and imports it with glance-direct."""
    alice = osc["alice"]
    src = disk.qcow2("osc-import.qcow2", virtual=32 * MiB, seed=5)
    want = digests(src)
    created = alice.run("image", "create", "--import", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", str(src), unique("osc-import"))
    iid = created["id"]
    image = wait_status(raw["alice"], iid, ["active", "queued"], timeout=120)
    assert image["status"] == "active", image
    assert image["size"] == want["size"] and image["checksum"] == want["md5"]
    assert image["os_hash_value"] == want["sha512"]
    assert image["virtual_size"] == 32 * MiB
    assert not server.staging_path(iid).exists()  # the staged copy is gone once imported
    tasks = raw["alice"].get(f"/v2/images/{iid}/tasks").json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"]
    assert tasks[0]["type"] == "api_image_import"
    task_input = tasks[0]["input"]
    task_input = json.loads(task_input) if isinstance(task_input, str) else task_input
    assert task_input["import_req"]["method"]["name"] == "glance-direct"
