"""`imaged serve --config FILE` and `imaged config check`: one YAML file with serve's options, the environment
over it, flags over both; the documented example validates; a node configured only by a file for PostgreSQL +
S3 serves, shows itself on /metrics and /readyz, and loses nothing when SIGTERMed during an upload."""

import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, ImagedServer, Raw, config_check, imaged_bin, random_bytes, scale_out_config, upload, wait_for

MiB = 1 << 20


check = config_check


def effective(out: str) -> dict:
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_every_serve_option_is_read_from_the_file_and_the_environment(tmp_path):
    """Each long option `imaged serve --help` lists is a key of the configuration file and an IMAGED_<OPTION>
    variable: a new option left out of the file's list would be refused there as unknown, and ignored in the
    environment."""
    help_text = subprocess.run([str(imaged_bin()), "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    names = sorted(set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", help_text, re.M)) - {"help", "config", "version"})
    assert len(names) > 60 and "catalog-cache-size" in names and "cache-size" in names
    cfg = tmp_path / "imaged.yaml"
    for name in names:
        cfg.write_text(f"{name}: x\n")  # often not a valid value: refused for that, never as unknown
        out = check("--config", str(cfg))
        assert "unknown option" not in out.stderr, (name, out.stderr)
    # one of them end to end: file, environment over file, a bad value
    cfg.write_text("catalog-cache-size: 64MiB\n")
    assert effective(check("--config", str(cfg)).stdout)["catalog-cache"] == f"at most {64 << 20} bytes of image records"
    out = check("--config", str(cfg), env={"IMAGED_CATALOG_CACHE_SIZE": "1GiB"})
    assert effective(out.stdout)["catalog-cache"] == f"at most {1 << 30} bytes of image records"
    assert effective(check().stdout)["catalog-cache"] == f"at most {256 << 20} bytes of image records"
    cfg.write_text("catalog-cache-size: lots\n")
    out = check("--config", str(cfg))
    assert out.returncode != 0 and "'lots' is not a size" in out.stderr, out.stderr
    # options the file's list once missed: a flag, a repeatable one, a path
    cfg.write_text("show-image-direct-url: true\ncors-origin: [https://a.example, https://b.example]\naudit-log: none\n")
    eff = effective(check("--config", str(cfg)).stdout)
    assert (eff["show-image-direct-url"], eff["cors-origin"], eff["audit-log"]) == \
        ("true", "https://a.example, https://b.example", "none"), eff


def test_config_check_merges_file_environment_and_flags(tmp_path):
    cfg = tmp_path / "imaged.yaml"
    cfg.write_text("\n".join([
        f"data-dir: {tmp_path / 'data'}", "listen: 127.0.0.1:19001", "log-level: notice",
        "catalog: postgres://imaged:sup3rsecret@db:5432/imaged?schema=x",
        "store:", "  - fast=file", f"  - slow=file:{tmp_path / 'slow'}", "default-store: slow",
        "quota-image-count: 7", "import-allow-port: [80, 8080]", "no-auth: true", ""]))
    out = check("--config", str(cfg))
    assert out.returncode == 0, out.stderr
    eff = effective(out.stdout)
    assert eff["listen"] == "127.0.0.1:19001" and eff["log-level"] == "notice" and eff["default-store"] == "slow"
    assert eff["store fast"] == f"file {tmp_path / 'data'}/blobs" and eff["store slow"] == f"file {tmp_path / 'slow'}"
    assert eff["quota"].startswith("images 7,") and eff["import-allow-port"] == "80, 8080" and eff["auth"].startswith("none")
    assert "sup3rsecret" not in out.stdout + out.stderr and "postgres://imaged:***@db:5432/imaged" in eff["catalog"]
    assert out.stdout.strip().endswith("configuration OK")
    # the environment overrides the file, a flag overrides both; IMAGED_CONFIG names the file
    out = check("--listen", "127.0.0.1:19003", env={"IMAGED_CONFIG": str(cfg), "IMAGED_LISTEN": "127.0.0.1:19002",
                                                   "IMAGED_LOG_LEVEL": "debug", "IMAGED_QUOTA_IMAGE_COUNT": "9"})
    eff = effective(out.stdout)
    assert (eff["listen"], eff["log-level"], eff["quota"].split(",")[0]) == ("127.0.0.1:19003", "debug", "images 9")
    # refusals: unknown option, a list where one value goes, bad values, unreadable file, not YAML
    for text, message in [("colour: red\n", "unknown option 'colour'"), ("listen: [a, b]\n", "takes one value"),
                          ("listen: nowhere\n", "--listen expects host:port"), ("no-auth: maybe\n", "must be true or false"),
                          ("durability: sometimes\n", "--durability must be full or normal"), ("- a\n- b\n", "must be a mapping"),
                          ("listen: [unclosed\n", "is not valid YAML")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        out = check("--config", str(bad))
        assert out.returncode != 0 and message in out.stderr, (text, out.stderr)
    out = check("--config", str(tmp_path / "missing.yaml"))
    assert out.returncode != 0 and "cannot read the configuration file" in out.stderr


def test_front_ends_and_task_workers_are_chosen_by_configuration(tmp_path):
    cfg = tmp_path / "imaged.yaml"
    cfg.write_text("frontend: [openstack, zstack]\ntask-workers: 5\n")
    out = check("--config", str(cfg), "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    eff = effective(out.stdout)
    assert eff["front-ends"] == "OpenStack /v2, ZStack /zstack/v1" and eff["task-workers"] == "5"
    every = effective(check("--data-dir", str(tmp_path / "data")).stdout)["front-ends"]
    assert every.count(",") == 5 and every.endswith("web console /console/"), every
    for bad, message in [("frontend: [openstack, vmware]\n", "'vmware' is not one of"), ("task-workers: 0\n", "between 1 and 64")]:
        cfg.write_text(bad)
        out = check("--config", str(cfg))
        assert out.returncode != 0 and message in out.stderr, out.stderr
    # A node with two front-ends: the others' paths are not found, the chosen ones answer.
    cfg.write_text("frontend: [openstack, zstack]\n")
    srv = ImagedServer(tmp_path / "two", "--config", str(cfg))
    srv.start()
    try:
        alice = Raw(srv.url, "alice")
        image = alice.create(name="only-two", disk_format="raw", container_format="bare")
        assert alice.get(f"/v2/images/{image['id']}").json()["name"] == "only-two"
        login = requests.put(srv.url + "/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "nobody", "password": hashlib.sha512(b"x").hexdigest()}})
        assert login.status_code == 503 and login.json()["error"]["code"] == "ID.1000", login.text  # ZStack's own refusal
        for path in ["/api/image", "/api/image/", "/api/v1beta0/global/images/", "/imgapi/images", "/login", "/console/images"]:
            r = requests.get(srv.url + path, headers={"X-Auth-Token": "alicetok"})
            # not the vendor APIs any more: OpenStack's version negotiation answers these paths, as any unknown path
            assert r.status_code == 300 and r.json()["versions"][0]["id"].startswith("v2."), (path, r.status_code, r.text)
    finally:
        srv.kill(signal.SIGTERM)


def nio_loop_threads(pid: int) -> int:
    """Threads of NIO's shared event loop group in a process (named NIO-SGLTN-<group>-#<n>)."""
    return sum(1 for t in Path(f"/proc/{pid}/task").iterdir()
               if (t / "comm").read_text().startswith("NIO-SGLTN-"))


def test_event_loop_threads_default_to_half_the_cores_and_follow_the_option(tmp_path):
    cores = len(os.sched_getaffinity(0))
    out = check("--data-dir", str(tmp_path / "c"))
    assert effective(out.stdout)["event-loop-threads"] == str(max(1, cores // 2)), out.stdout
    out = check("--event-loop-threads", "0")
    assert out.returncode != 0 and "--event-loop-threads must be between 1 and 256" in out.stderr
    for args, expected, env in [((), max(1, cores // 2), None), (("--event-loop-threads", "3"), 3, None),
                                # NIO's own variable wins over ours: an operator who set it meant it
                                (("--event-loop-threads", "3"), 2, {**os.environ, "NIO_SINGLETON_GROUP_LOOP_COUNT": "2"})]:
        srv = ImagedServer(tmp_path / f"s{expected}-{len(args)}", *args, env=env)
        srv.start()
        try:
            alice = Raw(srv.url, "alice")
            image = alice.create(name="loops", disk_format="raw", container_format="bare")
            assert alice.get(f"/v2/images/{image['id']}").json()["name"] == "loops"
            assert nio_loop_threads(srv.proc.pid) == expected, (args, env)
        finally:
            srv.kill(signal.SIGTERM)


def test_the_documented_example_validates():
    out = check("--config", str(REPO / "examples" / "imaged.yaml"),
                env={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret-key"})
    assert out.returncode == 0, out.stderr
    eff = effective(out.stdout)
    assert eff["store images"].startswith("s3 https://rgw.example.net bucket imaged-images") and "example-secret-key" not in out.stdout
    assert eff["default-store"] == "images" and eff["import-allow-cidr"] == "10.20.0.0/16"


def test_a_node_configured_by_a_file_for_postgres_and_s3(tmp_path):
    args, env = scale_out_config()
    lines, i = [], 0
    while i < len(args):
        name = args[i][2:]
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else "true"
        lines.append(f"{name}: '{value}'")
        i += 2 if value != "true" else 1
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text("\n".join(lines + ["shutdown-grace-seconds: 2", ""]))
    srv = ImagedServer(tmp_path / "node", "--config", str(cfg), env=env)
    srv.start()
    try:
        assert "PostgreSQL catalog" in srv.log_text() and "S3 blobs" in srv.log_text()
        ready = requests.get(srv.url + "/readyz").json()
        assert ready == {"status": "ready", "checks": {"catalog": "ok", "store:s3": "ok"}}
        alice = Raw(srv.url, "alice")
        image = alice.create(name="by-config", disk_format="raw", container_format="bare")
        data = random_bytes(12 * MiB, 41)
        sent, result = [], {}

        def slow():
            for off in range(0, len(data), 256 << 10):
                yield data[off:off + (256 << 10)]
                sent.append(off)
                time.sleep(0.2)
        def send():
            try:
                result["status"] = upload(alice, image["id"], slow()).status_code
            except requests.RequestException as e:  # the server cut the upload at shutdown
                result["error"] = e
        t = threading.Thread(target=send)
        t.start()
        wait_for(lambda: len(sent) >= 3, what="the upload under way")
        metrics = requests.get(srv.url + "/metrics").text
        assert "imaged_uploads_in_flight 1" in metrics
        srv.kill(signal.SIGTERM)
        t.join(timeout=30)
        assert result.get("status") != 204
        srv.start(port=srv.port)
        assert alice.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
        assert upload(alice, image["id"], data).status_code == 204
        shown = alice.get(f"/v2/images/{image['id']}").json()
        assert shown["status"] == "active" and shown["checksum"] == hashlib.md5(data).hexdigest()
        assert alice.get(f"/v2/images/{image['id']}/file").content == data
    finally:
        srv.kill()
