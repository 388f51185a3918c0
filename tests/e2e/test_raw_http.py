"""Raw HTTP checks of behaviour the clients hide: versions, error bodies, headers."""

import re
import uuid

import pytest
import requests

from conftest import project, unique

REQ_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MISSING = "/v2/images/" + "00000000-0000-4000-8000-000000000000"


def test_versions_root_is_300_and_versions_is_200_without_token(url):
    root = requests.get(url + "/", headers={"Accept": "application/json"}, timeout=10)
    assert root.status_code == 300
    versions = requests.get(url + "/versions", timeout=10)
    assert versions.status_code == 200
    assert root.json() == versions.json()
    entries = versions.json()["versions"]
    ids = [v["id"] for v in entries]
    assert "v2.0" in ids and "v2.1" in ids and "v2.5" in ids
    assert [v["status"] for v in entries].count("CURRENT") == 1
    assert all(v["status"] in ("CURRENT", "SUPPORTED") for v in entries)
    for v in entries:
        assert v["links"] == [{"rel": "self", "href": url + "/v2/"}]
    # An unknown version prefix is answered with the versions document too.
    assert requests.get(url + "/v1/images", timeout=10).status_code == 300


def test_minor_version_prefix_aliases_v2(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("alias"))["id"]
    assert alice.get(f"/v2.1/images/{iid}").json() == alice.get(f"/v2/images/{iid}").json()
    assert iid in [i["id"] for i in alice.get("/v2.5/images", params={"limit": 1000}).json()["images"]]


def test_image_create_location_header_and_body(raw, url):
    r = raw["alice"].post("/v2/images", json={"name": unique("loc"), "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201
    body = r.json()
    assert r.headers["Location"] == f"{url}/v2/images/{body['id']}"
    assert r.headers["Content-Type"].startswith("application/json")
    again = raw["alice"].get(r.headers["Location"].removeprefix(url))
    assert again.status_code == 200
    assert again.json() == body
    # Every base attribute is present, even when unset; links are relative.
    for key in ("id", "name", "status", "visibility", "protected", "os_hidden", "owner", "container_format",
                "disk_format", "size", "virtual_size", "min_disk", "min_ram", "checksum", "os_hash_algo",
                "os_hash_value", "created_at", "updated_at", "tags", "self", "file", "schema"):
        assert key in body, key
    assert body["status"] == "queued"
    assert body["visibility"] == "shared"  # the v2.5+ default
    assert body["owner"] == project("alice")
    assert body["size"] is None and body["checksum"] is None
    assert body["min_disk"] == 0 and body["min_ram"] == 0
    assert body["self"] == f"/v2/images/{body['id']}"
    assert body["file"] == f"/v2/images/{body['id']}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])


@pytest.mark.parametrize("accept,ctype", [
    ("application/json", "application/json"),
    ("*/*", "text/html"),
    (None, "text/plain"),
])
def test_error_body_negotiation_404(raw, accept, ctype):
    # requests sends `Accept: */*` by default; None removes the header altogether.
    headers = {"Accept": accept}
    r = raw["alice"].get(MISSING, headers=headers)
    assert r.status_code == 404
    assert r.headers["Content-Type"].split(";")[0].strip() == ctype
    assert REQ_ID.match(r.headers["x-openstack-request-id"])
    if ctype == "application/json":
        body = r.json()
        assert set(body) == {"message", "code", "title"}
        assert body["code"] == "404 Not Found"
        assert body["title"] == "Not Found"
        assert "00000000-0000-4000-8000-000000000000" in body["message"]
    elif ctype == "text/html":
        assert "<title>404 Not Found</title>" in r.text
        assert "<h1>404 Not Found</h1>" in r.text
        assert "00000000-0000-4000-8000-000000000000" in r.text
    else:
        assert r.text.startswith("404 Not Found\n\n")
        assert "00000000-0000-4000-8000-000000000000" in r.text
        assert "<" not in r.text


def test_error_json_for_other_statuses(raw):
    j = {"Accept": "application/json"}
    r = raw["alice"].post("/v2/images", data="{not json", headers={**j, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == "400 Bad Request"
    r = raw["alice"].post("/v2/images", json={"min_ram": -1}, headers=j)
    assert r.status_code == 400 and r.json()["title"] == "Bad Request"
    r = raw["alice"].post("/v2/images", json={"status": "active"}, headers=j)
    assert r.status_code == 403 and r.json()["code"] == "403 Forbidden"
    r = raw["alice"].delete("/v2/images", headers=j)
    assert r.status_code == 405
    assert r.json()["code"] == "405 Method Not Allowed"
    assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]
    r = requests.get(raw["alice"].base + "/v2/images", headers=j, timeout=10)
    assert r.status_code == 401
    assert r.json()["code"] == "401 Unauthorized"


def test_unauthenticated_and_bad_token(url):
    assert requests.get(url + "/v2/images", timeout=10).status_code == 401
    assert requests.get(url + "/v2/images", headers={"X-Auth-Token": "nope"}, timeout=10).status_code == 401


def test_request_id_on_every_response(raw, url):
    alice = raw["alice"]
    img = alice.create(name=unique("rid"))
    iid = img["id"]
    responses = [
        requests.get(url + "/", timeout=10),
        requests.get(url + "/versions", timeout=10),
        requests.get(url + "/v2/images", timeout=10),  # 401
        alice.get("/v2/images"),
        alice.get(f"/v2/images/{iid}"),
        alice.get(MISSING),
        alice.get("/v2/images/not-a-uuid"),
        alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/name", "value": unique("rid2")}]),
        alice.request("PATCH", f"/v2/images/{iid}", data="[]", headers={"Content-Type": "application/json"}),  # 415
        alice.put(f"/v2/images/{iid}/tags/x"),
        alice.get("/v2/schemas/image"),
        alice.delete(f"/v2/images/{iid}"),
        alice.request("PUT", "/v2/images"),  # 405
    ]
    ids = []
    for r in responses:
        rid = r.headers.get("x-openstack-request-id")
        assert rid and REQ_ID.match(rid), (r.request.method, r.request.url, r.status_code, rid)
        ids.append(rid)
    assert len(set(ids)) == len(ids), "request ids must be unique per request"
    # An incoming request id is adopted.
    mine = "req-" + str(uuid.uuid4())
    r = alice.get("/v2/images", headers={"X-OpenStack-Request-ID": mine})
    assert r.headers["x-openstack-request-id"] == mine


def test_status_codes_of_odd_paths(raw):
    alice = raw["alice"]
    assert alice.get("/v2/images/").status_code == 404
    assert alice.delete("/v2/images/").status_code == 404
    assert alice.get("/v2/images/not-a-uuid").status_code == 404
    r = alice.request("PATCH", MISSING, data="[]", headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert "application/openstack-images-v2.1-json-patch" in r.headers["Accept-Patch"]
    assert "application/openstack-images-v2.0-json-patch" in r.headers["Accept-Patch"]


def test_patch_both_media_types(raw):
    alice = raw["alice"]
    img = alice.create(name=unique("patch"), os_distro="debian")
    iid = img["id"]
    r = alice.patch(f"/v2/images/{iid}", [
        {"op": "replace", "path": "/name", "value": "patched-21"},
        {"op": "add", "path": "/os_distro", "value": "ubuntu"},  # add overwrites (RFC 6902)
        {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
        {"op": "replace", "path": "/min_ram", "value": 2048},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "patched-21"
    assert body["os_distro"] == "ubuntu" and body["hw_disk_bus"] == "scsi" and body["min_ram"] == 2048
    # draft-04 (Tempest's dialect)
    r = alice.request("PATCH", f"/v2/images/{iid}", json=[{"replace": "/name", "value": "patched-20"},
                                                         {"remove": "/hw_disk_bus"}],
                      headers={"Content-Type": "application/openstack-images-v2.0-json-patch"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "patched-20" and "hw_disk_bus" not in r.json()
    # draft-04 add of an existing property conflicts; the image is left unchanged.
    r = alice.request("PATCH", f"/v2/images/{iid}", json=[{"add": "/os_distro", "value": "x"}],
                      headers={"Content-Type": "application/openstack-images-v2.0-json-patch"})
    assert r.status_code == 409
    # replace of a missing property -> 409; read-only -> 403; a failed PATCH changes nothing
    before = alice.get(f"/v2/images/{iid}").json()
    assert alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/nope", "value": "x"}]).status_code == 409
    assert alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/name", "value": "zzz"},
                                            {"op": "replace", "path": "/status", "value": "active"}]).status_code == 403
    assert alice.patch(f"/v2/images/{iid}", [{"op": "add", "path": "/os_glance_x", "value": "v"}]).status_code == 403
    assert alice.patch(f"/v2/images/{iid}", [{"op": "add", "path": "/k", "value": 5}]).status_code == 400
    assert alice.get(f"/v2/images/{iid}").json() == before


def test_tags_put_idempotent_delete_missing_404(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("tags"), tags=["b", "a", "a"])["id"]
    assert sorted(alice.get(f"/v2/images/{iid}").json()["tags"]) == ["a", "b"]
    assert alice.put(f"/v2/images/{iid}/tags/c").status_code == 204
    assert alice.put(f"/v2/images/{iid}/tags/c").status_code == 204
    assert sorted(alice.get(f"/v2/images/{iid}").json()["tags"]) == ["a", "b", "c"]
    assert alice.delete(f"/v2/images/{iid}/tags/a").status_code == 204
    assert alice.delete(f"/v2/images/{iid}/tags/a").status_code == 404
    assert sorted(alice.get(f"/v2/images/{iid}").json()["tags"]) == ["b", "c"]


def test_visibility_and_policy_between_projects(raw):
    alice, bob, carol, admin = raw["alice"], raw["bob"], raw["carol"], raw["admin"]
    private = alice.create(name=unique("priv"), visibility="private")["id"]
    community = alice.create(name=unique("comm"), visibility="community")["id"]
    # bob can't see alice's private image at all (404, not 403), nor change it
    assert bob.get(f"/v2/images/{private}").status_code == 404
    assert bob.delete(f"/v2/images/{private}").status_code == 404
    # community: readable by bob, but not modifiable (403), not in his default list
    assert bob.get(f"/v2/images/{community}").status_code == 200
    assert bob.patch(f"/v2/images/{community}", [{"op": "replace", "path": "/name", "value": "x"}]).status_code == 403
    assert community not in [i["id"] for i in bob.get("/v2/images", params={"limit": 1000}).json()["images"]]
    assert community in [i["id"] for i in bob.get("/v2/images", params={"visibility": "community", "limit": 1000})
                         .json()["images"]]
    # public needs admin
    assert alice.post("/v2/images", json={"visibility": "public"}).status_code == 403
    pub = admin.create(name=unique("pub"), visibility="public")
    assert pub["visibility"] == "public" and pub["owner"] == project("admin")
    assert bob.get(f"/v2/images/{pub['id']}").status_code == 200
    # a reader can read public images but not create
    assert carol.get(f"/v2/images/{pub['id']}").status_code == 200
    assert carol.post("/v2/images", json={"name": "x"}).status_code == 403
    # admin sees everything and may change it
    assert admin.get(f"/v2/images/{private}").status_code == 200
    r = admin.patch(f"/v2/images/{private}", [{"op": "add", "path": "/touched_by", "value": "admin"}])
    assert r.status_code == 200 and r.json()["touched_by"] == "admin"
    assert admin.delete(f"/v2/images/{pub['id']}").status_code == 204


def test_list_response_shape_and_links(raw):
    alice = raw["alice"]
    tag = unique("shape")
    created = [alice.create(name=f"{tag}-{n}", tags=[tag]) for n in range(3)]
    # default order: created_at desc, then id desc (timestamps have one-second resolution)
    expected = [i["id"] for i in sorted(created, key=lambda i: (i["created_at"], i["id"]), reverse=True)]
    r = alice.get("/v2/images", params={"tag": tag, "limit": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["schema"] == "/v2/schemas/images"
    assert body["first"] == f"/v2/images?tag={tag}&limit=2"
    assert len(body["images"]) == 2
    assert [i["id"] for i in body["images"]] == expected[:2]
    assert body["next"].startswith("/v2/images?") and f"marker={body['images'][-1]['id']}" in body["next"]
    last = alice.get("/v2/images", params={"tag": tag, "limit": 5}).json()
    assert [i["id"] for i in last["images"]] == expected and "next" not in last


def test_list_bad_parameters_are_400(raw):
    alice = raw["alice"]
    for params in ({"limit": "x"}, {"limit": "-1"}, {"sort_key": "bogus"}, {"sort_dir": "sideways"},
                   {"sort": "name:up"}, {"sort": "name:asc", "sort_key": "name"}, {"visibility": "everyone"},
                   {"protected": "yes"}, {"marker": str(uuid.uuid4())}, {"name": "gt:x"}):
        r = alice.get("/v2/images", params=params)
        assert r.status_code == 400, (params, r.status_code, r.text)


def test_delete_then_gone_and_id_not_reused(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("del"))["id"]
    assert alice.delete(f"/v2/images/{iid}").status_code == 204
    assert alice.get(f"/v2/images/{iid}").status_code == 404
    assert alice.delete(f"/v2/images/{iid}").status_code == 404
    assert iid not in [i["id"] for i in alice.get("/v2/images", params={"limit": 1000}).json()["images"]]
    assert alice.post("/v2/images", json={"id": iid, "name": "again"}).status_code == 409


def test_schemas(raw):
    alice = raw["alice"]
    image = alice.get("/v2/schemas/image").json()
    assert image["name"] == "image"
    assert image["additionalProperties"] == {"type": "string"}
    for key in ("id", "name", "status", "visibility", "min_ram", "tags", "os_hidden"):
        assert key in image["properties"]
    images = alice.get("/v2/schemas/images").json()
    assert images["name"] == "images"
    assert alice.get("/v2/schemas/member").json()["name"] == "member"
    assert alice.get("/v2/schemas/members").json()["name"] == "members"


def walk(client, url):
    """Follows `next` links to the end; returns (ids, page sizes)."""
    ids, sizes = [], []
    while url:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text)
        body = r.json()
        ids += [i["id"] for i in body["images"]]
        sizes.append(len(body["images"]))
        url = body.get("next")
        assert len(sizes) < 100, "paging does not terminate"
    return ids, sizes


@pytest.mark.parametrize("sort", ["name:asc", "name:desc", "disk_format:asc,name:desc", "status:asc,disk_format:desc",
                                  "created_at:asc"])
def test_keyset_paging_with_nulls_and_mixed_directions(raw, sort):
    alice = raw["alice"]
    tag = unique("nulls")
    made = []
    for n in range(11):
        body = {"tags": [tag]}
        if n % 2:
            body["name"] = f"n{n % 4}"          # duplicate names, and some images without a name
        if n % 3 == 0:
            body["disk_format"] = "raw"
        made.append(alice.create(**body))
    full = alice.get("/v2/images", params={"tag": tag, "sort": sort}).json()["images"]
    assert sorted(i["id"] for i in full) == sorted(i["id"] for i in made)
    first_key, _, first_dir = sort.split(",")[0].partition(":")
    values = [i[first_key] for i in full if i[first_key] is not None]
    assert values == sorted(values, reverse=(first_dir == "desc"))
    for limit in (1, 3, 4):
        ids, sizes = walk(alice, f"/v2/images?tag={tag}&sort={sort}&limit={limit}")
        assert ids == [i["id"] for i in full], (sort, limit)
        assert all(s == limit for s in sizes[:-1])


def test_updated_at_moves_on_change(raw):
    import time
    alice = raw["alice"]
    img = alice.create(name=unique("upd"))
    assert img["updated_at"] == img["created_at"]
    time.sleep(1.1)
    changed = alice.patch(f"/v2/images/{img['id']}", [{"op": "add", "path": "/k", "value": "v"}]).json()
    assert changed["created_at"] == img["created_at"]
    assert changed["updated_at"] > img["updated_at"]
    time.sleep(1.1)
    assert alice.put(f"/v2/images/{img['id']}/tags/t").status_code == 204
    assert alice.get(f"/v2/images/{img['id']}").json()["updated_at"] > changed["updated_at"]


def test_unknown_v2_path_error_is_negotiated_too(raw):
    """Every error body follows the Accept negotiation, also 404 for a path no route matches."""
    r = raw["alice"].get("/v2/no-such-collection", headers={"Accept": "application/json"})
    assert r.status_code == 404
    assert REQ_ID.match(r.headers["x-openstack-request-id"])
    assert r.headers.get("Content-Type", "").startswith("application/json"), (r.headers, r.text)
    assert r.json()["code"] == "404 Not Found"


def test_concurrent_changes_to_one_image_all_land(raw):
    """Many clients changing the same image at once: every tag and property is kept (no lost update)."""
    import concurrent.futures as cf
    import json as _json

    alice = raw["alice"]
    iid = alice.create(name=unique("conc"))["id"]
    base, token = alice.base, alice.session.headers["X-Auth-Token"]

    def add_tag(n):
        return requests.put(f"{base}/v2/images/{iid}/tags/t{n}", headers={"X-Auth-Token": token}, timeout=60).status_code

    def add_prop(n):
        return requests.patch(f"{base}/v2/images/{iid}",
                              data=_json.dumps([{"op": "add", "path": f"/p{n}", "value": str(n)}]),
                              headers={"X-Auth-Token": token,
                                       "Content-Type": "application/openstack-images-v2.1-json-patch"},
                              timeout=60).status_code

    with cf.ThreadPoolExecutor(12) as pool:
        tag_codes = list(pool.map(add_tag, range(40)))
        prop_codes = list(pool.map(add_prop, range(40)))
    assert tag_codes == [204] * 40
    assert prop_codes == [200] * 40
    img = alice.get(f"/v2/images/{iid}").json()
    assert sorted(img["tags"]) == sorted(f"t{n}" for n in range(40))
    assert all(img[f"p{n}"] == str(n) for n in range(40))


def test_quotas_are_413(raw):
    alice = raw["alice"]
    assert alice.post("/v2/images", json={f"k{n}": "v" for n in range(129)}).status_code == 413
    assert alice.post("/v2/images", json={"tags": [f"t{n}" for n in range(129)]}).status_code == 413
    ok = alice.post("/v2/images", json={f"k{n}": "v" for n in range(128)})
    assert ok.status_code == 201 and ok.json()["k127"] == "v"


def test_admin_default_list_has_every_projects_images(raw):
    alice, admin = raw["alice"], raw["admin"]
    tag = unique("adminlist")
    private = alice.create(name=f"{tag}-p", visibility="private", tags=[tag])["id"]
    shared = alice.create(name=f"{tag}-s", visibility="shared", tags=[tag])["id"]
    community = alice.create(name=f"{tag}-c", visibility="community", tags=[tag])["id"]
    listed = {i["id"] for i in admin.get("/v2/images", params={"tag": tag}).json()["images"]}
    # all of another project's images, except its community ones (those need visibility=community/all)
    assert listed == {private, shared}
    listed_all = {i["id"] for i in admin.get("/v2/images", params={"tag": tag, "visibility": "all"}).json()["images"]}
    assert listed_all == {private, shared, community}
    assert {i["id"] for i in raw["bob"].get("/v2/images", params={"tag": tag}).json()["images"]} == set()
