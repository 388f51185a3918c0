"""Durability: SIGKILL the server and start it again on the same data dir; everything is intact."""

import signal

import pytest

from conftest import ImagedServer, Raw, project, unique, upload


@pytest.fixture
def own_server(tmp_path):
    srv = ImagedServer(tmp_path)
    srv.start()
    yield srv
    srv.kill()


def snapshot(alice: Raw, admin: Raw, tag: str, ids):
    images = {i: alice.get(f"/v2/images/{i}").json() for i in ids}
    listing = alice.get("/v2/images", params={"tag": tag, "sort": "name:asc"}).json()["images"]
    all_listing = admin.get("/v2/images", params={"limit": 1000}).json()["images"]
    members = alice.get(f"/v2/images/{ids[1]}/members").json()["members"]
    return images, listing, all_listing, members


def test_sigkill_and_restart_keeps_every_image(own_server):
    srv = own_server
    alice, bob, admin = Raw(srv.url, "alice"), Raw(srv.url, "bob"), Raw(srv.url, "admin")
    tag = unique("restart")
    specs = [
        dict(name=f"{tag}-0", disk_format="qcow2", container_format="bare", visibility="private",
             min_disk=5, min_ram=512, tags=[tag, "linux"], os_distro="debian", hw_disk_bus="scsi"),
        dict(name=f"{tag}-1", disk_format="raw", container_format="bare", visibility="shared",
             tags=[tag], description="shared with bob"),
        dict(name=f"{tag}-2", visibility="community", protected=True, tags=[tag, "ünïcode tag"],
             **{"trait:CUSTOM_X": "required", "emoji": "☃ snow"}),
        dict(name=f"{tag}-3", disk_format="iso", container_format="bare", os_hidden=True, tags=[tag]),
        dict(name=f"{tag}-4", disk_format="vmdk", container_format="ova", tags=[tag]),
        dict(name=f"{tag}-5", tags=[tag]),
    ]
    ids = [alice.create(**s)["id"] for s in specs]
    # later changes, so that the catalog has updates and not just inserts
    assert alice.patch(f"/v2/images/{ids[0]}", [{"op": "add", "path": "/os_version", "value": "13"},
                                                {"op": "replace", "path": "/min_ram", "value": 1024}]).status_code == 200
    assert alice.put(f"/v2/images/{ids[4]}/tags/late-tag").status_code == 204
    assert alice.post(f"/v2/images/{ids[1]}/members", json={"member": project("bob")}).status_code == 200
    assert bob.put(f"/v2/images/{ids[1]}/members/{project('bob')}", json={"status": "accepted"}).status_code == 200
    assert upload(alice, ids[4], b"restart test data\n" * 1000).status_code == 204
    assert alice.post(f"/v2/images/{ids[4]}/actions/deactivate").status_code == 204
    assert alice.delete(f"/v2/images/{ids[5]}").status_code == 204
    live = ids[:5]

    before = snapshot(alice, admin, tag, live)
    images_before = before[0]
    assert images_before[ids[0]]["min_ram"] == 1024 and images_before[ids[0]]["os_version"] == "13"
    assert images_before[ids[4]]["status"] == "deactivated"
    assert sorted(images_before[ids[4]]["tags"]) == sorted([tag, "late-tag"])
    bob_before = sorted(i["id"] for i in bob.get("/v2/images").json()["images"])
    assert ids[1] in bob_before

    proc = srv.proc
    srv.kill(signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    srv.start(port=srv.port)

    after = snapshot(alice, admin, tag, live)
    for iid in live:
        assert after[0][iid] == images_before[iid], iid
    assert after[1] == before[1]          # alice's tag listing (name order), same objects
    assert after[2] == before[2]          # admin's full listing (default order)
    assert after[3] == before[3]          # members of the shared image
    assert sorted(i["id"] for i in bob.get("/v2/images").json()["images"]) == bob_before
    # the deleted image stays deleted, and its id can't be reused
    assert alice.get(f"/v2/images/{ids[5]}").status_code == 404
    assert alice.post("/v2/images", json={"id": ids[5]}).status_code == 409
    # the protected one is still protected
    assert alice.delete(f"/v2/images/{ids[2]}").status_code == 403

    # the restarted server takes writes, and those survive a second SIGKILL too
    r = alice.patch(f"/v2/images/{ids[3]}", [{"op": "replace", "path": "/name", "value": f"{tag}-3-renamed"}])
    assert r.status_code == 200
    renamed = r.json()
    assert alice.post(f"/v2/images/{ids[4]}/actions/reactivate").status_code == 204
    srv.kill(signal.SIGKILL)
    srv.start(port=srv.port)
    assert alice.get(f"/v2/images/{ids[3]}").json() == renamed
    assert alice.get(f"/v2/images/{ids[4]}").json()["status"] == "active"
    assert alice.get(f"/v2/images/{ids[0]}").json() == images_before[ids[0]]
