#!/usr/bin/env python3
"""Writes the committed seed corpus under Fuzz/corpus/<target>/ (run it again to refresh it).

Disk images are made with qemu-img, genisoimage and sgdisk in a scratch directory, then cut to the
bytes the inspector reads, encoded as FuzzInspector's input (see Fuzz/FuzzInspector): small headers
as they are, the rest as a sparse stream (the non-zero 512-byte blocks over zeros), so a 6 MiB vhdx
costs a few KiB. Hostile variants are those the project's tests build (tests/e2e/conftest.py,
Tests/ImageDataTests/FormatInspectorTests.swift). Request seeds are bodies, query strings and headers
like the e2e tests send, each behind the selector bytes its target reads first.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"
MAX_STREAM = 6 << 20


def write(target: str, name: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---------------------------------------------------------------------------------------------
# FuzzInspector: byte 0 = encoding (bit 7: sparse) and chunk seed (bits 0-6), byte 1 = options.

CHUNK_SEED = 0x2A


def dense(data: bytes, seed: int = CHUNK_SEED, options: int = 0) -> bytes:
    return bytes([seed & 0x7F, options]) + data


def sparse(data: bytes, seed: int = CHUNK_SEED, options: int = 0, length: int | None = None) -> bytes:
    """The non-zero 512-byte blocks of `data` (merged into records of at most 65535 bytes)."""
    total = min(len(data) if length is None else length, MAX_STREAM)
    out = bytearray([0x80 | (seed & 0x7F), options]) + total.to_bytes(3, "big")
    block = 512
    offset = 0
    while offset < min(len(data), total):
        if not any(data[offset:offset + block]):
            offset += block
            continue
        start = offset
        while offset < min(len(data), total) and any(data[offset:offset + block]) and offset - start < 65535 - block:
            offset += block
        chunk = data[start:min(offset, total)]
        out += start.to_bytes(3, "big") + len(chunk).to_bytes(2, "big") + chunk
    return bytes(out)


def inspector_seeds() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="imaged-corpus-"))
    try:
        def q(*args):
            run("qemu-img", *args, cwd=tmp)

        def read(name):
            return (tmp / name).read_bytes()

        seeds: dict[str, bytes] = {}
        seeds["raw-text"] = dense(b"imaged raw disk\n" * 64)
        seeds["raw-zeros-64k"] = sparse(bytes(64 << 10))
        seeds["empty"] = dense(b"")

        q("create", "-q", "-f", "qcow2", "-o", "compat=1.1", "v3.qcow2", "1G")
        q("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "1G")
        q("create", "-q", "-f", "qcow2", "-b", "v3.qcow2", "-F", "qcow2", "backed.qcow2")
        q("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", "passwd.qcow2", "1M")
        q("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp}/x.data,data_file_raw=on", "datafile.qcow2", "16M")
        q("create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=123456", "-o",
          "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "encrypted.qcow2", "16M")
        q("create", "-q", "-f", "qcow2", "huge.qcow2", "20T")
        for name in ["v3", "v2", "backed", "passwd", "datafile", "encrypted", "huge"]:
            seeds[f"qcow2-{name}"] = dense(read(f"{name}.qcow2")[:1024])
        v3 = bytearray(read("v3.qcow2")[:1024])
        incompat = bytearray(v3)
        incompat[72:80] = (int.from_bytes(v3[72:80], "big") | (1 << 63)).to_bytes(8, "big")
        seeds["qcow2-unknown-incompatible-bit"] = dense(bytes(incompat))
        v4 = bytearray(v3)
        v4[4:8] = (4).to_bytes(4, "big")
        seeds["qcow2-version-4"] = dense(bytes(v4))
        short = bytearray(v3)
        short[100:104] = (72).to_bytes(4, "big")
        seeds["qcow2-short-header-length"] = dense(bytes(short))
        seeds["qcow2-truncated"] = dense(bytes(v3[:50]))
        seeds["qcow2-huge-1g-limit"] = dense(read("huge.qcow2")[:1024], options=1)
        # A qcow2 that is also an ISO 9660 image (a primary volume descriptor at 32 KiB).
        poly = bytearray(read("v3.qcow2")[:0x8800].ljust(0x8800, b"\0"))
        pvd = bytearray(2048)
        pvd[0:7] = b"\x01CD001\x01"
        pvd[80:84] = (64).to_bytes(4, "little")
        pvd[84:88] = (64).to_bytes(4, "big")
        pvd[128:130] = (2048).to_bytes(2, "little")
        pvd[130:132] = (2048).to_bytes(2, "big")
        poly[0x8000:0x8800] = pvd
        seeds["polyglot-qcow2-iso"] = sparse(bytes(poly))

        q("create", "-q", "-f", "qed", "x.qed", "16M")
        seeds["qed"] = dense(read("x.qed")[:512])

        q("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "sparse.vmdk", "1G")
        q("create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", "stream.vmdk", "1G")
        q("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "1M")
        q("create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "split.vmdk", "1M")
        sp = read("sparse.vmdk")
        desc_end = (int.from_bytes(sp[28:36], "little") + int.from_bytes(sp[36:44], "little")) * 512
        seeds["vmdk-monolithic-sparse"] = sparse(sp[:desc_end])
        seeds["vmdk-stream-optimized"] = sparse(read("stream.vmdk"))
        seeds["vmdk-descriptor-monolithic-flat"] = dense(read("flat.vmdk"))
        seeds["vmdk-descriptor-two-gb-split"] = dense(read("split.vmdk"))
        text = sp[512:desc_end].split(b"\0", 1)[0]

        def rewritten(old: bytes, new: bytes) -> bytes:
            data = bytearray(sp[:desc_end])
            region = text.replace(old, new)
            assert region != text
            data[512:desc_end] = region.ljust(desc_end - 512, b"\0")[:desc_end - 512]
            return sparse(bytes(data))
        seeds["vmdk-extent-names-host-file"] = rewritten(b'"sparse.vmdk"', b'"/etc/passwd"')
        seeds["vmdk-create-type-flat"] = rewritten(b'createType="monolithicSparse"', b'createType="monolithicFlat"')
        seeds["vmdk-odd-descriptor-line"] = rewritten(b"# The Disk Data Base", b"include /etc/shadow  ")
        seeds["vmdk-truncated"] = dense(sp[:40])
        seeds["vmdk-cowd"] = dense(b"COWD" + sp[4:512])

        q("create", "-q", "-f", "vpc", "dynamic.vhd", "1G")
        q("create", "-q", "-f", "vpc", "-o", "subformat=fixed", "fixed.vhd", "1M")
        dyn = read("dynamic.vhd")
        seeds["vhd-dynamic"] = dense(dyn[:1536])
        seeds["vhd-fixed"] = sparse(read("fixed.vhd"))
        diff = bytearray(dyn[:1536])
        diff[60:64] = (4).to_bytes(4, "big")
        seeds["vhd-differencing"] = dense(bytes(diff))

        q("create", "-q", "-f", "vhdx", "x.vhdx", "64M")
        vhdx = read("x.vhdx")
        seeds["vhdx"] = sparse(vhdx)
        seeds["vhdx-1-byte-chunks-head"] = sparse(vhdx, seed=1)
        parent = bytearray(vhdx[:MAX_STREAM])
        # The metadata table: add a parent locator entry after the last one (as a differencing disk has).
        meta = parent.find(b"metadata", 1 << 20)
        if meta > 0:
            count = int.from_bytes(parent[meta + 10:meta + 12], "little")
            entry = meta + 32 + count * 32
            guid = bytes.fromhex("2d5fd3a80bb34d45abf7d3d84834ab0c")
            parent[entry:entry + 32] = guid + parent[meta + 32 + 16:meta + 32 + 32]
            parent[meta + 10:meta + 12] = (count + 1).to_bytes(2, "little")
            seeds["vhdx-parent-locator"] = sparse(bytes(parent))

        q("create", "-q", "-f", "vdi", "x.vdi", "1G")
        seeds["vdi"] = dense(read("x.vdi")[:512])

        q("create", "-q", "-f", "luks", "--object", "secret,id=sec0,data=123456", "-o",
          "key-secret=sec0,iter-time=10", "x.luks", "16M")
        luks = read("x.luks")
        seeds["luks"] = dense(luks[:1024])
        luks2 = bytearray(luks[:1024])
        luks2[6:8] = (2).to_bytes(2, "big")
        seeds["luks-version-2"] = dense(bytes(luks2))

        tree = tmp / "tree"
        tree.mkdir()
        (tree / "README.txt").write_text("imaged fuzz iso\n")
        run("genisoimage", "-quiet", "-o", str(tmp / "x.iso"), "-V", "IMAGEDFUZZ", "-J", "-r", str(tree), cwd=tmp)
        iso = read("x.iso")
        seeds["iso"] = sparse(iso[:0x9000])
        hybrid = bytearray(iso[:0x9000])
        hybrid[446:462] = bytes([0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF]) + (1).to_bytes(4, "little") + (0x1000).to_bytes(4, "little")
        hybrid[510:512] = b"\x55\xAA"
        seeds["iso-gpt-hybrid"] = sparse(bytes(hybrid))
        seeds["iso-truncated-pvd"] = sparse(iso[:0x8100])

        with open(tmp / "gpt.raw", "wb") as f:
            f.truncate(4 << 20)
        run("sgdisk", "-o", "-n", "1:2048:0", str(tmp / "gpt.raw"), cwd=tmp)
        gpt = read("gpt.raw")
        seeds["gpt"] = sparse(gpt)
        extra = bytearray(gpt[:1024])
        extra[462:478] = bytes([0x80, 0x00, 0x01, 0x00, 0x83, 0xFE, 0xFF, 0xFF]) + (2048).to_bytes(4, "little") + (100).to_bytes(4, "little")
        seeds["gpt-extra-mbr-partition"] = dense(bytes(extra))
        bad_boot = bytearray(gpt[:1024])
        bad_boot[446] = 0x42
        seeds["gpt-bad-boot-flag"] = dense(bytes(bad_boot))
        mbr = bytearray(512)
        mbr[446:462] = bytes([0x80, 0x20, 0x21, 0x00, 0x83, 0xFE, 0xFF, 0xFF]) + (2048).to_bytes(4, "little") + (8192).to_bytes(4, "little")
        mbr[510:512] = b"\x55\xAA"
        seeds["mbr-linux-partition"] = dense(bytes(mbr))
        fat = bytearray(512)
        fat[0:3] = b"\xEB\x3C\x90"
        fat[3:11] = b"mkfs.fat"
        fat[0x10] = 2
        fat[0x15] = 0xF8
        fat[450] = 0xEE
        fat[510:512] = b"\x55\xAA"
        seeds["fat-boot-record"] = dense(bytes(fat))

        for name, data in seeds.items():
            write("FuzzInspector", name, data)
    finally:
        shutil.rmtree(tmp)


# ---------------------------------------------------------------------------------------------
# Request decoders.

def js(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


UUID = "11111111-2222-4333-8444-555555555555"


def json_seeds() -> None:
    docs = {
        "image": {"name": "cirros", "disk_format": "qcow2", "container_format": "bare", "visibility": "private",
                  "tags": ["a", "b"], "min_disk": 1, "protected": False, "os_distro": None, "size": 1.5e3},
        "escapes": "\"\\/\b\f\n\r\t\u00e9\U0001F600 \\u0000",
        "numbers": [0, -0, 1, -1, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1e308, 5e-324, 0.1, -1.5E+3],
        "nested": [[[[{"a": [{"b": [[]]}]}]]]],
        "duplicate-keys": {"a": 1, "b": 2, "a": 3},
    }
    for name, doc in docs.items():
        write("FuzzJSON", name, json.dumps(doc, ensure_ascii=False).encode())
    write("FuzzJSON", "duplicate-keys", b'{"a":1,"b":2,"a":{"c":[true,false,null]}}')
    write("FuzzJSON", "bom-whitespace", b'\xef\xbb\xbf \t\r\n{"k" : [ 1 , 2 ] }\n')
    write("FuzzJSON", "surrogates", b'["\\ud83d\\ude00","\\u00e9","\\uDBFF\\uDFFF"]')
    write("FuzzJSON", "malformed", b'{"a":[1,2,}')


def openstack_seeds() -> None:
    def seed(name, request, caller, image, payload):
        write("FuzzOpenStack", name, bytes([request, caller, image]) + payload)
    seed("create", 0, 1, 0, js({"name": "cirros", "disk_format": "qcow2", "container_format": "bare", "visibility": "private",
                                "tags": ["small", "test"], "min_disk": 1, "min_ram": 64, "os_distro": "cirros",
                                "hw_disk_bus": "virtio", "kernel_id": UUID}))
    seed("create-admin-public", 0, 0, 0, js({"id": UUID, "name": "public", "visibility": "public", "protected": True,
                                            "owner": "p1", "os_hidden": False,
                                            "cinder_encryption_key_deletion_policy": "do_not_delete"}))
    seed("create-read-only", 0, 1, 0, js({"name": "x", "checksum": "abc", "os_glance_foo": "1"}))
    seed("create-empty", 0, 1, 0, b"")
    seed("patch", 1, 1, 0, js([{"op": "replace", "path": "/name", "value": "renamed"},
                                {"op": "add", "path": "/hw_scsi_model", "value": "virtio-scsi"},
                                {"op": "remove", "path": "/os_distro"},
                                {"op": "add", "path": "/tags", "value": ["x", "y", "x"]},
                                {"op": "replace", "path": "/min_ram", "value": 512}]))
    seed("patch-escaped-pointer", 1, 0, 1, js([{"op": "add", "path": "/a~1b~0c", "value": "v"},
                                               {"op": "replace", "path": "/visibility", "value": "community"},
                                               {"op": "replace", "path": "/owner", "value": "p2"}]))
    seed("patch-draft04", 2, 1, 0, js([{"add": "/architecture", "value": "aarch64"}, {"replace": "/disk_format", "value": "raw"},
                                       {"remove": "/os_distro"}]))
    seed("patch-locations", 1, 1, 1, js([{"op": "add", "path": "/locations/-", "value": {"url": "http://x"}}]))
    seed("list", 3, 1, 0, b"limit=20&marker=" + UUID.encode() + b"&sort=name:asc,created_at:desc&visibility=all&member_status=all")
    seed("list-filters", 3, 2, 0, b"name=in:a,%22b,+c%22&status=active&disk_format=eq:qcow2&size_min=1&size_max=100"
                                   b"&created_at=gte:2024-01-01T00:00:00Z&updated_at=lt:2030-01-01T00:00:00%2B02:00"
                                   b"&tag=x&tag=y&protected=true&os_hidden=True&hw_disk_bus=virtio&owner=p1&checksum=abc")
    seed("list-sort-keys", 3, 0, 0, b"sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&limit=0")
    # A sort that reaches the unique id ends there (the keys after it are dropped, no created_at added).
    seed("list-sort-by-id", 3, 0, 0, b"sort_key=name&sort_key=id&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc&limit=5")
    seed("member-add", 4, 1, 0, js({"member": "p2"}))
    seed("member-status", 4, 1, 0, js({"status": "accepted"}))


def avi_seeds() -> None:
    def seed(name, request, version, payload):
        write("FuzzAvi", name, bytes([request, version]) + payload)
    img_state = {"state": "IMAGE_FSM_COMPLETED", "reason": "", "last_changed_time": {"secs": 1700000000, "usecs": 5}}
    seed("create", 0, 0, js({"name": "controller-30.2.1.pkg", "type": "IMAGE_TYPE_SYSTEM", "uber_bundle": True,
                             "controller_info": {"build": {"version": "30.2.1"}}, "progress": 0,
                             "img_state": img_state, "events": [], "cloud_info_values": [],
                             "fips_mode_transition_applicable": False, "duration": 12, "tasks_completed": 1,
                             "total_tasks": 1, "start_time": "2024-01-01 00:00:00", "uuid": "image-" + UUID}))
    seed("create-url", 0, 4, js({"name": "from-url", "url": "http://10.0.0.1/controller.pkg", "type": "IMAGE_TYPE_PATCH"}))
    seed("create-old-version", 0, 1, js({"name": "x", "progress": 50}))
    seed("replace", 1, 0, js({"name": "renamed", "_last_modified": "1700000000000003", "url": "http://h/api/image/image-" + UUID,
                              "tenant_ref": "http://h/api/tenant/p1", "se_patch_ref": "x", "se_patch_name": "y"}))
    seed("patch-replace", 2, 0, js({"replace": {"name": "n2", "progress": 100, "img_state": {"state": "IMAGE_FSM_FAILED"}}}))
    seed("patch-add-list", 2, 0, js({"add": {"events": [{"task_name": "x"}], "cloud_info_values": ["y"]}}))
    seed("patch-delete", 2, 0, js({"delete": {"events": [{"task_name": "ImageUpload"}], "uber_bundle": None}}))
    seed("patch-plain", 2, 3, js({"se_info": {"a": 1}}))
    seed("patch-json-patch", 2, 0, js({"json_patch": [{"op": "test", "path": "/type", "value": "IMAGE_TYPE_SYSTEM"},
                                                       {"op": "add", "path": "/events/0", "value": {"task_name": "y"}},
                                                       {"op": "replace", "path": "/img_state/state", "value": "IMAGE_FSM_STARTED"},
                                                       {"op": "remove", "path": "/cloud_info_values/0"},
                                                       {"op": "add", "path": "/events/-", "value": {}},
                                                       {"op": "replace", "path": "/name", "value": "a~b/c"},
                                                       {"op": "add", "path": "/controller_info/build~1x", "value": 1}]}))
    seed("list", 3, 0, b"page=2&page_size=10&name=controller.pkg&sort=-_last_modified&include_name=true&fields=name,type")
    # Regression: (page - 1) * page_size overflowed.
    seed("list-huge-page", 3, 0, b"page=92233720368547758&page_size=200")
    seed("version", 4, 0, b"22.1.3-2p3")
    seed("version-bad", 4, 0, b"99.1")
    seed("login-json", 5, 0, js({"username": "admin", "password": "secret"}))
    seed("login-form", 6, 0, b"username=admin&password=s%40cr%2Bt+x")
    seed("cookies", 7, 0, b"sessionid=abc; csrftoken=def\navi-sessionid=ghi;sessionid=second")
    # Issue 18: nested objects checked key by key, references, the whole Image body and an empty one on PATCH.
    package = {"build": {"build_no": 9056, "version": "30.2.1", "remote_image_ref": "r"}, "hash": "h", "path": "/p",
               "patch": {"patch_type": "t", "reboot": True, "reboot_list": [{"patch_version": "2p1", "reboot": False}]}}
    seed("create-nested", 0, 0, js({"name": "nested", "controller_info": package, "se_info": {"build": {"colour": 1}},
                                    "migrations": {"versions": ["22.1.3"], "se_min_cores": 2, "dryrun_min_memory": 1.5},
                                    "cloud_info_values": [{"cloud_name": "c", "cloud_data_values": [{"key": "k", "values": ["v"]}]}],
                                    "events": [{"task_name": "t", "nodes_events": [{"status": "SYSERR_SUCCESS",
                                                                                   "ip": {"addr": "a", "type": "V4"}}]}]}))
    seed("create-refs", 0, 0, js({"name": "uber", "tenant_ref": "/api/tenant?name=p1",
                                  "controller_patch_ref": "https://h/api/image/image-" + UUID + "#p",
                                  "se_patch_ref": "/api/image/?name=se%20patch"}))
    seed("patch-whole-body", 2, 0, js({"uuid": "image-" + UUID, "url": "http://h/api/image/image-" + UUID, "name": "n",
                                       "_last_modified": "1700000000000003", "tenant_ref": "http://h/api/tenant/p1#p1",
                                       "progress": 5}))
    seed("patch-empty", 2, 0, b"{}")


def zstack_seeds() -> None:
    def seed(name, request, choice, payload):
        write("FuzzZStack", name, bytes([request, choice]) + payload)
    default = hashlib.md5(b"imaged-store:default").hexdigest()
    fast = hashlib.md5(b"imaged-store:fast").hexdigest()
    seed("query", 0, 0x11, b"q=status=Ready&q=format?=qcow2,raw&sort=-createDate&limit=2&start=0&replyWithCount=true")
    seed("query-like", 0, 0x01, b"q=name~=ci%25&sort=+name&fields=uuid,name")
    seed("query-negations", 0, 0x01, b"q=size>4194304&q=name!=nothing&q=mediaType!?=RootVolumeTemplate&q=description!~=x%25")
    seed("query-refs", 0, 0x01, ("q=backupStorageRefs.backupStorageUuid=" + default + "&q=backupStorage.name=fast&sort=name").encode())
    seed("query-tags-nulls", 0, 0x01, b"q=__userTag__=team::blue&q=__systemTag__=bootMode::Legacy&q=description+is+null&q=md5Sum+not+null")
    seed("query-dates", 0, 0x01, b"q=createDate>=2023-11-01+00:00:00&q=lastOpDate<Nov+14,+2023+10:13:20+PM&q=createDate>1699000000000&count=true")
    seed("query-bools", 0, 0x01, b"q=system=false&q=virtio=TRUE&sortBy=size&sortDirection=desc")
    seed("add-image", 1, 0x10, js({"params": {"name": "cirros", "url": "http://example.com/cirros.qcow2", "format": "qcow2",
                                              "mediaType": "RootVolumeTemplate", "platform": "Linux", "system": "false",
                                              "virtio": True, "architecture": "aarch64", "backupStorageUuids": [default, fast],
                                              "resourceUuid": "11111111222243338444555555555555", "description": "d",
                                              "guestOsType": "Linux", "tagUuids": []},
                                   "systemTags": ["qemuga"], "userTags": ["team::blue"]}))
    seed("add-image-upload", 1, 0x10, js({"params": {"name": "up", "url": "upload://x", "format": "iso", "mediaType": "ISO",
                                                     "backupStorageUuids": [default], "type": "zstack"}}))
    seed("add-image-file", 1, 0x10, js({"params": {"name": "bad", "url": "file:///etc/passwd", "format": "raw", "backupStorageUuids": [default]}}))
    seed("update-image", 2, 0x11, js({"updateImage": {"name": "renamed", "description": "", "guestOsType": "Windows",
                                                      "mediaType": "ISO", "format": "raw", "platform": "Windows",
                                                      "architecture": "x86_64", "system": False, "virtio": "true"}}))
    seed("change-state", 2, 0x11, js({"changeImageState": {"stateEvent": "disable"}}))
    seed("expunge", 2, 0x14, js({"expungeImage": {"backupStorageUuids": [default, fast]}}))
    seed("login", 3, 0, js({"logInByAccount": {"accountName": "zs-alice", "password": hashlib.sha512(b"pw").hexdigest()}}))
    seed("authorization", 4, 0, b"OAuth 0123456789abcdef0123456789abcdef")


def danube_seeds() -> None:
    def seed(name, what, payload):
        write("FuzzDanube", name, bytes([what]) + payload)
    seed("fields", 0, js({"alias": "cirros", "version": "1.0", "desc": "a test image", "access": 3, "owner": "alice",
                          "resize": "True", "deploy": 0, "tags": ["linux", "test:1"], "dc_bound": "f", "dc": "main",
                          "manifest_url": "http://repo/images/" + UUID, "file_url": "http://repo/images/x/file"}))
    seed("fields-bad", 0, js({"alias": "<script>", "version": "12345678901234567", "access": "2", "tags": "a, b, c;",
                              "resize": "maybe", "owner": ""}))
    seed("query-fields", 1, b"alias=dn&access=1&tags=a,b&dc_bound=False&full=True")
    manifest = {"v": 2, "uuid": UUID, "owner": "00000000-0000-0000-0000-000000000000", "name": "cirros", "version": "1.0",
                "state": "active", "disabled": False, "public": True, "published_at": "2024-01-01T00:00:00Z",
                "type": "zvol", "os": "linux", "files": [{"sha1": "a" * 40, "size": 1024, "compression": "none"}],
                "description": "d" * 140, "tags": {"erigones": ["x"], "resize": True, "deploy": False},
                "image_size": 10240, "cpu_type": "qemu64"}
    seed("manifest", 2, js(manifest))
    seed("manifest-zone", 2, js({**manifest, "type": "zone-dataset", "version": 2.5, "image_size": -1}))
    seed("manifest-two-files", 2, js({**manifest, "files": [{}, {}]}))
    seed("listing", 3, js([manifest, {**manifest, "uuid": "22222222-2222-4333-8444-555555555555", "published_at": "2025"},
                           {"uuid": "not-a-uuid"}, 7]))
    seed("order-by", 4, b"-created,+name,name")
    seed("name", 5, b"cirros-0.6.2_x86.64")
    seed("name-long", 5, b"a" * 40)
    seed("disk-id", 6, b'"12"')
    seed("task-id", 7, ("1e1u1-" + UUID.upper()).encode())


def scalr_seeds() -> None:
    def seed(name, request, choice, payload):
        write("FuzzScalr", name, bytes([request, choice]) + payload)
    registration = {"name": "ubuntu-2204", "cloudPlatform": "ec2", "cloudLocation": "us-east-1", "cloudImageId": "ami-12345678",
                    "architecture": "x86_64", "os": {"id": "ubuntu-22-04"}, "scalrAgentInstalled": True,
                    "cloudInitInstalled": False, "deprecated": False, "scope": "environment",
                    "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}
    seed("register", 0, 2, js(registration))
    seed("register-gce", 0, 0, js({"name": "g1", "cloudPlatform": "gce", "cloudImageId": "projects/x/global/images/y",
                                   "architecture": "i386", "os": "windows-2019", "scope": "scalr"}))
    seed("register-tags", 0, 2, js({**registration, "name": "<b>x</b>"}))
    seed("edit", 1, 2, js({"name": "renamed-1", "deprecated": True}))
    seed("edit-refused", 1, 2, js({"cloudImageId": "ami-other"}))
    seed("list", 2, 2, b"cloudPlatform=ec2&cloudLocation=us-east-1&scalrAgentInstalled=1&maxResults=2&pageNum=2")
    # Regression: (pageNum - 1) * maxResults overflowed.
    seed("list-huge-page", 2, 2, b"maxResults=100&pageNum=92233720368547758")
    seed("list-os", 2, 2, b"os=ubuntu-22-04&deprecated=false&name=image-3&scope=environment")
    seed("signature", 3, 2, b"POST\n2024-01-01T00:00:00Z\n/api/v1beta0/user/1/images/\nb=2&a=1+x&a=%2F\n"
                            b"V1-HMAC-SHA256 AAAA\n" + js(registration))
    seed("signature-fraction", 3, 2, b"get\n2024-01-01T00:00:00.123+02:00\n/api/v1beta0/global/images/\n\nV1-HMAC-SHA256\n")
    seed("deregister", 4, 2, b"deleteFromCloud=false&cloudDelete=0")
    # Regression: a 40-digit fraction made ICU trap (SIGFPE) in parseDate.
    seed("signature-date-long-fraction", 3, 2, b"get\n2024-01-01T00:00:00." + b"7" * 40 + b"+02:00\n/api/v1beta0/global/images/\n\n"
                                                b"V1-HMAC-SHA256 x\n")


def main() -> None:
    for tool in ["qemu-img", "genisoimage", "sgdisk"]:
        if shutil.which(tool) is None:
            sys.exit(f"make-corpus.py: {tool} is needed (Debian: qemu-utils, genisoimage, gdisk)")
    if ROOT.exists():
        shutil.rmtree(ROOT)
    inspector_seeds()
    json_seeds()
    openstack_seeds()
    avi_seeds()
    zstack_seeds()
    danube_seeds()
    scalr_seeds()
    total = sum(f.stat().st_size for f in ROOT.rglob("*") if f.is_file())
    count = sum(1 for f in ROOT.rglob("*") if f.is_file())
    print(f"{count} seeds, {total} bytes under {ROOT}")


if __name__ == "__main__":
    main()
