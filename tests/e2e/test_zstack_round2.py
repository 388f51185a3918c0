"""ZStack, round two (issue 18): ExportImageFromBackupStorage / DeleteExportedImageFromBackupStorage, ISO media
without a format, user tags (CreateUserTag, QueryUserTag, DeleteTag, AddImage's userTags and tagUuids),
SetImageBootMode, SetImageQga / GetImageQga, CalculateImageHash, Delete/Expunge/Recover on some backup storages
only, access-key authentication and X-Web-Hook callbacks. Over plain HTTP with ZStack's SDK conventions (see
test_zstack.py), against the real binary, on a two-store server and on the default single-store `imaged serve`."""

import hashlib
import re
import time
import uuid

import pytest
import requests

from conftest import ImagedServer, Raw, random_bytes, wait_for
from test_zstack import ZStack, create_account, job_uuid, md5, storages


@pytest.fixture(scope="module")
def zs2(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-zstack2"), "--store", "primary=file", "--store", "replica=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    for name, project, role in [("zs-alice", "p-alice", "member"), ("zs-bob", "p-bob", "member"), ("zs-admin", "admin", "admin")]:
        create_account(srv, name, project, role)
    yield srv
    srv.kill()


def blob(srv: ImagedServer, store: str, image_uuid: str):
    return srv.data_dir / "stores" / store / "images" / str(uuid.UUID(image_uuid))


def add(z: ZStack, origin, name: str, data: bytes, stores: list[str], fmt: str = "raw", **extra) -> dict:
    url = origin.serve(f"/zs2/{name}", data)
    r = z.add_image(name=name, url=url, format=fmt, backupStorageUuids=stores, **extra)
    assert r.status_code == 200, r.text
    inv = r.json()["inventory"]
    assert inv["status"] == "Ready", inv
    return inv


def refs(inv: dict) -> dict:
    return {ref["backupStorageUuid"]: ref for ref in inv["backupStorageRefs"]}


# ------------------------------------------------------------------------------------------------------------
# ExportImageFromBackupStorage


def test_zstack_export_url_serves_the_bytes_until_deleted(zs2, origin, disk):
    z = ZStack.login(zs2.url, "zs-alice")
    bs = storages(z)
    primary, replica = bs["primary"]["uuid"], bs["replica"]["uuid"]
    payload = disk.qcow2("zs2-export.qcow2", virtual=24 << 20, seed=31).read_bytes()
    inv = add(z, origin, "exported.qcow2", payload, [primary, replica], fmt="qcow2")
    image = inv["uuid"]
    assert all("exportUrl" not in ref for ref in inv["backupStorageRefs"])

    res = z.ok("PUT", f"/backup-storage/{replica}/actions", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    url = res["imageUrl"]
    assert res["exportMd5Sum"] == md5(payload)
    assert url.startswith(f"{zs2.url}/zstack/v1/exports/{replica}/{image}/") and url.endswith(f"/image-{image}.qcow2")
    # the ref of that backup storage shows the export; the other one does not
    shown = refs(z.get_image(image))
    assert (shown[replica]["exportUrl"], shown[replica]["exportMd5Sum"]) == (url, md5(payload))
    assert "exportUrl" not in shown[primary] and "exportMd5Sum" not in shown[primary]
    assert [i["uuid"] for i in z.query(params=[("q", "backupStorageRefs.exportMd5Sum not null")])["inventories"]] == [image]

    # the URL needs no session: the token is the credential; the bytes' md5 is exportMd5Sum
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/octet-stream"
    assert hashlib.md5(got.content).hexdigest() == res["exportMd5Sum"] and got.content == payload
    assert int(got.headers["Content-Length"]) == len(payload)
    part = requests.get(url, headers={"Range": "bytes=10-99"}, timeout=30)
    assert part.status_code == 206 and part.content == payload[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(payload)}"
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(payload)) and head.content == b""
    # a wrong token, another image's uuid or another backup storage names nothing
    token = url.split("/")[-2]
    for wrong in [url.replace(token, "0" * len(token)), url.replace(f"/{image}/", f"/{job_uuid()}/", 1),
                  url.replace(f"/exports/{replica}/", f"/exports/{primary}/")]:
        r = requests.get(wrong, timeout=30)
        assert r.status_code == 404 and r.text == "no exported image at this URL", wrong

    # refused exports change nothing
    before = z.get_image(image)
    err = z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1014",
                  json={"exportImageFromBackupStorage": {"imageUuid": image, "exportFormat": "raw"}})
    assert "qcow2" in err["details"]
    err = z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1007",
                  json={"exportImageFromBackupStorage": {"imageUuid": image, "exportFormat": "vmdk"}})
    assert "exportFormat" in err["details"]
    z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1007", json={"exportImageFromBackupStorage": {}})
    z.error("PUT", f"/backup-storage/{job_uuid()}/actions", "SYS.1003", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1003", json={"exportImageFromBackupStorage": {"imageUuid": job_uuid()}})
    bob = ZStack.login(zs2.url, "zs-bob")
    bob.error("PUT", f"/backup-storage/{primary}/actions", "SYS.1003", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    bob.error("DELETE", f"/backup-storage/{replica}/exported-images/{image}", "SYS.1003")
    r = z.call("PUT", f"/backup-storage/{replica}/actions", json={"exportImage": {"imageUuid": image}})
    assert r.status_code == 400 and "doesn't contain action mapping" in r.text
    assert z.get_image(image) == before
    assert requests.get(url, timeout=30).content == payload
    # an image held on one backup storage only cannot be exported from the other
    single = add(z, origin, "single.raw", random_bytes(1 << 20, 32), [primary])
    err = z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1006", json={"exportImageFromBackupStorage": {"imageUuid": single["uuid"]}})
    assert "is not on the backup storage" in err["details"]
    assert all("exportUrl" not in ref for ref in z.get_image(single["uuid"])["backupStorageRefs"])

    # DeleteExportedImageFromBackupStorage: the URL is refused at once, the ref loses its export
    assert z.ok("DELETE", f"/backup-storage/{replica}/exported-images/{image}") == {}
    r = requests.get(url, timeout=30)
    assert r.status_code == 404 and r.text == "no exported image at this URL"
    assert all("exportUrl" not in ref for ref in z.get_image(image)["backupStorageRefs"])
    # again: nothing left to delete, still a success; the image itself is untouched
    assert z.ok("DELETE", f"/backup-storage/{replica}/exported-images/{image}") == {}
    assert Raw(zs2.url, "alice").get(f"/v2/images/{uuid.UUID(image)}/file").content == payload

    # a fresh export is a new URL; deleting the image (softly) stops it too
    again = z.ok("PUT", f"/backup-storage/{primary}/actions", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    assert again["imageUrl"] != url and requests.get(again["imageUrl"], timeout=30).content == payload
    assert z.ok("DELETE", f"/images/{image}") == {}
    assert requests.get(again["imageUrl"], timeout=30).status_code == 404
    err = z.error("PUT", f"/backup-storage/{primary}/actions", "SYS.1006", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    assert "only Ready images" in err["details"]


def test_zstack_export_expires_on_the_default_server(tmp_path, origin, disk):
    """`--zstack-export-seconds` bounds an export URL's life. The default single-store server (no --store) runs
    every round-two flow: export, ISO without format, tags, boot mode, qga, hash, delete/expunge naming its one
    backup storage, access keys."""
    srv = ImagedServer(tmp_path / "exp", "--zstack-export-seconds", "3",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        [only] = z.query("/backup-storage")["inventories"]
        data = random_bytes(2 << 20, 33)
        inv = add(z, origin, "expiring.raw", data, [only["uuid"]])
        res = z.ok("PUT", f"/backup-storage/{only['uuid']}/actions", json={"exportImageFromBackupStorage": {"imageUuid": inv["uuid"]}})
        got = requests.get(res["imageUrl"], timeout=30)
        assert got.status_code == 200 and md5(got.content) == res["exportMd5Sum"] == md5(data)
        assert refs(z.get_image(inv["uuid"]))[only["uuid"]]["exportUrl"] == res["imageUrl"]
        image, bsu = inv["uuid"], only["uuid"]
        # the other flows while the export lives
        iso = z.add_image(name="d-iso", url=origin.serve("/zs2/d.iso", disk.iso("zs2d.iso").read_bytes()), mediaType="ISO",
                          backupStorageUuids=[bsu]).json()["inventory"]
        assert (iso["format"], iso["mediaType"], iso["status"]) == ("iso", "ISO", "Ready")
        tag = z.ok("POST", "/user-tags", json={"params": {"resourceType": "ImageVO", "resourceUuid": image, "tag": "d::1"}})["inventory"]
        assert user_tags(z, f"resourceUuid={image}") == [tag]
        assert z.ok("PUT", f"/images/{image}/actions", json={"setImageBootMode": {"bootMode": "UEFI_WITH_CSM"}}) == {}
        assert z.ok("PUT", f"/images/{image}/actions", json={"setImageQga": {"enable": True}}) == {}
        assert z.query(f"/images/{image}/qga") == {"enable": True}
        z.ok("PUT", f"/images/{image}/actions", json={"calculateImageHash": {"backupStorageUuid": bsu, "algorithm": "SHA256"}})
        assert system_tagged(z, f"SHA256::{hashlib.sha256(data).hexdigest()}") == [image]
        assert system_tagged(z, "bootMode::UEFI_WITH_CSM") == [image]
        key_id, secret = create_access_key(srv, "zs-alice")
        assert KeyedZStack(srv.url, key_id, secret).get_image(image)["uuid"] == image
        time.sleep(3.5)
        r = requests.get(res["imageUrl"], timeout=30)
        assert r.status_code == 404 and r.text == "no exported image at this URL"
        assert "exportUrl" not in refs(z.get_image(image))[bsu]
        # naming the only backup storage deletes and expunges the whole image
        assert z.ok("DELETE", f"/images/{image}", params={"backupStorageUuids": bsu}) == {}
        assert ref_states(z, image) == {"status": "Deleted", bsu: "Deleted"}
        assert z.ok("PUT", f"/images/{image}/actions", json={"expungeImage": {"backupStorageUuids": [bsu]}}) == {}
        assert z.get_image(image) is None
    finally:
        srv.kill()


# ------------------------------------------------------------------------------------------------------------
# mediaType=ISO without format


def test_zstack_iso_media_needs_no_format(zs2, origin, disk):
    z = ZStack.login(zs2.url, "zs-alice")
    primary = storages(z)["primary"]["uuid"]
    iso = disk.iso("zs2.iso").read_bytes()
    url = origin.serve("/zs2/boot.iso", iso)
    inv = z.add_image(name="zs2-iso", url=url, mediaType="ISO", backupStorageUuids=[primary]).json()["inventory"]
    assert (inv["status"], inv["format"], inv["mediaType"], inv["md5Sum"]) == ("Ready", "iso", "ISO", md5(iso))
    assert Raw(zs2.url, "alice").get(f"/v2/images/{uuid.UUID(inv['uuid'])}").json()["disk_format"] == "iso"
    # any other medium still needs one, and the refusal leaves nothing behind
    wanted = job_uuid()
    err = z.error("POST", "/images", "SYS.1007", json={"params": {"name": "nofmt", "url": url, "mediaType": "DataVolumeTemplate",
                                                                  "backupStorageUuids": [primary], "resourceUuid": wanted}})
    assert err["details"] == "unknown format[null]"
    assert z.get_image(wanted) is None


# ------------------------------------------------------------------------------------------------------------
# User tags


def user_tags(z: ZStack, *conditions) -> list[dict]:
    return z.query("/user-tags", params=[("q", c) for c in conditions])["inventories"]


def test_zstack_user_tags(zs2, origin):
    z = ZStack.login(zs2.url, "zs-alice")
    primary = storages(z)["primary"]["uuid"]
    data = random_bytes(1 << 20, 34)
    inv = add(z, origin, "tagged.raw", data, [primary])
    image = inv["uuid"]
    r = z.call("POST", "/images", json={"params": {"name": "tagged-at-birth", "url": origin.serve("/zs2/born.raw", data), "format": "raw",
                                                   "backupStorageUuids": [primary]}, "userTags": ["team::red", "team::red"]})
    born = z.poll(r.json()["location"]).json()["inventory"]
    [red] = user_tags(z, f"resourceUuid={born['uuid']}")
    assert (red["tag"], red["type"], red["resourceType"], red["inherent"]) == ("team::red", "User", "ImageVO", False)
    assert re.fullmatch(r"[0-9a-f]{32}", red["uuid"]) and red["resourceUuid"] == born["uuid"]

    # CreateUserTag on an image
    tag = z.ok("POST", "/user-tags", json={"params": {"resourceType": "ImageVO", "resourceUuid": image, "tag": "owner::alice"}})["inventory"]
    assert (tag["tag"], tag["resourceUuid"], tag["type"]) == ("owner::alice", image, "User")
    assert z.query(f"/user-tags/{tag['uuid']}")["inventories"] == [tag]
    assert [i["uuid"] for i in z.query(params=[("q", "__userTag__=owner::alice")])["inventories"]] == [image]
    assert sorted(t["tag"] for t in user_tags(z)) == ["owner::alice", "team::red"]
    assert [t["tag"] for t in user_tags(z, "tag~=team%")] == ["team::red"]
    assert z.query("/user-tags", params=[("count", "true")]) == {"total": 2}

    # refusals change nothing
    before = user_tags(z)
    err = z.error("POST", "/user-tags", "SYS.1006", json={"params": {"resourceType": "ImageVO", "resourceUuid": image, "tag": "owner::alice"}})
    assert "Duplicate" in err["details"]
    z.error("POST", "/user-tags", "SYS.1007", json={"params": {"resourceType": "VmInstanceVO", "resourceUuid": image, "tag": "x"}})
    z.error("POST", "/user-tags", "SYS.1007", json={"params": {"resourceType": "ImageVO", "resourceUuid": image}})
    z.error("POST", "/user-tags", "SYS.1007", json={"params": {"resourceType": "ImageVO", "resourceUuid": image, "tag": "t" * 2049}})
    z.error("POST", "/user-tags", "SYS.1003", json={"params": {"resourceType": "ImageVO", "resourceUuid": job_uuid(), "tag": "x"}})
    bob = ZStack.login(zs2.url, "zs-bob")
    bob.error("POST", "/user-tags", "SYS.1003", json={"params": {"resourceType": "ImageVO", "resourceUuid": image, "tag": "bob::was-here"}})
    assert user_tags(bob) == [] and bob.query(f"/user-tags/{tag['uuid']}")["inventories"] == []
    assert bob.ok("DELETE", f"/tags/{tag['uuid']}") == {}  # not his to see: nothing happens
    r = z.call("GET", "/user-tags", params={"q": "colour=red"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"
    assert user_tags(z) == before

    # AddImage's tagUuids attach existing tags (their text) to the new image; an unknown one makes nothing
    wanted = job_uuid()
    err = z.error("POST", "/images", "SYS.1003", json={"params": {"name": "bad-tags", "url": origin.serve("/zs2/bt.raw", data), "format": "raw",
                                                                  "backupStorageUuids": [primary], "resourceUuid": wanted,
                                                                  "tagUuids": [tag["uuid"], job_uuid()]}})
    assert "tagUuids" in err["details"]
    assert z.get_image(wanted) is None and user_tags(z) == before
    child = add(z, origin, "child.raw", data, [primary], tagUuids=[tag["uuid"], red["uuid"]])
    assert sorted(t["tag"] for t in user_tags(z, f"resourceUuid={child['uuid']}")) == ["owner::alice", "team::red"]
    assert sorted(i["name"] for i in z.query(params=[("q", "__userTag__=owner::alice")])["inventories"]) == ["child.raw", "tagged.raw"]

    # DeleteTag: gone from its image only
    assert z.ok("DELETE", f"/tags/{tag['uuid']}") == {}
    assert z.query(f"/user-tags/{tag['uuid']}")["inventories"] == []
    assert [i["name"] for i in z.query(params=[("q", "__userTag__=owner::alice")])["inventories"]] == ["child.raw"]
    assert z.ok("DELETE", f"/tags/{tag['uuid']}") == {}
    z.error("DELETE", f"/tags/{red['uuid']}", "SYS.1007", params={"deleteMode": "Sometimes"})
    assert user_tags(z, f"uuid={red['uuid']}") == [red]


# ------------------------------------------------------------------------------------------------------------
# SetImageBootMode, SetImageQga / GetImageQga, CalculateImageHash


def system_tagged(z: ZStack, tag: str) -> list[str]:
    return [i["uuid"] for i in z.query(params=[("q", f"__systemTag__={tag}")])["inventories"]]


def test_zstack_boot_mode_qga_and_hash(zs2, origin):
    z = ZStack.login(zs2.url, "zs-alice")
    bs = storages(z)
    primary, replica = bs["primary"]["uuid"], bs["replica"]["uuid"]
    data = random_bytes(3 << 20, 35)
    image = add(z, origin, "modes.raw", data, [primary, replica])["uuid"]
    actions = f"/images/{image}/actions"

    assert z.ok("PUT", actions, json={"setImageBootMode": {"bootMode": "UEFI"}}) == {}
    assert system_tagged(z, "bootMode::UEFI") == [image]
    assert z.ok("PUT", actions, json={"setImageBootMode": {"bootMode": "Legacy"}}) == {}
    assert system_tagged(z, "bootMode::UEFI") == [] and system_tagged(z, "bootMode::Legacy") == [image]
    err = z.error("PUT", actions, "SYS.1007", json={"setImageBootMode": {"bootMode": "BIOS"}})
    assert "[Legacy, UEFI, UEFI_WITH_CSM], but BIOS found" in err["details"]
    z.error("PUT", actions, "SYS.1007", json={"setImageBootMode": {}})
    arm = add(z, origin, "arm.raw", data[:1 << 20], [primary], architecture="aarch64")["uuid"]
    err = z.error("PUT", f"/images/{arm}/actions", "SYS.1007", json={"setImageBootMode": {"bootMode": "Legacy"}})
    assert err["details"] == "The aarch64 architecture does not support legacy."
    assert system_tagged(z, "bootMode::UEFI") == [arm] and system_tagged(z, "bootMode::Legacy") == [image]

    assert z.query(f"/images/{image}/qga") == {"enable": False}
    assert z.ok("PUT", actions, json={"setImageQga": {"enable": True}}) == {}
    assert z.query(f"/images/{image}/qga") == {"enable": True} and system_tagged(z, "qemuga") == [image]
    assert z.ok("PUT", actions, json={"setImageQga": {"enable": "false"}}) == {}
    assert z.query(f"/images/{image}/qga") == {"enable": False} and system_tagged(z, "qemuga") == []
    r = z.call("PUT", actions, json={"setImageQga": {"enable": "maybe"}})
    assert r.status_code == 400 and r.text.startswith("Invalid value for boolean field [enable]")
    bob = ZStack.login(zs2.url, "zs-bob")
    bob.error("PUT", actions, "SYS.1003", json={"setImageQga": {"enable": True}})
    r = bob.call("GET", f"/images/{image}/qga")
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1003"
    assert z.query(f"/images/{image}/qga") == {"enable": False}

    # CalculateImageHash reads the copy on the named backup storage again
    inv = z.ok("PUT", actions, json={"calculateImageHash": {"backupStorageUuid": replica, "algorithm": "MD5"}})["inventory"]
    assert inv["md5Sum"] == md5(data) and inv["uuid"] == image
    z.ok("PUT", actions, json={"calculateImageHash": {"backupStorageUuid": primary}})
    inv = z.ok("PUT", actions, json={"calculateImageHash": {"backupStorageUuid": primary, "algorithm": "SHA256"}})["inventory"]
    assert system_tagged(z, f"SHA256::{hashlib.sha256(data).hexdigest()}") == [image]
    z.ok("PUT", actions, json={"calculateImageHash": {"backupStorageUuid": replica, "algorithm": "SHA1"}})
    assert system_tagged(z, f"SHA1::{hashlib.sha1(data).hexdigest()}") == [image]
    z.error("PUT", actions, "SYS.1007", json={"calculateImageHash": {"algorithm": "MD5"}})
    z.error("PUT", actions, "SYS.1007", json={"calculateImageHash": {"backupStorageUuid": primary, "algorithm": "CRC32"}})
    z.error("PUT", actions, "SYS.1003", json={"calculateImageHash": {"backupStorageUuid": job_uuid()}})
    err = z.error("PUT", f"/images/{arm}/actions", "SYS.1006", json={"calculateImageHash": {"backupStorageUuid": replica}})
    assert "is not on the backup storage" in err["details"]
    # a copy that changed on disk fails the job; the recorded md5 stays what the upload measured
    path = blob(zs2, "replica", image)
    original = path.read_bytes()
    path.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    try:
        err = z.error("PUT", actions, "SYS.1006", json={"calculateImageHash": {"backupStorageUuid": replica, "algorithm": "MD5"}})
        assert md5(data) in err["details"] and "recorded" in err["details"]
        assert z.get_image(image)["md5Sum"] == md5(data)
        z.ok("PUT", actions, json={"calculateImageHash": {"backupStorageUuid": primary, "algorithm": "MD5"}})
    finally:
        path.write_bytes(original)


# ------------------------------------------------------------------------------------------------------------
# Delete / Expunge / Recover on some backup storages only


def ref_states(z: ZStack, image: str) -> dict:
    inv = z.get_image(image)
    return {"status": inv["status"], **{ref["backupStorageUuid"]: ref["status"] for ref in inv["backupStorageRefs"]}}


def test_zstack_acting_on_some_backup_storages(zs2, origin):
    z = ZStack.login(zs2.url, "zs-alice")
    bs = storages(z)
    primary, replica = bs["primary"]["uuid"], bs["replica"]["uuid"]
    data = random_bytes(2 << 20, 36)
    image = add(z, origin, "partial.raw", data, [primary, replica])["uuid"]
    core = str(uuid.UUID(image))
    alice = Raw(zs2.url, "alice")

    # delete from the replica only: its ref is Deleted, the image stays Ready (and downloadable) elsewhere
    export = z.ok("PUT", f"/backup-storage/{replica}/actions", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    assert requests.get(export["imageUrl"], timeout=30).content == data
    assert z.ok("DELETE", f"/images/{image}", params={"backupStorageUuids": replica}) == {}
    assert ref_states(z, image) == {"status": "Ready", primary: "Ready", replica: "Deleted"}
    assert alice.get(f"/v2/images/{core}/file").content == data
    # what was exported from the replica is no longer served, and it cannot be exported from there again
    assert requests.get(export["imageUrl"], timeout=30).status_code == 404
    assert all("exportUrl" not in ref for ref in z.get_image(image)["backupStorageRefs"])
    err = z.error("PUT", f"/backup-storage/{replica}/actions", "SYS.1006", json={"exportImageFromBackupStorage": {"imageUuid": image}})
    assert "cannot be exported" in err["details"]
    # expunging or recovering where the ref is not Deleted is refused and changes nothing
    err = z.error("PUT", f"/images/{image}/actions", "SYS.1006", json={"expungeImage": {"backupStorageUuids": [primary]}})
    assert "is not Deleted on the backup storage" in err["details"]
    z.error("PUT", f"/images/{image}/actions", "SYS.1006", json={"recoverImage": {"backupStorageUuids": [primary, replica]}})
    assert ref_states(z, image) == {"status": "Ready", primary: "Ready", replica: "Deleted"}
    # recover it there
    rec = z.ok("PUT", f"/images/{image}/actions", json={"recoverImage": {"backupStorageUuids": [replica]}})["inventory"]
    assert {ref["status"] for ref in rec["backupStorageRefs"]} == {"Ready"}
    # delete there again, then expunge there: the copy goes, the image keeps its other one
    assert z.ok("DELETE", f"/images/{image}", params={"backupStorageUuids.0": replica}) == {}
    assert z.ok("PUT", f"/images/{image}/actions", json={"expungeImage": {"backupStorageUuids": [replica]}}) == {}
    wait_for(lambda: not blob(zs2, "replica", image).exists(), what="replica copy removed")
    assert blob(zs2, "primary", image).read_bytes() == data
    assert ref_states(z, image) == {"status": "Ready", primary: "Ready"}
    assert alice.get(f"/v2/images/{core}").json()["stores"] == "primary"
    assert alice.get(f"/v2/images/{core}/file").content == data
    # a backup storage that does not hold the image is refused
    err = z.error("DELETE", f"/images/{image}", "SYS.1007", params={"backupStorageUuids": replica})
    assert "is not on the backup storage" in err["details"]
    assert ref_states(z, image) == {"status": "Ready", primary: "Ready"}

    # deleting from every backup storage named is the whole soft delete; recovering one brings the image back
    other = add(z, origin, "partial2.raw", data, [primary, replica])["uuid"]
    assert z.ok("DELETE", f"/images/{other}", params=[("backupStorageUuids", primary), ("backupStorageUuids", replica)]) == {}
    assert ref_states(z, other) == {"status": "Deleted", primary: "Deleted", replica: "Deleted"}
    assert alice.get(f"/v2/images/{uuid.UUID(other)}").status_code == 404
    z.ok("PUT", f"/images/{other}/actions", json={"recoverImage": {"backupStorageUuids": [primary]}})
    assert ref_states(z, other) == {"status": "Ready", primary: "Ready", replica: "Deleted"}
    # expunge without naming storages: where the ref is Deleted
    assert z.ok("PUT", f"/images/{other}/actions", json={"expungeImage": {}}) == {}
    wait_for(lambda: not blob(zs2, "replica", other).exists(), what="replica copy removed")
    assert ref_states(z, other) == {"status": "Ready", primary: "Ready"}
    # the last copy: delete + expunge with it named removes the image
    assert z.ok("DELETE", f"/images/{other}", params={"backupStorageUuids": primary}) == {}
    assert ref_states(z, other)["status"] == "Deleted"
    assert z.ok("PUT", f"/images/{other}/actions", json={"expungeImage": {"backupStorageUuids": [primary]}}) == {}
    assert z.get_image(other) is None
    wait_for(lambda: not blob(zs2, "primary", other).exists(), what="last copy removed")


# ------------------------------------------------------------------------------------------------------------
# Access-key authentication


def create_access_key(srv: ImagedServer, account: str) -> tuple[str, str]:
    from conftest import imaged_bin
    import subprocess
    out = subprocess.run([str(imaged_bin()), "account", "key", "create", account, "--zstack", "--data-dir", str(srv.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key_id = re.search(r"^key id: (\S+)$", out.stdout, re.M).group(1)
    secret = re.search(r"^secret: (\S+)$", out.stdout, re.M).group(1)
    assert re.fullmatch(r"ZSK[A-Za-z0-9]{17}", key_id) and re.fullmatch(r"[A-Za-z0-9]{40}", secret), out.stdout
    return key_id, secret


def gmt(offset: float = 0.0) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + offset))


def signed(method: str, path: str, key_id: str, secret: str, date: str | None = None) -> dict:
    """The headers ZStack's Python and Go SDKs send with an access key: the HMAC-SHA1 of `METHOD\\nDate\\n/v1/...`."""
    import base64
    import hmac
    date = date or gmt()
    to_sign = f"{method}\n{date}\n{path}"
    signature = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return {"Authorization": f"ZStack {key_id}:{signature}", "Date": date}


class KeyedZStack(ZStack):
    """The same SDK conventions, each request signed with an access key instead of a session."""

    def __init__(self, base: str, key_id: str, secret: str):
        super().__init__(base)
        self.key_id, self.secret = key_id, secret

    def call(self, method: str, path: str, job: str | None = None, **kw) -> requests.Response:
        headers = {"X-Job-UUID": job or job_uuid(), **signed(method, "/v1" + path, self.key_id, self.secret), **kw.pop("headers", {})}
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def poll(self, location: str, timeout: float = 120.0) -> requests.Response:
        """Jobs are polled signed as well (issue 19: a job answers only its account's callers)."""
        path = "/v1" + location.split("/zstack/v1", 1)[1]
        deadline = time.time() + timeout
        while True:
            r = self.http.get(location, headers=signed("GET", path, self.key_id, self.secret), timeout=30)
            if r.status_code != 202:
                return r
            assert time.time() < deadline, f"job {location} still running after {timeout} s"
            time.sleep(0.2)


def test_zstack_access_keys(zs2, origin):
    key_id, secret = create_access_key(zs2, "zs-alice")
    k = KeyedZStack(zs2.url, key_id, secret)
    primary = storages(k)["primary"]["uuid"]
    data = random_bytes(1 << 20, 37)
    inv = add(k, origin, "keyed.raw", data, [primary])
    # the image belongs to the key's account: alice's session sees it, bob's does not
    z = ZStack.login(zs2.url, "zs-alice")
    assert z.get_image(inv["uuid"])["name"] == "keyed.raw"
    assert ZStack.login(zs2.url, "zs-bob").get_image(inv["uuid"]) is None
    assert k.ok("PUT", f"/images/{inv['uuid']}/actions", json={"updateImage": {"description": "signed"}})["inventory"]["description"] == "signed"
    # a date in another zone's offset is the same instant
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    r = requests.get(k.base + "/images", params={"q": "name=keyed.raw"}, headers=signed("GET", "/v1/images", key_id, secret, date), timeout=30)
    assert r.status_code == 200 and [i["uuid"] for i in r.json()["inventories"]] == [inv["uuid"]]

    # refusals: plain text, and a refused write changes nothing
    before = z.get_image(inv["uuid"])
    body = {"updateImage": {"name": "forged"}}
    path = f"/images/{inv['uuid']}/actions"
    cases = [
        (signed("PUT", "/v1" + path, key_id, secret, gmt(-16 * 60)), 403, "requestTimeTooSkewed"),
        (signed("PUT", "/v1" + path, key_id, secret, gmt(+16 * 60)), 403, "requestTimeTooSkewed"),
        ({**signed("PUT", "/v1" + path, key_id, secret), "Date": "yesterday"}, 400, "Date"),
        ({"Authorization": signed("PUT", "/v1" + path, key_id, secret)["Authorization"]}, 400, "Date"),
        (signed("PUT", "/v1" + path, key_id, "x" * 40), 401, "invalid access key or signature"),
        (signed("PUT", "/v1/images", key_id, secret), 401, "invalid access key or signature"),  # signed for another path
        (signed("GET", "/v1" + path, key_id, secret), 401, "invalid access key or signature"),  # another method
        (signed("PUT", "/v1" + path, "ZSK" + "A" * 17, secret), 401, "invalid access key or signature"),
        ({"Authorization": f"ZStack {key_id}", "Date": gmt()}, 400, "ZStack <AccessKeyId>:<signature>"),
    ]
    for headers, status, text in cases:
        r = requests.put(k.base + path, json=body, headers={"X-Job-UUID": job_uuid(), **headers}, timeout=30)
        assert r.status_code == status and text in r.text, (headers, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("text/plain")
    assert z.get_image(inv["uuid"]) == before
    # a signature within the window is accepted (skew under 15 minutes)
    r = requests.get(k.base + "/images", headers=signed("GET", "/v1/images", key_id, secret, gmt(-14 * 60)), timeout=30)
    assert r.status_code == 200

    # a revoked key is refused at once
    from conftest import imaged_bin
    import subprocess
    out = subprocess.run([str(imaged_bin()), "account", "key", "delete", key_id, "--data-dir", str(zs2.data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = k.call("GET", "/images")
    assert r.status_code == 401 and r.text == "invalid access key or signature"
    # a Scalr key of the same account is not a ZStack access key
    out = subprocess.run([str(imaged_bin()), "account", "key", "create", "zs-alice", "--scalr", "--data-dir", str(zs2.data_dir)],
                         capture_output=True, text=True, timeout=60)
    scalr_id = re.search(r"^key id: (\S+)$", out.stdout, re.M).group(1)
    scalr_secret = re.search(r"^secret: (\S+)$", out.stdout, re.M).group(1)
    r = requests.get(k.base + "/images", headers=signed("GET", "/v1/images", scalr_id, scalr_secret), timeout=30)
    assert r.status_code == 401


# ------------------------------------------------------------------------------------------------------------
# X-Web-Hook callbacks


class Receiver:
    """A tiny loopback HTTP server recording every POST (headers, body); `hang` makes it never answer."""

    def __init__(self, hang: bool = False):
        import http.server
        import threading
        self.posts: list[tuple[dict, bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if hang:
                    receiver.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/zstack-hook"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def hooked(z: ZStack, method: str, path: str, hook: str, job: str | None = None, **kw) -> tuple[str, requests.Response]:
    """An async call with X-Web-Hook: its job id and the job's final answer, polled as usual."""
    job = job or job_uuid()
    r = z.call(method, path, job, headers={"X-Web-Hook": hook}, **kw)
    assert r.status_code == 202, r.text
    return job, z.poll(r.json()["location"])


def test_zstack_web_hooks(tmp_path, origin):
    """One callback per job with X-Job-UUID / X-Job-Success and the body a poll answers; a receiver that is down or
    never answers neither blocks nor fails the job; a hook the URL guard refuses is a plain 400 and nothing is done.
    On the default single-store server."""
    import json
    import socket
    srv = ImagedServer(tmp_path / "hooks", "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", "any")
    srv.start()
    receiver, hanging = Receiver(), Receiver(hang=True)
    try:
        create_account(srv, "zs-alice", "p-alice", "member")
        z = ZStack.login(srv.url, "zs-alice")
        [only] = [b["uuid"] for b in z.query("/backup-storage")["inventories"]]
        data = random_bytes(3 << 20, 38)

        # AddImage from a URL (the job is the import task): reported once it has ended
        url = origin.slow("/zs2/hooked.raw", data, chunk=256 << 10, delay=0.05)
        job, done = hooked(z, "POST", "/images", receiver.url, json={"params": {"name": "hooked", "url": url, "format": "raw",
                                                                                "backupStorageUuids": [only]}})
        assert done.status_code == 200
        wait_for(lambda: len(receiver.posts) == 1, what="AddImage callback")
        headers, body = receiver.posts[0]
        assert (headers["x-job-uuid"], headers["x-job-success"]) == (job, "true")
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == done.json() and json.loads(body)["inventory"]["md5Sum"] == md5(data)
        image = done.json()["inventory"]["uuid"]

        # an API that ends within its request, a failed one, a failed AddImage
        job, done = hooked(z, "PUT", f"/images/{image}/actions", receiver.url, json={"updateImage": {"description": "hooked"}})
        wait_for(lambda: len(receiver.posts) == 2, what="UpdateImage callback")
        headers, body = receiver.posts[1]
        assert (headers["x-job-uuid"], headers["x-job-success"]) == (job, "true") and json.loads(body) == done.json()
        job, done = hooked(z, "PUT", f"/images/{image}/actions", receiver.url, json={"changeImageState": {"stateEvent": "pause"}})
        assert done.status_code == 503
        wait_for(lambda: len(receiver.posts) == 3, what="failed job callback")
        headers, body = receiver.posts[2]
        assert (headers["x-job-uuid"], headers["x-job-success"]) == (job, "false")
        assert json.loads(body) == done.json() and json.loads(body)["error"]["code"] == "SYS.1007"
        job, done = hooked(z, "POST", "/images", receiver.url, json={"params": {"name": "nowhere", "url": origin.url("/zs2/absent.raw"),
                                                                                "format": "raw", "backupStorageUuids": [only]}})
        assert done.status_code == 503
        wait_for(lambda: len(receiver.posts) == 4, what="failed AddImage callback")
        headers, body = receiver.posts[3]
        assert (headers["x-job-uuid"], headers["x-job-success"]) == (job, "false") and json.loads(body)["error"]["code"] == "SYS.1002"
        time.sleep(1.5)
        assert len(receiver.posts) == 4  # exactly one per job

        # a receiver that is down, or one that never answers: the job is not blocked and succeeds
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            down = f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # bound, not listening: connections are refused
            for hook in (down, hanging.url):
                started = time.monotonic()
                job, done = hooked(z, "PUT", f"/images/{image}/actions", hook, json={"updateImage": {"name": f"n{len(hook)}"}})
                assert done.status_code == 200 and time.monotonic() - started < 5
                assert z.get_image(image)["name"] == f"n{len(hook)}"
                url = origin.serve(f"/zs2/h{len(hook)}.raw", data[:1 << 20])
                started = time.monotonic()
                job, done = hooked(z, "POST", "/images", hook, json={"params": {"name": f"h{len(hook)}", "url": url, "format": "raw",
                                                                                "backupStorageUuids": [only]}})
                assert done.status_code == 200 and done.json()["inventory"]["status"] == "Ready" and time.monotonic() - started < 10
        wait_for(lambda: len(hanging.posts) == 2, what="the hanging receiver was called")

        # hooks the URL guard refuses: a plain 400 before anything is done
        before = z.get_image(image)
        for bad in ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3:8080/hook", "ftp://127.0.0.1/hook", "not a url"]:
            job = job_uuid()
            r = z.call("PUT", f"/images/{image}/actions", job, headers={"X-Web-Hook": bad}, json={"updateImage": {"name": "never"}})
            assert r.status_code == 400 and r.text.startswith("Invalid header[X-Web-Hook]"), (bad, r.text)
            assert requests.get(f"{z.base}/api-jobs/{job}", headers=z.headers()).status_code == 404  # no job was made
        wanted = job_uuid()
        r = z.call("POST", "/images", headers={"X-Web-Hook": "http://169.254.169.254/"},
                   json={"params": {"name": "never", "url": origin.url("/zs2/hooked.raw"), "format": "raw", "backupStorageUuids": [only],
                                    "resourceUuid": wanted}})
        assert r.status_code == 400 and z.get_image(wanted) is None
        assert z.get_image(image) == before and len(receiver.posts) == 4
    finally:
        receiver.close()
        hanging.close()
        srv.kill()
