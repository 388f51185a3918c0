"""python-glanceclient (`glanceclient.Client('2', endpoint=..., token=...)`) against the real server.

glanceclient fetches /v2/schemas/image and validates every `get`/`create`/`update` response
against it (warlock), so each call here also checks the schema describes what the server returns.
"""

import io

import pytest
from glanceclient import exc as gexc

from conftest import project, unique


def as_dict(image):
    return {k: v for k, v in dict(image).items()}


def test_glance_create_get_update(glance, raw):
    g = glance["alice"]
    name = unique("gc-create")
    img = g.images.create(name=name, disk_format="qcow2", container_format="bare", visibility="private",
                          min_disk=10, min_ram=1024, protected=False, tags=["x", "y"],
                          os_distro="fedora", architecture="x86_64", hw_disk_bus="virtio")
    assert img.name == name
    assert img.status == "queued"
    assert img.visibility == "private"
    assert img.min_disk == 10 and img.min_ram == 1024
    assert img.disk_format == "qcow2" and img.container_format == "bare"
    assert sorted(img.tags) == ["x", "y"]
    assert img.os_distro == "fedora" and img.architecture == "x86_64" and img.hw_disk_bus == "virtio"
    assert img.owner == project("alice")
    assert img.checksum is None and img.size is None and img.virtual_size is None

    got = g.images.get(img.id)
    assert as_dict(got) == as_dict(img)

    updated = g.images.update(img.id, name=name + "-v2", min_ram=4096, os_distro="centos", new_prop="n",
                              remove_props=["architecture"])
    assert updated.name == name + "-v2"
    assert updated.min_ram == 4096
    assert updated.os_distro == "centos" and updated.new_prop == "n"
    assert "architecture" not in updated
    assert updated.hw_disk_bus == "virtio" and updated.min_disk == 10
    assert as_dict(g.images.get(img.id)) == as_dict(updated)
    assert raw["alice"].get(f"/v2/images/{img.id}").json()["new_prop"] == "n"

    g.images.delete(img.id)
    with pytest.raises(gexc.HTTPNotFound):
        g.images.get(img.id)
    with pytest.raises(gexc.HTTPNotFound):
        g.images.delete(img.id)


def test_glance_tags(glance):
    g = glance["alice"]
    img = g.images.create(name=unique("gc-tags"), tags=["keep"])
    g.image_tags.update(img.id, "new")
    g.image_tags.update(img.id, "new")
    assert sorted(g.images.get(img.id).tags) == ["keep", "new"]
    g.image_tags.delete(img.id, "keep")
    assert g.images.get(img.id).tags == ["new"]
    with pytest.raises(gexc.HTTPNotFound):
        g.image_tags.delete(img.id, "keep")
    # tags with spaces and unicode survive the URL
    g.image_tags.update(img.id, "two words")
    g.image_tags.update(img.id, "ünï")
    assert sorted(g.images.get(img.id).tags) == sorted(["new", "two words", "ünï"])
    assert [i.id for i in g.images.list(filters={"tag": ["two words", "ünï"]})] == [img.id]
    # another project may not tag it (it can't see the shared image: 404)
    with pytest.raises(gexc.HTTPNotFound):
        glance["bob"].image_tags.update(img.id, "evil")


def test_glance_protected_delete_refused(glance):
    g = glance["alice"]
    img = g.images.create(name=unique("gc-prot"), protected=True)
    with pytest.raises(gexc.HTTPForbidden) as err:
        g.images.delete(img.id)
    assert "protected" in str(err.value)
    kept = g.images.get(img.id)
    assert kept.protected is True and kept.status == "queued"
    g.images.update(img.id, protected=False)
    g.images.delete(img.id)
    with pytest.raises(gexc.HTTPNotFound):
        g.images.get(img.id)


def test_glance_deactivate_reactivate(glance):
    g = glance["alice"]
    img = g.images.create(name=unique("gc-deact"), disk_format="raw", container_format="bare")
    with pytest.raises(gexc.HTTPForbidden):
        g.images.deactivate(img.id)  # queued: not allowed
    assert g.images.get(img.id).status == "queued"
    g.images.upload(img.id, io.BytesIO(b"glanceclient upload\n" * 100))
    assert g.images.get(img.id).status == "active"
    g.images.deactivate(img.id)
    assert g.images.get(img.id).status == "deactivated"
    # a non-owner can't reactivate; admin can
    with pytest.raises(gexc.HTTPNotFound):
        glance["bob"].images.reactivate(img.id)
    glance["admin"].images.reactivate(img.id)
    assert g.images.get(img.id).status == "active"
    g.images.deactivate(img.id)
    g.images.reactivate(img.id)
    g.images.reactivate(img.id)  # no-op when active
    assert g.images.get(img.id).status == "active"


def test_glance_members_sharing(glance):
    owner, bob, admin = glance["alice"], glance["bob"], glance["admin"]
    img = owner.images.create(name=unique("gc-share"), visibility="shared", disk_format="raw",
                              container_format="bare", os_distro="shared-distro")
    with pytest.raises(gexc.HTTPNotFound):
        bob.images.get(img.id)

    member = owner.image_members.create(img.id, project("bob"))
    assert member.member_id == project("bob")
    assert member.image_id == img.id
    assert member.status == "pending"
    with pytest.raises(gexc.HTTPConflict):
        owner.image_members.create(img.id, project("bob"))
    assert [(m.member_id, m.status) for m in owner.image_members.list(img.id)] == [(project("bob"), "pending")]

    # pending: bob can read it but it's not in his default list
    assert bob.images.get(img.id).name == img.name
    assert img.id not in [i.id for i in bob.images.list()]
    pending = bob.images.list(filters={"visibility": "shared", "member_status": "pending"})
    assert img.id in [i.id for i in pending]
    # the owner can't accept for bob; bob can't modify the image
    with pytest.raises(gexc.HTTPForbidden):
        owner.image_members.update(img.id, project("bob"), "accepted")
    with pytest.raises(gexc.HTTPForbidden):
        bob.images.update(img.id, name="hijacked")

    accepted = bob.image_members.update(img.id, project("bob"), "accepted")
    assert accepted.status == "accepted"
    assert img.id in [i.id for i in bob.images.list()]
    assert img.id in [i.id for i in bob.images.list(filters={"os_distro": "shared-distro"})]
    assert [m.status for m in bob.image_members.list(img.id)] == ["accepted"]

    bob.image_members.update(img.id, project("bob"), "rejected")
    assert img.id not in [i.id for i in bob.images.list()]
    assert bob.images.get(img.id).id == img.id  # rejected members can still read it

    # a private image can't have members
    private = owner.images.create(name=unique("gc-private"), visibility="private")
    with pytest.raises(gexc.HTTPForbidden):
        owner.image_members.create(private.id, project("bob"))

    owner.image_members.delete(img.id, project("bob"))
    assert list(owner.image_members.list(img.id)) == []
    with pytest.raises(gexc.HTTPNotFound):
        bob.images.get(img.id)
    # admin sees it regardless
    assert admin.images.get(img.id).owner == project("alice")


def test_glance_list_paging_30_images(glance):
    g = glance["alice"]
    tag = unique("gc-page")
    made = [g.images.create(name=f"{tag}-{n:02d}", tags=[tag], os_distro=f"d{n % 3}") for n in range(30)]
    by_id = {i.id: i for i in made}

    listed = [i.id for i in g.images.list(page_size=7, filters={"tag": [tag]}, sort="name:asc")]
    assert len(listed) == 30 and len(set(listed)) == 30
    assert [by_id[i].name for i in listed] == sorted(i.name for i in made)

    listed = [i.id for i in g.images.list(page_size=7, filters={"tag": [tag]}, sort_key="name", sort_dir="desc")]
    assert [by_id[i].name for i in listed] == sorted((i.name for i in made), reverse=True)

    # default order: created_at desc, id desc
    expected = [i.id for i in sorted(made, key=lambda i: (i.created_at, i.id), reverse=True)]
    assert [i.id for i in g.images.list(page_size=7, filters={"tag": [tag]})] == expected

    # a property filter that survives paging
    d1 = [i.id for i in g.images.list(page_size=4, filters={"tag": [tag], "os_distro": "d1"}, sort="name:asc")]
    assert [by_id[i].name for i in d1] == sorted(i.name for i in made if i.os_distro == "d1")
    assert len(d1) == 10

    # limit caps the total while paging
    assert len(list(g.images.list(page_size=7, limit=10, filters={"tag": [tag]}))) == 10

    # multi-key sort: os_distro is not a sort key (400), name then created_at is
    with pytest.raises(gexc.HTTPBadRequest):
        list(g.images.list(filters={"tag": [tag]}, sort_key="os_distro"))
    two_keys = [i.id for i in g.images.list(page_size=7, filters={"tag": [tag]},
                                            sort_key=["disk_format", "name"], sort_dir=["asc", "asc"])]
    assert [by_id[i].name for i in two_keys] == sorted(i.name for i in made)


def test_glance_list_filters(glance):
    g = glance["alice"]
    tag = unique("gc-filter")
    q = g.images.create(name=f"{tag}-q", tags=[tag, "extra"], disk_format="qcow2", container_format="bare",
                        visibility="private", protected=True)
    r = g.images.create(name=f"{tag}-r", tags=[tag], disk_format="raw", container_format="ovf",
                        visibility="shared", min_ram=512)

    def ids(**filters):
        return sorted(i.id for i in g.images.list(filters={"tag": [tag], **filters}))

    assert ids() == sorted([q.id, r.id])
    assert ids(disk_format="qcow2") == [q.id]
    assert ids(container_format="ovf") == [r.id]
    assert ids(disk_format="in:qcow2,raw") == sorted([q.id, r.id])
    assert ids(visibility="private") == [q.id]
    assert ids(visibility="shared") == [r.id]
    assert ids(protected="true") == [q.id]
    assert ids(protected="false") == [r.id]
    assert ids(name=f"{tag}-r") == [r.id]
    assert ids(name=f'in:{tag}-q,{tag}-r') == sorted([q.id, r.id])
    assert ids(status="queued") == sorted([q.id, r.id])
    assert ids(owner=project("alice")) == sorted([q.id, r.id])
    assert sorted(i.id for i in g.images.list(filters={"tag": [tag, "extra"]})) == [q.id]
    assert ids(id=r.id) == [r.id]
    g.images.update(q.id, protected=False)


def test_glance_schema_matches_responses(glance):
    g = glance["alice"]
    schema = g.schemas.get("image")
    assert schema.name == "image"
    props = set(schema.raw()["properties"])
    img = g.images.create(name=unique("gc-schema"))
    body = as_dict(g.images.get(img.id))
    # an image without extra properties has only attributes the schema describes
    assert set(body) <= props, set(body) - props
    assert {"id", "name", "status", "visibility", "tags", "min_ram", "min_disk", "os_hidden"} <= set(body)
