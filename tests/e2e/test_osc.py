"""python-openstackclient (`openstack` CLI, via subprocess) against the real server.

Token auth with an endpoint override: `--os-auth-type admin_token --os-endpoint URL/v2 --os-token T`.
Sharing commands that name another project (`image add project`, `image set --accept`) resolve the
project through Keystone, which this setup does not have; sharing is driven by glanceclient instead
(test_glanceclient.py), and here OSC only reads the membership.
"""

import pytest

from conftest import OSCError, project, unique, upload


def by_name(rows, key="Name"):
    return {r[key]: r for r in rows}


def test_osc_create_and_show(osc, raw):
    alice = osc["alice"]
    name = unique("osc-create")
    img = alice.run("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--private",
                    "--min-disk", "2", "--min-ram", "512", "--property", "os_distro=debian",
                    "--property", "hw_disk_bus=scsi", "--tag", "web", "--tag", "prod", name)
    assert img["name"] == name
    assert img["disk_format"] == "qcow2"
    assert img["container_format"] == "bare"
    assert img["visibility"] == "private"
    assert img["min_disk"] == 2
    assert img["min_ram"] == 512
    assert img["status"] == "queued"
    assert img["protected"] is False
    assert img["owner"] == project("alice")
    assert sorted(img["tags"]) == ["prod", "web"]
    assert img["properties"]["os_distro"] == "debian"
    assert img["properties"]["hw_disk_bus"] == "scsi"
    assert img["properties"]["owner_specified.openstack.object"] == f"images/{name}"

    # show by id and by name give the same record
    shown = alice.run("image", "show", img["id"])
    assert shown == img
    assert alice.run("image", "show", name)["id"] == img["id"]

    # what OSC printed is what the server stored
    stored = raw["alice"].get(f"/v2/images/{img['id']}").json()
    assert stored["name"] == name and stored["min_ram"] == 512 and stored["min_disk"] == 2
    assert stored["os_distro"] == "debian" and stored["hw_disk_bus"] == "scsi"
    assert stored["visibility"] == "private" and sorted(stored["tags"]) == ["prod", "web"]
    assert stored["created_at"] == img["created_at"]


def test_osc_set_and_unset(osc, raw):
    alice = osc["alice"]
    name = unique("osc-set")
    iid = alice.run("image", "create", "--disk-format", "raw", "--container-format", "bare",
                    "--property", "os_distro=fedora", "--property", "keep=me", "--tag", "t1", name)["id"]
    new_name = name + "-renamed"
    out = alice.run("image", "set", "--name", new_name, "--min-ram", "1024", "--min-disk", "7",
                    "--property", "os_distro=arch", "--property", "added=yes", "--os-version", "2026.1",
                    "--tag", "t2", "--protected", "--disk-format", "qcow2", iid, json_out=False)
    assert out.strip() == ""
    img = raw["alice"].get(f"/v2/images/{iid}").json()
    assert img["name"] == new_name
    assert img["min_ram"] == 1024 and img["min_disk"] == 7
    assert img["os_distro"] == "arch" and img["added"] == "yes" and img["keep"] == "me"
    assert img["os_version"] == "2026.1"
    assert sorted(img["tags"]) == ["t1", "t2"]
    assert img["protected"] is True
    assert img["disk_format"] == "qcow2"  # still queued, so formats may change
    assert img["updated_at"] >= img["created_at"]

    alice.run("image", "unset", "--property", "added", "--property", "os_version", "--tag", "t1", iid,
              json_out=False)
    shown = alice.run("image", "show", iid)
    assert "added" not in shown["properties"] and "os_version" not in shown["properties"]
    assert shown["properties"]["os_distro"] == "arch" and shown["properties"]["keep"] == "me"
    assert shown["tags"] == ["t2"]
    assert shown["name"] == new_name and shown["protected"] is True

    alice.run("image", "set", "--unprotected", "--min-ram", "0", "--private", iid, json_out=False)
    img = raw["alice"].get(f"/v2/images/{iid}").json()
    assert img["protected"] is False and img["min_ram"] == 0 and img["visibility"] == "private"


def test_osc_unset_missing_property_fails(osc, raw):
    alice = osc["alice"]
    iid = alice.run("image", "create", unique("osc-unset"))["id"]
    with pytest.raises(OSCError) as err:
        alice.run("image", "unset", "--property", "not_there", iid, json_out=False)
    assert "not_there" in err.value.stderr
    assert raw["alice"].get(f"/v2/images/{iid}").status_code == 200


def test_osc_list_filters_and_sort(osc, raw):
    alice = osc["alice"]
    tag = unique("osc-list")
    specs = [
        ("b", "qcow2", "private", "ubuntu"),
        ("c", "raw", "shared", "debian"),
        ("a", "qcow2", "shared", "debian"),
    ]
    ids = {}
    for suffix, disk, vis, distro in specs:
        img = alice.run("image", "create", "--disk-format", disk, "--container-format", "bare", f"--{vis}",
                        "--property", f"os_distro={distro}", "--tag", tag, f"{tag}-{suffix}")
        ids[suffix] = img["id"]

    rows = alice.run("image", "list", "--tag", tag, "--long")
    assert sorted(r["ID"] for r in rows) == sorted(ids.values())
    named = by_name(rows)
    assert named[f"{tag}-b"]["Disk Format"] == "qcow2" and named[f"{tag}-b"]["Visibility"] == "private"
    assert named[f"{tag}-c"]["Disk Format"] == "raw" and named[f"{tag}-c"]["Visibility"] == "shared"
    assert all(r["Status"] == "queued" and r["Project"] == project("alice") for r in rows)
    assert all(r["Tags"] == [tag] for r in rows)

    # sort by name ascending and descending
    asc = alice.run("image", "list", "--tag", tag, "--sort", "name:asc")
    assert [r["Name"] for r in asc] == [f"{tag}-a", f"{tag}-b", f"{tag}-c"]
    desc = alice.run("image", "list", "--tag", tag, "--sort", "name:desc")
    assert [r["Name"] for r in desc] == [f"{tag}-c", f"{tag}-b", f"{tag}-a"]

    # filters
    assert [r["ID"] for r in alice.run("image", "list", "--name", f"{tag}-c")] == [ids["c"]]
    private = alice.run("image", "list", "--tag", tag, "--private")
    assert [r["ID"] for r in private] == [ids["b"]]
    shared = alice.run("image", "list", "--tag", tag, "--shared", "--sort", "name:asc")
    assert [r["ID"] for r in shared] == [ids["a"], ids["c"]]
    debian = alice.run("image", "list", "--tag", tag, "--property", "os_distro=debian", "--sort", "name:asc")
    assert [r["ID"] for r in debian] == [ids["a"], ids["c"]]
    queued = alice.run("image", "list", "--tag", tag, "--status", "queued")
    assert len(queued) == 3
    assert alice.run("image", "list", "--tag", tag, "--status", "active") == []
    assert alice.run("image", "list", "--tag", tag, "--tag", "no-such-tag") == []

    # another project sees none of them
    assert osc["bob"].run("image", "list", "--tag", tag) == []


def test_osc_list_pages_through_more_than_default_page(osc, raw):
    """Without --limit the SDK under OSC follows `next` (server default page size 25) to the end."""
    alice = raw["alice"]
    tag = unique("osc-page")
    made = [alice.create(name=f"{tag}-{n:02d}", tags=[tag]) for n in range(27)]
    rows = osc["alice"].run("image", "list", "--tag", tag)
    assert len(rows) == 27
    assert len({r["ID"] for r in rows}) == 27
    assert {r["ID"] for r in rows} == {i["id"] for i in made}
    # OSC sorts by name:asc on its side by default
    assert [r["Name"] for r in rows] == sorted(i["name"] for i in made)


def test_osc_limit_is_one_page(osc, raw):
    """With --limit, OSC 10.x asks for one page of that size (it does not follow `next`)."""
    alice = raw["alice"]
    tag = unique("osc-limit")
    made = [alice.create(name=f"{tag}-{n}", tags=[tag]) for n in range(4)]
    rows = osc["alice"].run("image", "list", "--tag", tag, "--limit", "3")
    newest_first = sorted(made, key=lambda i: (i["created_at"], i["id"]), reverse=True)
    assert {r["ID"] for r in rows} == {i["id"] for i in newest_first[:3]}


def test_osc_protected_image_cannot_be_deleted(osc, raw):
    alice = osc["alice"]
    name = unique("osc-prot")
    iid = alice.run("image", "create", "--protected", name)["id"]
    assert alice.run("image", "show", iid)["protected"] is True
    proc = alice.run("image", "delete", iid, json_out=False, check=False)
    assert proc.returncode != 0
    assert "403" in proc.stderr and "protected" in proc.stderr
    still = raw["alice"].get(f"/v2/images/{iid}")
    assert still.status_code == 200 and still.json()["status"] == "queued" and still.json()["protected"] is True

    alice.run("image", "set", "--unprotected", iid, json_out=False)
    alice.run("image", "delete", iid, json_out=False)
    assert raw["alice"].get(f"/v2/images/{iid}").status_code == 404
    proc = alice.run("image", "show", iid, check=False)
    assert proc.returncode != 0 and "No Image found" in proc.stderr


def test_osc_deactivate_and_reactivate(osc, raw):
    alice = osc["alice"]
    iid = alice.run("image", "create", "--disk-format", "raw", "--container-format", "bare", unique("osc-deact"))["id"]
    # A queued image cannot be deactivated: the server answers 403 (openstacksdk does not check
    # the status of action calls, so OSC exits 0) and the image stays queued.
    alice.run("image", "set", "--deactivate", iid, json_out=False, check=False)
    assert alice.run("image", "show", iid)["status"] == "queued"
    assert raw["alice"].post(f"/v2/images/{iid}/actions/deactivate").status_code == 403

    assert upload(raw["alice"], iid, b"deactivate me\n" * 100).status_code == 204
    assert alice.run("image", "show", iid)["status"] == "active"
    alice.run("image", "set", "--deactivate", iid, json_out=False)
    assert alice.run("image", "show", iid)["status"] == "deactivated"
    assert raw["alice"].get(f"/v2/images/{iid}").json()["status"] == "deactivated"
    # another project can't reactivate it (it can't even see the shared image)
    assert osc["bob"].run("image", "set", "--activate", iid, json_out=False, check=False).returncode != 0
    alice.run("image", "set", "--activate", iid, json_out=False)
    assert alice.run("image", "show", iid)["status"] == "active"
    # once active, the disk format is fixed
    proc = alice.run("image", "set", "--disk-format", "qcow2", iid, json_out=False, check=False)
    assert proc.returncode != 0 and "403" in proc.stderr
    assert raw["alice"].get(f"/v2/images/{iid}").json()["disk_format"] == "raw"


def test_osc_reads_membership(osc, glance):
    """Members are added with glanceclient; OSC lists them and the member's view of the image."""
    owner = glance["alice"]
    img = owner.images.create(name=unique("osc-share"), visibility="shared", disk_format="raw",
                              container_format="bare")
    owner.image_members.create(img.id, project("bob"))
    members = osc["alice"].run("image", "member", "list", img.id)
    assert [(m["Member ID"], m["Status"]) for m in members] == [(project("bob"), "pending")]
    pending = osc["bob"].run("image", "list", "--shared", "--member-status", "pending")
    assert img.id in [r["ID"] for r in pending]
    assert img.id not in [r["ID"] for r in osc["bob"].run("image", "list")]
    glance["bob"].image_members.update(img.id, project("bob"), "accepted")
    assert img.id in [r["ID"] for r in osc["bob"].run("image", "list")]
    assert osc["bob"].run("image", "show", img.id)["name"] == img.name
