"""End-to-end fixtures: the real `imaged` binary, driven by the real OpenStack clients.

The session fixture `server` starts `$IMAGED_BIN` (default `.build/debug/imaged`) on a free
loopback port with a temporary data dir and a static token file, waits for `/healthz`, and
kills it at the end. Tests that need their own process (restarts, other flags) use `ImagedServer`
directly. Images become `active` through real uploads (`upload`, `make_active`); disk images are made
by `qemu-img`/`genisoimage` during the run (`disk`); imports fetch from `Origin`, a local HTTP server.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import http.server
import json
import os
import shutil
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]

# Three projects: an admin (p-admin), and two ordinary projects that share images.
TOKENS = {
    "admin": {"token": "admintok", "user_id": "u-admin", "project_id": "p-admin", "roles": ["admin"]},
    "alice": {"token": "alicetok", "user_id": "u-alice", "project_id": "p-alice", "roles": ["member"]},
    "bob": {"token": "bobtok", "user_id": "u-bob", "project_id": "p-bob", "roles": ["member"]},
    "carol": {"token": "caroltok", "user_id": "u-carol", "project_id": "p-carol", "roles": ["reader"]},
}


def imaged_bin() -> Path:
    path = Path(os.environ.get("IMAGED_BIN", ".build/debug/imaged"))
    if not path.is_absolute():
        path = REPO / path
    return path


def config_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`imaged config check ARGS…` with `env` over this process's environment; output captured as text."""
    return subprocess.run([str(imaged_bin()), "config", "check", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ImagedServer:
    """One `imaged serve` process on loopback; can be SIGKILLed and started again on the same data dir."""

    def __init__(self, workdir: Path, *extra_args: str, env: dict | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = [str(a) for a in extra_args]
        self.env = env  # the whole environment of the process (None: inherit)
        self.data_dir = self.workdir / "data"
        self.token_file = self.workdir / "tokens.json"
        self.token_file.write_text(json.dumps({"tokens": list(TOKENS.values())}))
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"imaged-{self.starts}.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, port: int | None = None, timeout: float = 60.0) -> None:
        binary = imaged_bin()
        if not binary.exists():
            raise RuntimeError(f"imaged binary not found at {binary} (set IMAGED_BIN or run `swift build`)")
        last_error = ""
        for attempt in range(5):
            self.port = port or free_port()
            self.starts += 1
            log = open(self.log_path, "wb")
            argv = [str(binary), "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}",
                    "--token-file", str(self.token_file), "--log-level", "info", *self.extra_args]
            busy_until = time.monotonic() + 300
            while True:
                try:
                    self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)
                    break
                except OSError as e:
                    # ETXTBSY: the binary is being rebuilt right now; wait for the linker to finish.
                    if e.errno != errno.ETXTBSY or time.monotonic() > busy_until:
                        raise
                    time.sleep(1)
            log.close()
            if self._wait_ready(timeout):
                return
            last_error = self.log_text()
            self.kill()
            if "Address already in use" not in last_error or port is not None:
                break
        raise RuntimeError(f"imaged did not become ready on port {self.port}; log:\n{last_error}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200 and r.json() == {"status": "ok"}:
                    return True
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.1)
        return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Ends the server process (SIGKILL by default: no chance to flush or clean up)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.proc = None

    def all_logs(self) -> str:
        """Every log of this server's runs (one file per start), oldest first."""
        return "".join((self.workdir / f"imaged-{n}.log").read_text(errors="replace")
                       for n in range(1, self.starts + 1) if (self.workdir / f"imaged-{n}.log").exists())

    # Where the server keeps data (design.md): committed blobs, staged blobs, temporaries.
    def blob_path(self, image_id: str) -> Path:
        return self.data_dir / "blobs" / "images" / image_id

    def staging_path(self, image_id: str) -> Path:
        return self.data_dir / "blobs" / "staging" / image_id

    def temporaries(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.data_dir / "blobs" / ".tmp").iterdir())
        except FileNotFoundError:
            return []


def s3_env() -> dict:
    """The S3 server scripts/test.sh started (IMAGED_TEST_S3_ENV names its env file)."""
    path = os.environ.get("IMAGED_TEST_S3_ENV")
    if not path:
        pytest.fail("IMAGED_TEST_S3_ENV is not set: scripts/test.sh starts an S3 server and sets it")
    env = {}
    for line in open(path):
        line = line.strip().removeprefix("export ")
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v.strip("'\"")
    return env


def postgres_url(schema: str) -> str:
    """A fresh schema in the PostgreSQL scripts/test.sh started (IMAGED_TEST_POSTGRES_URL)."""
    base = os.environ.get("IMAGED_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("IMAGED_TEST_POSTGRES_URL is not set: scripts/test.sh starts PostgreSQL and sets it")
    return base + ("&" if "?" in base else "?") + f"schema={schema}"


def scale_out_config(tag: str | None = None, part_mib: int = 5) -> tuple[list[str], dict]:
    """Arguments and environment for `imaged serve` on PostgreSQL + S3. Nodes given the same `tag`
    share one catalog schema and one key prefix in the bucket, i.e. form one cluster."""
    tag = tag or uuid.uuid4().hex[:12]
    s3 = s3_env()
    args = ["--catalog", postgres_url(f"e2e_{tag}"), "--blob-store", f"s3:{s3['S3_BUCKET']}",
            "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-region", s3["S3_REGION"], "--s3-key-prefix", f"e2e-{tag}/",
            "--s3-part-mib", str(part_mib)]
    return args, s3_process_env(s3)


def s3_process_env(s3: dict) -> dict:
    """This process's environment for an `imaged serve` on the S3 server `s3` (from s3_env()): its keys
    replace any AWS_* variable the caller has, so imaged signs with exactly these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=s3["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=s3["AWS_SECRET_ACCESS_KEY"])
    return env


# The API contract tests (test_openapi_*.py).


def served_openapi(base: str, name: str) -> dict:
    """`/openapi/<name>.json` as the server serves it: the repository's document (embedded at build time), and a
    valid OpenAPI 3.1 document."""
    from openapi_spec_validator import validate
    r = requests.get(f"{base}/openapi/{name}.json", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json", (r.status_code, r.headers)
    doc = r.json()
    assert doc == json.loads((REPO / "Sources" / "Server" / "OpenAPI" / f"{name}.json").read_text()), "stale build"
    validate(doc)  # raises on an invalid OpenAPI document
    assert doc["openapi"] == "3.1.0"
    return doc


def schemathesis_cli() -> str:
    """The schemathesis CLI of the venv running the tests (else the one on PATH)."""
    for name in ("schemathesis", "st"):
        candidate = Path(sys.executable).parent / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which("schemathesis") or shutil.which("st")
    if not found:
        pytest.fail("the schemathesis CLI is not installed (tests/e2e/requirements.txt)")
    return found


# IMAGED_E2E_BACKEND=postgres-s3 runs the session server (and so the client suites) on PostgreSQL + S3.
E2E_BACKEND = os.environ.get("IMAGED_E2E_BACKEND", "embedded")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if E2E_BACKEND == "postgres-s3":
        args, env = scale_out_config()
        srv = ImagedServer(tmp_path_factory.mktemp("imaged"), *args, env=env)
    elif E2E_BACKEND == "embedded":
        srv = ImagedServer(tmp_path_factory.mktemp("imaged"))
    else:
        pytest.fail(f"unknown IMAGED_E2E_BACKEND {E2E_BACKEND!r} (embedded or postgres-s3)")
    srv.start()
    if E2E_BACKEND == "postgres-s3":
        assert "PostgreSQL catalog" in srv.log_text() and "S3 blobs" in srv.log_text(), srv.log_text()
    yield srv
    srv.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


def token(who: str) -> str:
    return TOKENS[who]["token"]


def project(who: str) -> str:
    return TOKENS[who]["project_id"]


def unique(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------------------------
# Raw HTTP


class Raw:
    """`requests` with a token, for checks the clients hide."""

    def __init__(self, base: str, who: str | None):
        self.base = base
        self.session = requests.Session()
        if who:
            self.session.headers["X-Auth-Token"] = token(who)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, ops, **kw):
        headers = {"Content-Type": "application/openstack-images-v2.1-json-patch", **kw.pop("headers", {})}
        return self.request("PATCH", path, data=json.dumps(ops), headers=headers, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, **body) -> dict:
        r = self.post("/v2/images", json=body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture(scope="session")
def raw(url):
    """Raw HTTP clients by user: raw['alice'].get('/v2/images')."""
    return {who: Raw(url, who) for who in TOKENS}


# ---------------------------------------------------------------------------------------------
# python-openstackclient (the `openstack` CLI)


class OSCError(Exception):
    def __init__(self, cmd, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        super().__init__(f"{' '.join(cmd)} -> exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")


def openstack_cli() -> str:
    candidate = Path(sys.executable).parent / "openstack"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("openstack")
    if not found:
        raise RuntimeError("the `openstack` CLI (python-openstackclient) is not installed")
    return found


class OSC:
    """Runs the real `openstack` CLI against the server with token auth and an endpoint override."""

    def __init__(self, base: str, who: str):
        self.base = base
        self.who = who
        self.exe = openstack_cli()
        # No clouds.yaml / OS_* from the environment may leak in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env["OS_CLIENT_CONFIG_FILE"] = os.devnull

    def run(self, *args: str, json_out: bool = True, check: bool = True, timeout: float = 120):
        cmd = [self.exe, "--os-auth-type", "admin_token", "--os-endpoint", self.base + "/v2",
               "--os-token", token(self.who), "--os-image-api-version", "2", *args]
        if json_out:
            cmd += ["-f", "json"]
        # stdin must be *closed*, not /dev/null: `image create` reads image data from a non-tty stdin.
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
        if check and proc.returncode != 0:
            raise OSCError(cmd, proc)
        if not check:
            return proc
        if json_out:
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.stdout


@pytest.fixture(scope="session")
def osc(url):
    """OSC runners by user: osc['alice'].run('image', 'list')."""
    return {who: OSC(url, who) for who in TOKENS}


# ---------------------------------------------------------------------------------------------
# openstacksdk


@pytest.fixture(scope="session")
def sdk(url):
    import openstack

    def connect(who):
        return openstack.connect(load_yaml_config=False, load_envvars=False, auth_type="admin_token",
                                 auth={"endpoint": url + "/v2", "token": token(who)})

    return {who: connect(who) for who in TOKENS}


# ---------------------------------------------------------------------------------------------
# python-glanceclient


@pytest.fixture(scope="session")
def glance(url):
    import glanceclient

    return {who: glanceclient.Client("2", endpoint=url, token=token(who)) for who in TOKENS}


# ---------------------------------------------------------------------------------------------
# Image data helpers


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def image_status(client: "Raw", image_id: str) -> str | None:
    r = client.get(f"/v2/images/{image_id}")
    return r.json()["status"] if r.status_code == 200 else None


def wait_status(client: "Raw", image_id: str, wanted, timeout: float = 60.0) -> dict:
    """Polls the image until its status is one of `wanted`; returns the image."""
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    seen = []

    def check():
        r = client.get(f"/v2/images/{image_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in wanted else None

    try:
        return wait_for(check, timeout=timeout, interval=0.2, what=f"image {image_id} to be {sorted(wanted)}")
    except AssertionError as e:
        raise AssertionError(f"{e}; statuses seen: {seen}") from None


def upload(client: "Raw", image_id: str, data, headers: dict | None = None, **kw) -> requests.Response:
    """`PUT /v2/images/{id}/file` with an octet-stream body (bytes, a file object or an iterator)."""
    h = {"Content-Type": "application/octet-stream", **(headers or {})}
    kw.setdefault("timeout", 300)
    return client.put(f"/v2/images/{image_id}/file", data=data, headers=h, **kw)


def make_active(client: "Raw", data: bytes = b"imaged e2e image data\n" * 64, **create) -> dict:
    """Creates an image and uploads `data` (raw/bare unless told); returns the active image."""
    create.setdefault("name", unique("active"))
    create.setdefault("disk_format", "raw")
    create.setdefault("container_format", "bare")
    image = client.create(**create)
    r = upload(client, image["id"], data)
    assert r.status_code == 204, r.text
    got = client.get(f"/v2/images/{image['id']}").json()
    assert got["status"] == "active", got
    return got


def digests(path_or_bytes) -> dict:
    """md5, sha512, sha256 and size of a file or bytes, as the server should record them."""
    md5, sha512, sha256 = hashlib.md5(), hashlib.sha512(), hashlib.sha256()
    size = 0
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        chunks = [bytes(path_or_bytes)]
    else:
        def read():
            with open(path_or_bytes, "rb") as f:
                while chunk := f.read(4 << 20):
                    yield chunk
        chunks = read()
    for chunk in chunks:
        md5.update(chunk)
        sha512.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
    return {"md5": md5.hexdigest(), "sha512": sha512.hexdigest(), "sha256": sha256.hexdigest(), "size": size}


def assert_data_facts(image: dict, expected: dict, algo: str = "sha512") -> None:
    """The image records exactly the size and digests of the bytes it was given."""
    assert image["status"] == "active", image
    assert image["size"] == expected["size"], image
    assert image["checksum"] == expected["md5"], image
    assert image["os_hash_algo"] == algo, image
    assert image["os_hash_value"] == expected[algo], image


def assert_nothing_kept(srv: "ImagedServer", image_id: str, timeout: float = 15.0) -> None:
    """No committed or staged blob for the image and no temporary in the store (polled: cleanup
    may finish just after the response)."""
    def clean():
        return (not srv.blob_path(image_id).exists() and not srv.staging_path(image_id).exists()
                and srv.temporaries() == [])
    try:
        wait_for(clean, timeout=timeout, what="no blob and no temporary")
    except AssertionError:
        raise AssertionError(f"data left behind for {image_id}: blob={srv.blob_path(image_id).exists()} "
                             f"staged={srv.staging_path(image_id).exists()} tmp={srv.temporaries()}") from None


def tasks_of(client: "Raw", image_id: str) -> list[dict]:
    r = client.get(f"/v2/images/{image_id}/tasks")
    assert r.status_code == 200, r.text
    return r.json()["tasks"]


def wait_task_finished(client: "Raw", image_id: str, timeout: float = 120.0) -> dict:
    """Polls the image's tasks until the newest one is `success` or `failure`; returns it."""
    def done():
        tasks = tasks_of(client, image_id)
        if not tasks:
            return None
        newest = max(tasks, key=lambda t: t["created_at"])
        return newest if newest["status"] in ("success", "failure") else None
    return wait_for(done, timeout=timeout, interval=0.3, what=f"the import task of {image_id} to finish")


# ---------------------------------------------------------------------------------------------
# Disk images made by the real tools (qemu-img from qemu-utils, genisoimage)


def run_tool(*argv: str, cwd: Path | None = None) -> str:
    tool = shutil.which(argv[0])
    if tool is None:
        pytest.fail(f"`{argv[0]}` is not installed (scripts/test.sh installs qemu-utils and genisoimage)")
    proc = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def qemu_info(path: Path) -> dict:
    return json.loads(run_tool("qemu-img", "info", "--output", "json", str(path)))


def random_bytes(n: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (fast: SHAKE-256 stream)."""
    return hashlib.shake_256(seed.to_bytes(8, "little")).digest(n)


class DiskImages:
    """Makes real disk images once per session (cached by name) in a temporary directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, Path] = {}

    def _once(self, name: str, make) -> Path:
        if name not in self._cache:
            path = self.root / name
            make(path)
            self._cache[name] = path
        return self._cache[name]

    def raw_with_data(self, name: str = "data.raw", virtual: int = 64 << 20, data: int = 3 << 20, seed: int = 1) -> Path:
        """A raw disk of `virtual` bytes whose first `data` bytes (and a block near the end) are random."""
        def make(p):
            with open(p, "wb") as f:
                f.write(random_bytes(data, seed))
                f.truncate(virtual)
                f.seek(virtual - (1 << 20))
                f.write(random_bytes(1 << 20, seed + 1))
        return self._once(name, make)

    def qcow2(self, name: str = "good.qcow2", virtual: int = 64 << 20, seed: int = 1) -> Path:
        """A real qcow2 (qemu-img convert of a raw disk with some non-zero data)."""
        src = self.raw_with_data(f"{name}.src.raw", virtual=virtual, seed=seed)
        return self._once(name, lambda p: run_tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(p)))

    def qcow2_with_backing_file(self, name: str = "backed.qcow2") -> Path:
        base = self.qcow2("backing-base.qcow2", seed=7)
        return self._once(name, lambda p: run_tool("qemu-img", "create", "-f", "qcow2", "-b", str(base),
                                                   "-F", "qcow2", str(p)))

    def qcow2_with_backing_to_host_file(self, name: str = "backed-passwd.qcow2") -> Path:
        """The CVE-2015-5163 shape: a raw backing file that is a host file."""
        return self._once(name, lambda p: run_tool("qemu-img", "create", "-f", "qcow2", "-b", "/etc/passwd",
                                                   "-F", "raw", str(p), "1M"))

    def qcow2_with_data_file(self, name: str = "datafile.qcow2") -> Path:
        """CVE-2024-32498 shape: qcow2 whose data lives in an external (raw) file."""
        def make(p):
            run_tool("qemu-img", "create", "-f", "qcow2", "-o", f"data_file={p}.data,data_file_raw=on", str(p), "16M")
        return self._once(name, make)

    def qcow2_huge_virtual(self, name: str = "huge.qcow2", virtual: str = "20T") -> Path:
        return self._once(name, lambda p: run_tool("qemu-img", "create", "-f", "qcow2", str(p), virtual))

    def qcow2_unknown_incompatible_feature(self, name: str = "incompat.qcow2") -> Path:
        """A v3 qcow2 with an incompatible-feature bit no reader knows (bit 63)."""
        good = self.qcow2()
        def make(p):
            data = bytearray(good.read_bytes())
            assert data[:4] == b"QFI\xfb" and int.from_bytes(data[4:8], "big") == 3
            features = int.from_bytes(data[72:80], "big") | (1 << 63)
            data[72:80] = features.to_bytes(8, "big")
            p.write_bytes(bytes(data))
        return self._once(name, make)

    def qcow2_iso_polyglot(self, name: str = "polyglot.qcow2") -> Path:
        """A qcow2 that is also an ISO 9660 image (a primary volume descriptor at 32 KiB)."""
        good = self.qcow2()
        def make(p):
            data = bytearray(good.read_bytes())
            pvd = bytearray(2048)
            pvd[0:7] = b"\x01CD001\x01"
            pvd[80:84] = (64).to_bytes(4, "little")
            pvd[84:88] = (64).to_bytes(4, "big")
            pvd[128:130] = (2048).to_bytes(2, "little")
            pvd[130:132] = (2048).to_bytes(2, "big")
            assert data[0x8000:0x8800] == bytes(2048), "the qcow2 header cluster is not empty at 32 KiB"
            data[0x8000:0x8800] = pvd
            p.write_bytes(bytes(data))
        return self._once(name, make)

    def qed(self, name: str = "x.qed") -> Path:
        return self._once(name, lambda p: run_tool("qemu-img", "create", "-f", "qed", str(p), "16M"))

    def vmdk(self, subformat: str, name: str | None = None) -> Path:
        """`qemu-img convert` of the random raw disk to a vmdk of the given create type."""
        name = name or f"{subformat}.vmdk"
        src = self.raw_with_data("vmdk.src.raw", virtual=32 << 20, seed=11)
        return self._once(name, lambda p: run_tool("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                                                   f"subformat={subformat}", str(src), str(p)))

    def vmdk_sparse_with_descriptor(self, name: str, rewrite) -> Path:
        """A monolithicSparse vmdk whose embedded descriptor is passed through `rewrite(text) -> text`
        (kept at the same length, padded with spaces/newlines)."""
        good = self.vmdk("monolithicSparse")
        def make(p):
            data = bytearray(good.read_bytes())
            assert data[:4] == b"KDMV"
            desc_off = int.from_bytes(data[28:36], "little") * 512
            desc_len = int.from_bytes(data[36:44], "little") * 512
            region = bytes(data[desc_off:desc_off + desc_len])
            text = region.split(b"\0", 1)[0].decode()
            new = rewrite(text).encode()
            assert new != text.encode() and len(new) <= desc_len
            data[desc_off:desc_off + desc_len] = new + bytes(desc_len - len(new))
            p.write_bytes(bytes(data))
        return self._once(name, make)

    def vhd(self, name: str = "x.vhd") -> Path:
        src = self.raw_with_data("vhd.src.raw", virtual=32 << 20, seed=21)
        return self._once(name, lambda p: run_tool("qemu-img", "convert", "-f", "raw", "-O", "vpc", str(src), str(p)))

    def vhdx(self, name: str = "x.vhdx") -> Path:
        src = self.raw_with_data("vhdx.src.raw", virtual=32 << 20, seed=31)
        return self._once(name, lambda p: run_tool("qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(src), str(p)))

    def vdi(self, name: str = "x.vdi") -> Path:
        src = self.raw_with_data("vdi.src.raw", virtual=32 << 20, seed=41)
        return self._once(name, lambda p: run_tool("qemu-img", "convert", "-f", "raw", "-O", "vdi", str(src), str(p)))

    def iso(self, name: str = "x.iso") -> Path:
        def make(p):
            tree = self.root / f"{name}.tree"
            (tree / "boot").mkdir(parents=True, exist_ok=True)
            (tree / "README.txt").write_text("imaged e2e iso\n")
            (tree / "boot" / "blob.bin").write_bytes(random_bytes(2 << 20, 51))
            run_tool("genisoimage", "-quiet", "-o", str(p), "-V", "IMAGEDE2E", "-J", "-r", str(tree))
        return self._once(name, make)


def iso_volume_size(path: Path) -> int:
    """Volume space size × logical block size from the primary volume descriptor (ISO 9660)."""
    with open(path, "rb") as f:
        f.seek(0x8000)
        pvd = f.read(2048)
    assert pvd[1:6] == b"CD001"
    return int.from_bytes(pvd[80:84], "little") * int.from_bytes(pvd[128:130], "little")


def vhd_current_size(path: Path) -> int:
    """`current size` from the VHD footer (the copy at the start of a dynamic disk)."""
    with open(path, "rb") as f:
        footer = f.read(512)
    assert footer[:8] == b"conectix"
    return int.from_bytes(footer[48:56], "big")


@pytest.fixture(scope="session")
def disk(tmp_path_factory) -> DiskImages:
    return DiskImages(tmp_path_factory.mktemp("disks"))


# ---------------------------------------------------------------------------------------------
# Origin: a local HTTP server that web-download imports fetch from


class Origin:
    """A threaded HTTP/1.0 server on a loopback address. Routes map a path to a handler; every
    request is recorded in `hits` (path) so tests can prove a forbidden target was never reached."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.routes: dict[str, callable] = {}
        self.hits: list[str] = []
        self.stop = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                origin.hits.append(path)
                route = origin.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # route builders
    def serve(self, path: str, data, content_type: str = "application/octet-stream") -> str:
        """Serves `data` (bytes or a file path) with a Content-Length."""
        def handler(h):
            body = data if isinstance(data, (bytes, bytearray)) else Path(data).read_bytes()
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        self.routes[path] = handler
        return self.url(path)

    def redirect(self, path: str, location: str, code: int = 302) -> str:
        def handler(h):
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        self.routes[path] = handler
        return self.url(path)

    def slow(self, path: str, data: bytes, chunk: int, delay: float) -> str:
        """Serves `data` (with its Content-Length) `chunk` bytes every `delay` seconds."""
        def handler(h):
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            for off in range(0, len(data), chunk):
                if self.stop.is_set():
                    return
                h.wfile.write(data[off:off + chunk])
                h.wfile.flush()
                time.sleep(delay)
        self.routes[path] = handler
        return self.url(path)

    def endless(self, path: str) -> str:
        """Streams random bytes without a Content-Length until the client goes away."""
        block = random_bytes(1 << 20, 99)
        def handler(h):
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            sent = 0
            while not self.stop.is_set() and sent < (8 << 30):
                h.wfile.write(block)
                sent += len(block)
        self.routes[path] = handler
        return self.url(path)

    def ranged(self, path: str, data: bytes, **options) -> "RangedFile":
        """Serves `data` with byte ranges, a validator and test switches (see `RangedFile`)."""
        served = RangedFile(data, **options)
        self.routes[path] = served.handle
        served.url = self.url(path)
        return served


class RangedFile:
    """One object served as a real origin would: `Range: bytes=a-b` answered 206 with `Content-Range`
    (unless `accept_ranges=False`: the Range header is ignored, 200), an `ETag` and/or `Last-Modified`,
    and `If-Range` honoured (a validator that no longer matches gets the whole object, 200).
    Switches: `rate` throttles each connection (bytes/s); `drop_at` cuts the first answer that reaches
    that offset of the object there, once (the connection is shut); `changed` (new bytes) replaces the
    object and its ETag after the first request. Accounting: `requests` (Range, If-Range, status per
    request), `sent` (body bytes written in all), `max_parallel` (answers in progress at once)."""

    def __init__(self, data: bytes, etag: str | None = '"v1"', last_modified: str | None = None,
                 accept_ranges: bool = True, rate: float | None = None, drop_at: int | None = None,
                 changed: bytes | None = None):
        self.data, self.etag, self.last_modified = data, etag, last_modified
        self.accept_ranges, self.rate, self.drop_at, self.changed = accept_ranges, rate, drop_at, changed
        self.url = ""
        self.requests: list[dict] = []
        self.sent = 0
        self.max_parallel = 0
        self._active = 0
        self._lock = threading.Lock()

    def _version(self, index: int) -> tuple[bytes, str | None]:
        if self.changed is not None and index > 0:
            return self.changed, '"v2"'
        return self.data, self.etag

    def handle(self, h):
        with self._lock:
            index = len(self.requests)
            record = {"range": h.headers.get("Range"), "if_range": h.headers.get("If-Range"), "status": None}
            self.requests.append(record)
            self._active += 1
            self.max_parallel = max(self.max_parallel, self._active)
        record["open"] = True
        try:
            self._answer(h, index, record)
        finally:
            self._close(record)

    def _close(self, record: dict):
        """An answer stops counting as in progress before its last bytes are written: the client may
        send its next request before this thread runs again."""
        with self._lock:
            if record.pop("open", False):
                self._active -= 1

    def _answer(self, h, index: int, record: dict):
        data, etag = self._version(index)
        start, end = 0, len(data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "") if self.accept_ranges else None
        if_range = h.headers.get("If-Range")
        if m and if_range is not None and if_range not in (etag, self.last_modified):
            m = None  # the object changed: the whole of it
        if m:
            start = int(m.group(1))
            end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
            if start >= len(data) or start >= end:
                record["status"] = 416
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        record["status"] = 206 if m else 200
        h.send_response(record["status"])
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(end - start))
        if self.accept_ranges:
            h.send_header("Accept-Ranges", "bytes")
        if m:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if etag:
            h.send_header("ETag", etag)
        if self.last_modified:
            h.send_header("Last-Modified", self.last_modified)
        h.end_headers()
        began, written, offset = time.monotonic(), 0, start
        while offset < end:
            stop = min(end, offset + (64 << 10))
            with self._lock:
                drop = self.drop_at is not None and offset <= self.drop_at < stop
                if drop:
                    stop, self.drop_at = self.drop_at, None
            if stop == end:
                self._close(record)
            with self._lock:
                self.sent += stop - offset  # counted before the write, for the same reason
            h.wfile.write(data[offset:stop])
            h.wfile.flush()
            written += stop - offset
            offset = stop
            if drop:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if self.rate:
                ahead = written / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)



@pytest.fixture(scope="session")
def origin():
    o = Origin()
    yield o
    o.close()


@pytest.fixture(scope="session")
def import_server(tmp_path_factory, origin):
    """A server that may fetch from the origin (127.0.0.1 and exactly its port), short task leases."""
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-import"), "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--task-lease-seconds", "3")
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# The `glance` CLI (python-glanceclient's shell)


class GlanceCLI:
    def __init__(self, base: str, who: str):
        exe = Path(sys.executable).parent / "glance"
        self.exe = str(exe) if exe.exists() else shutil.which("glance")
        if not self.exe:
            raise RuntimeError("the `glance` CLI (python-glanceclient) is not installed")
        self.base = base
        self.who = who
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [self.exe, "--os-image-url", self.base, "--os-auth-token", token(self.who),
               "--os-image-api-version", "2", *args]
        # stdin closed (not /dev/null): glance reads image data from any valid non-tty stdin.
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
        if check and proc.returncode != 0:
            raise OSCError(cmd, proc)
        return proc


def glance_table(stdout: str) -> dict:
    """The `Property | Value` table glance prints for an image, as a dict."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^\|\s*(\S+)\s*\|\s?(.*?)\s*\|$", line)
        if m and m.group(1) != "Property":
            out[m.group(1)] = m.group(2)
    return out


# ---------------------------------------------------------------------------------------------
# TCPRelay: a loopback relay in front of a real server (S3), to watch or cut what imaged sends it


class TCPRelay:
    """Relays every connection to 127.0.0.1:port on to `target`. `down()` closes the port and resets every
    relayed connection (a store that died, without stopping the shared server); `up()` opens the same port
    again. A subclass sees the bytes clients send by overriding `client_sent`."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = None
        self.port = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def client_sent(self, data: bytes) -> None:
        """Called with each chunk a client sends, before it is passed on."""

    def up(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port or 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        self.stopped = threading.Event()
        self.accepting = threading.Thread(target=self._accept, args=(self.listener, self.stopped), daemon=True)
        self.accepting.start()

    def down(self):
        # The accepting thread closes the listener itself (a close from here would leave it listening
        # while that thread sits in accept()); then every relayed connection is cut.
        self.stopped.set()
        self.accepting.join(5)
        with self.lock:
            for c in self.conns:
                try:
                    # RST, as a store that died: the client's pooled connections fail at once.
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def _accept(self, listener, stopped):
        while not stopped.is_set():
            ready, _, _ = select.select([listener], [], [], 0.1)
            if not ready:
                continue
            client, _ = listener.accept()
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        listener.close()

    def _pump(self, client, upstream):
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 60)
                for s in ready:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    if s is client:
                        self.client_sent(data)
                    (upstream if s is client else client).sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


# ---------------------------------------------------------------------------------------------
# A real Keystone (scripts/keystone.sh, provisioned by keystone_env) for imaged in Keystone mode


@contextlib.contextmanager
def keystone_running(ks_dir: Path, admin_password: str):
    """Starts Keystone in ks_dir on a free port and provisions it (keystone_env.provision: projects
    alpha and beta, the imaged service user); yields (keystone_url, info). Stopped on exit."""
    import keystone_env

    port = free_port()
    start = subprocess.run([str(REPO / "scripts" / "keystone.sh"), "start", str(ks_dir), str(port)],
                           capture_output=True, text=True, timeout=400,
                           env={**os.environ, "KEYSTONE_ADMIN_PASSWORD": admin_password})
    assert start.returncode == 0, f"keystone did not start:\n{start.stdout}\n{start.stderr}"
    try:
        keystone_url = f"http://127.0.0.1:{port}/v3"
        yield keystone_url, keystone_env.provision(keystone_url, admin_password)
    finally:
        subprocess.run([str(REPO / "scripts" / "keystone.sh"), "stop", str(ks_dir)], capture_output=True, timeout=60)


def keystone_service_args(keystone_url: str, info: dict, workdir: Path) -> tuple[str, ...]:
    """`imaged serve` options for Keystone mode as the provisioned service user; its password goes to
    workdir/keystone-password (0600), never on the command line."""
    password_file = workdir / "keystone-password"
    password_file.write_text(info["service"]["password"] + "\n")
    password_file.chmod(0o600)
    return ("--keystone-url", keystone_url, "--keystone-user", info["service"]["username"],
            "--keystone-project", info["service"]["project_name"], "--keystone-password-file", str(password_file))


def register_image_service(keystone_url: str, admin_password: str, endpoints: dict[str, str]) -> None:
    """Makes imaged Keystone's image service, as Glance is: one public endpoint per region (region ->
    URL) in place of any the service had, so clients find imaged in their catalog."""
    import openstack

    admin = openstack.connect(load_yaml_config=False, load_envvars=False, auth_url=keystone_url,
                              username="admin", password=admin_password, project_name="admin",
                              user_domain_id="default", project_domain_id="default")
    try:
        service = admin.identity.find_service("glance") or admin.identity.create_service(name="glance", type="image")
        for ep in list(admin.identity.endpoints(service_id=service.id)):
            admin.identity.delete_endpoint(ep)
        for region, url in endpoints.items():
            if not admin.identity.find_region(region):
                admin.identity.create_region(id=region)
            admin.identity.create_endpoint(service_id=service.id, interface="public", url=url, region_id=region)
    finally:
        admin.close()


# ---------------------------------------------------------------------------------------------
# No secret in any log (issue 19): secrets the suite uses are remembered as they appear — static tokens, the
# credentials of every request sent through `requests` (X-Auth-Token, Authorization, ES-API-KEY, passwords in
# bodies, session cookies), session ids and tokens in answers, upload/export URL tokens — plus what a test
# remembers itself (`remember_secret`: CLI-made key secrets). At the end of the session every server log and
# audit file under the pytest temporary directory is searched for them.

SECRETS: set[str] = set()
MIN_SECRET = 8  # shorter strings (a test's "bad" token, say) would match ordinary text


def remember_secret(secret) -> None:
    if isinstance(secret, str) and len(secret) >= MIN_SECRET:
        SECRETS.add(secret)


for _t in TOKENS.values():
    remember_secret(_t["token"])


def _harvest_json(value, keys=("password", "token", "secret", "sessionid", "session_id", "api_key")):
    if isinstance(value, dict):
        for k, v in value.items():
            if k.lower() in keys and isinstance(v, str):
                remember_secret(v)
            else:
                _harvest_json(v, keys)
    elif isinstance(value, list):
        for v in value:
            _harvest_json(v, keys)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _harvest_request(req) -> None:
    h = {k.lower(): _text(v) for k, v in req.headers.items()}  # glanceclient sends some values as bytes
    remember_secret(h.get("x-auth-token"))
    remember_secret(h.get("x-auth-token", "").partition(":")[2])  # imk_<id>:<secret>
    auth = h.get("authorization", "")
    scheme, _, cred = auth.partition(" ")
    if scheme.lower() == "basic":
        try:
            remember_secret(base64.b64decode(cred).decode().partition(":")[2])
        except ValueError:
            pass
    elif scheme.lower() in ("token", "oauth", "bearer"):
        remember_secret(cred)
    remember_secret(h.get("es-api-key", "").partition(":")[2])
    for name in ("sessionid", "avi-sessionid"):
        m = re.search(rf"(?:^|;\s*){name}=([^;]+)", h.get("cookie", ""))
        if m:
            remember_secret(m.group(1))
    body = req.body
    if isinstance(body, (bytes, str)) and len(body) < 65536:
        try:
            _harvest_json(json.loads(body))
        except (ValueError, TypeError, UnicodeDecodeError):
            pass


def _harvest_response(r) -> None:
    for name in ("sessionid", "avi-sessionid"):
        remember_secret(r.cookies.get(name))
    if "json" not in r.headers.get("Content-Type", "") or len(r.content) > 1 << 20:
        return
    text = r.text
    for m in re.finditer(r"/zstack/v1/(?:uploads/[0-9a-f]{32}|exports/[0-9a-f]{32}/[0-9a-f]{32})/([A-Za-z0-9_-]{16,})", text):
        remember_secret(m.group(1))
    if "/accounts/login" in r.request.url or r.request.url.endswith("/login"):
        try:
            body = r.json()
        except ValueError:
            return
        _harvest_json(body, keys=("token", "sessionid"))
        if isinstance(body, dict) and isinstance(body.get("inventory"), dict):
            remember_secret(body["inventory"].get("uuid"))  # a ZStack session id


_original_send = requests.Session.send


def _remembering_send(self, request, **kw):
    try:
        _harvest_request(request)
    except Exception:  # harvesting must never fail a test
        pass
    response = _original_send(self, request, **kw)
    try:
        # A streamed answer is the caller's to read (esdc-api reads Danube's ES-STREAM raw): only its cookies.
        if kw.get("stream"):
            for name in ("sessionid", "avi-sessionid"):
                remember_secret(response.cookies.get(name))
        else:
            _harvest_response(response)
    except Exception:  # harvesting must never fail a test
        pass
    return response


requests.Session.send = _remembering_send


def scan_for_secrets(roots) -> list[str]:
    """`file:line: secret` for every remembered secret in a server log or audit file under `roots`."""
    found = []
    secrets = sorted(SECRETS)
    for root in roots:
        for path in sorted(set(Path(root).rglob("imaged-*.log")) | set(Path(root).rglob("audit.log"))):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for n, line in enumerate(lines, 1):
                for s in secrets:
                    if s in line:
                        found.append(f"{path}:{n}: {s[:4]}… in {line[:200]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory):
    """After every test (and every server) of the session: no remembered secret in any log or audit file."""
    yield
    found = scan_for_secrets([tmp_path_factory.getbasetemp()])
    assert not found, "secrets in logs:\n" + "\n".join(found[:50])


def download_digest(client: "Raw", image_id: str, algorithm: str = "sha512") -> tuple[str, int]:
    """The image's bytes through `algorithm` as they arrive, into one reused 4 MiB buffer: (hex digest, length).
    Multi-GiB downloads stay in constant memory."""
    h, n = hashlib.new(algorithm), 0
    buffer = memoryview(bytearray(4 << 20))
    with client.get(f"/v2/images/{image_id}/file", stream=True, timeout=600) as r:
        assert r.status_code == 200, r.text
        while got := r.raw.readinto(buffer):
            h.update(buffer[:got])
            n += got
    return h.hexdigest(), n
