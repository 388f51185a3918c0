"""Metadata definitions (issue 20, point 1): Glance's /v2/metadefs API and schemas, driven by the real
`openstack image metadef …` commands and by raw HTTP for codes, bodies and Glance's default policy
(admins manage; readers read public namespaces and their own project's private ones; others get 404)."""

import json
import signal
import subprocess

import pytest

from conftest import ImagedServer, OSCError, Raw, imaged_bin, project, unique

JSON = {"Accept": "application/json"}


def new_namespace(admin: Raw, **body) -> dict:
    body.setdefault("namespace", unique("E2E::NS"))
    r = admin.post("/v2/metadefs/namespaces", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith("/v2/metadefs/namespaces/" + body["namespace"])
    return r.json()


def test_schemas_are_glances(raw):
    carol = raw["carol"]
    names = {"namespace": "namespace", "namespaces": "namespaces", "resource_type": "resource_type_association",
             "resource_types": "resource_type_associations", "object": "object", "objects": "objects",
             "property": "property", "properties": "properties", "tag": "tag", "tags": "tags"}
    for path, name in names.items():
        r = carol.get("/v2/schemas/metadefs/" + path)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/json", (path, r.text)
        assert r.json()["name"] == name
    ns = carol.get("/v2/schemas/metadefs/namespace").json()
    assert ns["required"] == ["namespace"] and ns["additionalProperties"] is False
    assert ns["properties"]["visibility"]["enum"] == ["public", "private"]
    assert ns["properties"]["namespace"]["maxLength"] == 80
    assert "positiveInteger" in ns["definitions"]
    prop = carol.get("/v2/schemas/metadefs/property").json()
    assert prop["required"] == ["type", "title", "name"]
    props = carol.get("/v2/schemas/metadefs/properties").json()
    assert props["properties"]["properties"]["additionalProperties"]["required"] == ["type", "title"]
    assert carol.get("/v2/schemas/metadefs/nope").status_code == 404


def test_shipped_namespaces_and_resource_types(raw, osc):
    carol = raw["carol"]
    types = [t["name"] for t in carol.get("/v2/metadefs/resource_types").json()["resource_types"]]
    for t in ["OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor", "OS::Nova::Server", "OS::Nova::Aggregate"]:
        assert t in types
    listed = [r["Name"] for r in osc["carol"].run("image", "metadef", "resource", "type", "list")]
    assert sorted(listed) == sorted(types)

    hw = carol.get("/v2/metadefs/namespaces/OS::Compute::Hardware").json()
    assert hw["visibility"] == "public" and hw["protected"] is True
    assert hw["self"] == "/v2/metadefs/namespaces/OS::Compute::Hardware"
    assert hw["schema"] == "/v2/schemas/metadefs/namespace"
    assert hw["properties"]["firmware_type"] == {"title": "Firmware Type", "type": "string", "enum": ["bios", "uefi"],
                                                 "description": hw["properties"]["firmware_type"]["description"]}
    assert {a["name"]: a.get("prefix") for a in hw["resource_type_associations"]} == {"OS::Glance::Image": "hw_", "OS::Cinder::Volume": "hw_"}
    # The names as a resource type knows them (its association's prefix).
    flavor = carol.get("/v2/metadefs/namespaces/OS::Compute::CPUTopology", params={"resource_type": "OS::Nova::Flavor"}).json()
    assert "hw:cpu_sockets" in flavor["properties"] and "cpu_sockets" not in flavor["properties"]
    one = carol.get("/v2/metadefs/namespaces/OS::Compute::CPUTopology/properties/hw_cpu_cores",
                    params={"resource_type": "OS::Glance::Image"})
    assert one.status_code == 200 and one.json()["name"] == "hw_cpu_cores" and one.json()["type"] == "integer"
    wrong = carol.get("/v2/metadefs/namespaces/OS::Compute::CPUTopology/properties/cpu_cores",
                      params={"resource_type": "OS::Nova::Flavor"}, headers=JSON)
    assert wrong.status_code == 404 and "hw:" in wrong.json()["message"]

    names = [n["namespace"] for n in carol.get("/v2/metadefs/namespaces", params={"resource_types": "OS::Nova::Aggregate"}).json()["namespaces"]]
    assert "OS::Compute::AllocationRatios" in names and "OS::Compute::Hardware" not in names
    shown = osc["carol"].run("image", "metadef", "namespace", "show", "OS::OperatingSystem")
    assert shown["namespace"] == "OS::OperatingSystem" and shown["visibility"] == "public"


def test_osc_namespace_property_object_association_cycle(osc, raw):
    admin = osc["admin"]
    name = unique("OSC::NS")
    created = admin.run("image", "metadef", "namespace", "create", "--display-name", "OSC namespace",
                        "--description", "made by the openstack CLI", "--public", "--protected", name)
    assert created["namespace"] == name and created["visibility"] == "public" and created["protected"] is True
    assert name in [r["namespace"] for r in admin.run("image", "metadef", "namespace", "list")]

    prop = admin.run("image", "metadef", "property", "create", "--name", "cores", "--title", "Cores", "--type", "integer",
                     "--schema", json.dumps({"minimum": 1, "description": "how many"}), name)
    assert prop["name"] == "cores" and prop["title"] == "Cores" and prop["type"] == "integer"
    stored = raw["admin"].get(f"/v2/metadefs/namespaces/{name}/properties/cores").json()
    assert stored == {"name": "cores", "title": "Cores", "type": "integer", "minimum": 1, "description": "how many"}
    admin.run("image", "metadef", "property", "set", "--title", "vCPU cores", name, "cores", json_out=False)
    assert raw["admin"].get(f"/v2/metadefs/namespaces/{name}/properties/cores").json()["title"] == "vCPU cores"
    listed = admin.run("image", "metadef", "property", "list", name)
    assert [r["name"] for r in listed] == ["cores"]

    obj = admin.run("image", "metadef", "object", "create", "--namespace", name, "disk")
    assert obj["name"] == "disk"
    admin.run("image", "metadef", "object", "update", "--name", "disk2", name, "disk", json_out=False)
    assert [o["name"] for o in raw["admin"].get(f"/v2/metadefs/namespaces/{name}/objects").json()["objects"]] == ["disk2"]
    assert admin.run("image", "metadef", "object", "show", name, "disk2")["name"] == "disk2"

    admin.run("image", "metadef", "resource", "type", "association", "create", "--properties-target", "image",
              name, "OS::Glance::Image")
    assocs = raw["admin"].get(f"/v2/metadefs/namespaces/{name}/resource_types").json()["resource_type_associations"]
    assert [(a["name"], a.get("properties_target")) for a in assocs] == [("OS::Glance::Image", "image")]

    # Protected: nothing in it may be deleted, nor itself.
    with pytest.raises(OSCError):
        admin.run("image", "metadef", "namespace", "delete", name, json_out=False)
    r = raw["admin"].delete(f"/v2/metadefs/namespaces/{name}/objects/disk2", headers=JSON)
    assert r.status_code == 403 and "protected" in r.json()["message"]
    admin.run("image", "metadef", "namespace", "set", "--unprotected", "--public", name, json_out=False)
    assert raw["admin"].get(f"/v2/metadefs/namespaces/{name}").json()["protected"] is False
    admin.run("image", "metadef", "resource", "type", "association", "delete", name, "OS::Glance::Image", json_out=False)
    admin.run("image", "metadef", "object", "delete", name, "disk2", json_out=False)
    admin.run("image", "metadef", "property", "delete", name, "cores", json_out=False)
    shown = raw["admin"].get(f"/v2/metadefs/namespaces/{name}").json()
    assert "objects" not in shown and "properties" not in shown and "resource_type_associations" not in shown
    admin.run("image", "metadef", "namespace", "delete", name, json_out=False)
    assert raw["admin"].get(f"/v2/metadefs/namespaces/{name}").status_code == 404


def test_default_policy_member_reader_admin(raw):
    admin, alice, bob, carol = raw["admin"], raw["alice"], raw["bob"], raw["carol"]
    r = alice.post("/v2/metadefs/namespaces", json={"namespace": unique("Alice::NS")}, headers=JSON)
    assert r.status_code == 403 and r.json()["code"] == "403 Forbidden"
    assert "add_metadef_namespace" in r.json()["message"]

    private = new_namespace(admin, owner=project("alice"), visibility="private", display_name="Alice's")
    name = private["namespace"]
    assert private["owner"] == project("alice") and private["visibility"] == "private" and private["protected"] is False
    # Alice's project reads it; other projects do not see it at all.
    assert alice.get(f"/v2/metadefs/namespaces/{name}").json()["display_name"] == "Alice's"
    for other in (bob, carol):
        r = other.get(f"/v2/metadefs/namespaces/{name}", headers=JSON)
        assert r.status_code == 404 and r.json()["title"] == "Not Found"
        assert name not in [n["namespace"] for n in other.get("/v2/metadefs/namespaces", params={"limit": 1000}).json()["namespaces"]]
    assert name in [n["namespace"] for n in alice.get("/v2/metadefs/namespaces", params={"limit": 1000}).json()["namespaces"]]
    # Reading is not writing: the owner project's member is refused every change.
    assert alice.post(f"/v2/metadefs/namespaces/{name}/tags/t1").status_code == 403
    assert alice.put(f"/v2/metadefs/namespaces/{name}", json={"namespace": name}).status_code == 403
    assert alice.delete(f"/v2/metadefs/namespaces/{name}").status_code == 403
    assert bob.delete(f"/v2/metadefs/namespaces/{name}").status_code == 404
    # The admin's own views and errors.
    dup = admin.post("/v2/metadefs/namespaces", json={"namespace": name}, headers=JSON)
    assert dup.status_code == 409 and name in dup.json()["message"]
    extra = admin.post("/v2/metadefs/namespaces", json={"namespace": unique("X"), "colour": "red"}, headers=JSON)
    assert extra.status_code == 400 and "colour" in extra.json()["message"]
    ro = admin.post("/v2/metadefs/namespaces", json={"namespace": unique("X"), "created_at": "now"}, headers=JSON)
    assert ro.status_code == 403 and "read-only" in ro.json()["message"]
    bad_vis = admin.post("/v2/metadefs/namespaces", json={"namespace": unique("X"), "visibility": "shared"})
    assert bad_vis.status_code == 400
    assert admin.post(f"/v2/metadefs/namespaces/{name}/properties", json={"name": "p", "type": "string"}).status_code == 400
    assert admin.post(f"/v2/metadefs/namespaces/{name}/properties",
                      json={"name": "p", "title": "P", "type": "colour"}).status_code == 400
    assert admin.get("/v2/metadefs/namespaces/No::Such::NS").status_code == 404
    assert admin.get(f"/v2/metadefs/namespaces/{name}/objects/none").status_code == 404
    # PUT resets what it leaves out (Glance): visibility back to private, owner to the caller's project.
    renamed = name + "-2"
    put = admin.put(f"/v2/metadefs/namespaces/{name}", json={"namespace": renamed, "visibility": "public"})
    assert put.status_code == 200 and put.json()["namespace"] == renamed and "display_name" not in put.json()
    assert put.json()["owner"] == project("admin")
    assert carol.get(f"/v2/metadefs/namespaces/{renamed}").status_code == 200
    assert admin.delete(f"/v2/metadefs/namespaces/{renamed}").status_code == 204
    assert admin.get(f"/v2/metadefs/namespaces/{renamed}").status_code == 404


def test_tags_bulk_replace_append_and_delete_all(raw):
    admin, carol = raw["admin"], raw["carol"]
    name = new_namespace(admin, visibility="public")["namespace"]
    base = f"/v2/metadefs/namespaces/{name}/tags"
    r = admin.post(base, json={"tags": [{"name": "a"}, {"name": "b"}]})
    assert r.status_code == 201 and r.json() == {"tags": [{"name": "a"}, {"name": "b"}]}
    # Without X-Openstack-Append the set is replaced; with it, added to.
    admin.post(base, json={"tags": [{"name": "c"}]})
    assert [t["name"] for t in carol.get(base).json()["tags"]] == ["c"]
    admin.post(base, json={"tags": [{"name": "d"}]}, headers={"X-Openstack-Append": "True"})
    assert sorted(t["name"] for t in carol.get(base).json()["tags"]) == ["c", "d"]
    clash = admin.post(base, json={"tags": [{"name": "x"}, {"name": "d"}]}, headers={"X-Openstack-Append": "true", **JSON})
    assert clash.status_code == 409 and "name=d " in clash.json()["message"]
    assert admin.post(base, json={"tags": [{"name": "e"}, {"name": "e"}]}).status_code == 409
    assert sorted(t["name"] for t in carol.get(base).json()["tags"]) == ["c", "d"]
    one = admin.post(base + "/single")
    assert one.status_code == 201 and one.json()["name"] == "single" and one.json()["created_at"].endswith("Z")
    assert admin.post(base + "/single").status_code == 409
    upd = admin.put(base + "/single", json={"name": "renamed"})
    assert upd.status_code == 200 and upd.json()["name"] == "renamed"
    assert carol.get(base + "/renamed").json()["name"] == "renamed"
    assert admin.delete(base + "/renamed").status_code == 204
    assert admin.delete(base + "/renamed").status_code == 404
    assert admin.delete(base).status_code == 204
    assert carol.get(base).json() == {"tags": []}
    assert carol.delete(base).status_code == 403


def test_list_paging_sorting_and_filters(raw):
    admin, carol = raw["admin"], raw["carol"]
    rt = unique("E2E::Type")
    names = sorted(new_namespace(admin, namespace=unique("Page::NS"), visibility="public",
                                 resource_type_associations=[{"name": rt, "prefix": "x_"}])["namespace"] for _ in range(3))
    page = carol.get("/v2/metadefs/namespaces", params={"resource_types": rt, "limit": 2, "sort_key": "namespace", "sort_dir": "asc"}).json()
    assert [n["namespace"] for n in page["namespaces"]] == names[:2]
    assert page["schema"] == "/v2/schemas/metadefs/namespaces"
    assert page["first"].startswith("/v2/metadefs/namespaces?") and "limit=2" in page["first"]
    assert "marker=" + names[1].replace(":", "%3A") in page["next"]
    assert page["namespaces"][0]["resource_type_associations"][0]["prefix"] == "x_"
    rest = carol.get("/v2/metadefs/namespaces", params={"resource_types": rt, "limit": 2, "sort_key": "namespace",
                                                         "sort_dir": "asc", "marker": names[1]}).json()
    assert [n["namespace"] for n in rest["namespaces"]] == names[2:] and "next" not in rest
    desc = carol.get("/v2/metadefs/namespaces", params={"resource_types": rt, "sort_key": "namespace"}).json()
    assert [n["namespace"] for n in desc["namespaces"]] == names[::-1]
    private = carol.get("/v2/metadefs/namespaces", params={"visibility": "private", "limit": 1000}).json()["namespaces"]
    assert all(n["visibility"] == "private" for n in private)
    for params in ({"sort_dir": "up"}, {"visibility": "shared"}, {"limit": "x"}, {"limit": "-1"}, {"sort_key": "colour"}):
        r = carol.get("/v2/metadefs/namespaces", params=params, headers=JSON)
        assert r.status_code == 400, params
    assert carol.get("/v2/metadefs/namespaces", params={"marker": "No::Such"}).status_code == 404
    types = [t["name"] for t in carol.get("/v2/metadefs/resource_types").json()["resource_types"]]
    assert rt in types


def test_load_command_and_shipped_set_loaded_once(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "site.json").write_text(json.dumps({
        "namespace": "Site::Backup", "display_name": "Backups", "description": "The site's backup policy.",
        "visibility": "public", "protected": False,
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "site_"}],
        "properties": {"backup_policy": {"title": "Backup policy", "type": "string", "enum": ["daily", "weekly", "never"]}},
        "objects": [{"name": "Retention", "required": ["days"],
                     "properties": {"days": {"title": "Days", "type": "integer", "minimum": 1}}}],
        "tags": [{"name": "backup"}]}))
    (defs / "broken.json").write_text(json.dumps({"namespace": "Site::Broken", "properties": {"p": {"type": "string"}}}))
    data_dir = tmp_path / "srv" / "data"
    run = subprocess.run([str(imaged_bin()), "metadefs", "load", str(defs), "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Site::Backup loaded" in run.stdout and "broken.json: not loaded" in run.stderr and "title" in run.stderr
    again = subprocess.run([str(imaged_bin()), "metadefs", "load", str(defs / "site.json"), "--data-dir", str(data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "skipped" in again.stdout

    srv = ImagedServer(tmp_path / "srv")
    srv.start()
    try:
        admin = Raw(srv.url, "admin")
        site = admin.get("/v2/metadefs/namespaces/Site::Backup").json()
        assert site["properties"]["backup_policy"]["enum"] == ["daily", "weekly", "never"]
        assert site["objects"][0]["required"] == ["days"] and site["tags"] == [{"name": "backup"}]
        assert admin.get("/v2/metadefs/namespaces/Site::Broken").status_code == 404
        # The shipped set came with the first start; an operator's deletion survives a restart.
        assert admin.get("/v2/metadefs/namespaces/OS::Compute::Watchdog").status_code == 200
        assert admin.put("/v2/metadefs/namespaces/OS::Compute::Watchdog",
                         json={"namespace": "OS::Compute::Watchdog", "visibility": "public"}).status_code == 200
        assert admin.delete("/v2/metadefs/namespaces/OS::Compute::Watchdog").status_code == 204
        srv.kill(signal.SIGTERM)
        srv.start()
        admin = Raw(srv.url, "admin")
        assert admin.get("/v2/metadefs/namespaces/OS::Compute::Watchdog").status_code == 404
        assert admin.get("/v2/metadefs/namespaces/OS::Compute::Hardware").status_code == 200
    finally:
        srv.kill(signal.SIGTERM)
