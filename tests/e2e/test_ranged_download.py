"""Parallel ranged web-download (issue 21, point 3).

An origin that answers a range request (206, whole length in Content-Range) and names a validator is read
with `--import-connections` ranged GETs at once, each with `If-Range`; the chunks reach the ingest in order,
so the digests are those of the object. A cut range is asked again from its first missing byte; an object
that changes mid-download fails the task with the image queued and nothing stored; an origin without
ranges is read in one GET, as before."""
import hashlib
import signal
import time

import pytest

from conftest import (ImagedServer, Raw, assert_data_facts, assert_nothing_kept, digests, random_bytes,
                      unique, wait_for, wait_task_finished)

MiB = 1 << 20
CHUNK = 4 * MiB  # HTTPFetcher.Options.chunkSize
DATA = random_bytes(16 * MiB, seed=2103)


@pytest.fixture(scope="module")
def one_connection(tmp_path_factory, origin):
    """A server that reads every web-download in one plain GET (the behaviour before the option)."""
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-one-conn"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--import-connections", "1")
    srv.start()
    yield srv
    srv.kill()


def web_download(client: Raw, uri: str, **extra) -> str:
    image = client.create(name=unique("ranged"), disk_format="raw", container_format="bare")
    r = client.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": uri}, **extra})
    assert r.status_code == 202, r.text
    return image["id"]


def timed_import(srv: ImagedServer, uri: str) -> float:
    """Seconds from the import request to the active image (polled every 20 ms)."""
    client = Raw(srv.url, "alice")
    began = time.monotonic()
    image_id = web_download(client, uri)
    image = wait_for(lambda: (lambda b: b if b["status"] in ("active", "queued") else None)(client.get(f"/v2/images/{image_id}").json()),
                     timeout=60, interval=0.02, what="the import to end")
    elapsed = time.monotonic() - began
    assert_data_facts(image, digests(DATA))
    return elapsed


def ranges_asked(served) -> list[tuple[int, int]]:
    out = []
    for r in served.requests:
        first, last = r["range"].removeprefix("bytes=").split("-")
        out.append((int(first), int(last)))
    return out


def test_four_connections_are_at_least_three_times_faster_than_one(origin, import_server, one_connection):
    # 16 MiB at 4 MiB/s per connection: ~4 s in one stream, ~1 s in four.
    single = origin.ranged("/ranged/throttled-1.raw", DATA, rate=4 * MiB)
    parallel = origin.ranged("/ranged/throttled-4.raw", DATA, rate=4 * MiB)
    t1 = timed_import(one_connection, single.url)
    t4 = timed_import(import_server, parallel.url)
    print(f"\n1 connection {t1:.2f} s, 4 connections {t4:.2f} s")
    assert t1 >= 3 * t4, f"1 connection {t1:.2f} s, 4 connections {t4:.2f} s"
    # One plain GET before; now the first chunk, then the other three at once, each with If-Range.
    assert [(r["range"], r["if_range"], r["status"]) for r in single.requests] == [(None, None, 200)]
    assert single.max_parallel == 1 and single.sent == len(DATA)
    assert parallel.max_parallel == 4, parallel.requests
    assert sorted(ranges_asked(parallel)) == [(i, i + CHUNK - 1) for i in range(0, len(DATA), CHUNK)]
    assert parallel.requests[0]["if_range"] is None
    assert all(r["if_range"] == '"v1"' and r["status"] == 206 for r in parallel.requests[1:]), parallel.requests
    assert parallel.sent == len(DATA)


def test_a_connection_cut_mid_range_resumes_and_completes(origin, import_server):
    cut = 6 * MiB + 12345  # inside the second chunk
    # Paced like a real link (not loopback speed), so little is in flight when the connection is cut.
    served = origin.ranged("/ranged/cut.raw", DATA, drop_at=cut, rate=16 * MiB)
    client = Raw(import_server.url, "alice")
    pin = "sha256:" + hashlib.sha256(DATA).hexdigest()
    image_id = web_download(client, served.url, expected_hash=pin)
    task = wait_task_finished(client, image_id, timeout=60)
    assert task["status"] == "success", task
    image = client.get(f"/v2/images/{image_id}").json()
    assert_data_facts(image, digests(DATA))
    assert image["imaged_pinned_digest"] == pin, image
    # The cut range was asked again from the first byte the server had not received (bytes in flight
    # when the connection was cut are lost), up to its end, with If-Range; no other range twice.
    resumed = ranges_asked(served)
    for i in range(0, len(DATA), CHUNK):
        resumed.remove((i, i + CHUNK - 1))
    assert len(resumed) == 1 and CHUNK <= resumed[0][0] <= cut and resumed[0][1] == 2 * CHUNK - 1, served.requests
    print(f"\ncut at {cut}, resumed at {resumed[0][0]}, sent {served.sent} of {len(DATA)}")
    assert all(r["if_range"] == '"v1"' for r in served.requests[1:]), served.requests
    assert len(served.requests) == len(DATA) // CHUNK + 1
    assert served.sent <= 1.1 * len(DATA), served.sent
    assert client.get(f"/v2/images/{image_id}/file").content == DATA


def test_an_object_that_changes_mid_download_fails_cleanly(origin, import_server):
    served = origin.ranged("/ranged/changing.raw", DATA, changed=random_bytes(len(DATA), seed=2104))
    client = Raw(import_server.url, "alice")
    image_id = web_download(client, served.url)
    task = wait_task_finished(client, image_id, timeout=60)
    assert task["status"] == "failure", task
    assert "changed during the download" in task["message"] and served.url in task["message"], task["message"]
    image = client.get(f"/v2/images/{image_id}").json()
    assert image["status"] == "queued" and image["size"] is None and image["checksum"] is None, image
    # The ranges after the first were refused: the origin answered If-Range "v1" with the whole "v2".
    assert any(r["if_range"] == '"v1"' and r["status"] == 200 for r in served.requests[1:]), served.requests
    assert_nothing_kept(import_server, image_id)
    assert client.get(f"/v2/images/{image_id}/file").status_code == 204


def test_an_origin_without_ranges_is_read_in_one_get(origin, import_server):
    served = origin.ranged("/ranged/no-ranges.raw", DATA, accept_ranges=False)
    client = Raw(import_server.url, "alice")
    image_id = web_download(client, served.url)
    assert wait_task_finished(client, image_id, timeout=60)["status"] == "success"
    assert_data_facts(client.get(f"/v2/images/{image_id}").json(), digests(DATA))
    # It ignored our Range and sent the whole object, once.
    assert [(r["range"], r["status"]) for r in served.requests] == [(f"bytes=0-{CHUNK - 1}", 200)]
    assert served.sent == len(DATA)


def test_ranges_without_a_validator_are_one_stream(origin, import_server):
    # Without an ETag or Last-Modified the parts could be of two versions: one connection, no If-Range.
    served = origin.ranged("/ranged/no-validator.raw", DATA, etag=None)
    client = Raw(import_server.url, "alice")
    image_id = web_download(client, served.url)
    assert wait_task_finished(client, image_id, timeout=60)["status"] == "success"
    assert_data_facts(client.get(f"/v2/images/{image_id}").json(), digests(DATA))
    assert [(r["range"], r["if_range"], r["status"]) for r in served.requests] == [
        (f"bytes=0-{CHUNK - 1}", None, 206), (f"bytes={CHUNK}-{len(DATA) - 1}", None, 206)]
    assert served.max_parallel == 1


def test_last_modified_is_the_validator_without_a_strong_etag(origin, import_server):
    stamp = "Wed, 02 Dec 2026 10:00:00 GMT"
    served = origin.ranged("/ranged/last-modified.raw", DATA, etag='W/"weak"', last_modified=stamp)
    client = Raw(import_server.url, "alice")
    image_id = web_download(client, served.url)
    assert wait_task_finished(client, image_id, timeout=60)["status"] == "success"
    assert_data_facts(client.get(f"/v2/images/{image_id}").json(), digests(DATA))
    assert len(served.requests) == len(DATA) // CHUNK
    assert all(r["if_range"] == stamp and r["status"] == 206 for r in served.requests[1:]), served.requests


def test_a_small_image_is_one_get(origin, import_server):
    small = random_bytes(CHUNK - 1000, seed=2105)
    served = origin.ranged("/ranged/small.raw", small)
    client = Raw(import_server.url, "alice")
    image_id = web_download(client, served.url)
    assert wait_task_finished(client, image_id, timeout=60)["status"] == "success"
    assert_data_facts(client.get(f"/v2/images/{image_id}").json(), digests(small))
    assert [(r["range"], r["status"]) for r in served.requests] == [(f"bytes=0-{CHUNK - 1}", 206)]


def test_shutdown_stops_every_range_and_the_restarted_node_completes(tmp_path, origin):
    """Cancellation reaches the parallel ranges: SIGTERM mid-download ends the process before the origin
    has sent the object (the task is released, not waited for), and the node started again finishes it."""
    served = origin.ranged("/ranged/shutdown.raw", DATA, rate=2 * MiB)  # ~2 s in four connections
    srv = ImagedServer(tmp_path, "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    srv.start()
    try:
        client = Raw(srv.url, "alice")
        image_id = web_download(client, served.url)
        wait_for(lambda: served.max_parallel == 4, timeout=20, interval=0.02, what="four ranges in flight")
        stopping = time.monotonic()
        srv.kill(signal.SIGTERM)
        print(f"\nstopped in {time.monotonic() - stopping:.2f} s, {served.sent} bytes sent")
        assert served.sent < len(DATA) // 2, served.sent
        asked = len(served.requests)
        srv.start(port=srv.port)
        # Released at shutdown, so taken again at once (not after the 30 s lease).
        assert wait_task_finished(client, image_id, timeout=15)["status"] == "success"
        assert_data_facts(client.get(f"/v2/images/{image_id}").json(), digests(DATA))
        # Fetched again from the start: the first chunk and three ranges more.
        assert len(served.requests) == asked + len(DATA) // CHUNK
    finally:
        srv.kill(signal.SIGTERM)
