"""Connection limits: idle sockets and a slowloris head are cut off at --header-timeout, a keep-alive
connection at --idle-timeout, a stalled upload after --upload-stall-seconds (its image queued again),
the N+1th connection of one address and of the node are closed when accepted — while a normal client
keeps being served — and /metrics counts each refusal by reason."""

from __future__ import annotations

import gc
import os
import re
import resource
import selectors
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import ImagedServer, Raw, config_check, unique, wait_for, wait_status

HEADER_TIMEOUT = 2
IDLE_TIMEOUT = 3
STALL_SECONDS = 2


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    srv = ImagedServer(tmp_path_factory.mktemp("limits"), "--header-timeout", str(HEADER_TIMEOUT),
                       "--idle-timeout", str(IDLE_TIMEOUT), "--max-connections-per-client", "600",
                       "--min-upload-rate", "4096", "--upload-stall-seconds", str(STALL_SECONDS))
    srv.start()
    yield srv
    srv.kill()


def refusals(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^imaged_connections_refused_total\{reason="([a-z_]+)"\} (\S+)$', text, re.M)}


def open_gauge(url: str) -> float:
    m = re.search(r"^imaged_connections_open (\S+)$", requests.get(url + "/metrics", timeout=10).text, re.M)
    assert m, "imaged_connections_open missing"
    return float(m.group(1))


def wait_closed(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (EOF or reset); fails after `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail(f"the server kept the connection open for more than {limit}s")
    return time.monotonic() - started


def p99_of_gets(client: Raw, n: int = 200) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get("/v2/images?limit=5")
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    times.sort()
    return times[int(len(times) * 0.99) - 1]


def test_idle_sockets_and_slowloris_are_cut_off_while_normal_clients_are_served(limited):
    before = refusals(limited.url)
    client = Raw(limited.url, "alice")
    client.create(name=unique("limits"))
    p99_of_gets(client, 20)   # warm up
    quiet = p99_of_gets(client)

    # 500 connections that never send a byte.
    idle = []
    opened = time.monotonic()
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
        s.setblocking(False)
        idle.append(s)
    # A slowloris client: one byte of a request head every 0.5 s.
    slowloris_cut = {}

    def slowloris():
        head = b"GET /v2/images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: alicetok\r\nX-Padding: " + b"a" * 200
        with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as s:
            started = time.monotonic()
            try:
                for byte in head:
                    s.sendall(bytes([byte]))
                    time.sleep(0.5)
                slowloris_cut["after"] = None
            except (BrokenPipeError, ConnectionResetError):
                slowloris_cut["after"] = time.monotonic() - started
            s.settimeout(0.5)
            try:
                slowloris_cut["answer"] = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                slowloris_cut["answer"] = b""

    attacker = threading.Thread(target=slowloris)
    attacker.start()
    # Measured once the node holds them all: what the held sockets cost others, not what accepting a
    # flood of 500 connects costs (the node accepts ListeningSocket.acceptsPerWakeUp per wake-up; a debug
    # build takes several ms for a batch). The header deadline (2 s) is still far.
    wait_for(lambda: open_gauge(limited.url) >= 501, timeout=5, what="the 500 idle connections to be accepted")

    # Meanwhile the normal client keeps being served.
    loaded = p99_of_gets(client)

    sel = selectors.DefaultSelector()
    for s in idle:
        sel.register(s, selectors.EVENT_READ)
    closed_at = []
    deadline = opened + HEADER_TIMEOUT + 3
    while len(closed_at) < len(idle) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"", data   # closed without an answer
            sel.unregister(s)
            closed_at.append(time.monotonic() - opened)
    for s in idle:
        s.close()
    attacker.join(30)

    print(f"LIMITS p99 quiet={quiet * 1000:.1f}ms under-attack={loaded * 1000:.1f}ms idle-closed={min(closed_at):.2f}-{max(closed_at):.2f}s "
          f"slowloris-cut={slowloris_cut['after']}s")
    assert len(closed_at) == 500, f"only {len(closed_at)} of 500 idle connections were closed"
    assert min(closed_at) >= HEADER_TIMEOUT - 0.5, min(closed_at)   # not before the header timeout
    assert max(closed_at) <= HEADER_TIMEOUT + 3, max(closed_at)
    assert slowloris_cut["after"] is not None, "the slowloris client sent its whole head"
    # Cut at the header timeout; the client notices at its next send or two (0.5 s apart).
    assert HEADER_TIMEOUT - 0.5 <= slowloris_cut["after"] <= HEADER_TIMEOUT + 3, slowloris_cut
    assert slowloris_cut["answer"] == b""
    # 2x the quiet figure (a 10 ms floor: loopback GETs take a few ms, and scheduler noise is not the server).
    assert loaded <= 2 * max(quiet, 0.010), f"p99 quiet {quiet * 1000:.1f} ms, under attack {loaded * 1000:.1f} ms"
    after = refusals(limited.url)
    assert after["header_timeout"] - before["header_timeout"] >= 501, (before, after)


def test_keep_alive_connection_is_closed_after_the_idle_timeout(limited):
    before = refusals(limited.url)
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        waited = wait_closed(s, IDLE_TIMEOUT + 3)
    # The idle timeout (3 s), not the header timeout (2 s), applies between requests.
    assert IDLE_TIMEOUT - 0.5 <= waited <= IDLE_TIMEOUT + 2, waited
    assert refusals(limited.url)["idle"] - before["idle"] >= 1


def test_stalled_upload_is_cut_off_and_its_image_queued_again(limited):
    before = refusals(limited.url)
    client = Raw(limited.url, "alice")
    image = client.create(name=unique("stalled"), disk_format="raw", container_format="bare")
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as s:
        s.sendall((f"PUT /v2/images/{image['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: alicetok\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n").encode())
        s.sendall(b"x" * 100_000)
        wait_status(client, image["id"], "saving", timeout=10)
        waited = wait_closed(s, STALL_SECONDS + 5)   # then nothing more is sent
    assert waited <= STALL_SECONDS + 3, waited
    queued = wait_status(client, image["id"], "queued", timeout=15)
    assert queued.get("checksum") is None and queued.get("size") is None, queued
    assert refusals(limited.url)["slow_upload"] - before["slow_upload"] == 1


def test_connection_caps_per_client_and_per_node(tmp_path):
    srv = ImagedServer(tmp_path, "--max-connections", "8", "--max-connections-per-client", "5", "--header-timeout", "10")
    srv.start()
    try:
        gc.collect()   # requests' readiness probe keeps its connection until its session is collected
        time.sleep(0.3)
        def connect(source: str) -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.connect(("127.0.0.1", srv.port))
            return s

        def refused(s: socket.socket) -> bool:
            s.settimeout(0.7)
            try:
                return s.recv(1) == b""
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False   # still open: admitted

        held = [connect("127.0.0.1") for _ in range(5)]
        assert not any(refused(s) for s in held)
        sixth = connect("127.0.0.1")
        assert refused(sixth), "the 6th connection of one address was admitted"
        # Another address still gets in, up to the node's 8.
        held += [connect("127.0.0.2") for _ in range(3)]
        assert not any(refused(s) for s in held[5:])
        ninth = connect("127.0.0.3")
        assert refused(ninth), "the 9th connection of the node was admitted"
        for s in held + [sixth, ninth]:
            s.close()
        time.sleep(0.3)
        counts = refusals(srv.url)
        assert counts["per_client"] == 1 and counts["max_connections"] == 1, counts
        # Everything released: only the /metrics request itself is open (the previous one may take a moment to go).
        wait_for(lambda: open_gauge(srv.url) == 1, timeout=5, what="imaged_connections_open to be 1")
    finally:
        srv.kill()


def handshakes_done(port: int, count: int, within: float) -> tuple[int, list[socket.socket]]:
    """Starts `count` non-blocking connects to `port` at once; returns how many finished their handshake
    within `within` seconds (a SYN the kernel dropped is retried only after 1 s), and the sockets."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        socks.append(s)
    done = 0
    deadline = time.monotonic() + within
    while done < count and (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(timeout=left):
            sel.unregister(key.fileobj)
            if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done += 1
    sel.close()
    return done, socks


BURST = 400   # past Hummingbird's backlog of 256


@pytest.mark.parametrize("backlog", [None, 64])
def test_a_burst_of_connects_waits_in_the_listen_backlog(tmp_path, backlog):
    """A node that is busy (here: stopped) when 400 clients connect at once: the kernel completes their
    handshakes into the listen backlog, 4096 by default (capped by net.core.somaxconn), so none loses its
    SYN and waits a second for the retry; `--listen-backlog` sets it. Once the node runs again it serves
    every one of them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < BURST + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    extra = ["--listen-backlog", str(backlog)] if backlog else []
    srv = ImagedServer(tmp_path, "--max-connections-per-client", str(BURST + 100), *extra)
    srv.start()
    socks: list[socket.socket] = []
    try:
        somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
        expected = min(backlog or 4096, somaxconn)
        if backlog is None and expected < BURST:
            pytest.skip(f"net.core.somaxconn is {somaxconn}: the kernel caps any backlog under this burst")
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            done, socks = handshakes_done(srv.port, BURST, within=0.8)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        if backlog is None:
            assert done == BURST, f"only {done} of {BURST} connects finished while the node was busy"
        else:
            # Linux admits backlog + 1 into a full queue; the rest wait for their SYN's retry.
            assert expected <= done <= expected + 1, f"{done} connects finished with a backlog of {backlog}"
        # Running again: every connection, queued or retried, gets its answer.
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answered = 0
        for s in socks:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            answered += data.startswith(b"HTTP/1.1 200")
        assert answered == BURST
    finally:
        for s in socks:
            s.close()
        srv.kill()


def test_the_listen_backlog_is_shown_and_checked(tmp_path):
    def check(*args: str):
        return config_check("--data-dir", str(tmp_path / "d"), *args)
    shown = check("--listen-backlog", "1024")
    assert shown.returncode == 0, shown.stderr
    assert "listen backlog 1024" in shown.stdout
    assert "listen backlog 4096" in check().stdout
    refused = check("--listen-backlog", "0")
    assert refused.returncode != 0
    assert "--listen-backlog must be at least 1" in refused.stderr
