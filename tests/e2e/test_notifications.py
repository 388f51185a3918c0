"""Notifications (issue 20, point 6): a real RabbitMQ (Debian's rabbitmq-server, started by
scripts/rabbitmq.sh) receives Glance's events in oslo.messaging's envelope, one message per event, with
the fields Ceilometer reads; a loopback webhook receives the same events as CloudEvents. Stopping the
broker mid-run costs API requests nothing (bounded queue, drops counted in /metrics) and the publisher
reconnects when it is back."""
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import REPO, ImagedServer, Raw, free_port, imaged_bin, project, unique, upload, wait_for

pika = pytest.importorskip("pika")

RABBITMQ = REPO / "scripts" / "rabbitmq.sh"
QUEUE_LIMIT = 20

pytestmark = pytest.mark.skipif(
    shutil.which("rabbitmq-server") is None and not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(),
    reason="rabbitmq-server is not installed (Debian package rabbitmq-server; scripts/test.sh installs it)")


class Broker:
    """The private broker: started once per module, stopped and started again by the outage test."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        self.dist_port = free_port()
        self.url = None

    def start(self):
        out = subprocess.run([str(RABBITMQ), "start", str(self.dir), str(self.port), str(self.dist_port)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr + out.stdout
        self.url = out.stdout.strip().splitlines()[-1]

    def stop(self):
        subprocess.run([str(RABBITMQ), "stop", str(self.dir)], capture_output=True, timeout=60)


class Consumer:
    """Reads `notifications.info` (declared and bound as oslo.messaging does) and unwraps the envelope."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.connection = None
        self.messages: list[dict] = []

    def connect(self):
        self.connection = pika.BlockingConnection(pika.URLParameters(self.broker.url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare("glance", exchange_type="topic", durable=False)
        self.channel.queue_declare("notifications.info", durable=False)
        self.channel.queue_bind("notifications.info", "glance", routing_key="notifications.info")
        self.channel.queue_declare("notifications.error", durable=False)
        self.channel.queue_bind("notifications.error", "glance", routing_key="notifications.error")

    def drain(self):
        for queue in ("notifications.info", "notifications.error"):
            self.drain_queue(queue)

    def drain_queue(self, queue: str):
        while True:
            method, props, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return
            outer = json.loads(body)
            assert outer["oslo.version"] == "2.0", outer
            message = json.loads(outer["oslo.message"])
            message["_content_type"] = props.content_type
            message["_routing_key"] = method.routing_key
            message["_exchange"] = method.exchange
            self.messages.append(message)

    def events(self, event_type: str, key: str, value) -> list[dict]:
        return [m for m in self.messages if m["event_type"] == event_type and m["payload"].get(key) == value]

    def wait(self, event_type: str, key: str, value, timeout: float = 20) -> dict:
        def found():
            self.drain()
            return self.events(event_type, key, value)
        return wait_for(found, timeout=timeout, interval=0.1, what=f"{event_type} with {key}={value}")[0]


class Webhook:
    """A loopback receiver that keeps each POSTed body and its content type."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.received.append((self.headers.get("Content-Type", ""), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, ce_type: str, key: str, value, timeout: float = 20) -> tuple[str, dict]:
        def found():
            return [(ct, e) for ct, e in list(self.received) if e["type"] == ce_type and e["data"].get(key) == value]
        return wait_for(found, timeout=timeout, what=f"webhook {ce_type} with {key}={value}")[0]


def metric(srv: ImagedServer, name: str, target: str) -> float:
    text = requests.get(srv.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") and f'target="{target}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    hook = Webhook()
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-notify"), "--notify-url", broker.url,
                       "--notify-webhook", hook.url, "--notify-queue", str(QUEUE_LIMIT),
                       "--import-allow-cidr", "127.0.0.0/8", "--import-allow-port", "any")
    srv.start()
    consumer = Consumer(broker)
    try:
        wait_for(lambda: metric(srv, "imaged_notifications_connected", "amqp") == 1, timeout=20, what="publisher connected")
        consumer.connect()
        yield srv, broker, consumer, hook
    finally:
        srv.kill()
        broker.stop()
        hook.httpd.shutdown()


def test_image_and_member_events_reach_rabbitmq_and_the_webhook(setup):
    srv, broker, consumer, hook = setup
    alice, bob = Raw(srv.url, "alice"), Raw(srv.url, "bob")
    image = alice.create(name=unique("notify"), disk_format="raw", container_format="bare", visibility="shared")
    iid = image["id"]
    data = b"notification bytes\n" * 100

    created = consumer.wait("image.create", "id", iid)
    assert created["publisher_id"].startswith("image.")
    assert created["priority"] == "INFO"
    assert created["_routing_key"] == "notifications.info" and created["_exchange"] == "glance"
    assert created["_content_type"] == "application/json"
    assert len(created["message_id"]) == 36
    time.strptime(created["timestamp"][:19], "%Y-%m-%d %H:%M:%S")  # Python's str(datetime)
    p = created["payload"]
    assert (p["owner"], p["status"], p["size"], p["visibility"], p["is_public"], p["deleted"]) == \
        (project("alice"), "queued", None, "shared", False, False)
    assert p["name"] == image["name"] and p["disk_format"] == "raw" and p["container_format"] == "bare"

    assert upload(alice, iid, data).status_code == 204
    prepared = consumer.wait("image.prepare", "id", iid)
    assert prepared["payload"]["status"] == "saving"
    assert prepared["payload"]["os_glance_importing_to_stores"] == []
    uploaded = consumer.wait("image.upload", "id", iid)
    activated = consumer.wait("image.activate", "id", iid)
    for m in (uploaded, activated):
        assert (m["payload"]["status"], m["payload"]["size"], m["payload"]["owner"]) == ("active", len(data), project("alice"))
        assert m["payload"]["checksum"] == image_checksum(alice, iid)

    assert alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/name", "value": "renamed"}]).status_code == 200
    updated = consumer.wait("image.update", "name", "renamed")
    assert updated["payload"]["id"] == iid and updated["payload"]["size"] == len(data)

    r = bob.get(f"/v2/images/{iid}/file")
    assert r.status_code == 404  # not a member yet: nothing sent, no image.send
    assert alice.post(f"/v2/images/{iid}/members", json={"member": project("bob")}).status_code == 200
    member = consumer.wait("image.member.create", "image_id", iid)
    assert (member["payload"]["member_id"], member["payload"]["status"]) == (project("bob"), "pending")
    assert bob.put(f"/v2/images/{iid}/members/{project('bob')}", json={"status": "accepted"}).status_code == 200
    accepted = consumer.wait("image.member.update", "image_id", iid)
    assert accepted["payload"]["status"] == "accepted"

    assert bob.get(f"/v2/images/{iid}/file").content == data
    sent = consumer.wait("image.send", "image_id", iid)
    assert sent["payload"] == {"bytes_sent": len(data), "image_id": iid, "owner_id": project("alice"),
                               "receiver_tenant_id": project("bob"), "receiver_user_id": "u-bob"}

    assert alice.delete(f"/v2/images/{iid}/members/{project('bob')}").status_code == 204
    removed = consumer.wait("image.member.delete", "image_id", iid)
    assert removed["payload"]["deleted"] is True and removed["payload"]["deleted_at"]

    assert alice.delete(f"/v2/images/{iid}").status_code == 204
    deleted = consumer.wait("image.delete", "id", iid)
    assert deleted["payload"]["deleted"] is True and deleted["payload"]["deleted_at"].endswith("Z")
    assert deleted["payload"]["size"] == len(data)

    # One message per event: nothing emitted twice.
    consumer.drain()
    for event in ("image.create", "image.upload", "image.activate", "image.prepare", "image.delete"):
        assert len(consumer.events(event, "id", iid)) == 1, event
    for event in ("image.member.create", "image.member.update", "image.member.delete", "image.send"):
        assert len(consumer.events(event, "image_id", iid)) == 1, event

    # The webhook got the same events as CloudEvents 1.0.
    content_type, ce = hook.wait("org.openstack.image.create", "id", iid)
    assert content_type.startswith("application/cloudevents+json")
    assert ce["specversion"] == "1.0" and ce["datacontenttype"] == "application/json" and ce["source"].startswith("/imaged/")
    assert ce["data"]["owner"] == project("alice") and ce["time"].endswith("Z") and ce["id"]
    for ce_type in ("org.openstack.image.activate", "org.openstack.image.delete"):
        assert hook.wait(ce_type, "id", iid)[1]["data"]["size"] == len(data)
    assert hook.wait("org.openstack.image.member.create", "image_id", iid)[1]["data"]["member_id"] == project("bob")


def test_a_failed_upload_is_an_error_notification(setup):
    srv, broker, consumer, hook = setup
    alice = Raw(srv.url, "alice")
    image = alice.create(name=unique("notify-bad"), disk_format="qcow2", container_format="bare")
    r = upload(alice, image["id"], b"not a qcow2 header\n" * 64)
    assert r.status_code == 415, r.text  # Glance's answer to data that is not the declared format

    def failed():
        consumer.drain()
        return [m for m in consumer.messages if m["event_type"] == "image.upload" and m["priority"] == "ERROR"
                and image["id"] in m["payload"]]
    error = wait_for(failed, timeout=20, what="image.upload at ERROR")[0]
    assert error["_routing_key"] == "notifications.error"
    assert "does not match" in error["payload"]
    assert consumer.events("image.activate", "id", image["id"]) == []


def test_config_check_shows_the_notification_targets_without_the_password(setup):
    srv, *_ = setup
    env = {**os.environ, "IMAGED_NOTIFY_URL": "amqp://nova:s3cret@rabbit.example:5673/prod"}
    out = subprocess.run([str(imaged_bin()), "config", "check", "--data-dir", str(srv.workdir / "check"),
                          "--notify-webhook", "http://hook.example/x", "--notify-queue", "50"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "notify: amqp://nova@rabbit.example:5673/prod exchange glance, webhook http://hook.example/x, queue 50" in out.stdout
    assert "s3cret" not in out.stdout + out.stderr
    bad = subprocess.run([str(imaged_bin()), "config", "check", "--data-dir", str(srv.workdir / "check"),
                          "--notify-url", "http://rabbit.example/"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--notify-url" in bad.stderr


def image_checksum(client: Raw, iid: str) -> str:
    return client.get(f"/v2/images/{iid}").json()["checksum"]


def test_task_events_of_an_import(setup):
    srv, broker, consumer, hook = setup
    alice = Raw(srv.url, "alice")
    image = alice.create(name=unique("notify-import"), disk_format="raw", container_format="bare")
    iid = image["id"]
    staged = alice.put(f"/v2/images/{iid}/stage", data=b"staged\n" * 50, headers={"Content-Type": "application/octet-stream"})
    assert staged.status_code == 204, staged.text
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    created = consumer.wait("task.create", "owner", project("alice"))
    task_id = created["payload"]["id"]
    assert created["payload"]["type"] == "api_image_import" and created["payload"]["status"] == "pending"
    assert consumer.wait("task.run", "id", task_id)["payload"]["owner"] == project("alice")
    assert consumer.wait("task.processing", "id", task_id)["payload"]["status"] == "processing"
    success = consumer.wait("task.success", "id", task_id)
    assert success["payload"]["status"] == "success" and success["payload"]["expires_at"].endswith("Z")
    assert consumer.wait("image.activate", "id", iid)["payload"]["size"] == len(b"staged\n" * 50)
    assert hook.wait("org.openstack.task.success", "id", task_id)[1]["data"]["type"] == "api_image_import"


def test_broker_outage_costs_requests_nothing_and_the_publisher_reconnects(setup):
    srv, broker, consumer, hook = setup
    alice = Raw(srv.url, "alice")
    before = [timed(lambda: alice.create(name=unique("notify-before"))) for _ in range(5)]
    consumer.connection.close()
    broker.stop()
    dropped_before = metric(srv, "imaged_notifications_dropped_total", "amqp")

    # Twice the queue bound of events while the broker is away: each request as fast as before.
    during = [timed(lambda: alice.create(name=unique("notify-down"))) for _ in range(2 * QUEUE_LIMIT)]
    # (A request waiting on the broker would take its 5 s connect timeout; the bounds leave room for a busy CI host.)
    assert max(during) < max(2.0, 10 * max(before)), (before, during)
    assert statistics.median(during) < max(0.3, 3 * statistics.median(before)), (before, during)
    dropped = metric(srv, "imaged_notifications_dropped_total", "amqp") - dropped_before
    # At most the queue (plus the event in hand) waits; the rest were dropped and counted.
    assert dropped >= 2 * QUEUE_LIMIT - QUEUE_LIMIT - 1, dropped
    assert metric(srv, "imaged_notifications_connected", "amqp") == 0

    broker.start()
    wait_for(lambda: metric(srv, "imaged_notifications_connected", "amqp") == 1, timeout=30, what="publisher reconnected")
    consumer.connect()
    after = alice.create(name=unique("notify-after"))
    assert consumer.wait("image.create", "id", after["id"], timeout=30)["payload"]["owner"] == project("alice")
    # What was queued during the outage was delivered once it was back (confirmed, in order); only the drops are missing.
    consumer.drain()
    delivered = [m["payload"]["name"] for m in consumer.messages
                 if m["event_type"] == "image.create" and m["payload"]["name"].startswith("notify-down")]
    assert len(delivered) == len(set(delivered)) == 2 * QUEUE_LIMIT - dropped, (len(delivered), dropped)
    assert metric(srv, "imaged_notifications_failed_total", "amqp") >= 1
    # The webhook did not depend on the broker.
    assert hook.wait("org.openstack.image.create", "id", after["id"])[1]["data"]["name"] == after["name"]


def timed(call) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start
