"""Rules every API shares, decided once in the core (issue 17):

- name uniqueness inside the catalog write: 64 concurrent creates of one name through Avi, Danube and Scalr, on one
  SQLite node and split over two nodes on PostgreSQL + S3 → exactly one succeeds, the others get that API's
  duplicate error, nothing is half-created;
- "in use": a VM recorded against an image (Danube's admin endpoint) refuses its deletion through all five APIs,
  each with its own error, image and bytes intact; once the record is gone each API can delete.

Requests are raw HTTP in each vendor client's conventions (signed for Scalr, session cookies + CSRF for Avi, Danube's
token), sent from 64 threads at once."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin, random_bytes, scale_out_config, token, upload, wait_for

RACERS = 64
PASSWORD = "one-door-password"


def admin_cli(where: list[str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([str(imaged_bin()), *args, *where], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Node:
    """One server, and where its admin commands reach its catalog (`--data-dir` or `--catalog`)."""

    def __init__(self, srv: ImagedServer, where: list[str], sealing: list[str] = ()):
        self.srv, self.where, self.url, self.sealing = srv, where, srv.url, list(sealing)


def make_accounts(node: Node):
    for name, project, role in [("od-alice", "p-alice", "member"), ("od-admin", "admin", "admin")]:
        admin_cli(node.where, "account", "create", name, "--project", project, "--role", role, "--password-stdin",
                  stdin=PASSWORD + "\n")


def scalr_key(node: Node, account: str) -> dict:
    out = admin_cli(node.where, "account", "key", "create", account, "--scalr", *node.sealing)
    key = {"id": re.search(r"^key id: (APIK[A-Z0-9]{16})$", out, re.M).group(1),
           "secret": re.search(r"^secret: (\S{40})$", out, re.M).group(1)}
    listed = admin_cli(node.where, "account", "list")
    key["env"] = int(re.search(rf"^{account}\t.*\tscalr_env=(\d+)$", listed, re.M).group(1))
    return key


def scalr(url: str, key: dict, method: str, path: str, body: bytes = b"") -> requests.Response:
    """Signed as Scalr's own client signs (V1-HMAC-SHA256 over method, date, path, query, body)."""
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sts = "\n".join([method, date, path, ""]).encode() + b"\n" + body
    sig = base64.b64encode(hmac.new(key["secret"].encode(), sts, hashlib.sha256).digest()).decode()
    return requests.request(method, url + path, data=body, timeout=60, headers={
        "X-Scalr-Key-Id": key["id"], "X-Scalr-Date": date, "X-Scalr-Signature": f"V1-HMAC-SHA256 {sig}",
        "Content-Type": "application/json"})


def avi_login(url: str, who: str) -> dict:
    r = requests.post(url + "/login", json={"username": who, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"cookies": {"csrftoken": r.cookies["csrftoken"], "sessionid": r.cookies["sessionid"]},
            "headers": {"X-CSRFToken": r.cookies["csrftoken"], "Referer": url + "/", "X-Avi-Version": "30.2.1"}}


def danube_token(url: str, who: str) -> dict:
    r = requests.post(url + "/api/accounts/login/", json={"username": who, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    # No ES-STREAM: these raw requests read the plain 201 PENDING answer (the streamed form is test_danube_round2's).
    return {"Authorization": f"Token {r.json()['token']}"}


def race(calls) -> list[requests.Response]:
    """Starts every call at once (a barrier) from its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def live_named(node: Node, who_token: str, name: str) -> list[dict]:
    r = requests.get(node.url + "/v2/images", params={"name": name, "visibility": "all"}, headers={"X-Auth-Token": who_token}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["images"]


def check_avi(nodes: list[Node], admin_token: str):
    name = f"race-avi-{uuid.uuid4().hex[:8]}"
    sessions = [avi_login(n.url, "od-alice") for n in nodes]
    calls = [lambda i=i: requests.post(nodes[i % len(nodes)].url + "/api/image", json={"name": name, "type": "IMAGE_TYPE_SYSTEM"},
                                       timeout=60, **sessions[i % len(nodes)]) for i in range(RACERS)]
    answers = race(calls)
    created = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 409]
    assert len(created) == 1, [(r.status_code, r.text) for r in answers if r.status_code != 409]
    assert len(refused) == RACERS - 1
    assert {r.json()["error"] for r in refused} == {f"Image object with name '{name}' already exists."}
    [made] = live_named(nodes[-1], admin_token, name)
    assert "image-" + made["id"] == created[0].json()["uuid"] and made["owner"] == "p-alice"


def check_danube(nodes: list[Node], origin, admin_token: str):
    name = f"race-dn-{uuid.uuid4().hex[:8]}"
    data = b"danube race image\n" * 64
    urls = []
    for _ in range(RACERS):   # one manifest (and image uuid) per racer: only the name is contested
        m = {"v": 2, "uuid": str(uuid.uuid4()), "name": name, "version": "1.0", "type": "zvol", "os": "linux",
             "files": [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data), "compression": "none"}]}
        origin.serve(f"/od/{m['uuid']}", json.dumps(m).encode(), content_type="application/json")
        origin.serve(f"/od/{m['uuid']}/file", data)
        urls.append(origin.url(f"/od/{m['uuid']}"))
    tokens = [danube_token(n.url, "od-alice") for n in nodes]
    calls = [lambda i=i: requests.post(nodes[i % len(nodes)].url + f"/api/image/{name}/", json={"manifest_url": urls[i], "dc": "main"},
                                       headers=tokens[i % len(nodes)], timeout=60) for i in range(RACERS)]
    answers = race(calls)
    created = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 406]
    assert len(created) == 1 and len(refused) == RACERS - 1, [(r.status_code, r.text) for r in answers if r.status_code != 406]
    assert {r.json()["detail"] for r in refused} == {"Image already exists"}
    assert created[0].json()["status"] == "PENDING"
    # The winner's import completes; the losers left no image (their uuids are unknown) and no task.
    task = created[0].json()["task_id"]
    wait_for(lambda: requests.get(nodes[0].url + f"/api/task/{task}/status/", headers=tokens[0], timeout=30).status_code == 200,
             timeout=60, what="the winning import")
    [made] = live_named(nodes[-1], admin_token, name)
    assert made["status"] == "active" and made["size"] == len(data)
    for u in urls:
        image_id = u.rsplit("/", 1)[1]
        if image_id != made["id"]:
            assert requests.get(nodes[0].url + f"/v2/images/{image_id}", headers={"X-Auth-Token": admin_token}, timeout=30).status_code == 404


def check_scalr(nodes: list[Node], admin_token: str):
    key = scalr_key(nodes[0], "od-alice")
    path = f"/api/v1beta0/user/{key['env']}/images/"
    ami = f"ami-{uuid.uuid4().hex[:12]}"
    name = f"race-sc-{ami[4:]}"
    body = json.dumps({"name": name, "cloudPlatform": "ec2", "cloudLocation": "us-east-1", "cloudImageId": ami,
                       "architecture": "x86_64", "os": {"id": "ubuntu-16-04"}}).encode()
    answers = race([lambda i=i: scalr(nodes[i % len(nodes)].url, key, "POST", path, body) for i in range(RACERS)])
    created = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 409]
    assert len(created) == 1, [(r.status_code, r.text) for r in answers if r.status_code != 409]
    assert len(refused) == RACERS - 1
    for r in refused:
        [err] = r.json()["errors"]
        assert err == {"code": "UnicityViolation", "message": "This Image has already been registered in Scalr"}
    [made] = live_named(nodes[-1], admin_token, name)
    assert made["id"] == created[0].json()["data"]["id"] and made["scalr_cloud_image_id"] == ami


@pytest.fixture(scope="module")
def single(tmp_path_factory, origin):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-one-door"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port))
    srv.start()
    node = Node(srv, ["--data-dir", str(srv.data_dir)])
    make_accounts(node)
    yield node
    srv.kill(signal.SIGTERM)


@pytest.mark.parametrize("api", ["avi", "danube", "scalr"])
def test_one_name_raced_on_one_sqlite_node(single, origin, api):
    admin = token("admin")
    {"avi": lambda: check_avi([single], admin), "danube": lambda: check_danube([single], origin, admin),
     "scalr": lambda: check_scalr([single], admin)}[api]()


def test_one_name_raced_over_two_nodes_on_postgres_and_s3(tmp_path, origin):
    args, env = scale_out_config()
    # Scalr secrets are sealed with one key every node shares.
    sealing = ["--secret-key-file", str(tmp_path / "secret.key")]
    (tmp_path / "secret.key").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    extra = ["--import-allow-cidr", "127.0.0.1/32", "--import-allow-port", str(origin.port), *sealing]
    nodes = []
    try:
        for i in range(2):
            srv = ImagedServer(tmp_path / f"node{i}", *args, *extra, env=env)
            srv.start()
            nodes.append(Node(srv, ["--catalog", args[args.index("--catalog") + 1]], sealing))
        make_accounts(nodes[0])
        # Each check spreads its racers over both nodes and reads the outcome back through the second.
        check_avi(nodes, token("admin"))
        check_danube(nodes, origin, token("admin"))
        check_scalr(nodes, token("admin"))
    finally:
        for n in nodes:
            n.srv.kill(signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# In use


def zstack_session(url: str, who: str) -> dict:
    r = requests.put(url + "/zstack/v1/accounts/login",
                     json={"logInByAccount": {"accountName": who, "password": hashlib.sha512(PASSWORD.encode()).hexdigest()}}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"OAuth {r.json()['inventory']['uuid']}"}


def zstack_delete(url: str, session: dict, image_id: str) -> requests.Response:
    r = requests.delete(url + f"/zstack/v1/images/{image_id.replace('-', '')}", headers={**session, "X-Job-UUID": uuid.uuid4().hex},
                        timeout=30)
    assert r.status_code == 202, r.text
    location = r.json()["location"]
    result = {}

    def done():
        result["r"] = requests.get(location, headers=session, timeout=30)
        return result["r"].status_code != 202
    wait_for(done, timeout=60, what="the ZStack delete job")
    return result["r"]


def test_an_image_in_use_is_not_deleted_through_any_api(single):
    node, url = single, single.url
    admin = token("admin")
    alice_os = {"X-Auth-Token": admin}
    danube_admin = danube_token(url, "od-admin")
    data = random_bytes(1 << 20, 1717)
    # One image per API (each is deleted through its own API at the end), all owned by p-alice, all active but Scalr's.
    images = {}
    for api in ["openstack", "avi", "zstack", "danube"]:
        r = requests.post(url + "/v2/images", headers=alice_os, timeout=30,
                          json={"name": f"used-{api}-{uuid.uuid4().hex[:6]}", "disk_format": "raw", "container_format": "bare",
                                "owner": "p-alice"})
        assert r.status_code == 201, r.text
        images[api] = r.json()
        assert upload(Raw(url, None), images[api]["id"], data, headers=alice_os).status_code == 204
        images[api]["status"] = "active"
    key = scalr_key(node, "od-alice")
    scalr_path = f"/api/v1beta0/user/{key['env']}/images/"
    made = scalr(url, key, "POST", scalr_path, json.dumps({
        "name": f"used-scalr-{uuid.uuid4().hex[:6]}", "cloudPlatform": "ec2", "cloudLocation": "us-east-1",
        "cloudImageId": f"ami-{uuid.uuid4().hex[:10]}", "architecture": "x86_64", "os": {"id": "ubuntu-16-04"}}).encode())
    assert made.status_code == 201, made.text
    images["scalr"] = requests.get(url + f"/v2/images/{made.json()['data']['id']}", headers=alice_os, timeout=30).json()

    def record(image, using: bool):
        method = requests.put if using else requests.delete
        r = method(url + f"/api/image/{image['name']}/vm/web01/", json={}, headers=danube_admin, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["result"] == (["web01"] if using else [])

    for image in images.values():
        record(image, True)

    avi = avi_login(url, "od-alice")
    zs = zstack_session(url, "od-alice")
    alice_dn = danube_token(url, "od-alice")

    def delete(api: str, image: dict) -> requests.Response:
        if api == "openstack":
            return requests.delete(url + f"/v2/images/{image['id']}", headers={**alice_os, "Accept": "application/json"}, timeout=30)
        if api == "avi":
            return requests.delete(url + f"/api/image/image-{image['id']}", timeout=30, **avi)
        if api == "zstack":
            return zstack_delete(url, zs, image["id"])
        if api == "danube":
            return requests.delete(url + f"/api/image/{image['name']}/", headers=alice_dn, timeout=30)
        return scalr(url, key, "DELETE", scalr_path + image["id"] + "/")

    refusals = {api: delete(api, images[api]) for api in images}
    r = refusals["openstack"]
    assert r.status_code == 409 and "in use by VM web01" in r.text, r.text
    r = refusals["avi"]
    assert r.status_code == 409 and "in use by VM web01" in r.json()["error"], r.text
    r = refusals["zstack"]
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1006", r.text
    assert "in use by VM web01" in json.dumps(r.json()), r.text
    r = refusals["danube"]
    assert (r.status_code, r.json()["detail"]) == (428, "Image is used by some VMs"), r.text
    r = refusals["scalr"]
    assert r.status_code == 409 and r.json()["errors"] == [{"code": "ObjectInUse", "message": "The Image is used by some Role or Server."}]
    # Every API refuses every image, not only its own (the rule is the core's).
    for api in ["openstack", "avi", "zstack"]:
        assert delete(api, images["scalr"]).status_code in (409, 503), api
    assert delete("danube", images["openstack"]).status_code == 428
    # Nothing changed: status, and the bytes of the active ones.
    for api, image in images.items():
        now = requests.get(url + f"/v2/images/{image['id']}", headers=alice_os, timeout=30).json()
        assert now["status"] == image["status"], (api, now)
        if api != "scalr":
            got = requests.get(url + f"/v2/images/{image['id']}/file", headers=alice_os, timeout=60)
            assert got.status_code == 200 and got.content == data, api

    for image in images.values():
        record(image, False)
    for api, image in images.items():
        r = delete(api, image)
        # Danube's DELETE is a task (201 PENDING) whose work is done before the answer.
        assert r.status_code in ((201,) if api == "danube" else (200, 204)), (api, r.status_code, r.text)
        gone = requests.get(url + f"/v2/images/{image['id']}", headers=alice_os, timeout=30)
        assert gone.status_code == 404, (api, gone.text)


# ---------------------------------------------------------------------------------------------
# A schema from a newer imaged


def test_serve_refuses_a_catalog_migrated_by_a_newer_imaged(tmp_path):
    """A catalog a newer binary has migrated may hold rows this one would misread: `imaged serve` says so and exits
    non-zero instead of serving (checked here on SQLite; the PostgreSQL catalog has the same check in the Swift suite)."""
    import sqlite3
    srv = ImagedServer(tmp_path / "newer")
    srv.start()
    made = requests.post(srv.url + "/v2/images", headers={"X-Auth-Token": token("admin")}, json={"name": "kept"}, timeout=30).json()
    srv.kill(signal.SIGTERM)
    db = sqlite3.connect(srv.data_dir / "catalog.sqlite")
    db.execute("INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')")
    db.commit()
    db.close()
    out = subprocess.run([str(imaged_bin()), "serve", "--data-dir", str(srv.data_dir), "--listen", "127.0.0.1:0",
                          "--token-file", str(srv.token_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "migrated by a newer imaged" in out.stderr + out.stdout and "v99: from the future" in out.stderr + out.stdout
    # Nothing was changed: the row is still there for the newer binary.
    db = sqlite3.connect(srv.data_dir / "catalog.sqlite")
    assert db.execute("SELECT name FROM images WHERE id = ?", (made["id"],)).fetchone() == ("kept",)
    db.close()
