"""Upload and download over raw HTTP (reference §6.7, §6.8): ranges, headers, chunked bodies,
size headers, media types, and who may read or write data."""

import hashlib

import pytest

from conftest import (assert_data_facts, assert_nothing_kept, digests, make_active, random_bytes, unique, upload)

MiB = 1 << 20
DATA = random_bytes(3 * MiB + 12345, 2024)  # not a multiple of any chunk size


@pytest.fixture(scope="module")
def ranged(raw):
    """An active image holding DATA."""
    return make_active(raw["alice"], DATA, name=unique("range"))


def get_file(client, image_id, **headers):
    return client.get(f"/v2/images/{image_id}/file", headers=headers)


def test_full_download_headers(raw, ranged):
    r = get_file(raw["alice"], ranged["id"])
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert int(r.headers["Content-Length"]) == len(DATA)
    assert r.headers["Content-MD5"] == hashlib.md5(DATA).hexdigest() == ranged["checksum"]
    assert "Content-Range" not in r.headers
    assert r.content == DATA


@pytest.mark.parametrize("spec,start,end", [
    ("bytes=0-0", 0, 0),
    ("bytes=0-1023", 0, 1023),
    ("bytes=1000000-2000000", 1000000, 2000000),
    ("bytes=3145000-", 3145000, len(DATA) - 1),
    ("bytes=-1", len(DATA) - 1, len(DATA) - 1),
    ("bytes=-70000", len(DATA) - 70000, len(DATA) - 1),
    ("bytes=5-99999999", 5, len(DATA) - 1),          # end past the size: clamped
    (f"bytes=-{len(DATA) + 10}", 0, len(DATA) - 1),   # suffix longer than the image: all of it
    (f"bytes={len(DATA) - 1}-", len(DATA) - 1, len(DATA) - 1),
])
def test_single_range(raw, ranged, spec, start, end):
    r = get_file(raw["alice"], ranged["id"], Range=spec)
    assert r.status_code == 206, (spec, r.status_code, r.text[:200])
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert int(r.headers["Content-Length"]) == end - start + 1
    assert r.content == DATA[start:end + 1]


@pytest.mark.parametrize("spec", [
    f"bytes={len(DATA)}-",               # starts at the end
    f"bytes={len(DATA) + 100}-{len(DATA) + 200}",
    "bytes=10-5",                        # backwards
    "bytes=abc",
    "items=0-10",
    "bytes=-0",
])
def test_unsatisfiable_range_416(raw, ranged, spec):
    r = get_file(raw["alice"], ranged["id"], Range=spec)
    assert r.status_code == 416, (spec, r.status_code)


@pytest.mark.parametrize("spec", ["bytes=0-10,20-30", "bytes=0-1, -5"])
def test_multiple_ranges_400(raw, ranged, spec):
    r = get_file(raw["alice"], ranged["id"], Range=spec)
    assert r.status_code == 400, (spec, r.status_code)


def test_legacy_content_range_request_header(raw, ranged):
    r = get_file(raw["alice"], ranged["id"], **{"Content-Range": "bytes 100-199/*"})
    assert r.status_code == 206
    assert r.content == DATA[100:200]


def test_range_through_openstacksdk_session(sdk, ranged):
    """openstacksdk has no range parameter; its authenticated image session passes the header."""
    c = sdk["alice"]
    r = c.image.get(f"/images/{ranged['id']}/file", headers={"Range": "bytes=4096-8191"})
    assert r.status_code == 206
    assert r.content == DATA[4096:8192]
    assert r.headers["Content-Range"] == f"bytes 4096-8191/{len(DATA)}"
    # and the SDK's own download verifies the whole image against os_hash_value
    assert c.image.download_image(ranged["id"]).content == DATA


def test_download_without_data_is_204(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("nodata"), disk_format="raw", container_format="bare")["id"]
    r = get_file(alice, iid)
    assert r.status_code == 204 and r.content == b""
    assert get_file(alice, iid, Range="bytes=0-10").status_code in (204, 416)


def test_download_permissions(raw, ranged):
    iid = ranged["id"]
    # a community image: everyone sees it, but downloading needs the member role (carol is a reader)
    alice, admin = raw["alice"], raw["admin"]
    pub = make_active(alice, b"public data\n" * 1000, name=unique("pub"), visibility="community")
    assert raw["carol"].get(f"/v2/images/{pub['id']}").status_code == 200
    assert get_file(raw["carol"], pub["id"]).status_code == 403
    assert get_file(raw["bob"], pub["id"]).status_code == 200
    # not visible at all: 404
    assert get_file(raw["bob"], iid).status_code == 404
    # deactivated: the owner gets 403, admin still reads it
    assert alice.post(f"/v2/images/{pub['id']}/actions/deactivate").status_code == 204
    assert get_file(alice, pub["id"]).status_code == 403
    assert get_file(raw["bob"], pub["id"]).status_code == 403
    r = get_file(admin, pub["id"])
    assert r.status_code == 200 and r.content == b"public data\n" * 1000
    assert alice.post(f"/v2/images/{pub['id']}/actions/reactivate").status_code == 204
    assert get_file(alice, pub["id"]).status_code == 200


def test_upload_chunked_without_length(raw, server):
    alice = raw["alice"]
    iid = alice.create(name=unique("chunked"), disk_format="raw", container_format="bare")["id"]
    data = random_bytes(6 * MiB + 1, 7)

    def gen():
        for off in range(0, len(data), 256 * 1024 + 3):
            yield data[off:off + 256 * 1024 + 3]

    r = upload(alice, iid, gen())  # requests sends a generator with Transfer-Encoding: chunked
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(data))
    assert get_file(alice, iid).content == data
    assert server.temporaries() == []


def test_upload_with_declared_size(raw):
    alice = raw["alice"]
    data = random_bytes(MiB, 8)
    iid = alice.create(name=unique("declared"), disk_format="raw", container_format="bare")["id"]
    r = upload(alice, iid, iter([data]), headers={"x-openstack-image-size": str(len(data))})
    assert r.status_code == 204, r.text
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(data))


def test_upload_empty_image(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("empty"), disk_format="raw", container_format="bare")["id"]
    r = upload(alice, iid, b"")
    assert r.status_code == 204, r.text
    assert_data_facts(alice.get(f"/v2/images/{iid}").json(), digests(b""))


def test_upload_needs_octet_stream(raw, server):
    alice = raw["alice"]
    iid = alice.create(name=unique("ctype"), disk_format="raw", container_format="bare")["id"]
    for ctype in (None, "application/json", "text/plain"):
        headers = {} if ctype is None else {"Content-Type": ctype}
        r = alice.put(f"/v2/images/{iid}/file", data=b"abc", headers=headers)
        assert r.status_code == 415, (ctype, r.status_code)
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(server, iid)
    # parameters on the media type are fine
    r = alice.put(f"/v2/images/{iid}/file", data=b"abc",
                  headers={"Content-Type": "application/octet-stream; charset=binary"})
    assert r.status_code == 204


def test_upload_bad_size_header(raw):
    alice = raw["alice"]
    iid = alice.create(name=unique("badsize"), disk_format="raw", container_format="bare")["id"]
    for bad in ("abc", "-1", "1.5"):
        r = upload(alice, iid, b"abc", headers={"x-openstack-image-size": bad})
        assert r.status_code == 400, (bad, r.status_code)
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"


def test_upload_permissions(raw, server):
    alice = raw["alice"]
    img = alice.create(name=unique("perm"), disk_format="raw", container_format="bare", visibility="community")
    iid = img["id"]
    # bob sees the community image but is not its owner; carol is a reader
    assert upload(raw["bob"], iid, b"not yours").status_code in (403, 404)
    assert upload(raw["carol"], iid, b"not yours").status_code in (403, 404)
    r = raw["bob"].put(f"/v2/images/{iid}/stage", data=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in (403, 404)
    assert alice.get(f"/v2/images/{iid}").json()["status"] == "queued"
    assert_nothing_kept(server, iid)
    # admin may upload to anyone's image
    assert upload(raw["admin"], iid, b"admin data").status_code == 204
    assert get_file(alice, iid).content == b"admin data"


def test_delete_removes_blob(raw, server):
    alice = raw["alice"]
    img = make_active(alice, random_bytes(MiB, 9), name=unique("del"))
    assert server.blob_path(img["id"]).exists()
    assert alice.delete(f"/v2/images/{img['id']}").status_code == 204
    assert_nothing_kept(server, img["id"])
    assert get_file(alice, img["id"]).status_code == 404
