"""Operating imaged: `/readyz`, Prometheus `/metrics`, request ids on every front-end, and SIGTERM — uploads in
flight finish within the grace period or are cancelled with their image queued again, background tasks give
their leases back at once — with nothing lost or corrupted across the restart."""

import hashlib
import re
import signal
import threading
import time

import requests

from conftest import ImagedServer, Raw, random_bytes, tasks_of, upload, wait_for

MiB = 1 << 20


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[-1])
    return 0.0


def slow_body(data: bytes, chunk: int, delay: float, sent: list):
    def gen():
        for off in range(0, len(data), chunk):
            yield data[off:off + chunk]
            sent.append(off + chunk)
            time.sleep(delay)
    return gen()


def test_readyz_metrics_and_request_ids(tmp_path):
    srv = ImagedServer(tmp_path / "observed")
    srv.start()
    try:
        ready = requests.get(srv.url + "/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"catalog": "ok", "store:file": "ok"}}
        alice = Raw(srv.url, "alice")
        data = random_bytes(2 * MiB + 3, 5)
        before = requests.get(srv.url + "/metrics").text
        image = alice.create(name="metered", disk_format="raw", container_format="bare")
        assert upload(alice, image["id"], data).status_code == 204
        assert alice.get(f"/v2/images/{image['id']}/file").content == data
        page = requests.get(srv.url + "/metrics")
        assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = page.text
        assert metric(text, 'imaged_http_requests_total{frontend="openstack",route="/v2/images/{id}/file",method="PUT",status="204"}') == 1
        assert metric(text, "imaged_image_bytes_in_total") - metric(before, "imaged_image_bytes_in_total") == len(data)
        assert metric(text, "imaged_image_bytes_out_total") - metric(before, "imaged_image_bytes_out_total") == len(data)
        assert metric(text, "imaged_uploads_in_flight") == 0
        assert re.search(r'^imaged_http_request_duration_seconds_count\{frontend="openstack"\} \d+', text, re.M)
        # the task runner publishes the queue every 5 s
        wait_for(lambda: 'imaged_tasks{state="pending"} 0' in requests.get(srv.url + "/metrics").text, timeout=20,
                 what="the task queue gauges")
        # every front-end answers with a request id; the caller's own is kept, and it is in the log line
        for path in ["/v2/images", "/api/image", "/zstack/v1/images", "/api/image/", "/api/v1beta0/global/images/"]:
            r = requests.get(srv.url + path, headers={"X-Auth-Token": "alicetok"})
            assert re.fullmatch(r"req-[0-9a-f-]{36}", r.headers["X-Request-Id"]), (path, r.headers)
        r = requests.get(srv.url + "/zstack/v1/images", headers={"X-Request-Id": "trace-1234"})
        assert r.headers["X-Request-Id"] == "trace-1234"
        wait_for(lambda: "request_id=trace-1234" in srv.log_text(), what="the request id in the log")
        r = requests.get(srv.url + "/v2/images", headers={"X-Auth-Token": "alicetok", "X-Openstack-Request-Id": "req-abc"})
        assert r.headers["X-Request-Id"] == r.headers["X-Openstack-Request-Id"] == "req-abc"
    finally:
        srv.kill()


def test_sigterm_cancels_an_upload_after_the_grace_period(tmp_path):
    srv = ImagedServer(tmp_path / "graceful", "--shutdown-grace-seconds", "2")
    srv.start()
    alice = Raw(srv.url, "alice")
    data = random_bytes(16 * MiB, 6)
    image = alice.create(name="cut", disk_format="raw", container_format="bare")
    sent, result = [], {}

    def send():
        try:
            result["status"] = upload(alice, image["id"], slow_body(data, 256 << 10, 0.2, sent)).status_code
        except requests.RequestException as e:
            result["error"] = e
    t = threading.Thread(target=send)
    t.start()
    wait_for(lambda: len(sent) >= 3, what="the upload under way")
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "saving"
    started = time.monotonic()
    srv.kill(signal.SIGTERM)
    assert time.monotonic() - started < 10  # the grace period, then cancellation, then exit
    t.join(timeout=30)
    assert result.get("status") != 204 and len(sent) * (256 << 10) < len(data)
    assert "upload failed, image queued again" in srv.log_text()
    srv.start(port=srv.port)
    assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert srv.temporaries() == [] and not srv.blob_path(image["id"]).exists()
    # nothing is lost: the same image takes the data afterwards, digests intact
    assert upload(alice, image["id"], data).status_code == 204
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active" and shown["checksum"] == hashlib.md5(data).hexdigest()
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    srv.kill()


def test_sigterm_lets_an_upload_finish_within_the_grace_period(tmp_path):
    srv = ImagedServer(tmp_path / "patient", "--shutdown-grace-seconds", "30")
    srv.start()
    alice = Raw(srv.url, "alice")
    data = random_bytes(3 * MiB, 7)
    image = alice.create(name="finishes", disk_format="raw", container_format="bare")
    sent, result = [], {}
    t = threading.Thread(target=lambda: result.update(status=upload(alice, image["id"], slow_body(data, 256 << 10, 0.15, sent)).status_code))
    t.start()
    wait_for(lambda: len(sent) >= 2, what="the upload under way")
    srv.kill(signal.SIGTERM)
    t.join(timeout=30)
    assert result["status"] == 204
    srv.start(port=srv.port)
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active" and shown["checksum"] == hashlib.md5(data).hexdigest()
    srv.kill()


def test_sigterm_gives_task_leases_back(tmp_path, origin):
    srv = ImagedServer(tmp_path / "tasks", "--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                       "--task-lease-seconds", "60")
    srv.start()
    alice = Raw(srv.url, "alice")
    data = random_bytes(4 * MiB, 8)
    url = origin.slow("/ops/slow.raw", data, chunk=128 << 10, delay=0.1)
    image = alice.create(name="imported", disk_format="raw", container_format="bare")
    r = alice.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": url}})
    assert r.status_code == 202, r.text
    wait_for(lambda: origin.hits.count("/ops/slow.raw") >= 1 and alice.get(f"/v2/images/{image['id']}").json()["status"] == "importing",
             what="the import under way")
    # this node's run holds the task's lease (it is fetching) when SIGTERM comes
    wait_for(lambda: [t["status"] for t in tasks_of(alice, image["id"])] == ["processing"], what="the task to be processing")
    srv.kill(signal.SIGTERM)
    assert "task released at shutdown" in srv.log_text()
    # with a 60 s lease, only a released lease lets the restarted node resume at once
    started = time.monotonic()
    srv.start(port=srv.port)
    wait_for(lambda: alice.get(f"/v2/images/{image['id']}").json()["status"] == "active", timeout=40, what="the import resumed")
    assert time.monotonic() - started < 40
    shown = alice.get(f"/v2/images/{image['id']}").json()
    assert shown["checksum"] == hashlib.md5(data).hexdigest() and shown["size"] == len(data)
    assert alice.get(f"/v2/images/{image['id']}/file").content == data
    srv.kill()
