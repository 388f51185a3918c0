"""Disk-format safety (reference §11.1, issue 3 §4): real images made by qemu-img / genisoimage in this
run, uploaded with a raw HTTP PUT (and through `openstack image create --file`, glance-direct and
web-download), are accepted or refused exactly as the rules say. A refusal is a 415 whose message
names the rule; the image is queued again, keeps no blob, no temporary is left, and a correct
upload afterwards succeeds."""

import re
import uuid

import pytest

from conftest import (Raw, assert_data_facts, assert_nothing_kept, digests, iso_volume_size, qemu_info, unique,
                      upload, vhd_current_size, wait_status, wait_task_finished)

MiB = 1 << 20


def refused(client: Raw, srv, path, declared: str, rule: str, container: str = "bare") -> dict:
    """Uploads `path` declared as `declared`; asserts a 415 naming `rule` (regex) and a clean refusal."""
    image = client.create(name=unique("unsafe"), disk_format=declared, container_format=container)
    iid = image["id"]
    r = upload(client, iid, path.read_bytes())
    assert r.status_code == 415, f"{path.name} as {declared}: expected 415, got {r.status_code}: {r.text[:500]}"
    assert re.search(rule, r.text, re.I), f"{path.name} as {declared}: message does not name the rule /{rule}/: {r.text}"
    after = client.get(f"/v2/images/{iid}").json()
    assert after["status"] == "queued", after
    assert after["size"] is None and after["virtual_size"] is None and after["checksum"] is None, after
    assert_nothing_kept(srv, iid)
    return after


def accepted(client: Raw, srv, path, declared: str) -> dict:
    image = client.create(name=unique("safe"), disk_format=declared, container_format="bare")
    r = upload(client, image["id"], path.read_bytes())
    assert r.status_code == 204, f"{path.name} as {declared}: expected 204, got {r.status_code}: {r.text[:500]}"
    got = client.get(f"/v2/images/{image['id']}").json()
    assert_data_facts(got, digests(path))
    assert srv.blob_path(image["id"]).stat().st_size == path.stat().st_size
    assert srv.temporaries() == []
    return got


# ---------------------------------------------------------------------------------------------
# refused


def test_qcow2_backing_file_refused_then_good_retry(raw, server, disk):
    alice = raw["alice"]
    bad = disk.qcow2_with_backing_file()
    assert "backing-filename" in qemu_info(bad)
    after = refused(alice, server, bad, "qcow2", r"backing")
    # the same image takes a correct upload afterwards
    good = disk.qcow2()
    r = upload(alice, after["id"], good.read_bytes())
    assert r.status_code == 204, r.text
    image = alice.get(f"/v2/images/{after['id']}").json()
    assert_data_facts(image, digests(good))
    assert image["virtual_size"] == qemu_info(good)["virtual-size"]
    assert alice.get(f"/v2/images/{after['id']}/file").content == good.read_bytes()


def test_qcow2_backing_file_refused_even_declared_raw(raw, server, disk):
    """Declared raw accepts any *safe* data; the safety checks of the detected format still run."""
    refused(raw["alice"], server, disk.qcow2_with_backing_to_host_file(), "raw", r"backing")


def test_qcow2_external_data_file_refused(raw, server, disk):
    bad = disk.qcow2_with_data_file()
    assert qemu_info(bad)["format-specific"]["data"].get("data-file")
    refused(raw["alice"], server, bad, "qcow2", r"data[ _-]?file")


def test_qcow2_unknown_incompatible_feature_refused(raw, server, disk):
    refused(raw["alice"], server, disk.qcow2_unknown_incompatible_feature(), "qcow2", r"incompatible feature")


def test_qcow2_absurd_virtual_size_refused(raw, server, disk):
    bad = disk.qcow2_huge_virtual()  # 20 TiB > the default --max-virtual-size of 16 TiB
    assert qemu_info(bad)["virtual-size"] == 20 << 40
    refused(raw["alice"], server, bad, "qcow2", r"virtual[ _]size")


def test_qed_refused(raw, server, disk):
    # qed is not a Glance disk_format; declared raw (accepts anything safe) it is still refused
    refused(raw["alice"], server, disk.qed(), "raw", r"qed")


def test_vmdk_monolithic_flat_descriptor_refused(raw, server, disk):
    """The descriptor of a monolithicFlat vmdk names its flat extent file (CVE-2022-47951 shape)."""
    desc = disk.vmdk("monolithicFlat")
    text = desc.read_text()
    assert 'createType="monolithicFlat"' in text and "-flat.vmdk" in text
    refused(raw["alice"], server, desc, "vmdk", r"descriptor|extent")


def test_vmdk_sparse_whose_descriptor_names_a_host_file_refused(raw, server, disk):
    bad = disk.vmdk_sparse_with_descriptor(
        "extent-passwd.vmdk",
        lambda t: re.sub(r'RW (\d+) SPARSE "[^"]+"', r'RW \1 FLAT "/etc/passwd" 0', t))
    refused(raw["alice"], server, bad, "vmdk", r"extent")


def test_vmdk_disallowed_create_type_refused(raw, server, disk):
    bad = disk.vmdk_sparse_with_descriptor(
        "createtype-flat.vmdk", lambda t: t.replace('createType="monolithicSparse"', 'createType="monolithicFlat"'))
    refused(raw["alice"], server, bad, "vmdk", r"createType")


def test_polyglot_refused(raw, server, disk):
    """A qcow2 that is also an ISO: more than one format detected."""
    refused(raw["alice"], server, disk.qcow2_iso_polyglot(), "qcow2", r"multiple formats")


@pytest.mark.parametrize("maker,declared", [
    ("raw", "qcow2"),    # raw data declared qcow2
    ("qcow2", "vmdk"),   # qcow2 declared vmdk
    ("iso", "qcow2"),
    ("vdi", "vhd"),
    ("vhd", "vhdx"),
])
def test_declared_format_contradicted_by_data(raw, server, disk, maker, declared):
    path = {"raw": lambda: disk.raw_with_data("plain.raw", virtual=8 * MiB, data=2 * MiB, seed=5),
            "qcow2": disk.qcow2, "iso": disk.iso, "vdi": disk.vdi, "vhd": disk.vhd}[maker]()
    refused(raw["alice"], server, path, declared, rf"disk_format {declared} does not match stream data {maker}")


def test_refused_through_openstack_cli(osc, raw, server, disk):
    """`openstack image create --file` of a qcow2 with a backing file fails; nothing is kept."""
    iid = str(uuid.uuid4())
    proc = osc["alice"].run("image", "create", "--id", iid, "--disk-format", "qcow2", "--container-format", "bare",
                            "--file", str(disk.qcow2_with_backing_file()), unique("osc-unsafe"), check=False)
    assert proc.returncode != 0
    assert "415" in proc.stderr or re.search(r"backing", proc.stderr, re.I), proc.stderr
    # openstacksdk deletes the image after a failed upload; either way it holds no data
    r = raw["alice"].get(f"/v2/images/{iid}")
    assert r.status_code == 404 or (r.json()["status"] == "queued" and r.json()["size"] is None), r.text
    assert_nothing_kept(server, iid)


def test_unsafe_image_refused_on_glance_direct_import(import_server, disk):
    srv = import_server
    alice = Raw(srv.url, "alice")
    iid = alice.create(name=unique("direct-unsafe"), disk_format="qcow2", container_format="bare")["id"]
    r = alice.put(f"/v2/images/{iid}/stage", data=disk.qcow2_with_backing_file().read_bytes(),
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}}).status_code == 202
    task = wait_task_finished(alice, iid)
    assert task["status"] == "failure"
    assert re.search(r"backing", task["message"], re.I), task
    image = wait_status(alice, iid, "queued", timeout=30)
    assert "os_glance_failed_import" in image and image["size"] is None
    assert_nothing_kept(srv, iid)


def test_unsafe_image_refused_on_web_download(import_server, origin, disk):
    srv = import_server
    alice = Raw(srv.url, "alice")
    uri = origin.serve(f"/{unique('unsafe')}.qcow2", disk.qcow2_with_data_file())
    iid = alice.create(name=unique("web-unsafe"), disk_format="qcow2", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 202, r.text
    task = wait_task_finished(alice, iid)
    assert task["status"] == "failure"
    assert re.search(r"data[ _-]?file", task["message"], re.I), task
    image = wait_status(alice, iid, "queued", timeout=30)
    assert image["size"] is None and image["checksum"] is None
    assert_nothing_kept(srv, iid)


# ---------------------------------------------------------------------------------------------
# accepted


def test_qcow2_accepted_with_virtual_size(raw, server, disk):
    path = disk.qcow2()
    image = accepted(raw["alice"], server, path, "qcow2")
    assert image["virtual_size"] == qemu_info(path)["virtual-size"] == 64 * MiB


def test_qcow2_declared_raw_accepted(raw, server, disk):
    """Glance treats `raw` as "anything (safe)": accepted, virtual size = byte size (§11.1 rule 4)."""
    path = disk.qcow2()
    image = accepted(raw["alice"], server, path, "raw")
    assert image["virtual_size"] == path.stat().st_size


def test_raw_accepted(raw, server, disk):
    path = disk.raw_with_data("plain.raw", virtual=8 * MiB, data=2 * MiB, seed=5)
    image = accepted(raw["alice"], server, path, "raw")
    assert image["virtual_size"] == 8 * MiB


def test_iso_accepted(raw, server, disk):
    path = disk.iso()
    image = accepted(raw["alice"], server, path, "iso")
    assert image["virtual_size"] == iso_volume_size(path)
    assert image["virtual_size"] > 2 * MiB


def test_vhd_accepted(raw, server, disk):
    path = disk.vhd()
    assert qemu_info(path)["format"] == "vpc"
    image = accepted(raw["alice"], server, path, "vhd")
    assert image["virtual_size"] == vhd_current_size(path)


def test_vhdx_accepted(raw, server, disk):
    path = disk.vhdx()
    image = accepted(raw["alice"], server, path, "vhdx")
    assert image["virtual_size"] == qemu_info(path)["virtual-size"]


def test_vdi_accepted(raw, server, disk):
    path = disk.vdi()
    image = accepted(raw["alice"], server, path, "vdi")
    assert image["virtual_size"] == qemu_info(path)["virtual-size"]


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized"])
def test_vmdk_accepted(raw, server, disk, subformat):
    path = disk.vmdk(subformat)
    image = accepted(raw["alice"], server, path, "vmdk")
    assert image["virtual_size"] == qemu_info(path)["virtual-size"]
