"""Resumable uploads: tus 1.0.0 (core, creation, termination, expiration) under the OpenStack API,
`/v2/images/{id}/uploads[/{upload_id}]`, X-Auth-Token as every /v2 route.

`POST …/uploads` with `Upload-Length` opens a session (201, `Location`, `Upload-Offset: 0`, `Upload-Expires`)
and reserves the length (the image's `size`, counted in image_stage_total); `PATCH` with
`application/offset+octet-stream` at the current `Upload-Offset` appends (204 with the new offset; a gap or
an overlap is 409 with the current offset); the PATCH that reaches the length finishes the upload as
`PUT …/file` would (or as `PUT …/stage` for `Upload-Metadata: target stage`): decompression, format checks
and pinned digests included, a refusal leaves the image `queued` with nothing kept. A connection cut
mid-PATCH keeps what arrived; a session survives the node's SIGKILL (file store) and continues through any
node of a cluster (PostgreSQL + S3); a second PATCH while one is in progress is 423. DELETE ends a session,
`--upload-session-ttl` expires an idle one; `--cors-origin` answers browsers.

The acceptance: a 1 GiB upload cut at ~60 %, the node SIGKILLed and restarted (file store) or continued on
the other node (PostgreSQL + S3, skipped unless IMAGED_TEST_POSTGRES_URL and IMAGED_TEST_S3_ENV are set):
HEAD gives the offset, the rest is sent, the image's sha512 is the file's and in all at most 1.05 × the
file was sent. IMAGED_TEST_RESUMABLE_MIB (default 1024) sizes that file."""

import base64
import email.utils
import hashlib
import http.client
import os
import select
import signal
import socket
import struct
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import (ImagedServer, download_digest, Raw, assert_data_facts, digests, imaged_bin, random_bytes, scale_out_config,
                      unique, upload, wait_for, wait_status, wait_task_finished)

MiB = 1 << 20
BIG = int(os.environ.get("IMAGED_TEST_RESUMABLE_MIB", "1024")) * MiB
CAP = 256 * MiB  # the module server's --image-size-cap (Tus-Max-Size)
OCTETS = "application/offset+octet-stream"
TUS = {"Tus-Resumable": "1.0.0"}
EXPOSED = ["Upload-Offset", "Upload-Length", "Upload-Expires", "Location", "Tus-Resumable"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def repr_digest(algo: str, data: bytes) -> str:
    name = {"sha256": "sha-256", "sha512": "sha-512"}[algo]
    return f"{name}=:{base64.b64encode(hashlib.new(algo, data).digest()).decode()}:"


def http_date(value: str) -> float:
    parsed = email.utils.parsedate_to_datetime(value)
    assert parsed is not None and parsed.tzinfo is not None, value
    return parsed.timestamp()


def iso_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def header_list(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


# ---------------------------------------------------------------------------------------------
# The protocol, through `requests`


def open_session(client: Raw, image_id: str, length, target: str | None = None, headers: dict | None = None):
    h = {**TUS, "Upload-Length": str(length), **(headers or {})}
    if target is not None:
        h["Upload-Metadata"] = f"target {b64(target)}"
    return client.post(f"/v2/images/{image_id}/uploads", headers=h)


def new_session(client: Raw, image_id: str, length: int, target: str | None = None, headers: dict | None = None) -> dict:
    """Opens a session and checks the 201's headers and body; returns the body."""
    before = time.time()
    r = open_session(client, image_id, length, target, headers)
    assert r.status_code == 201, (r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"id", "image_id", "offset", "length", "target", "expires_at"}, body
    assert (body["image_id"], body["offset"], body["length"], body["target"]) == (image_id, 0, length, target or "file"), body
    assert r.headers["Location"] == f"/v2/images/{image_id}/uploads/{body['id']}", r.headers
    assert r.headers["Upload-Offset"] == "0" and r.headers["Tus-Resumable"] == "1.0.0", r.headers
    expires = http_date(r.headers["Upload-Expires"])
    assert expires > before, r.headers["Upload-Expires"]
    assert abs(iso_time(body["expires_at"]) - expires) <= 1, (body["expires_at"], r.headers["Upload-Expires"])
    return body


def tus_patch(client: Raw, image_id: str, upload_id: str, offset, data: bytes, headers: dict | None = None):
    h = {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset), **(headers or {})}
    return client.request("PATCH", f"/v2/images/{image_id}/uploads/{upload_id}", data=data, headers=h, timeout=300)


def head(client: Raw, image_id: str, upload_id: str):
    return client.request("HEAD", f"/v2/images/{image_id}/uploads/{upload_id}", headers=TUS)


def offset_of(client: Raw, image_id: str, upload_id: str) -> int:
    r = head(client, image_id, upload_id)
    assert r.status_code == 200, (r.status_code, r.headers)
    return int(r.headers["Upload-Offset"])


def send_in_pieces(client: Raw, image_id: str, upload_id: str, data: bytes, cuts: list[int]) -> list:
    """PATCHes data[a:b] for consecutive cut points; every PATCH but the last must be 204 with its new
    offset. Returns the responses (the caller checks the last)."""
    answers, at = [], 0
    for end in [*cuts, len(data)]:
        r = tus_patch(client, image_id, upload_id, at, data[at:end])
        answers.append(r)
        if end < len(data):
            assert r.status_code == 204, (at, end, r.status_code, r.text)
            assert r.headers["Upload-Offset"] == str(end), r.headers
            assert offset_of(client, image_id, upload_id) == end
        at = end
    return answers


def usage(client: Raw) -> dict:
    r = client.get("/v2/info/usage")
    assert r.status_code == 200, r.text
    return r.json()["usage"]


def image_of(client: Raw, image_id: str) -> dict:
    r = client.get(f"/v2/images/{image_id}")
    assert r.status_code == 200, r.text
    return r.json()


def sessions_of(client: Raw, image_id: str) -> list[dict]:
    r = client.get(f"/v2/images/{image_id}/uploads")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["uploads"]


def leftovers(srv: ImagedServer, *names: str) -> list[str]:
    """Files of the data dir (any layout: blobs, staging, temporaries, session data) named after the image
    or the session, and temporaries."""
    found = [str(p) for p in srv.data_dir.rglob("*") if p.is_file() and any(n in str(p) for n in names)]
    return sorted(found + [f".tmp/{t}" for t in srv.temporaries()])


def assert_nothing_kept(srv: ImagedServer, client: Raw, image_id: str, upload_id: str, usage_before: dict | None = None):
    """The session is gone, the image is queued without size or digests, no byte of it is kept."""
    assert head(client, image_id, upload_id).status_code == 404
    assert sessions_of(client, image_id) == []
    got = image_of(client, image_id)
    assert got["status"] == "queued" and got["size"] is None and got["checksum"] is None, got
    assert got.get("os_hash_value") is None, got
    try:
        wait_for(lambda: leftovers(srv, image_id, upload_id) == [], timeout=15, what="no data left")
    except AssertionError:
        raise AssertionError(f"data left behind for {image_id}/{upload_id}: {leftovers(srv, image_id, upload_id)}") from None
    if usage_before is not None:
        assert usage(client) == usage_before


def new_image(client: Raw, **create) -> dict:
    create.setdefault("name", unique("tus"))
    create.setdefault("disk_format", "raw")
    create.setdefault("container_format", "bare")
    return client.create(**create)


# ---------------------------------------------------------------------------------------------
# Big PATCHes through http.client: streamed from a file, counted, cut at will


def host_port(base: str) -> tuple[str, int]:
    host, port = base.split("//")[1].split(":")
    return host, int(port)


class Sent:
    def __init__(self, status: int | None, headers: dict, body: bytes, sent: int):
        self.status_code, self.headers, self.body, self.sent = status, headers, body, sent

    def __repr__(self):
        return f"<PATCH {self.status_code} sent={self.sent} {dict(self.headers.items())} {self.body[:300]!r}>"


def stream_patch(base: str, who_token: str, path: str, offset: int, source: Path, count: int,
                 cut_after: int | None = None, chunk: int = 4 * MiB) -> Sent:
    """PATCH `count` bytes of `source` from `offset` (Content-Length: count). With `cut_after`, stops after that
    many bytes and resets the connection (SO_LINGER 0: RST, no FIN) without reading an answer. Stops sending
    as soon as the server answers early. `sent` counts the bytes handed to the kernel."""
    host, port = host_port(base)
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.putrequest("PATCH", path, skip_accept_encoding=True)
    for k, v in {"X-Auth-Token": who_token, "Content-Type": OCTETS, "Upload-Offset": str(offset),
                 "Tus-Resumable": "1.0.0", "Content-Length": str(count)}.items():
        conn.putheader(k, v)
    conn.endheaders()
    sock = conn.sock
    sent = 0
    limit = count if cut_after is None else min(count, cut_after)
    with open(source, "rb") as f:
        f.seek(offset)
        while sent < limit:
            if select.select([sock], [], [], 0)[0]:
                break  # an early answer (or the server closed): stop sending
            data = f.read(min(chunk, limit - sent))
            assert data, "the source file is shorter than expected"
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
    if cut_after is not None and sent >= limit:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        conn.sock = None
        return Sent(None, {}, b"", sent)
    try:
        resp = conn.getresponse()
        return Sent(resp.status, resp.headers, resp.read(), sent)  # (an HTTPMessage: names case-insensitive)
    except (ConnectionError, http.client.HTTPException) as e:
        return Sent(None, {"error": repr(e)}, b"", sent)
    finally:
        conn.close()


def stable_offset(client: Raw, image_id: str, upload_id: str, timeout: float = 60) -> int:
    """HEAD until the offset is > 0 and the same twice, a second apart (the cut PATCH was wound up)."""
    seen = []

    def settled():
        r = head(client, image_id, upload_id)
        if r.status_code != 200:
            seen.append(r.status_code)
            return None
        seen.append(int(r.headers["Upload-Offset"]))
        return seen[-1] if len(seen) >= 2 and seen[-1] == seen[-2] and seen[-1] > 0 else None
    try:
        return wait_for(settled, timeout=timeout, interval=1.0, what="the cut PATCH's offset to settle")
    except AssertionError as e:
        raise AssertionError(f"{e}; HEAD gave {seen}") from None


def finish_from_offset(client: Raw, image_id: str, upload_id: str, source: Path, size: int,
                       retry_423_for: float = 15) -> tuple[Sent, int, int]:
    """HEAD, then PATCH the rest from there; a 423 (the cut PATCH still winding up somewhere) or a 409 (it wound
    up between our HEAD and our PATCH, moving the offset) is retried after a new HEAD, as tus clients do.
    Returns the final answer, the offset it started from and every byte sent."""
    deadline, total = time.monotonic() + retry_423_for, 0
    while True:
        offset = offset_of(client, image_id, upload_id)
        answer = stream_patch(client.base, client.session.headers["X-Auth-Token"],
                              f"/v2/images/{image_id}/uploads/{upload_id}", offset, source, size - offset)
        total += answer.sent
        if answer.status_code in (409, 423) and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        return answer, offset, total


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> dict:
    """BIG random bytes in a file, digested while written (memory stays at one 4 MiB chunk)."""
    path = tmp_path_factory.mktemp("resumable-big") / "big.raw"
    sha512, md5, size = hashlib.sha512(), hashlib.md5(), 0
    with open(path, "wb") as f:
        while size < BIG:
            chunk = os.urandom(min(4 * MiB, BIG - size))
            f.write(chunk)
            sha512.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    yield {"path": path, "size": size, "sha512": sha512.hexdigest(), "md5": md5.hexdigest()}
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The module's server: file store, a 256 MiB size cap, CORS for two origins

UI, OTHER_UI = "https://ui.example", "https://other.example:8443"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ImagedServer(tmp_path_factory.mktemp("imaged-tus"), "--image-size-cap", str(CAP),
                     "--cors-origin", f"{UI},{OTHER_UI}")
    s.start()
    yield s
    s.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def alice(srv) -> Raw:
    return Raw(srv.url, "alice")


def test_options_announces_the_protocol(srv, alice):
    image = new_image(alice)
    r = alice.request("OPTIONS", f"/v2/images/{image['id']}/uploads")
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Tus-Version"] == "1.0.0"
    assert header_list(r.headers["Tus-Extension"]) == {"creation", "termination", "expiration"}, r.headers
    assert r.headers["Tus-Max-Size"] == str(CAP)
    assert r.content == b""


def test_session_lifecycle_in_pieces_with_the_right_pin(srv, alice):
    data = random_bytes(3 * MiB + 17, seed=7101)
    image = new_image(alice)
    assert sessions_of(alice, image["id"]) == []
    body = new_session(alice, image["id"], len(data), headers={"Repr-Digest": repr_digest("sha256", data)})
    uid = body["id"]
    # Default Upload-Expires: about a day from now (--upload-session-ttl 86400).
    assert abs(iso_time(body["expires_at"]) - (time.time() + 86400)) < 60, body
    # The image is saving and shows the reserved length.
    got = image_of(alice, image["id"])
    assert got["status"] == "saving" and got["size"] == len(data), got
    [listed] = sessions_of(alice, image["id"])
    assert {k: listed[k] for k in ("id", "offset", "length", "target")} == \
        {"id": uid, "offset": 0, "length": len(data), "target": "file"}, listed
    assert abs(iso_time(listed["expires_at"]) - iso_time(body["expires_at"])) <= 1, (listed, body)

    r = head(alice, image["id"], uid)
    assert r.status_code == 200 and r.content == b""
    assert (r.headers["Upload-Offset"], r.headers["Upload-Length"]) == ("0", str(len(data)))
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Tus-Resumable"] == "1.0.0"
    assert abs(http_date(r.headers["Upload-Expires"]) - iso_time(body["expires_at"])) <= 1

    # Neither a second session nor PUT …/file while one is open.
    assert open_session(alice, image["id"], len(data)).status_code == 409
    assert upload(alice, image["id"], data).status_code == 409
    # Another project does not see it; no token is 401.
    bob = Raw(srv.url, "bob")
    assert open_session(bob, image["id"], len(data)).status_code == 404
    assert head(bob, image["id"], uid).status_code == 404
    assert tus_patch(bob, image["id"], uid, 0, data[:10]).status_code == 404
    assert bob.delete(f"/v2/images/{image['id']}/uploads/{uid}").status_code == 404
    assert head(Raw(srv.url, None), image["id"], uid).status_code == 401

    cuts = [1, MiB, 2 * MiB + 5]
    answers = send_in_pieces(alice, image["id"], uid, data, cuts)
    last = answers[-1]
    assert last.status_code == 204, (last.status_code, last.text)
    assert last.headers["Upload-Offset"] == str(len(data)) and last.content == b""
    assert "Upload-Expires" in answers[0].headers and answers[0].headers["Tus-Resumable"] == "1.0.0"
    got = image_of(alice, image["id"])
    assert_data_facts(got, digests(data))
    assert got["virtual_size"] == len(data)
    assert got["imaged_pinned_digest"] == "sha256:" + hashlib.sha256(data).hexdigest(), got
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    # Finished: the session is gone.
    assert head(alice, image["id"], uid).status_code == 404
    assert sessions_of(alice, image["id"]) == []
    assert tus_patch(alice, image["id"], uid, len(data), b"x").status_code == 404
    assert alice.delete(f"/v2/images/{image['id']}/uploads/{uid}").status_code == 404
    # An active image takes no session.
    assert open_session(alice, image["id"], 10).status_code == 409
    assert not leftovers(srv, uid)


def test_a_wrong_pin_refuses_the_last_patch_and_keeps_nothing(srv, alice):
    data = random_bytes(2 * MiB + 3, seed=7102)
    flipped = data[:MiB] + bytes([data[MiB] ^ 1]) + data[MiB + 1:]
    image = new_image(alice)
    before = usage(alice)
    uid = new_session(alice, image["id"], len(data),
                      headers={"X-Image-Meta-Expected-Hash": "sha256:" + hashlib.sha256(data).hexdigest()})["id"]
    answers = send_in_pieces(alice, image["id"], uid, flipped, [700_000, MiB + 1])
    r = answers[-1]
    assert r.status_code == 400, (r.status_code, r.text)
    assert "Checksum verification failed" in r.text, r.text
    assert_nothing_kept(srv, alice, image["id"], uid, before)
    assert "imaged_pinned_digest" not in image_of(alice, image["id"])
    # The queued image takes the right bytes afterwards, through a new session in one PATCH.
    uid = new_session(alice, image["id"], len(data), headers={"Repr-Digest": repr_digest("sha512", data)})["id"]
    r = tus_patch(alice, image["id"], uid, 0, data)
    assert r.status_code == 204, r.text
    assert_data_facts(image_of(alice, image["id"]), digests(data))


def test_protocol_errors(srv, alice):
    data = random_bytes(MiB, seed=7103)
    image = new_image(alice)
    iid = image["id"]

    # POST: Upload-Length missing or not a length is 400, over the size cap 413, another version 412.
    r = alice.post(f"/v2/images/{iid}/uploads", headers=TUS)
    assert r.status_code == 400, (r.status_code, r.text)
    for bad in ("abc", "-1", "1.5", ""):
        assert open_session(alice, iid, bad).status_code == 400, bad
    r = open_session(alice, iid, CAP + 1)
    assert r.status_code == 413, (r.status_code, r.text)
    r = open_session(alice, iid, 100, headers={"Tus-Resumable": "0.2.2"})
    assert r.status_code == 412 and r.headers.get("Tus-Version") == "1.0.0", (r.status_code, r.headers)
    # None of them opened anything.
    assert image_of(alice, iid)["status"] == "queued" and sessions_of(alice, iid) == []
    # Glance's rule for data to /file: formats first. Staging needs none.
    bare = alice.create(name=unique("tus-noformat"))
    r = open_session(alice, bare["id"], 100)
    assert r.status_code == 400 and "disk_format" in r.text, (r.status_code, r.text)
    assert image_of(alice, bare["id"])["status"] == "queued"
    staged = new_session(alice, bare["id"], 100, target="stage")
    assert image_of(alice, bare["id"])["status"] == "uploading"
    assert alice.delete(f"/v2/images/{bare['id']}/uploads/{staged['id']}").status_code == 204
    # Unknown image or upload: 404.
    assert open_session(alice, str(uuid.uuid4()), 100).status_code == 404

    uid = new_session(alice, iid, len(data))["id"]
    assert tus_patch(alice, iid, uid, 0, data[:1000]).status_code == 204

    # A gap and an overlap: 409 with the current offset.
    for wrong in (1010, 990, 0):
        r = tus_patch(alice, iid, uid, wrong, data[wrong:wrong + 100])
        assert r.status_code == 409, (wrong, r.status_code, r.text)
        assert r.headers.get("Upload-Offset") == "1000", (wrong, r.headers)
    # Not offset+octet-stream: 415.
    for ctype in ("application/octet-stream", None):
        h = {**TUS, "Upload-Offset": "1000"}
        if ctype:
            h["Content-Type"] = ctype
        r = alice.request("PATCH", f"/v2/images/{iid}/uploads/{uid}", data=data[1000:1100], headers=h)
        assert r.status_code == 415, (ctype, r.status_code, r.text)
    # Upload-Offset missing or not an offset: 400.
    r = alice.request("PATCH", f"/v2/images/{iid}/uploads/{uid}", data=data[1000:1100],
                      headers={**TUS, "Content-Type": OCTETS})
    assert r.status_code == 400, (r.status_code, r.text)
    for bad in ("abc", "-1", "1e3"):
        r = tus_patch(alice, iid, uid, bad, data[1000:1100])
        assert r.status_code == 400, (bad, r.status_code, r.text)
    # Unknown sessions, on this image and on another one.
    for other_uid in (str(uuid.uuid4()), uuid.uuid4().hex, "nope"):
        assert head(alice, iid, other_uid).status_code == 404
        assert tus_patch(alice, iid, other_uid, 1000, b"x").status_code == 404
        assert alice.delete(f"/v2/images/{iid}/uploads/{other_uid}").status_code == 404
    elsewhere = new_image(alice)
    assert head(alice, elsewhere["id"], uid).status_code == 404
    assert tus_patch(alice, elsewhere["id"], uid, 1000, b"x").status_code == 404

    # After all that the session is where it was, and finishes.
    assert offset_of(alice, iid, uid) == 1000
    assert image_of(alice, iid)["status"] == "saving"
    r = tus_patch(alice, iid, uid, 1000, data[1000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data)), (r.status_code, r.text)
    assert_data_facts(image_of(alice, iid), digests(data))


def test_a_patch_past_upload_length_is_413_and_appends_nothing(srv, alice):
    data = random_bytes(MiB, seed=7109)
    image = new_image(alice)
    uid = new_session(alice, image["id"], len(data))["id"]
    assert tus_patch(alice, image["id"], uid, 0, data[:1000]).status_code == 204
    # One byte too many, and a body twice the room: refused from their Content-Length, nothing appended.
    for body in (data[1000:] + b"!", data[1000:] + data):
        r = tus_patch(alice, image["id"], uid, 1000, body)
        assert r.status_code == 413, (len(body), r.status_code, r.text)
        assert offset_of(alice, image["id"], uid) == 1000, len(body)
    r = tus_patch(alice, image["id"], uid, 1000, data[1000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data)), (r.status_code, r.text)
    assert_data_facts(image_of(alice, image["id"]), digests(data))


def test_delete_ends_the_session_and_frees_the_image(srv, alice):
    data = random_bytes(2 * MiB, seed=7104)
    image = new_image(alice)
    before = usage(alice)
    uid = new_session(alice, image["id"], len(data))["id"]
    assert tus_patch(alice, image["id"], uid, 0, data[:MiB]).status_code == 204
    r = alice.delete(f"/v2/images/{image['id']}/uploads/{uid}", headers=TUS)
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.text)
    assert r.headers.get("Tus-Resumable") == "1.0.0", r.headers
    assert tus_patch(alice, image["id"], uid, MiB, data[MiB:]).status_code == 404
    assert alice.delete(f"/v2/images/{image['id']}/uploads/{uid}").status_code == 404
    assert_nothing_kept(srv, alice, image["id"], uid, before)
    # The image is free for PUT …/file.
    assert upload(alice, image["id"], data).status_code == 204
    assert_data_facts(image_of(alice, image["id"]), digests(data))


def test_deleting_the_image_ends_its_session(srv, alice):
    data = random_bytes(2 * MiB, seed=7110)
    image = new_image(alice)
    uid = new_session(alice, image["id"], len(data))["id"]
    assert tus_patch(alice, image["id"], uid, 0, data[:MiB]).status_code == 204
    assert alice.delete(f"/v2/images/{image['id']}").status_code == 204
    assert head(alice, image["id"], uid).status_code == 404
    assert tus_patch(alice, image["id"], uid, MiB, data[MiB:]).status_code == 404
    try:
        wait_for(lambda: leftovers(srv, image["id"], uid) == [], timeout=15, what="no data left")
    except AssertionError:
        raise AssertionError(f"data left behind: {leftovers(srv, image['id'], uid)}") from None


def test_a_session_goes_to_the_store_it_names(tmp_path):
    s = ImagedServer(tmp_path / "stores", "--store", "fast=file", "--store", "slow=file")
    s.start()
    try:
        alice = Raw(s.url, "alice")
        data = random_bytes(MiB + 1, seed=7111)
        image = new_image(alice)
        uid = new_session(alice, image["id"], len(data), headers={"X-Image-Meta-Store": "slow"})["id"]
        r = send_in_pieces(alice, image["id"], uid, data, [MiB // 2])[-1]
        assert r.status_code == 204, (r.status_code, r.text)
        got = image_of(alice, image["id"])
        assert_data_facts(got, digests(data))
        assert got["stores"] == "slow", got
        assert (s.data_dir / "stores" / "slow" / "images" / image["id"]).read_bytes() == data
        assert not (s.data_dir / "stores" / "fast" / "images" / image["id"]).exists()
        # A store that does not exist is refused as PUT …/file refuses it, before any byte.
        other = new_image(alice)
        expected = upload(alice, other["id"], data, headers={"X-Image-Meta-Store": "nope"})
        assert expected.status_code == 400, (expected.status_code, expected.text)
        r = open_session(alice, other["id"], len(data), headers={"X-Image-Meta-Store": "nope"})
        assert r.status_code == 400, (r.status_code, r.text)
        assert image_of(alice, other["id"])["status"] == "queued"
    finally:
        s.kill()


def test_stage_target_then_glance_direct(srv, alice):
    data = random_bytes(3 * MiB + 5, seed=7105)
    image = new_image(alice)
    body = new_session(alice, image["id"], len(data), target="stage")
    got = image_of(alice, image["id"])
    assert got["status"] == "uploading" and got["size"] == len(data), got
    assert sessions_of(alice, image["id"])[0]["target"] == "stage"
    r = send_in_pieces(alice, image["id"], body["id"], data, [MiB])[-1]
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data)), (r.status_code, r.text)
    staged = image_of(alice, image["id"])
    assert staged["status"] == "uploading" and staged["size"] == len(data), staged
    assert srv.staging_path(image["id"]).exists() and not srv.blob_path(image["id"]).exists()
    assert head(alice, image["id"], body["id"]).status_code == 404
    assert usage(alice)["image_stage_total"]["usage"] >= 4
    r = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    task = wait_task_finished(alice, image["id"])
    assert task["status"] == "success", task
    assert_data_facts(wait_status(alice, image["id"], "active"), digests(data))
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    assert not srv.staging_path(image["id"]).exists()


def test_a_gzip_compressed_raw_through_a_session_is_stored_decompressed(srv, alice, disk):
    path = disk.raw_with_data("tus-gzip.raw", virtual=16 * MiB, data=2 * MiB, seed=7106)
    sent = subprocess.run(["gzip", "-c", str(path)], capture_output=True, check=True, timeout=60).stdout
    inner = path.read_bytes()
    image = new_image(alice)
    uid = new_session(alice, image["id"], len(sent))["id"]
    assert image_of(alice, image["id"])["size"] == len(sent)
    r = send_in_pieces(alice, image["id"], uid, sent, [len(sent) // 3, len(sent) // 2])[-1]
    assert r.status_code == 204, (r.status_code, r.text)
    got = image_of(alice, image["id"])
    assert_data_facts(got, digests(inner))
    assert got["virtual_size"] == len(inner) and got["imaged_source_compression"] == "gzip", got
    downloaded = alice.get(f"/v2/images/{image['id']}/file").content
    assert hashlib.md5(downloaded).hexdigest() == hashlib.md5(inner).hexdigest() == got["checksum"]


def test_a_refused_disk_format_answers_as_put_file_and_keeps_nothing(srv, alice, disk):
    backed = disk.qcow2_with_backing_file("tus-backed.qcow2").read_bytes()
    reference = new_image(alice, disk_format="qcow2")
    expected = upload(alice, reference["id"], backed)
    assert expected.status_code in (400, 415), (expected.status_code, expected.text)
    image = new_image(alice, disk_format="qcow2")
    before = usage(alice)
    uid = new_session(alice, image["id"], len(backed))["id"]
    r = send_in_pieces(alice, image["id"], uid, backed, [len(backed) // 2])[-1]
    assert r.status_code == expected.status_code, (r.status_code, r.text, expected.text)
    assert_nothing_kept(srv, alice, image["id"], uid, before)


def test_a_second_patch_while_one_is_in_progress_is_423(srv, alice, tmp_path):
    data = random_bytes(8 * MiB, seed=7107)
    source = tmp_path / "423.raw"
    source.write_bytes(data)
    image = new_image(alice)
    uid = new_session(alice, image["id"], len(data))["id"]
    path = f"/v2/images/{image['id']}/uploads/{uid}"
    # PATCH A: headers and the first MiB, then it stalls with 7 MiB to come.
    host, port = host_port(srv.url)
    a = socket.create_connection((host, port), timeout=60)
    try:
        a.sendall((f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {alice.session.headers['X-Auth-Token']}\r\n"
                   f"Content-Type: {OCTETS}\r\nUpload-Offset: 0\r\nTus-Resumable: 1.0.0\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:MiB])
        time.sleep(1.5)
        # PATCH B, at any offset, while A is in progress: 423.
        for offset in (0, MiB):
            r = tus_patch(alice, image["id"], uid, offset, data[offset:offset + 1000])
            assert r.status_code == 423, (offset, r.status_code, r.text)
        assert head(alice, image["id"], uid).status_code == 200
        # A goes on and finishes the upload.
        a.sendall(data[MiB:])
        a.settimeout(120)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = a.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        a.close()
    text = answer.decode(errors="replace")
    assert text.startswith("HTTP/1.1 204"), text[:500]
    assert f"upload-offset: {len(data)}\r\n" in text.lower(), text[:500]
    assert_data_facts(image_of(alice, image["id"]), digests(data))


def test_stage_quota_counts_open_sessions(srv):
    """image_stage_total: an Upload-Length over the room left is 413; an open session's reservation counts,
    with either target, until it ends."""
    data_dir = str(srv.data_dir)
    out = subprocess.run([str(imaged_bin()), "quota", "set", "p-bob", "--stage-size", "8MiB", "--data-dir", data_dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    bob = Raw(srv.url, "bob")
    try:
        wait_for(lambda: usage(bob)["image_stage_total"]["limit"] == 8, timeout=8, what="the quota seen by the server")
        assert usage(bob)["image_stage_total"]["usage"] == 0
        one, two, three = new_image(bob), new_image(bob), new_image(bob)
        for target in ("stage", "file"):
            r = open_session(bob, one["id"], 8 * MiB + 1, target=target)
            assert r.status_code == 413 and "image_stage_total" in r.text, (target, r.status_code, r.text)
        assert image_of(bob, one["id"])["status"] == "queued"
        held = new_session(bob, one["id"], 6 * MiB, target="stage")
        assert usage(bob)["image_stage_total"]["usage"] == 6
        r = open_session(bob, two["id"], 3 * MiB)
        assert r.status_code == 413, (r.status_code, r.text)
        held_file = new_session(bob, two["id"], 2 * MiB)
        assert usage(bob)["image_stage_total"]["usage"] == 8
        assert open_session(bob, three["id"], 1, target="stage").status_code == 413
        # Ending a session frees its room.
        assert bob.delete(f"/v2/images/{one['id']}/uploads/{held['id']}").status_code == 204
        assert usage(bob)["image_stage_total"]["usage"] == 2
        last = new_session(bob, three["id"], 6 * MiB, target="stage")
        assert bob.delete(f"/v2/images/{two['id']}/uploads/{held_file['id']}").status_code == 204
        assert bob.delete(f"/v2/images/{three['id']}/uploads/{last['id']}").status_code == 204
        assert usage(bob)["image_stage_total"]["usage"] == 0
        assert [image_of(bob, i["id"])["status"] for i in (one, two, three)] == ["queued"] * 3
    finally:
        subprocess.run([str(imaged_bin()), "quota", "clear", "p-bob", "--data-dir", data_dir], capture_output=True, timeout=60)


def test_cors_for_the_configured_origins(srv, alice):
    image = new_image(alice)
    for origin in (UI, OTHER_UI):
        r = open_session(alice, image["id"], 100, headers={"Origin": origin})
        assert r.status_code == 201, r.text
        assert r.headers.get("Access-Control-Allow-Origin") == origin, r.headers
        exposed = header_list(r.headers.get("Access-Control-Expose-Headers"))
        assert {h.lower() for h in EXPOSED} <= exposed, r.headers
        uid = r.json()["id"]
        r = head(Raw(srv.url, "alice"), image["id"], uid)
        assert "Access-Control-Allow-Origin" not in r.headers  # no Origin, no CORS
        assert alice.delete(f"/v2/images/{image['id']}/uploads/{uid}", headers={"Origin": origin}).headers.get(
            "Access-Control-Allow-Origin") == origin
    # A preflight needs no token.
    anonymous = Raw(srv.url, None)
    r = anonymous.request("OPTIONS", f"/v2/images/{image['id']}/uploads/{uuid.uuid4()}",
                          headers={"Origin": UI, "Access-Control-Request-Method": "PATCH",
                                   "Access-Control-Request-Headers": "x-auth-token,upload-offset,content-type,tus-resumable"})
    assert r.status_code == 204, (r.status_code, r.headers, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") == UI, r.headers
    assert {"post", "patch", "head", "delete"} <= header_list(r.headers.get("Access-Control-Allow-Methods")), r.headers
    assert {"x-auth-token", "upload-offset", "upload-length", "upload-metadata", "tus-resumable", "content-type"} <= \
        header_list(r.headers.get("Access-Control-Allow-Headers")), r.headers
    # Another origin gets nothing.
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "https://ui.example.evil.example"}):
        r = open_session(alice, image["id"], 100, headers=headers)
        assert r.status_code == 201 and "Access-Control-Allow-Origin" not in r.headers, r.headers
        assert alice.delete(r.headers["Location"]).status_code == 204
        r = anonymous.request("OPTIONS", f"/v2/images/{image['id']}/uploads",
                              headers={**headers, "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in r.headers, (r.status_code, r.headers)


def test_no_cors_without_the_flag(server, raw):
    alice = raw["alice"]
    image = new_image(alice)
    r = open_session(alice, image["id"], 100, headers={"Origin": UI})
    assert r.status_code == 201 and "Access-Control-Allow-Origin" not in r.headers, r.headers
    assert alice.delete(r.headers["Location"]).status_code == 204
    r = Raw(server.url, None).request("OPTIONS", f"/v2/images/{image['id']}/uploads",
                                      headers={"Origin": UI, "Access-Control-Request-Method": "PATCH"})
    assert "Access-Control-Allow-Origin" not in r.headers, (r.status_code, r.headers)
    assert "Access-Control-Allow-Methods" not in r.headers, (r.status_code, r.headers)


# ---------------------------------------------------------------------------------------------
# Expiry: a short TTL, the reaper every second; CORS for any origin


def test_an_idle_session_expires(tmp_path):
    ttl = 3
    s = ImagedServer(tmp_path / "ttl", "--upload-session-ttl", str(ttl), "--node-heartbeat-seconds", "1",
                     "--cors-origin", "*")
    s.start()
    try:
        alice = Raw(s.url, "alice")
        data = random_bytes(2 * MiB, seed=7108)
        image = new_image(alice)
        before = usage(alice)
        t0 = time.time()
        r = open_session(alice, image["id"], len(data), headers={"Origin": "https://anywhere.example"})
        assert r.status_code == 201, r.text
        assert r.headers.get("Access-Control-Allow-Origin") in ("*", "https://anywhere.example"), r.headers
        uid = r.json()["id"]
        first = http_date(r.headers["Upload-Expires"])
        assert t0 + ttl - 2 <= first <= time.time() + ttl + 1, (t0, r.headers["Upload-Expires"])
        # Activity keeps it: a PATCH 1.5 s later moves Upload-Expires on.
        time.sleep(1.5)
        r = tus_patch(alice, image["id"], uid, 0, data[:MiB])
        assert r.status_code == 204, r.text
        assert http_date(r.headers["Upload-Expires"]) > first, (r.headers["Upload-Expires"], first)
        time.sleep(1.5)  # 3 s after opening: alive, thanks to the PATCH
        assert offset_of(alice, image["id"], uid) == MiB
        # Idle: the reaper expires it (polled through the image, not through the session).
        done = wait_status(alice, image["id"], "queued", timeout=ttl + 15)
        assert done["size"] is None, done
        assert_nothing_kept(s, alice, image["id"], uid, before)
        assert tus_patch(alice, image["id"], uid, MiB, data[MiB:]).status_code == 404
        # A new session takes the image.
        uid = new_session(alice, image["id"], len(data))["id"]
        assert tus_patch(alice, image["id"], uid, 0, data).status_code == 204
        assert_data_facts(image_of(alice, image["id"]), digests(data))
    finally:
        s.kill()


# ---------------------------------------------------------------------------------------------
# The acceptance: 1 GiB cut at ~60 %


def cut_upload(client: Raw, image_id: str, big: dict) -> tuple[str, int]:
    """Opens a session for the big file and PATCHes it from 0, cut after ~60 %. Returns (upload id, bytes sent)."""
    uid = new_session(client, image_id, big["size"])["id"]
    cut = stream_patch(client.base, client.session.headers["X-Auth-Token"], f"/v2/images/{image_id}/uploads/{uid}",
                       0, big["path"], big["size"], cut_after=int(big["size"] * 0.6))
    assert cut.status_code is None and cut.sent == int(big["size"] * 0.6), cut
    return uid, cut.sent


def check_finished(client: Raw, image_id: str, uid: str, big: dict, answer: Sent, sent_total: int):
    assert answer.status_code == 204, answer
    assert answer.headers.get("Upload-Offset") == str(big["size"]), answer
    got = image_of(client, image_id)
    assert got["status"] == "active", got
    assert (got["size"], got["virtual_size"]) == (big["size"], big["size"]), got
    assert (got["checksum"], got["os_hash_algo"], got["os_hash_value"]) == (big["md5"], "sha512", big["sha512"]), got
    assert download_digest(client, image_id, "sha512") == (big["sha512"], big["size"])
    assert sent_total <= 1.05 * big["size"], f"sent {sent_total} bytes for {big['size']} ({sent_total / big['size']:.3f} ×)"
    assert head(client, image_id, uid).status_code == 404
    assert sessions_of(client, image_id) == []


def test_1gib_cut_at_60_percent_node_sigkilled_and_restarted_file_store(tmp_path, big_file):
    s = ImagedServer(tmp_path / "big-file")
    s.start()
    try:
        alice = Raw(s.url, "alice")
        image = new_image(alice)
        uid, sent = cut_upload(alice, image["id"], big_file)
        kept = stable_offset(alice, image["id"], uid)
        # What arrived before the cut is kept (the socket buffers' worth may be lost).
        assert big_file["size"] * 0.5 <= kept <= sent, (kept, sent)
        assert image_of(alice, image["id"])["status"] == "saving"

        proc = s.proc
        s.kill(signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        s.start(port=s.port)

        r = head(alice, image["id"], uid)
        assert r.status_code == 200, (r.status_code, s.log_text()[-3000:])
        after = int(r.headers["Upload-Offset"])
        assert r.headers["Upload-Length"] == str(big_file["size"])
        # At most the last checkpoint's worth (32 MiB) lost to the SIGKILL.
        assert kept - 33 * MiB <= after <= kept, (kept, after)
        got = image_of(alice, image["id"])
        assert got["status"] == "saving" and got["size"] == big_file["size"], got

        answer, start, rest = finish_from_offset(alice, image["id"], uid, big_file["path"], big_file["size"])
        assert start == after
        check_finished(alice, image["id"], uid, big_file, answer, sent + rest)
        print(f"\nfile store: cut after {sent / MiB:.1f} MiB, {kept / MiB:.1f} MiB kept, {after / MiB:.1f} MiB after the "
              f"SIGKILL; {(sent + rest) / big_file['size']:.4f} × the file sent")
        try:
            wait_for(lambda: leftovers(s, uid) == [], timeout=15, what="no session data left")
        except AssertionError:
            raise AssertionError(f"session data left: {leftovers(s, uid)}") from None
    finally:
        s.kill()


def test_sigkill_mid_patch_loses_at_most_the_last_checkpoint(tmp_path, big_file):
    """The node dies while a PATCH is streaming (no cut first): what it had received up to its last checkpoint
    (every 32 MiB) is there after the restart."""
    length = min(big_file["size"], 192 * MiB)
    with open(big_file["path"], "rb") as f:
        prefix = digests(f.read(length))
    s = ImagedServer(tmp_path / "mid-patch")
    s.start()
    try:
        alice = Raw(s.url, "alice")
        image = new_image(alice)
        uid = new_session(alice, image["id"], length)["id"]
        host, port = host_port(s.url)
        sock = socket.create_connection((host, port), timeout=60)
        sock.sendall((f"PATCH /v2/images/{image['id']}/uploads/{uid} HTTP/1.1\r\nHost: {host}\r\n"
                      f"X-Auth-Token: {alice.session.headers['X-Auth-Token']}\r\nContent-Type: {OCTETS}\r\n"
                      f"Upload-Offset: 0\r\nTus-Resumable: 1.0.0\r\nContent-Length: {length}\r\n\r\n").encode())
        sent, stop_at = 0, length * 5 // 6  # 160 MiB of 192
        with open(big_file["path"], "rb") as f:
            while sent < stop_at:
                sock.sendall(f.read(min(4 * MiB, stop_at - sent)))
                sent += min(4 * MiB, stop_at - sent)
        time.sleep(0.5)  # what was sent has reached the server's socket
        s.kill(signal.SIGKILL)
        sock.close()
        s.start(port=s.port)
        after = offset_of(alice, image["id"], uid)
        # Up to 32 MiB since the last checkpoint, and what sat in the socket buffers, may be lost.
        assert sent - 48 * MiB <= after <= sent, (sent, after)
        answer, start, rest = finish_from_offset(alice, image["id"], uid, big_file["path"], length)
        assert (answer.status_code, start) == (204, after), answer
        assert_data_facts(image_of(alice, image["id"]), prefix)
        print(f"\nSIGKILL mid-PATCH: {sent / MiB:.1f} MiB sent, {after / MiB:.1f} MiB kept")
    finally:
        s.kill()


def requires_cluster():
    if not (os.environ.get("IMAGED_TEST_POSTGRES_URL") and os.environ.get("IMAGED_TEST_S3_ENV")):
        pytest.skip("needs PostgreSQL + S3 (IMAGED_TEST_POSTGRES_URL, IMAGED_TEST_S3_ENV; scripts/test.sh sets them)")


def test_1gib_cut_at_60_percent_on_one_node_finished_through_the_other_postgres_s3(tmp_path, big_file):
    requires_cluster()
    from test_engine_faults import open_multipart_uploads, s3_client

    tag = uuid.uuid4().hex[:12]
    args, env = scale_out_config(tag)
    a = ImagedServer(tmp_path / "a", *args, env=env)
    b = ImagedServer(tmp_path / "b", *args, env=env)
    a.start()
    b.start()
    try:
        assert "PostgreSQL catalog" in a.log_text() and "S3 blobs" in a.log_text()
        alice_a, alice_b = Raw(a.url, "alice"), Raw(b.url, "alice")
        image = new_image(alice_a)
        uid, sent = cut_upload(alice_a, image["id"], big_file)
        # Node B sees the session and the bytes node A kept.
        kept = stable_offset(alice_b, image["id"], uid)
        assert big_file["size"] * 0.5 <= kept <= sent, (kept, sent)
        assert offset_of(alice_a, image["id"], uid) == kept
        [listed] = sessions_of(alice_b, image["id"])
        assert (listed["id"], listed["offset"], listed["length"]) == (uid, kept, big_file["size"]), listed

        # A PATCH in progress on A (1 MiB sent, then it stalls): the same upload's PATCH through B is 423.
        host, port = host_port(a.url)
        stalled = socket.create_connection((host, port), timeout=60)
        with open(big_file["path"], "rb") as f:
            f.seek(kept)
            stalled.sendall((f"PATCH /v2/images/{image['id']}/uploads/{uid} HTTP/1.1\r\nHost: {host}\r\n"
                             f"X-Auth-Token: {alice_a.session.headers['X-Auth-Token']}\r\nContent-Type: {OCTETS}\r\n"
                             f"Upload-Offset: {kept}\r\nTus-Resumable: 1.0.0\r\n"
                             f"Content-Length: {big_file['size'] - kept}\r\n\r\n").encode() + f.read(MiB))
        sent += MiB
        time.sleep(1.5)
        r = tus_patch(alice_b, image["id"], uid, kept, b"x" * 1000)
        assert r.status_code == 423, (r.status_code, r.text)
        # ... and that one is cut too: B finishes from wherever it ended.
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stalled.close()

        answer, start, rest = finish_from_offset(alice_b, image["id"], uid, big_file["path"], big_file["size"])
        assert kept <= start <= kept + MiB, (kept, start)
        check_finished(alice_b, image["id"], uid, big_file, answer, sent + rest)
        print(f"\nPostgreSQL + S3: cut after {(sent - MiB) / MiB:.1f} MiB, node B saw {kept / MiB:.1f} MiB, "
              f"finished from {start / MiB:.1f} MiB; {(sent + rest) / big_file['size']:.4f} × the file sent")
        got_a = image_of(alice_a, image["id"])
        assert (got_a["status"], got_a["os_hash_value"]) == ("active", big_file["sha512"]), got_a
        # Nothing of the session is left in the bucket: no open multipart upload, only the image's bytes.
        prefix = f"e2e-{tag}/"
        client, bucket = s3_client()

        def in_bucket():
            objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            return [(o["Key"], o["Size"]) for o in objects], [u["Key"] for u in open_multipart_uploads(prefix)]
        try:
            wait_for(lambda: (lambda objects, multipart: not multipart and sum(n for _, n in objects) == big_file["size"])(
                *in_bucket()), timeout=30, interval=1, what="only the image in the bucket")
        except AssertionError:
            raise AssertionError(f"left under {prefix} (objects, multipart uploads): {in_bucket()}") from None
    finally:
        a.kill(signal.SIGTERM)
        b.kill(signal.SIGTERM)
