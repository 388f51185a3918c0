"""Login throttling, the bounded password pool and front-end-scoped sessions (issue 19, points 3 and 6).

Every password login (Avi `/login`, Avi Basic, ZStack `logInByAccount`, Danube `accounts/login`) shares one
back-off kept in the catalog: after 5 failures of an account from one address that pair is locked (1 s,
doubling), answered in each API's own format with `Retry-After`. Other addresses are not locked: the server
listens on 127.0.0.1 and the clients connect from different loopback source addresses (127.0.0.0/8 is all
loopback on Linux), so one test server sees many client addresses.
"""

import base64
import hashlib
import os
import subprocess
import threading
import time
import uuid

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import ImagedServer, imaged_bin, scale_out_config

PASSWORD = "throttle-test-password"


class SourceAddress(HTTPAdapter):
    """Connects from a given local address."""

    def __init__(self, address: str, **kw):
        self.address = address
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kw)


def client(address: str) -> requests.Session:
    s = requests.Session()
    s.mount("http://", SourceAddress(address))
    return s


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def create_account(name: str, *where: str, env=None):
    out = subprocess.run([str(imaged_bin()), "account", "create", name, "--project", "p-alice", "--role", "member",
                          "--password-stdin", *where], input=PASSWORD + "\n", capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ImagedServer(tmp_path_factory.mktemp("login-throttle"))
    s.start()
    create_account("lt-user", "--data-dir", str(s.data_dir))
    yield s
    s.kill()


# One login per path: (response of a try with `password`, whether it was refused as throttled, whether it logged in).

def avi_login(http, base, name, password):
    return http.post(base + "/login", json={"username": name, "password": password}, timeout=30)


def avi_basic(http, base, name, password):
    auth = base64.b64encode(f"{name}:{password}".encode()).decode()
    return http.get(base + "/api/image", headers={"Authorization": f"Basic {auth}"}, timeout=30)


def zstack_login(http, base, name, password):
    return http.put(base + "/zstack/v1/accounts/login",
                    json={"logInByAccount": {"accountName": name, "password": sha512(password)}}, timeout=30)


def danube_login(http, base, name, password):
    return http.post(base + "/api/accounts/login", json={"username": name, "password": password}, timeout=30)


def retry_after(r) -> int:
    value = int(r.headers["Retry-After"])
    assert 1 <= value <= 900, r.headers
    return value


def avi_throttled(r) -> bool:
    if r.status_code != 429:
        assert r.status_code == 401 and r.json() == {"error": "log in failed"}, (r.status_code, r.text)
        return False
    n = retry_after(r)
    assert r.json() == {"error": f"Too many failed login attempts, try again in {n} seconds."}
    assert r.headers["Content-Type"].startswith("application/json")
    return True


def zstack_throttled(r) -> bool:
    # ZStack's shell: 503 with an ErrorCode; a throttled login is still ID.1000 ("Unable to authenticate").
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "ID.1000" and error["description"] == "Unable to authenticate a user", error
    if error["details"] == "wrong account name or password":
        return False
    n = retry_after(r)
    assert error["details"] == f"too many failed logins, retry after {n} seconds"
    return True


def danube_throttled(r) -> bool:
    if r.status_code != 429:
        assert r.status_code == 400 and r.json() == {"detail": "Unable to log in with provided credentials."}, r.text
        return False
    n = retry_after(r)
    assert r.json() == {"detail": f"Request was throttled. Expected available in {n} seconds."}
    return True


def avi_ok(r):
    return r.status_code == 200 and "sessionid" in r.cookies


def basic_ok(r):
    return r.status_code == 200 and "results" in r.json()


def zstack_ok(r):
    return r.status_code == 200 and len(r.json()["inventory"]["uuid"]) == 32


def danube_ok(r):
    return r.status_code == 200 and len(r.json()["token"]) == 40


PATHS = {
    "avi-login": (avi_login, avi_throttled, avi_ok, "127.0.0.11", "127.0.0.21"),
    "avi-basic": (avi_basic, avi_throttled, basic_ok, "127.0.0.12", "127.0.0.22"),
    "zstack": (zstack_login, zstack_throttled, zstack_ok, "127.0.0.13", "127.0.0.23"),
    "danube": (danube_login, danube_throttled, danube_ok, "127.0.0.14", "127.0.0.24"),
}


@pytest.mark.parametrize("path", PATHS)
def test_twenty_wrong_passwords_are_throttled_and_another_address_still_logs_in(srv, path):
    login, throttled, ok, attacker, user = PATHS[path]
    bad = client(attacker)
    answers = [login(bad, srv.url, "lt-user", f"wrong-{i}") for i in range(20)]
    refused = [throttled(r) for r in answers]
    # Five failures are checked, the sixth (right after) is refused without a check; a lock that ends during
    # the run lets one more try through (then 2 s, 4 s...).
    assert refused[:5] == [False] * 5 and refused[5], refused
    assert refused.count(False) <= 8 and refused[-1], refused
    # The right password from the locked address is refused too (it is not even checked)...
    assert throttled(login(bad, srv.url, "lt-user", PASSWORD))
    # ...while the same account from another address logs in at once.
    started = time.monotonic()
    good = login(client(user), srv.url, "lt-user", PASSWORD)
    assert ok(good), (good.status_code, good.text)
    assert time.monotonic() - started < 5


def sessions(srv, address):
    http = client(address)
    avi = avi_login(http, srv.url, "lt-user", PASSWORD)
    zs = zstack_login(http, srv.url, "lt-user", PASSWORD)
    dn = danube_login(http, srv.url, "lt-user", PASSWORD)
    assert avi_ok(avi) and zstack_ok(zs) and danube_ok(dn), (avi.text, zs.text, dn.text)
    return http, avi.cookies["sessionid"], zs.json()["inventory"]["uuid"], dn.json()["token"]


def test_each_front_end_accepts_only_its_own_sessions(srv):
    _, avi_sid, zs_session, dn_token = sessions(srv, "127.0.0.31")
    http = client("127.0.0.31")  # no cookie jar from the logins: only what each probe sends
    base = srv.url

    def avi(sid):
        return http.get(base + "/api/image", cookies={"sessionid": sid}, timeout=30)

    def zstack(sid):
        return http.get(base + "/zstack/v1/images", headers={"Authorization": f"OAuth {sid}"}, timeout=30)

    def danube(token):
        return http.get(base + "/api/image/", headers={"Authorization": f"Token {token}"}, timeout=30)

    # Each front-end's own session works.
    assert avi(avi_sid).status_code == 200 and "results" in avi(avi_sid).json()
    assert zstack(zs_session).status_code == 200 and "inventories" in zstack(zs_session).json()
    assert danube(dn_token).status_code == 200 and danube(dn_token).json()["status"] == "SUCCESS"
    # Another front-end's session is unknown: 401 in Avi's and Danube's formats, ZStack's ID.1001.
    for sid in (zs_session, dn_token):
        r = avi(sid)
        assert r.status_code == 401 and r.json() == {"error": "Authentication credentials were not provided."}, r.text
    for token in (avi_sid, zs_session):
        r = danube(token)
        assert r.status_code == 401 and r.json() == {"detail": "Authentication credentials were not provided."}, r.text
    for sid in (avi_sid, dn_token):
        r = zstack(sid)
        assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001", r.text
    # ZStack's session check answers for ZStack sessions only (the id in the path is the credential, as in ZStack).
    valid = lambda sid: http.get(f"{base}/zstack/v1/accounts/sessions/{sid}/valid", timeout=30)
    assert valid(zs_session).json() == {"valid": True}
    assert valid(avi_sid).json() == {"valid": False} and valid(dn_token).json() == {"valid": False}
    # ZStack's logout cannot end an Avi session either.
    assert http.delete(f"{base}/zstack/v1/accounts/sessions/{avi_sid}", timeout=30).status_code == 200
    assert avi(avi_sid).status_code == 200


def flood_user_and_quiet_login_time(s, address: str):
    """Creates `flood-user` on server `s` and returns a client bound to `address` and its fastest of three
    valid logins on the still quiet server (the yardstick of the flood tests)."""
    create_account("flood-user", "--data-dir", str(s.data_dir))
    user = client(address)
    quiet = []
    for _ in range(3):
        started = time.monotonic()
        assert avi_ok(avi_login(user, s.url, "flood-user", PASSWORD))
        quiet.append(time.monotonic() - started)
    return user, min(quiet)


def test_a_flood_of_bogus_logins_never_holds_a_valid_login_for_seconds(tmp_path):
    """16 clients loop bogus logins (unknown names: still a full PBKDF2 each) from 16 addresses; a valid login
    from another address gets either a session about as fast as on a quiet server, or a fast 503."""
    s = ImagedServer(tmp_path, "--login-concurrency", "2", "--login-queue", "2", "--login-address-lock-after", "100000")
    s.start()
    try:
        user, quiet_time = flood_user_and_quiet_login_time(s, "127.0.0.41")

        stop = threading.Event()
        bogus_statuses: list[int] = []

        def flood(i):
            http = client(f"127.0.1.{i + 1}")
            while not stop.is_set():
                r = avi_login(http, s.url, f"nobody-{uuid.uuid4().hex[:8]}", "not-the-password")
                bogus_statuses.append(r.status_code)
                if r.status_code == 503:
                    assert r.json() == {"error": "Too many logins in progress, try again shortly."}
                    assert r.headers["Retry-After"] == "1"
                    time.sleep(0.02)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            outcomes = []
            for _ in range(10):
                started = time.monotonic()
                r = avi_login(user, s.url, "flood-user", PASSWORD)
                took = time.monotonic() - started
                outcomes.append((r.status_code, round(took, 3)))
                assert r.status_code in (200, 503), r.text
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        print(f"quiet login {quiet_time:.3f} s; under the flood: {outcomes}; bogus answers: "
              f"{bogus_statuses.count(401)} checked, {bogus_statuses.count(503)} refused busy")
        # The pool was full (bogus logins were refused busy) and unknown names were checked (401).
        assert bogus_statuses.count(503) > 0 and bogus_statuses.count(401) > 0
        for status, took in outcomes:
            assert took < 3.0, outcomes
            if status == 200:
                # Two running and two queued ahead at most: about three derivations of waiting.
                assert took < 4 * quiet_time + 1.0, (quiet_time, outcomes)
            else:
                assert took < 1.0, outcomes
    finally:
        s.kill()


def test_one_flooding_address_leaves_room_for_everyone_else(tmp_path):
    """16 threads loop bogus logins from one address: it holds one password slot at most
    (--login-per-client 1), so a valid login from another address always gets a session, about as fast
    as on a quiet server, and the flooder's surplus is refused busy at once."""
    s = ImagedServer(tmp_path, "--login-concurrency", "2", "--login-queue", "2", "--login-per-client", "1",
                     "--login-address-lock-after", "100000")
    s.start()
    try:
        user, quiet_time = flood_user_and_quiet_login_time(s, "127.0.0.62")
        stop = threading.Event()
        statuses: list[int] = []

        def flood():
            http = client("127.0.0.61")
            while not stop.is_set():
                r = avi_login(http, s.url, f"nobody-{uuid.uuid4().hex[:8]}", "not-the-password")
                statuses.append(r.status_code)
                if r.status_code == 503:
                    time.sleep(0.05)

        threads = [threading.Thread(target=flood) for _ in range(16)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            took = []
            for _ in range(6):
                started = time.monotonic()
                r = avi_login(user, s.url, "flood-user", PASSWORD)
                took.append(round(time.monotonic() - started, 3))
                assert avi_ok(r), (r.status_code, r.text)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        print(f"quiet login {quiet_time:.3f} s; valid logins under one address's flood: {took}; flood answers: "
              f"{statuses.count(401)} checked, {statuses.count(503)} refused busy")
        assert statuses.count(401) > 0 and statuses.count(503) > 0
        # One derivation of the flooder may run beside it (and its refused surplus costs some CPU), but a
        # valid login is never queued behind the flood.
        assert max(took) < 4 * quiet_time + 1.5, (quiet_time, took)
    finally:
        s.kill()


@pytest.mark.skipif(not os.environ.get("IMAGED_TEST_POSTGRES_URL") or not os.environ.get("IMAGED_TEST_S3_ENV"),
                    reason="needs PostgreSQL and S3 (scripts/test.sh starts them)")
def test_two_nodes_on_postgres_share_the_count(tmp_path):
    args, env = scale_out_config()
    a = ImagedServer(tmp_path / "a", *args, env=env)
    b = ImagedServer(tmp_path / "b", *args, env=env)
    a.start()
    b.start()
    try:
        create_account("lt-cluster", "--catalog", args[args.index("--catalog") + 1], env=env)
        attacker = client("127.0.0.51")
        # Three failures through A, two through B: five for the pair, wherever they were counted.
        for node in (a, a, a, b, b):
            assert not danube_throttled(danube_login(attacker, node.url, "lt-cluster", "wrong"))
        for node in (a, b):
            assert danube_throttled(danube_login(attacker, node.url, "lt-cluster", "wrong"))
            assert zstack_throttled(zstack_login(attacker, node.url, "lt-cluster", "wrong"))
        assert danube_ok(danube_login(client("127.0.0.52"), b.url, "lt-cluster", PASSWORD))
    finally:
        a.kill()
        b.kill()
