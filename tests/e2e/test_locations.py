"""Issue 20, point 5: the v2.17 locations API and the store endpoints, against the real binary.

Two named file stores (`fast`, `slow`), imports and locations allowed from the test origin. `nova` is a
service user (roles admin + service in the service project, as devstack gives Nova); alice and bob
are members of two projects, carol a reader, admin an admin without the service role.
"""

from __future__ import annotations

import hashlib
import json
import signal
import uuid
from pathlib import Path

import pytest

from conftest import TOKENS, ImagedServer, Raw, make_active, random_bytes, wait_for

NOVA = {"token": "novatok", "user_id": "u-nova", "project_id": "p-service", "roles": ["admin", "service"]}


@pytest.fixture(scope="module")
def loc_server(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-locations"), "--store", "fast=file", "--store", "slow=file",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       "--task-lease-seconds", "3")
    srv.token_file.write_text(json.dumps({"tokens": [*TOKENS.values(), NOVA]}))
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def who(loc_server):
    clients = {name: Raw(loc_server.url, name) for name in TOKENS}
    clients["nova"] = Raw(loc_server.url, None)
    clients["nova"].session.headers["X-Auth-Token"] = NOVA["token"]
    for client in clients.values():
        client.session.headers["Accept"] = "application/json"  # Glance's errors in JSON
    return clients


def location_task(client: Raw, image_id: str, wanted: str) -> dict:
    def done():
        tasks = client.get(f"/v2/images/{image_id}/tasks").json()["tasks"]
        finished = [t for t in tasks if t["status"] in ("success", "failure")]
        return finished[0] if finished else None
    task = wait_for(done, timeout=30, what=f"location task of {image_id}")
    assert task["type"] == "location_import", task
    assert task["status"] == wanted, task
    return task


def test_versions_list_v2_17_current(who):
    r = who["alice"].get("/versions")
    versions = [(v["id"], v["status"]) for v in r.json()["versions"]]
    assert versions[:5] == [("v2.17", "CURRENT"), ("v2.16", "SUPPORTED"), ("v2.15", "SUPPORTED"),
                            ("v2.14", "SUPPORTED"), ("v2.13", "SUPPORTED")]
    assert len(versions) == 18
    # A client pinned to the newest version reaches the API under its alias.
    assert who["alice"].get("/v2.17/images").status_code == 200


def test_add_location_with_validation_data_then_download(who, origin):
    data = random_bytes(300_000, 20)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    alice = who["alice"]
    image = alice.create(name="loc", disk_format="raw", container_format="bare")
    sha256 = hashlib.sha256(data).hexdigest()
    r = alice.post(f"/v2/images/{image['id']}/locations",
                   json={"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha256}})
    assert r.status_code == 202, r.text
    assert r.content == b""
    task = location_task(alice, image["id"], "success")
    assert task["input"]["loc_url"] == url and task["input"]["validation_data"]["os_hash_algo"] == "sha256"
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert (shown["status"], shown["size"], shown["checksum"], shown["os_hash_algo"], shown["os_hash_value"]) == \
        ("active", len(data), hashlib.md5(data).hexdigest(), "sha256", sha256)
    assert shown["stores"] == "web"  # Glance's http store, as Tempest expects with named stores
    assert "os_glance_import_task" not in shown
    # Downloads read the location: whole and a range.
    got = alice.get(f"/v2/images/{image['id']}/file")
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    part = alice.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=1000-70999"})
    assert part.status_code == 206 and part.content == data[1000:71000]
    assert part.headers["Content-Range"] == f"bytes 1000-70999/{len(data)}"
    # GET locations: the service role only (admin without it, the owner, a reader: 403).
    listed = who["nova"].get(f"/v2/images/{image['id']}/locations")
    assert listed.status_code == 200 and listed.json() == [{"url": url, "metadata": {"store": "web"}}]
    for name in ("admin", "alice"):
        refused = who[name].get(f"/v2/images/{image['id']}/locations")
        assert refused.status_code == 403, (name, refused.text)
    assert who["bob"].get(f"/v2/images/{image['id']}/locations").status_code == 404
    # The image is no longer queued: a second location is refused.
    again = alice.post(f"/v2/images/{image['id']}/locations", json={"url": url})
    assert again.status_code == 409 and "not allowed to add locations" in again.text


def test_add_location_without_validation_computes_the_configured_hash(who, origin):
    data = random_bytes(50_000, 21)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    nova = who["nova"]
    image = who["alice"].create(name="loc2", disk_format="raw", container_format="bare")
    assert nova.post(f"/v2/images/{image['id']}/locations", json={"url": url}).status_code == 202
    location_task(who["alice"], image["id"], "success")
    shown = who["alice"].get(f"/v2/images/{image['id']}").json()
    assert (shown["status"], shown["os_hash_algo"], shown["os_hash_value"], shown["checksum"]) == \
        ("active", "sha512", hashlib.sha512(data).hexdigest(), hashlib.md5(data).hexdigest())


def test_wrong_hash_fails_the_task_and_requeues(who, origin):
    data = random_bytes(40_000, 22)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    alice = who["alice"]
    image = alice.create(disk_format="raw", container_format="bare")
    r = alice.post(f"/v2/images/{image['id']}/locations",
                   json={"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "beefdead" * 16}})
    assert r.status_code == 202
    task = location_task(alice, image["id"], "failure")
    assert "not matched" in task["message"]
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert (shown["status"], shown["checksum"], shown["os_hash_algo"], shown["os_hash_value"], shown["size"]) == \
        ("queued", None, None, None, None)
    # As Glance's http store: the location and `stores` stay (Tempest asserts 'web' after the failure too).
    assert shown["stores"] == "web"
    assert who["nova"].get(f"/v2/images/{image['id']}/locations").json() == [{"url": url, "metadata": {"store": "web"}}]
    assert alice.get(f"/v2/images/{image['id']}/file").status_code == 204
    # Queued again: a right location is accepted now.
    good = hashlib.sha512(data).hexdigest()
    assert alice.post(f"/v2/images/{image['id']}/locations",
                      json={"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": good}}).status_code == 202
    wait_for(lambda: alice.get(f"/v2/images/{image['id']}").json()["status"] == "active", timeout=30, what="active")
    assert len(who["nova"].get(f"/v2/images/{image['id']}/locations").json()) == 1
    assert alice.get(f"/v2/images/{image['id']}/file").content == data


def test_add_location_refusals(who, origin):
    data = random_bytes(1000, 23)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    alice = who["alice"]
    image = alice.create(disk_format="raw", container_format="bare")
    path = f"/v2/images/{image['id']}/locations"
    sha256 = hashlib.sha256(data).hexdigest()
    bad = [
        {"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "dbc9e0f80d131e64b94913a7b40bb5"}},
        {"url": url, "validation_data": {"os_hash_value": hashlib.sha512(data).hexdigest()}},
        {"url": url, "validation_data": {"os_hash_algo": "sha123", "os_hash_value": sha256}},
        {"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": sha256}},
        {"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": "zz" * 32}},
        {"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha256, "x": 1}},
        {"url": url, "extra": True},
        {"validation_data": {}},
        {"url": 5},
        {"url": "file:///etc/passwd"},
        {"url": "rbd://fsid/pool/image/snap"},
        {"url": "http://169.254.169.254/latest/meta-data"},
    ]
    for body in bad:
        r = alice.post(path, json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["code"] == "400 Bad Request", r.text
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    # RBAC: another project's member does not see it; a reader cannot add; an admin without the
    # service role is not the owner (Glance's SERVICE_OR_PROJECT_MEMBER has no admin clause).
    assert who["bob"].post(path, json={"url": url}).status_code == 404
    assert who["admin"].post(path, json={"url": url}).status_code == 403
    shared = alice.create(disk_format="raw", container_format="bare", visibility="community")
    assert who["carol"].post(f"/v2/images/{shared['id']}/locations", json={"url": url}).status_code == 403
    assert who["bob"].post(f"/v2/images/{shared['id']}/locations", json={"url": url}).status_code == 403
    assert who["alice"].get(f"/v2/images/{shared['id']}").json()["status"] == "queued"
    assert alice.post(f"/v2/images/{uuid.uuid4()}/locations", json={"url": url}).status_code == 404
    # Only GET and POST.
    r = alice.put(path, json={"url": url})
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"


def test_stores_detail(who, loc_server):
    r = who["admin"].get("/v2/info/stores/detail")
    assert r.status_code == 200, r.text
    stores = {s["id"]: s for s in r.json()["stores"]}
    assert set(stores) == {"fast", "slow"}
    fast = stores["fast"]
    assert fast["type"] == "file" and fast["default"] is True and fast["weight"] == 0
    assert Path(fast["properties"]["data_dir"]).is_dir()
    assert fast["properties"]["thin_provisioning"] is True  # file stores leave zero blocks as holes (issue 21 point 5)
    assert "default" not in stores["slow"]
    assert who["nova"].get("/v2/info/stores/detail").status_code == 200
    for name in ("alice", "carol"):
        refused = who[name].get("/v2/info/stores/detail")
        assert refused.status_code == 403 and refused.json()["title"] == "Forbidden", (name, refused.text)
    # The plain list stays as it was.
    assert [s["id"] for s in who["alice"].get("/v2/info/stores").json()["stores"]] == ["fast", "slow"]


def test_stores_detail_single_store_is_404(raw):
    r = raw["admin"].get("/v2/info/stores/detail")
    assert r.status_code == 404, r.text


def test_delete_from_store(who, loc_server):
    data = random_bytes(20_000, 24)
    alice, admin = who["alice"], who["admin"]
    image = make_active(alice, data=data, disk_format="raw", container_format="bare")
    r = admin.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "copy-image"}, "stores": ["slow"]})
    assert r.status_code == 202, r.text
    wait_for(lambda: sorted(alice.get(f"/v2/images/{image['id']}").json()["stores"].split(",")) == ["fast", "slow"],
             timeout=30, what="copied to slow")
    detail = {s["id"]: s for s in admin.get("/v2/info/stores/detail").json()["stores"]}
    slow_blob = Path(detail["slow"]["properties"]["data_dir"]) / "images" / image["id"]
    assert slow_blob.read_bytes() == data
    path = f"/v2/stores/slow/{image['id']}"
    # delete_image_location is admin-only; strangers do not see the image; unknown store 409.
    assert alice.delete(path).status_code == 403
    assert who["bob"].delete(path).status_code == 404
    assert admin.delete(f"/v2/stores/nowhere/{image['id']}").status_code == 409
    assert admin.delete(f"/v2/stores/slow/{uuid.uuid4()}").status_code == 404
    assert slow_blob.exists()
    r = admin.delete(path)
    assert r.status_code == 204, r.text
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert shown["stores"] == "fast" and shown["status"] == "active"
    assert not slow_blob.exists()
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    # The only copy left: 403 (Glance: delete the image instead); a queued image: 409.
    last = admin.delete(f"/v2/stores/fast/{image['id']}")
    assert last.status_code == 403 and "only store" in last.text
    assert admin.delete(path).status_code == 403
    queued = alice.create(disk_format="raw", container_format="bare")
    assert admin.delete(f"/v2/stores/fast/{queued['id']}").status_code == 409
    assert admin.get(path).status_code == 405


def test_delete_from_store_single_store_is_404(raw):
    image = make_active(raw["alice"], disk_format="raw", container_format="bare")
    assert raw["admin"].delete(f"/v2/stores/file/{image['id']}").status_code == 404


def test_views_hide_locations_by_default(who):
    image = make_active(who["alice"], disk_format="raw", container_format="bare")
    assert "direct_url" not in image and "locations" not in image
    r = who["alice"].patch(f"/v2/images/{image['id']}", [{"op": "add", "path": "/locations/-", "value": {"url": "http://x/y", "metadata": {}}}],
                           headers={"Accept": "application/json"})
    assert r.status_code == 403 and "locations are invisible" in r.text


def test_show_direct_url_and_multiple_locations(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-show-locations"), "--store", "fast=file", "--store", "slow=file",
                       "--show-image-direct-url", "--show-multiple-locations",
                       "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    try:
        alice, bob, admin = Raw(srv.url, "alice"), Raw(srv.url, "bob"), Raw(srv.url, "admin")
        stored = make_active(alice, visibility="community")
        fast_dir = {s["id"]: s for s in admin.get("/v2/info/stores/detail").json()["stores"]}["fast"]["properties"]["data_dir"]
        blob_url = f"file://{fast_dir}/images/{stored['id']}"
        assert stored["direct_url"] == blob_url
        assert stored["locations"] == [{"url": blob_url, "metadata": {"store": "fast"}}]
        # In lists too; another project sees the community image but not its locations (get_image_location).
        listed = {i["id"]: i for i in alice.get("/v2/images").json()["images"]}
        assert listed[stored["id"]]["locations"] == stored["locations"]
        theirs = bob.get(f"/v2/images/{stored['id']}").json()
        assert theirs["locations"] == [] and "direct_url" not in theirs
        assert admin.get(f"/v2/images/{stored['id']}").json()["direct_url"] == blob_url
        # A queued image has none; an image at an http location shows that URL.
        queued = alice.create(disk_format="raw", container_format="bare")
        assert queued["locations"] == [] and "direct_url" not in queued
        data = random_bytes(5000, 25)
        url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
        assert alice.post(f"/v2/images/{queued['id']}/locations", json={"url": url}).status_code == 202
        active = wait_for(lambda: (lambda i: i if i["status"] == "active" else None)(alice.get(f"/v2/images/{queued['id']}").json()),
                          timeout=30, what="location image active")
        assert active["direct_url"] == url and active["locations"] == [{"url": url, "metadata": {"store": "web"}}]
        assert alice.get(f"/v2/images/{queued['id']}/file").content == data
    finally:
        srv.kill(signal.SIGTERM)


def test_location_with_one_unnamed_store(import_server, origin):
    """One unnamed store: no `stores` attribute, empty location metadata (Glance without enabled_backends)."""
    alice, nova_less_admin = Raw(import_server.url, "alice"), Raw(import_server.url, "admin")
    data = random_bytes(10_000, 26)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    image = alice.create(disk_format="raw", container_format="bare")
    assert alice.post(f"/v2/images/{image['id']}/locations", json={"url": url}).status_code == 202
    location_task(alice, image["id"], "success")
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active" and "stores" not in shown and shown["checksum"] == hashlib.md5(data).hexdigest()
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    assert nova_less_admin.get(f"/v2/images/{image['id']}/locations").status_code == 403


def test_openstacksdk_locations_stores_and_delete_from_store(loc_server, who, origin):
    """openstacksdk's own calls: add_image_location, image_locations, stores(details=True), delete_image(store=)."""
    import openstack

    def connect(tok):
        return openstack.connect(load_yaml_config=False, load_envvars=False, auth_type="admin_token",
                                 auth={"endpoint": loc_server.url + "/v2", "token": tok})

    alice, admin, nova = connect(TOKENS["alice"]["token"]), connect(TOKENS["admin"]["token"]), connect(NOVA["token"])
    data = random_bytes(30_000, 27)
    url = origin.serve(f"/loc-{uuid.uuid4().hex}.raw", data)
    image = alice.image.create_image(name="sdk-loc", disk_format="raw", container_format="bare")
    alice.image.add_image_location(image, url, validation_data={"os_hash_algo": "sha256",
                                                                "os_hash_value": hashlib.sha256(data).hexdigest()})
    wait_for(lambda: alice.image.get_image(image.id).status == "active", timeout=30, what="sdk location image active")
    assert [(loc.url, loc.metadata) for loc in nova.image.image_locations(image)] == [(url, {"store": "web"})]
    with pytest.raises(openstack.exceptions.ForbiddenException):
        list(alice.image.image_locations(image))

    detailed = {s.id: s for s in admin.image.stores(details=True)}
    assert set(detailed) == {"fast", "slow"} and detailed["fast"].is_default
    assert [s.id for s in alice.image.stores()] == ["fast", "slow"]

    stored = make_active(who["alice"], data=data)
    assert who["admin"].post(f"/v2/images/{stored['id']}/import",
                             json={"method": {"name": "copy-image"}, "stores": ["slow"]}).status_code == 202
    stores = lambda: sorted(who["alice"].get(f"/v2/images/{stored['id']}").json()["stores"].split(","))  # noqa: E731 (the SDK has no `stores`)
    wait_for(lambda: stores() == ["fast", "slow"], timeout=30, what="copied")
    with pytest.raises(openstack.exceptions.ForbiddenException):
        alice.image.delete_image(stored["id"], store="slow", ignore_missing=False)
    admin.image.delete_image(stored["id"], store="slow", ignore_missing=False)
    assert stores() == ["fast"]
    assert b"".join(alice.image.download_image(stored["id"], stream=True).iter_content(1 << 16)) == data
