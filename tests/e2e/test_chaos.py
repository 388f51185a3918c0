"""Chaos (issue 19): two nodes on PostgreSQL + Ceph RGW under a mixed load through the OpenStack API, while
PostgreSQL is restarted twice, RGW is stopped for 10 s and one node is SIGKILLed mid-upload (and started
again). Afterwards every acknowledged image (upload answered 204) is active with its bytes intact, no image
is left in `saving` past the reaper's bound, no multipart upload is left in the bucket; the figures are
printed. Needs IMAGED_TEST_POSTGRES_URL + IMAGED_TEST_PG_DIR and IMAGED_TEST_S3_ENV + IMAGED_TEST_S3_DIR
(scripts/test.sh exports them); about 2-3 minutes."""

import collections
import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from conftest import ImagedServer, Raw, random_bytes, s3_env, scale_out_config, unique, wait_for
from test_engine_faults import open_multipart_uploads, pg

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def rgw(action: str):
    d = os.environ["IMAGED_TEST_S3_DIR"]
    if action == "stop":
        pid = int((Path(d) / "run" / "client.rgw.a.pid").read_text().strip())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, what="radosgw stopped")
    else:
        port = str(urlparse(s3_env()["S3_ENDPOINT"]).port)
        subprocess.run([str(ROOT / "scripts/s3.sh"), "start", d, port], check=True, stdout=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=300)


def test_chaos(tmp_path):
    for name in ("IMAGED_TEST_POSTGRES_URL", "IMAGED_TEST_PG_DIR", "IMAGED_TEST_S3_ENV", "IMAGED_TEST_S3_DIR"):
        if not os.environ.get(name):
            pytest.skip(f"needs {name} (scripts/test.sh exports it)")
    tag = uuid.uuid4().hex[:12]
    args, env = scale_out_config(tag)
    extra = ["--node-heartbeat-seconds", "1", "--s3-multipart-max-age", "30"]
    nodes = [ImagedServer(tmp_path / f"n{i}", *args, *extra, env=env) for i in (1, 2)]
    for n in nodes:
        n.start()
    acknowledged: dict[str, str] = {}            # image id -> md5 of the bytes a 204 acknowledged
    figures = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def count(kind):
        with lock:
            figures[kind] += 1

    def worker(k: int):
        i = 0
        while not stop.is_set():
            i += 1
            node = nodes[(k + i) % 2]
            if node.proc is None:
                continue
            client = Raw(node.url, "alice")
            try:
                r = client.post("/v2/images", json={"name": unique(f"chaos{k}"), "disk_format": "raw", "container_format": "bare"})
                count(f"create {r.status_code}")
                if r.status_code != 201:
                    time.sleep(0.2)
                    continue
                image = r.json()["id"]
                data = random_bytes(6 * MiB + i, 1000 * k + i)
                r = client.put(f"/v2/images/{image}/file", data=data, headers={"Content-Type": "application/octet-stream"}, timeout=120)
                count(f"upload {r.status_code}")
                if r.status_code == 204:
                    with lock:
                        acknowledged[image] = hashlib.md5(data).hexdigest()
                    r = client.get(f"/v2/images/{image}/file", timeout=120)
                    count(f"download {r.status_code}")
                r = client.get("/v2/images", params={"limit": 5})
                count(f"list {r.status_code}")
            except requests.RequestException as e:
                count(f"error {type(e).__name__}")
                time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    recovery = {}
    try:
        time.sleep(8)
        for round_ in (1, 2):
            t0 = time.monotonic()
            pg("stop")
            time.sleep(3)
            pg("start")
            wait_for(lambda: requests.get(nodes[0].url + "/readyz", timeout=30).status_code == 200, 60, what="ready")
            recovery[f"postgres restart {round_}"] = time.monotonic() - t0
            time.sleep(5)
        t0 = time.monotonic()
        rgw("stop")
        time.sleep(10)
        rgw("start")
        wait_for(lambda: requests.get(nodes[0].url + "/readyz", timeout=30).status_code == 200, 120, what="ready")
        recovery["rgw stopped 10 s"] = time.monotonic() - t0
        time.sleep(5)
        nodes[0].kill(signal.SIGKILL)              # mid-upload: four workers upload all the time
        t0 = time.monotonic()
        time.sleep(2)
        nodes[0].start()
        recovery["node restart"] = time.monotonic() - t0
        time.sleep(8)
    finally:
        stop.set()
        for t in threads:
            t.join(150)

    try:
        admin = Raw(nodes[1].url, "admin")
        # No image stays in saving past the reaper's bound (3 heartbeats + a sweep).
        wait_for(lambda: not admin.get("/v2/images", params={"status": "saving", "limit": 100}).json()["images"], 30,
                 what="no image left in saving")
        alice = Raw(nodes[1].url, "alice")
        for image, md5 in acknowledged.items():
            shown = alice.get(f"/v2/images/{image}").json()
            assert shown["status"] == "active" and shown["checksum"] == md5, shown
            assert hashlib.md5(alice.get(f"/v2/images/{image}/file", timeout=120).content).hexdigest() == md5
        wait_for(lambda: not open_multipart_uploads(f"e2e-{tag}/"), 90, what="no multipart upload left")
    finally:
        for n in nodes:
            n.kill(signal.SIGTERM)
    print(f"\nchaos: {time.monotonic() - t_start:.0f} s, {sum(figures.values())} requests, {len(acknowledged)} acknowledged images")
    for kind, n in sorted(figures.items()):
        print(f"  {kind}: {n}")
    for what, seconds in recovery.items():
        print(f"  recovery after {what}: {seconds:.1f} s")
    assert acknowledged, "no upload was acknowledged at all"
