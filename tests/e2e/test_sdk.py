"""openstacksdk (Connection with admin_token auth and an endpoint override) against the real server."""

import pytest
from openstack import exceptions as sdk_exc

from conftest import project, unique


def newest_first(images):
    """The server's default order: created_at desc, then id desc (timestamps have 1 s resolution)."""
    return sorted(images, key=lambda i: (i["created_at"], i["id"]), reverse=True)


def test_sdk_create_get_find(sdk, raw):
    c = sdk["alice"]
    name = unique("sdk-create")
    img = c.image.create_image(name=name, disk_format="raw", container_format="bare", visibility="private",
                               min_disk=4, min_ram=256, tags=["one", "two"],
                               properties={"os_distro": "ubuntu", "custom_key": "custom value"},
                               allow_duplicates=True)
    assert img.name == name
    assert img.status == "queued"
    assert img.disk_format == "raw" and img.container_format == "bare"
    assert img.visibility == "private"
    assert img.min_disk == 4 and img.min_ram == 256
    assert sorted(img.tags) == ["one", "two"]
    assert img.os_distro == "ubuntu"
    assert img.properties["custom_key"] == "custom value"
    assert img.owner == project("alice")
    assert img.is_protected is False and img.is_hidden is False
    assert img.size is None and img.checksum is None

    got = c.image.get_image(img.id)
    assert got.to_dict(computed=False) == img.to_dict(computed=False)
    assert c.image.find_image(name).id == img.id
    assert c.image.find_image(img.id).id == img.id

    stored = raw["alice"].get(f"/v2/images/{img.id}").json()
    assert stored["custom_key"] == "custom value" and stored["os_distro"] == "ubuntu"
    assert stored["owner_specified.openstack.object"] == f"images/{name}"


def test_sdk_update(sdk, raw):
    c = sdk["alice"]
    img = c.image.create_image(name=unique("sdk-upd"), properties={"keep": "1", "os_distro": "debian"},
                               allow_duplicates=True)
    new_name = img.name + "-b"
    updated = c.image.update_image(img, name=new_name, min_ram=2048, min_disk=20, is_protected=True,
                                   os_distro="arch", visibility="private",
                                   properties=dict(img.properties, added="2"))
    assert updated.name == new_name
    assert updated.min_ram == 2048 and updated.min_disk == 20
    assert updated.is_protected is True
    assert updated.visibility == "private"
    assert updated.os_distro == "arch"
    assert updated.properties["keep"] == "1" and updated.properties["added"] == "2"

    stored = raw["alice"].get(f"/v2/images/{img.id}").json()
    assert (stored["name"], stored["min_ram"], stored["min_disk"], stored["protected"], stored["os_distro"],
            stored["keep"], stored["added"], stored["visibility"]) == \
        (new_name, 2048, 20, True, "arch", "1", "2", "private")

    # protected: delete refused, image still there
    with pytest.raises(sdk_exc.ForbiddenException) as err:
        c.image.delete_image(img)
    assert "protected" in str(err.value)
    assert c.image.get_image(img.id).is_protected is True

    c.image.update_image(img.id, is_protected=False)
    c.image.delete_image(img)
    with pytest.raises(sdk_exc.NotFoundException):
        c.image.get_image(img.id)
    assert c.image.find_image(img.id) is None
    assert c.image.find_image(new_name) is None


def test_sdk_tags(sdk):
    c = sdk["alice"]
    img = c.image.create_image(name=unique("sdk-tags"), tags=["a"], allow_duplicates=True)
    c.image.add_tag(img, "b")
    c.image.add_tag(img, "b")
    assert sorted(c.image.get_image(img.id).tags) == ["a", "b"]
    c.image.remove_tag(img, "a")
    assert c.image.get_image(img.id).tags == ["b"]
    with pytest.raises(sdk_exc.NotFoundException):
        c.image.remove_tag(img, "a")
    tag_hits = [i.id for i in c.image.images(tag="b", name=img.name)]
    assert tag_hits == [img.id]


def test_sdk_filters(sdk):
    c = sdk["alice"]
    tag = unique("sdk-filter")
    a = c.image.create_image(name=f"{tag}-a", tags=[tag], visibility="private", disk_format="qcow2",
                             container_format="bare", allow_duplicates=True)
    b = c.image.create_image(name=f"{tag}-b", tags=[tag], visibility="shared", disk_format="raw",
                             container_format="bare", allow_duplicates=True)
    # (create_image(is_hidden=True) sends the string "True", which Glance's schema refuses too; so PATCH it)
    hidden = c.image.create_image(name=f"{tag}-h", tags=[tag], allow_duplicates=True)
    hidden = c.image.update_image(hidden, is_hidden=True)
    assert hidden.is_hidden is True

    assert {i.id for i in c.image.images(tag=tag)} == {a.id, b.id}
    assert [i.id for i in c.image.images(tag=tag, visibility="private")] == [a.id]
    assert [i.id for i in c.image.images(tag=tag, visibility="shared")] == [b.id]
    assert [i.id for i in c.image.images(name=f"{tag}-b")] == [b.id]
    assert {i.id for i in c.image.images(tag=tag, status="queued")} == {a.id, b.id}
    assert list(c.image.images(tag=tag, status="active")) == []
    assert {i.id for i in c.image.images(tag=tag, owner=project("alice"))} == {a.id, b.id}
    assert [i.id for i in c.image.images(tag=tag, is_hidden=True)] == [hidden.id]
    assert c.image.get_image(hidden.id).is_hidden is True
    assert list(sdk["bob"].image.images(tag=tag)) == []


def test_sdk_paging_30_images_limit_7(sdk, raw):
    c = sdk["alice"]
    tag = unique("sdk-page")
    made = [c.image.create_image(name=f"{tag}-{n:02d}", tags=[tag], allow_duplicates=True) for n in range(30)]
    by_id = {i.id: i for i in made}
    assert len(by_id) == 30

    # sort=name:asc, pages of 7: every id exactly once, in name order
    listed = [i.id for i in c.image.images(tag=tag, limit=7, sort="name:asc")]
    assert len(listed) == 30 and len(set(listed)) == 30
    assert [by_id[i].name for i in listed] == sorted(i.name for i in made)

    # sort_key/sort_dir, descending
    listed = [i.id for i in c.image.images(tag=tag, limit=7, sort_key="name", sort_dir="desc")]
    assert [by_id[i].name for i in listed] == sorted((i.name for i in made), reverse=True)

    # default order (created_at desc, id desc) across pages
    raw_made = [raw["alice"].get(f"/v2/images/{i.id}").json() for i in made]
    listed = [i.id for i in c.image.images(tag=tag, limit=7)]
    assert listed == [i["id"] for i in newest_first(raw_made)]

    # the pages themselves, following `next` by hand through the SDK's session (it strips /v2)
    pages = []
    url = f"/images?tag={tag}&limit=7&sort=name:asc"
    while url:
        body = c.image.get(url).json()
        pages.append([i["id"] for i in body["images"]])
        nxt = body.get("next")
        if nxt:
            assert nxt.startswith("/v2/images?") and f"marker={body['images'][-1]['id']}" in nxt
        url = nxt.removeprefix("/v2") if nxt else None
        assert len(pages) <= 10, "paging does not terminate"
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    flat = [i for p in pages for i in p]
    assert [by_id[i].name for i in flat] == sorted(i.name for i in made)


def test_sdk_limit_above_max_is_clamped_and_default_page_is_25(sdk):
    c = sdk["alice"]
    tag = unique("sdk-clamp")
    for n in range(26):
        c.image.create_image(name=f"{tag}-{n}", tags=[tag], allow_duplicates=True)
    body = c.image.get(f"/images?tag={tag}").json()
    assert len(body["images"]) == 25 and "next" in body
    body = c.image.get(f"/images?tag={tag}&limit=5000").json()
    assert len(body["images"]) == 26 and "next" not in body


def test_sdk_deactivate_reactivate(sdk):
    c = sdk["alice"]
    img = c.image.create_image(name=unique("sdk-deact"), disk_format="raw", container_format="bare",
                               allow_duplicates=True, data=b"sdk upload\n" * 100)
    assert c.image.get_image(img.id).status == "active"
    c.image.deactivate_image(img)
    assert c.image.get_image(img.id).status == "deactivated"
    c.image.deactivate_image(img)  # no-op when already deactivated
    assert c.image.get_image(img.id).status == "deactivated"
    # metadata stays readable and listable while deactivated
    assert [i.status for i in c.image.images(name=img.name)] == ["deactivated"]
    assert [i.id for i in c.image.images(name=img.name, status="deactivated")] == [img.id]
    c.image.reactivate_image(img)
    assert c.image.get_image(img.id).status == "active"


def test_sdk_members(sdk):
    owner, member = sdk["alice"], sdk["bob"]
    img = owner.image.create_image(name=unique("sdk-share"), visibility="shared", allow_duplicates=True)
    with pytest.raises(sdk_exc.NotFoundException):
        member.image.get_image(img.id)
    m = owner.image.add_member(img, member_id=project("bob"))
    assert m.member_id == project("bob") and m.status == "pending"
    assert [(x.member_id, x.status) for x in owner.image.members(img)] == [(project("bob"), "pending")]
    # pending: readable, but not in the member's default list
    assert member.image.get_image(img.id).name == img.name
    assert img.id not in [i.id for i in member.image.images()]
    assert img.id in [i.id for i in member.image.images(visibility="shared", member_status="pending")]
    member.image.update_member(project("bob"), img, status="accepted")
    assert img.id in [i.id for i in member.image.images()]
    assert owner.image.get_member(project("bob"), img).status == "accepted"
    owner.image.remove_member(project("bob"), img)
    with pytest.raises(sdk_exc.NotFoundException):
        member.image.get_image(img.id)
