"""Pinned checksums on every OpenStack ingest path (issue 21, point 1).

A client pins the digest of what it sends: `Repr-Digest` (RFC 9530), `X-Image-Meta-Expected-Hash: algo:hex`
on `PUT …/file` and `PUT …/stage`, `"expected_hash": "algo:hex"` on `POST …/import`. The right digest makes the
image active and recorded (`imaged_pinned_digest`); one flipped byte commits nothing (400, or a failed task for
an import), the image goes back to `queued`, usage is unchanged and no blob is left; an unknown algorithm is 400
before any byte is read."""
import base64
import hashlib
import socket
import time

import pytest

from conftest import Raw, assert_nothing_kept, random_bytes, unique, upload, wait_for, wait_task_finished

DATA = random_bytes(3 << 20, seed=2101)
FLIPPED = DATA[:1_000_000] + bytes([DATA[1_000_000] ^ 0x01]) + DATA[1_000_001:]


@pytest.fixture
def alice(raw) -> Raw:
    return raw["alice"]


def repr_digest(algo: str, data: bytes) -> str:
    name = {"sha256": "sha-256", "sha512": "sha-512", "md5": "md5", "sha1": "sha"}[algo]
    return f"{name}=:{base64.b64encode(hashlib.new(algo, data).digest()).decode()}:"


def new_image(client: Raw) -> dict:
    return client.create(name=unique("pinned"), disk_format="raw", container_format="bare")


def usage(client: Raw) -> dict:
    r = client.get("/v2/info/usage")
    assert r.status_code == 200, r.text
    return r.json()


def glance_error(r) -> str:
    """Glance's error body: {"code", "title", "message"} or its HTML; the message either way."""
    try:
        return r.json().get("message", "") or r.text
    except ValueError:
        return r.text


def test_upload_with_the_right_pin_is_active_and_records_it(alice):
    for algo, header in [("sha256", lambda d: {"Repr-Digest": repr_digest("sha256", d)}),
                         ("sha512", lambda d: {"Repr-Digest": repr_digest("sha512", d)}),
                         ("sha1", lambda d: {"X-Image-Meta-Expected-Hash": "sha1:" + hashlib.sha1(d).hexdigest()}),
                         ("md5", lambda d: {"X-Image-Meta-Expected-Hash": "MD5:" + hashlib.md5(d).hexdigest().upper()})]:
        image = new_image(alice)
        r = upload(alice, image["id"], DATA, headers=header(DATA))
        assert r.status_code == 204, (algo, r.text)
        got = alice.get(f"/v2/images/{image['id']}").json()
        assert got["status"] == "active" and got["size"] == len(DATA), got
        assert got["checksum"] == hashlib.md5(DATA).hexdigest()
        assert got["imaged_pinned_digest"] == f"{algo}:{hashlib.new(algo, DATA).hexdigest()}", got
        # Downloaded bytes are the ones pinned.
        assert hashlib.new(algo, alice.get(f"/v2/images/{image['id']}/file").content).hexdigest() == hashlib.new(algo, DATA).hexdigest()


def test_two_pins_must_both_match(alice):
    image = new_image(alice)
    headers = {"Repr-Digest": f"{repr_digest('sha256', DATA)}, {repr_digest('sha512', DATA)}"}
    assert upload(alice, image["id"], DATA, headers=headers).status_code == 204
    got = alice.get(f"/v2/images/{image['id']}").json()
    assert got["imaged_pinned_digest"] == (f"sha256:{hashlib.sha256(DATA).hexdigest()},"
                                           f"sha512:{hashlib.sha512(DATA).hexdigest()}")
    # One right and one wrong: refused.
    other = new_image(alice)
    headers = {"Repr-Digest": f"{repr_digest('sha256', DATA)}, {repr_digest('sha512', FLIPPED)}"}
    r = upload(alice, other["id"], DATA, headers=headers)
    assert r.status_code == 400 and "Checksum verification failed" in glance_error(r), r.text


def test_a_flipped_byte_commits_nothing_and_leaves_usage_unchanged(alice, server):
    image = new_image(alice)
    before = usage(alice)
    r = upload(alice, image["id"], FLIPPED, headers={"Repr-Digest": repr_digest("sha256", DATA)})
    assert r.status_code == 400, r.text
    message = glance_error(r)
    assert "Checksum verification failed" in message and hashlib.sha256(DATA).hexdigest() in message, message
    got = alice.get(f"/v2/images/{image['id']}").json()
    assert got["status"] == "queued" and got["size"] is None and got["checksum"] is None, got
    assert "imaged_pinned_digest" not in got
    assert_nothing_kept(server, image["id"])
    assert usage(alice) == before
    # The same image takes the right bytes afterwards.
    assert upload(alice, image["id"], DATA, headers={"Repr-Digest": repr_digest("sha256", DATA)}).status_code == 204


def test_stage_checks_the_pin_too(alice, server):
    image = new_image(alice)
    h = {"Content-Type": "application/octet-stream", "X-Image-Meta-Expected-Hash": "sha512:" + hashlib.sha512(DATA).hexdigest()}
    r = alice.put(f"/v2/images/{image['id']}/stage", data=FLIPPED, headers=h)
    assert r.status_code == 400 and "Checksum verification failed" in glance_error(r), r.text
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert_nothing_kept(server, image["id"])
    r = alice.put(f"/v2/images/{image['id']}/stage", data=DATA, headers=h)
    assert r.status_code == 204, r.text
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "uploading"


def test_bad_pins_are_400_before_any_byte_is_read(alice, url):
    image = new_image(alice)
    for headers, words in [({"Repr-Digest": "crc32c=:AAAAAA==:"}, "Unsupported Repr-Digest algorithm 'crc32c'"),
                           ({"X-Image-Meta-Expected-Hash": "blake3:00"}, "Unsupported hash algorithm 'blake3'"),
                           ({"X-Image-Meta-Expected-Hash": "sha256:abc"}, "64 hex digits"),
                           ({"X-Image-Meta-Expected-Hash": ""}, "is 'algorithm:hex'"),
                           ({"Repr-Digest": "sha-256=abc"}, "byte sequence"),
                           ({"Repr-Digest": repr_digest("md5", DATA), "X-Image-Meta-Expected-Hash": "md5:" + "0" * 32},
                            "Two different md5 digests")]:
        # Headers announce 64 MiB that never come: the answer must not wait for them.
        host, port = url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            lines = [f"PUT /v2/images/{image['id']}/file HTTP/1.1", f"Host: {host}", f"X-Auth-Token: {alice.session.headers['X-Auth-Token']}",
                     "Content-Type: application/octet-stream", f"Content-Length: {64 << 20}"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            t0 = time.monotonic()
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
            assert time.monotonic() - t0 < 5, "the answer waited for the body"
            s.settimeout(2)
            try:
                while len(answer) < 65536:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except socket.timeout:
                pass
        text = answer.decode(errors="replace")
        assert text.startswith("HTTP/1.1 400"), text[:300]
        assert words in text, (words, text[:600])
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"


def test_a_client_cannot_set_the_recorded_pin(alice):
    image = new_image(alice)
    r = alice.patch(f"/v2/images/{image['id']}", [{"op": "add", "path": "/imaged_pinned_digest", "value": "md5:" + "0" * 32}])
    assert r.status_code == 403, r.text
    r = alice.post("/v2/images", json={"name": unique("p"), "imaged_pinned_digest": "x"})
    assert r.status_code == 403, r.text


def test_web_download_with_expected_hash(import_server, origin):
    client = Raw(import_server.url, "alice")
    uri = origin.serve(f"/{unique('pinned')}.raw", DATA)
    # right: active, recorded
    image = new_image(client)
    body = {"method": {"name": "web-download", "uri": uri}, "expected_hash": "sha256:" + hashlib.sha256(DATA).hexdigest()}
    assert client.post(f"/v2/images/{image['id']}/import", json=body).status_code == 202
    task = wait_task_finished(client, image["id"])
    assert task["status"] == "success", task
    got = client.get(f"/v2/images/{image['id']}").json()
    assert got["status"] == "active" and got["imaged_pinned_digest"] == body["expected_hash"], got
    # wrong (the origin serves other bytes than pinned): the task fails with the reason, nothing kept
    image = new_image(client)
    before = usage(client)
    body = {"method": {"name": "web-download", "uri": uri, "expected_hash": "sha1:" + hashlib.sha1(FLIPPED).hexdigest()}}
    assert client.post(f"/v2/images/{image['id']}/import", json=body).status_code == 202
    task = wait_task_finished(client, image["id"])
    assert task["status"] == "failure" and "Checksum verification failed" in task["message"], task
    got = wait_for(lambda: (lambda g: g if g["status"] == "queued" else None)(client.get(f"/v2/images/{image['id']}").json()),
                   timeout=30, what="queued again")
    assert got["size"] is None and "imaged_pinned_digest" not in got
    assert_nothing_kept(import_server, image["id"])
    assert usage(client) == before
    # malformed: 400 at the request, nothing queued
    for bad in ["sha3:00", 42, "sha256"]:
        r = client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}, "expected_hash": bad})
        assert r.status_code == 400, (bad, r.text)
    assert tasks_after(client, image["id"]) == 1


def tasks_after(client: Raw, image_id: str) -> int:
    return len(client.get(f"/v2/images/{image_id}/tasks").json()["tasks"])


def test_glance_direct_with_expected_hash(alice, server):
    image = new_image(alice)
    assert alice.put(f"/v2/images/{image['id']}/stage", data=DATA,
                   headers={"Content-Type": "application/octet-stream"}).status_code == 204
    body = {"method": {"name": "glance-direct"}, "expected_hash": "sha512:" + hashlib.sha512(FLIPPED).hexdigest()}
    assert alice.post(f"/v2/images/{image['id']}/import", json=body).status_code == 202
    task = wait_task_finished(alice, image["id"])
    assert task["status"] == "failure" and "Checksum verification failed" in task["message"], task
    assert_nothing_kept(server, image["id"])


def test_web_download_with_a_checksum_file(import_server, origin):
    client = Raw(import_server.url, "alice")
    name = f"{unique('cirros')}.img"
    uri = origin.serve(f"/release/{name}", DATA)
    sums = origin.serve(f"/release/{unique('SHA256SUMS')}",
                        (f"{hashlib.sha256(b'other').hexdigest()}  other.img\n"
                         f"{hashlib.sha256(DATA).hexdigest()} *{name}\n").encode(), content_type="text/plain")
    bsd = origin.serve(f"/release/{unique('CHECKSUM')}", f"SHA512 ({name}) = {hashlib.sha512(FLIPPED).hexdigest()}\n".encode())
    empty = origin.serve(f"/release/{unique('MD5SUMS')}", f"{hashlib.md5(DATA).hexdigest()}  someone-else.img\n".encode())

    image = new_image(client)
    body = {"method": {"name": "web-download", "uri": uri, "checksum_url": sums}}
    assert client.post(f"/v2/images/{image['id']}/import", json=body).status_code == 202
    task = wait_task_finished(client, image["id"])
    assert task["status"] == "success", task
    got = client.get(f"/v2/images/{image['id']}").json()
    assert got["imaged_pinned_digest"] == "sha256:" + hashlib.sha256(DATA).hexdigest(), got

    for checksum_url, words in [(bsd, "Checksum verification failed"), (empty, f"names no digest for '{name}'")]:
        image = new_image(client)
        body = {"method": {"name": "web-download", "uri": uri, "checksum_url": checksum_url}}
        assert client.post(f"/v2/images/{image['id']}/import", json=body).status_code == 202
        task = wait_task_finished(client, image["id"])
        assert task["status"] == "failure" and words in task["message"], task
        assert_nothing_kept(import_server, image["id"])

    # A checksum URL the guard refuses (link-local) is 400 at the request.
    image = new_image(client)
    body = {"method": {"name": "web-download", "uri": uri, "checksum_url": "http://169.254.169.254/SHA256SUMS"}}
    r = client.post(f"/v2/images/{image['id']}/import", json=body)
    assert r.status_code == 400, r.text
    assert tasks_after(client, image["id"]) == 0
