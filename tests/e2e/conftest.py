"""End-to-end fixtures: the real `imaged` binary, driven by the real OpenStack clients.

The session fixture `server` starts `$IMAGED_BIN` (default `.build/debug/imaged`) on a free
loopback port with a temporary data dir and a static token file, waits for `/healthz`, and
kills it at the end. Tests that need their own process (the restart test) use `ImagedServer`
directly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ImagedServer:
    """One `imaged serve` process on loopback; can be SIGKILLed and started again on the same data dir."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
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
                    "--token-file", str(self.token_file), "--log-level", "info"]
            busy_until = time.monotonic() + 300
            while True:
                try:
                    self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
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

    def force_status(self, image_id: str, status: str) -> None:
        """Test seam: sets an image's status directly in the SQLite catalog.

        Image data upload is not implemented yet, so no API call can make an image `active`.
        Deactivate/reactivate need an active image; this stands in for an upload until there is one.
        The server owns its catalog file (it locks the data dir and caches rows it has read), so the
        seam stops it, writes, and starts it again on the same port.
        """
        running = self.proc is not None and self.proc.poll() is None
        port = self.port
        if running:
            self.kill(signal.SIGTERM)
        db = sqlite3.connect(self.data_dir / "catalog.sqlite", timeout=30)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            with db:
                cur = db.execute("UPDATE images SET status = ?, version = version + 1 WHERE id = ?", (status, image_id))
                assert cur.rowcount == 1, f"no image {image_id} in the catalog"
        finally:
            db.close()
        if running:
            self.start(port=port)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged"))
    srv.start()
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

    def run(self, *args: str, json_out: bool = True, check: bool = True):
        cmd = [self.exe, "--os-auth-type", "admin_token", "--os-endpoint", self.base + "/v2",
               "--os-token", token(self.who), "--os-image-api-version", "2", *args]
        if json_out:
            cmd += ["-f", "json"]
        # stdin must be *closed*, not /dev/null: `image create` reads image data from a non-tty stdin.
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=120,
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
