"""Several imaged nodes on one PostgreSQL catalog and one S3 bucket (scripts/test.sh starts both and
sets IMAGED_TEST_POSTGRES_URL and IMAGED_TEST_S3_ENV). Each test builds its own cluster: a fresh
schema and a fresh key prefix shared by its nodes."""

import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (ImagedServer, Raw, assert_data_facts, digests, imaged_bin, random_bytes, scale_out_config,
                      tasks_of, unique, upload, wait_for, wait_status)

MiB = 1 << 20


class Cluster:
    def __init__(self, tmp_path, *extra):
        self.tag = uuid.uuid4().hex[:12]
        self.args, self.env = scale_out_config(self.tag)
        self.extra = extra
        self.tmp = tmp_path
        self.nodes: list[ImagedServer] = []

    def node(self) -> ImagedServer:
        srv = ImagedServer(self.tmp / f"node{len(self.nodes) + 1}", *self.args, *self.extra, env=self.env)
        self.nodes.append(srv)
        srv.start()
        return srv

    def stop(self):
        for n in self.nodes:
            n.kill(signal.SIGTERM)


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(*extra):
        c = Cluster(tmp_path, *extra)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def test_upload_through_one_node_download_through_the_other(cluster):
    c = cluster()
    a, b = c.node(), c.node()
    assert "PostgreSQL catalog" in a.log_text() and "S3 blobs" in a.log_text()
    alice_a, alice_b, bob_b = Raw(a.url, "alice"), Raw(b.url, "alice"), Raw(b.url, "bob")
    data = random_bytes(12 * MiB + 17, 501)
    image = alice_a.create(name=unique("cluster"), disk_format="raw", container_format="bare", tags=["x"])
    # Created on A: B lists and shows it at once (no cache between nodes).
    listed = alice_b.get("/v2/images", params={"name": image["name"]}).json()["images"]
    assert [i["id"] for i in listed] == [image["id"]]
    assert bob_b.get(f"/v2/images/{image['id']}").status_code == 404
    r = upload(alice_a, image["id"], data)
    assert r.status_code == 204, r.text
    on_b = alice_b.get(f"/v2/images/{image['id']}").json()
    assert_data_facts(on_b, digests(data))
    got = alice_b.get(f"/v2/images/{image['id']}/file", timeout=120)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-MD5"] == on_b["checksum"]
    # A range through B, a delete through B, gone on A.
    part = alice_b.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert alice_b.delete(f"/v2/images/{image['id']}").status_code == 204
    assert alice_a.get(f"/v2/images/{image['id']}").status_code == 404
    assert alice_a.get(f"/v2/images/{image['id']}/file").status_code == 404


def test_a_list_read_again_on_one_node_shows_every_write_made_through_the_other(cluster):
    """Node B answers a list page it read before from memory only while the catalog's revision is
    unchanged; every write through node A (create, rename, share, accept, delete) must show in B's very
    next list, however often B read that page before."""
    c = cluster()
    a, b = c.node(), c.node()
    alice_a, alice_b, bob_a, bob_b = Raw(a.url, "alice"), Raw(b.url, "alice"), Raw(a.url, "bob"), Raw(b.url, "bob")
    tag = unique("listed")

    def listed(who, **params):
        pages = []
        for _ in range(3):  # read, kept on the second read, answered from memory on the third
            r = who.get("/v2/images", params={"tag": tag, "sort": "created_at:asc", **params})
            assert r.status_code == 200, r.text
            pages.append([(i["id"], i["name"]) for i in r.json()["images"]])
        assert pages[0] == pages[1] == pages[2]
        return sorted(pages[0], key=lambda p: p[1])  # two images created in one second tie on created_at

    assert listed(alice_b) == []
    first = alice_a.create(name="first", disk_format="raw", container_format="bare", tags=[tag])
    assert listed(alice_b) == [(first["id"], "first")]
    second = alice_a.create(name="second", disk_format="raw", container_format="bare", tags=[tag],
                            visibility="shared")
    assert listed(alice_b) == [(first["id"], "first"), (second["id"], "second")]
    assert alice_a.patch(f"/v2/images/{first['id']}", [{"op": "replace", "path": "/name", "value": "renamed"}]).status_code == 200
    assert listed(alice_b) == [(first["id"], "renamed"), (second["id"], "second")]

    # Sharing: bob's lists on B follow the membership written on A.
    assert listed(bob_b) == []
    assert listed(bob_b, member_status="pending") == []
    assert alice_a.post(f"/v2/images/{second['id']}/members", json={"member": "p-bob"}).status_code == 200
    assert listed(bob_b, member_status="pending") == [(second["id"], "second")]
    assert listed(bob_b) == []
    r = bob_a.put(f"/v2/images/{second['id']}/members/p-bob", json={"status": "accepted"})
    assert r.status_code == 200, r.text
    assert listed(bob_b) == [(second["id"], "second")]
    assert listed(bob_b, member_status="pending") == []

    assert alice_a.delete(f"/v2/images/{first['id']}").status_code == 204
    assert listed(alice_b) == [(second["id"], "second")]
    assert listed(bob_b) == [(second["id"], "second")]


def test_a_node_kept_busy_reading_an_image_sees_each_write_acknowledged_by_the_other(cluster):
    """Node B answers a cached GET without asking the database while a revision check that started
    within its read lease (5 ms by default) vouches for it; node A acknowledges a write only once
    every such lease is out. So with B kept busy GETting the image (its lease never runs out), B's
    GET right after each of A's acknowledged writes shows it."""
    c = cluster()
    a, b = c.node(), c.node()
    alice_a, alice_b = Raw(a.url, "alice"), Raw(b.url, "alice")
    image = alice_a.create(name="v0", disk_format="raw", container_format="bare", visibility="shared")
    path = f"/v2/images/{image['id']}"
    stop = threading.Event()
    busy_reads, busy_errors = [], []

    def keep_busy():
        reader = Raw(b.url, "alice")
        while not stop.is_set():
            r = reader.get(path)
            if r.status_code != 200:  # an assert here would only end this thread
                busy_errors.append(r.status_code)
                return
            busy_reads.append(r.json()["name"])

    threads = [threading.Thread(target=keep_busy) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 41):
            r = alice_a.patch(path, [{"op": "replace", "path": "/name", "value": f"v{i}"}])
            assert r.status_code == 200, r.text
            assert alice_b.get(path).json()["name"] == f"v{i}", f"write {i} acknowledged by A, not seen by B"
        # A membership written through A shows in B's next read as well.
        assert alice_a.post(f"{path}/members", json={"member": "p-bob"}).status_code == 200
        assert [m["member_id"] for m in alice_b.get(f"{path}/members").json()["members"]] == ["p-bob"]
        assert Raw(b.url, "bob").get(path).status_code == 200
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert busy_errors == [] and len(busy_reads) > 40 and busy_reads[-1] == "v40"


def test_concurrent_patches_through_both_nodes_lose_no_acknowledged_update(cluster):
    c = cluster()
    nodes = [c.node(), c.node()]
    clients = [Raw(n.url, "alice") for n in nodes]
    image = clients[0].create(name=unique("patch"), disk_format="raw", container_format="bare")
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def writer(w: int):
        for i in range(30):
            client = clients[(w + i) % 2]
            if i % 3 == 2:
                r = client.put(f"/v2/images/{image['id']}/tags/t-{w}-{i}")
                ok = r.status_code == 204
            else:
                r = client.patch(f"/v2/images/{image['id']}", [{"op": "add", "path": f"/k_{w}_{i}", "value": f"v{w}.{i}"}])
                ok = r.status_code == 200
            with lock:
                (acknowledged if ok else failures).append(f"{w}-{i}" if ok else f"{w}-{i}: {r.status_code} {r.text}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(acknowledged) == 120
    for client in clients:
        final = client.get(f"/v2/images/{image['id']}").json()
        for w in range(4):
            for i in range(30):
                if i % 3 == 2:
                    assert f"t-{w}-{i}" in final["tags"], (w, i)
                else:
                    assert final.get(f"k_{w}_{i}") == f"v{w}.{i}", (w, i)
        assert len(final["tags"]) == 40


class OneAtATimeOrigin:
    """Serves one file; the first request trickles (so a node can die mid-download), later ones run at
    full speed. Counts requests in flight at once: a task run twice concurrently would show 2."""

    def __init__(self, origin, data: bytes):
        self.data = data
        self.active = 0
        self.max_active = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.path = f"/{unique('cluster-web')}.raw"
        origin.routes[self.path] = self.handle
        self.url = origin.url(self.path)
        self.stop = origin.stop

    def handle(self, h):
        with self.lock:
            self.requests += 1
            first = self.requests == 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(self.data)))
            h.end_headers()
            step = 64 << 10 if first else 1 << 20
            for off in range(0, len(self.data), step):
                if self.stop.is_set():
                    return
                h.wfile.write(self.data[off:off + step])
                if first:
                    time.sleep(0.1)
        finally:
            with self.lock:
                self.active -= 1


def test_sigkill_during_web_download_the_other_node_finishes_the_task(cluster, origin):
    c = cluster("--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port),
                "--task-lease-seconds", "3")
    node1 = c.node()
    alice1 = Raw(node1.url, "alice")
    data = random_bytes(8 * MiB, 502)
    source = OneAtATimeOrigin(origin, data)
    image = alice1.create(name=unique("web-kill"), disk_format="raw", container_format="bare")
    r = alice1.post(f"/v2/images/{image['id']}/import", json={"method": {"name": "web-download", "uri": source.url}})
    assert r.status_code == 202, r.text
    # Node 1 is downloading (slowly) when it dies; node 2 joins only now, so node 1 surely took the task.
    wait_for(lambda: source.requests == 1 and source.active == 1, timeout=30, what="node 1 to start the download")
    # ... and has renewed its lease with the download's progress (every lease/3 s) before it dies.
    wait_for(lambda: [t for t in tasks_of(alice1, image["id"]) if t["status"] == "processing" and t["message"].startswith("Copied")],
             timeout=30, what="node 1 to report the download's progress")
    node1.kill(signal.SIGKILL)
    node2 = c.node()
    alice2 = Raw(node2.url, "alice")
    assert wait_status(alice2, image["id"], "importing", timeout=5)["status"] == "importing"
    done = wait_status(alice2, image["id"], ["active", "queued"], timeout=90)
    assert_data_facts(done, digests(data))
    tasks = tasks_of(alice2, image["id"])
    assert [t["status"] for t in tasks] == ["success"], tasks
    # Restarted from the beginning by node 2 after the lease lapsed, never two downloads at once.
    assert source.requests == 2 and source.max_active == 1
    assert "attempt=2" in node2.log_text(), node2.log_text()
    got = alice2.get(f"/v2/images/{image['id']}/file", timeout=120)
    assert got.content == data


def test_admin_commands_reach_the_shared_catalog(cluster):
    """`imaged quota set --catalog postgres://…` on any machine limits every node within seconds."""
    c = cluster()
    a, b = c.node(), c.node()
    catalog = c.args[c.args.index("--catalog") + 1]
    out = subprocess.run([str(imaged_bin()), "quota", "set", "p-alice", "--image-count", "2", "--catalog", catalog],
                         capture_output=True, text=True, timeout=60, env=c.env)
    assert out.returncode == 0, out.stderr
    assert "image_count_total=2" in out.stdout
    alice_a, alice_b = Raw(a.url, "alice"), Raw(b.url, "alice")

    def refused_third():
        listed = alice_a.get("/v2/images", params={"owner": "p-alice"}).json()["images"]
        client = alice_a if len(listed) % 2 == 0 else alice_b
        r = client.post("/v2/images", json={"name": unique("q")})
        return r.text if r.status_code == 413 else None  # (a 4xx Response is falsy)
    refusal = wait_for(refused_third, timeout=20, interval=0.5, what="the quota to apply on both nodes")
    assert "image_count_total" in refusal
    usage = alice_b.get("/v2/info/usage").json()["usage"]
    assert usage["image_count_total"] == {"limit": 2, "usage": 2}


def test_zstack_session_and_job_of_one_node_answer_on_the_other(cluster, origin):
    """ZStack sessions and api-jobs live in the shared catalog: log in and AddImage through node A, poll the job
    (its location rewritten to B, as ZStack's SDKs do with a location naming another host) and query through B."""
    from test_zstack import ZStack, md5

    c = cluster("--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port))
    a, b = c.node(), c.node()
    catalog = c.args[c.args.index("--catalog") + 1]
    out = subprocess.run([str(imaged_bin()), "account", "create", "zs-cluster", "--project", "p-alice", "--role", "member",
                          "--password-stdin", "--catalog", catalog],
                         input="cluster-zstack-pw\n", capture_output=True, text=True, timeout=60, env=c.env)
    assert out.returncode == 0, out.stderr
    za = ZStack.login(a.url, "zs-cluster", "cluster-zstack-pw")
    zb = ZStack(b.url, za.session)
    [storage] = zb.query("/backup-storage")["inventories"]
    assert storage == za.query("/backup-storage")["inventories"][0] and "totalCapacity" not in storage  # S3 cannot tell
    data = random_bytes(9 * MiB + 3, 777)
    r = za.call("POST", "/images", json={"params": {"name": "zs-cluster", "url": origin.serve("/cluster/zs.raw", data),
                                                    "format": "raw", "backupStorageUuids": [storage["uuid"]]}})
    assert r.status_code == 202, r.text
    location = r.json()["location"]
    assert location.startswith(a.url)
    done = zb.poll(b.url + "/zstack/v1/api-jobs/" + location.split("/zstack/v1/api-jobs/")[1])
    assert done.status_code == 200, done.text
    inv = done.json()["inventory"]
    assert (inv["status"], inv["md5Sum"], inv["actualSize"]) == ("Ready", md5(data), len(data))
    assert zb.get_image(inv["uuid"])["backupStorageRefs"][0]["status"] == "Ready"
    assert Raw(b.url, "alice").get(f"/v2/images/{uuid.UUID(inv['uuid'])}/file").content == data
    # logging out through B ends the session on A too
    assert zb.http.delete(f"{zb.base}/accounts/sessions/{za.session}").status_code == 200
    r = za.call("GET", "/images")
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001"
