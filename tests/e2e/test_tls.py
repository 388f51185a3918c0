"""HTTPS: `--tls-cert`/`--tls-key` with real openssl clients, requests and the openstack CLI over a
private CA; plain HTTP to the TLS port is closed at once; SIGHUP serves a new certificate to new
connections while an upload started before it finishes on the old one."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import OSC, ImagedServer, Origin, Raw, token, unique, wait_for, wait_status, wait_task_finished


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path) -> Path:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=imaged e2e CA", cwd=d)
    return d / "ca.pem"


def make_server_cert(d: Path, name: str, serial: int) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost signed by the CA, with its own subject and serial."""
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(serial),
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


class TLSServer(ImagedServer):
    """An ImagedServer whose readiness check speaks HTTPS with the test CA."""

    def __init__(self, workdir: Path, ca: Path, *extra: str):
        super().__init__(workdir, *extra)
        self.ca = ca

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if requests.get(self.url + "/healthz", timeout=2, verify=str(self.ca)).status_code == 200:
                    return True
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        return False


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    one = make_server_cert(d, "imaged-one", 1001)
    two = make_server_cert(d, "imaged-two", 2002)
    # The server reads these paths; the SIGHUP test overwrites them.
    shutil.copy(one[0], d / "server.pem")
    shutil.copy(one[1], d / "server.key")
    return {"dir": d, "ca": ca, "one": one, "two": two, "cert": d / "server.pem", "key": d / "server.key"}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    srv = TLSServer(tmp_path_factory.mktemp("tls"), pki["ca"], "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]),
                    # Outbound: HTTPS imports from a loopback origin whose certificate the test CA signed.
                    "--ca-file", str(pki["ca"]), "--import-allow-cidr", "127.0.0.0/8", "--import-allow-port", "any")
    srv.start()
    yield srv
    srv.kill()


def s_client(port: int, ca: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca),
                           "-verify_return_error", "-brief", *flags],
                          input=b"", capture_output=True, timeout=20)


def peer_certificate(port: int, ca: Path) -> dict:
    """The certificate a new connection is served (verified against the CA)."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert()


def common_name(cert: dict) -> str:
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_listen_line_says_https(tls_server):
    assert f"imaged listening on https://127.0.0.1:{tls_server.port}" in tls_server.log_text()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_handshake_succeeds(tls_server, pki, version):
    proc = s_client(tls_server.port, pki["ca"], version)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    assert f"Protocol version: TLSv1.{version[-1]}" in out, out
    assert "Verification: OK" in out, out


def test_tls_1_1_is_refused(tls_server, pki):
    # SECLEVEL=0 lets this OpenSSL offer TLS 1.1 at all: the refusal must come from the server.
    proc = s_client(tls_server.port, pki["ca"], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode != 0, out
    assert "no protocols available" not in out, out   # the client did offer TLS 1.1
    assert "Protocol version" not in out, out          # and no session was established


def test_requests_with_ca_lists_images_and_links_say_https(tls_server, pki):
    s = requests.Session()
    s.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
    s.verify = str(pki["ca"])
    s.headers["X-Auth-Token"] = token("alice")
    created = s.post(tls_server.url + "/v2/images", json={"name": unique("tls"), "disk_format": "raw", "container_format": "bare"})
    assert created.status_code == 201, created.text
    listed = s.get(tls_server.url + "/v2/images")
    assert listed.status_code == 200
    assert created.json()["id"] in [i["id"] for i in listed.json()["images"]]
    versions = s.get(tls_server.url + "/versions").json()
    hrefs = [link["href"] for v in versions["versions"] for link in v["links"]]
    assert hrefs and all(h.startswith(f"https://127.0.0.1:{tls_server.port}/") for h in hrefs), hrefs
    # Without the CA the server's certificate is not trusted.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_server.url + "/healthz", timeout=5, verify=True)


def test_openstack_cli_over_https(tls_server, pki):
    s = requests.Session()
    s.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
    s.verify = str(pki["ca"])
    s.headers["X-Auth-Token"] = token("bob")
    name = unique("tls-osc")
    assert s.post(tls_server.url + "/v2/images", json={"name": name}).status_code == 201
    cli = OSC(tls_server.url, "bob")
    listed = cli.run("--os-cacert", str(pki["ca"]), "image", "list")
    assert name in [i["Name"] for i in listed]
    refused = cli.run("image", "list", check=False)   # no CA: the CLI must not trust the server
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "SSL" in refused.stderr, refused.stderr


def test_plain_http_to_the_tls_port_is_closed_at_once(tls_server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert time.monotonic() - started < 2, "the server kept a plain-HTTP connection open"
    assert b"HTTP/1.1" not in received and b"status" not in received, received
    # At most a TLS alert record (content type 21) before the close.
    assert received == b"" or received[0] == 0x15, received


def test_sighup_new_certificate_for_new_connections_while_upload_in_flight_finishes(tls_server, pki):
    assert common_name(peer_certificate(tls_server.port, pki["ca"])) == "imaged-one"
    s = requests.Session()
    s.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
    s.verify = str(pki["ca"])
    s.headers["X-Auth-Token"] = token("alice")
    image = s.post(tls_server.url + "/v2/images",
                   json={"name": unique("tls-sighup"), "disk_format": "raw", "container_format": "bare"}).json()
    chunk = 64 << 10
    data = hashlib.sha512(b"seed").digest() * (chunk // 64) * 64   # 4 MiB
    sent = threading.Event()
    result: dict = {}

    def body():
        for i in range(0, len(data), chunk):
            if i == 16 * chunk:
                sent.set()
            yield data[i:i + chunk]
            time.sleep(0.05)   # about 3 s in all: the SIGHUP lands in the middle

    def put():
        # http.client: one connection, opened (and its TLS session set up) before the SIGHUP.
        conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, timeout=120,
                                           context=ssl.create_default_context(cafile=str(pki["ca"])))
        conn.request("PUT", f"/v2/images/{image['id']}/file", body=body(), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream", "X-Auth-Token": token("alice"),
                              "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        result["status"], result["body"] = response.status, response.read()
        conn.close()

    uploader = threading.Thread(target=put)
    uploader.start()
    assert sent.wait(30), "the upload did not start"
    shutil.copy(pki["two"][0], pki["cert"])
    shutil.copy(pki["two"][1], pki["key"])
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "TLS certificate reloaded" in tls_server.log_text(), timeout=10, what="the reload")
    new = peer_certificate(tls_server.port, pki["ca"])
    assert common_name(new) == "imaged-two" and new["serialNumber"] == format(2002, "X").rjust(4, "0"), new
    assert uploader.is_alive(), "the upload finished before the reload: the test proves nothing"
    uploader.join(120)
    assert result["status"] == 204, result
    active = wait_status(s_raw(tls_server, pki), image["id"], "active")
    assert active["checksum"] == hashlib.md5(data).hexdigest()
    assert active["size"] == len(data)

    # A certificate file that does not load is logged and the one in use kept.
    pki["cert"].write_text("not a certificate\n")
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "TLS certificate reload failed" in tls_server.log_text(), timeout=10, what="the failed reload")
    assert common_name(peer_certificate(tls_server.port, pki["ca"])) == "imaged-two"
    assert tls_server.proc.poll() is None


def s_raw(srv: TLSServer, pki):
    client = Raw(srv.url, "alice")
    client.session.trust_env = False
    client.session.verify = str(pki["ca"])
    return client


@pytest.fixture
def https_origin(pki):
    """conftest's Origin behind TLS with a certificate of the test CA."""
    origin = Origin()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki["one"][0]), str(pki["one"][1]))
    origin.httpd.socket = context.wrap_socket(origin.httpd.socket, server_side=True)
    yield origin
    origin.close()


def test_https_import_trusts_the_ca_file(tls_server, pki, https_origin, tmp_path):
    data = b"imported over https\n" * 4096
    path = f"/{unique('tls-import')}.raw"
    https_origin.serve(path, data)
    uri = f"https://127.0.0.1:{https_origin.port}{path}"
    alice = s_raw(tls_server, pki)
    iid = alice.create(name=unique("tls-import"), disk_format="raw", container_format="bare")["id"]
    r = alice.post(f"/v2/images/{iid}/import", json={"method": {"name": "web-download", "uri": uri}})
    assert r.status_code == 202, r.text
    image = wait_status(alice, iid, "active", timeout=60)
    assert image["checksum"] == hashlib.md5(data).hexdigest() and image["size"] == len(data)

    # The same import on a server without --ca-file fails verification: nothing is imported.
    plain = ImagedServer(tmp_path / "no-ca", "--import-allow-cidr", "127.0.0.0/8", "--import-allow-port", "any")
    plain.start()
    try:
        bob = Raw(plain.url, "bob")
        other = bob.create(name=unique("tls-import-untrusted"), disk_format="raw", container_format="bare")["id"]
        r = bob.post(f"/v2/images/{other}/import", json={"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 202, r.text
        task = wait_task_finished(bob, other, timeout=60)
        assert task["status"] == "failure", task
        assert "certificate" in task["message"].lower() or "ssl" in task["message"].lower() or "tls" in task["message"].lower(), task
        assert wait_status(bob, other, "queued")["checksum"] is None
    finally:
        plain.kill()


@pytest.fixture(scope="module")
def postgres_tls(pki):
    """A private PostgreSQL (scripts/postgres.sh) that accepts only TLS connections, with a certificate
    of the test CA for 127.0.0.1."""
    from conftest import REPO, free_port
    d = Path(f"/tmp/imaged-pg-tls-{free_port()}")
    port = free_port()
    script = str(REPO / "scripts" / "postgres.sh")
    subprocess.run([script, "start", str(d), str(port)], check=True, capture_output=True, timeout=120)
    data = d / "data"
    shutil.copy(pki["one"][0], data / "tls.crt")
    shutil.copy(pki["one"][1], data / "tls.key")
    with open(data / "imaged.conf", "a") as conf:
        conf.write("ssl = on\nssl_cert_file = 'tls.crt'\nssl_key_file = 'tls.key'\n")
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 md5\n")
    subprocess.run(["chown", "postgres:", data / "tls.crt", data / "tls.key", data / "pg_hba.conf", data / "imaged.conf"], check=True)
    (data / "tls.key").chmod(0o600)
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    subprocess.run(["runuser", "-u", "postgres", "--", str(pg_ctl), "restart", "-w", "-D", str(data), "-l", str(d / "postgres.log")],
                   check=True, capture_output=True, timeout=60, cwd="/")
    yield f"postgres://imaged:imaged-pw@127.0.0.1:{port}/imaged"
    subprocess.run([script, "stop", str(d)], capture_output=True, timeout=60)
    shutil.rmtree(d, ignore_errors=True)


def test_postgres_catalog_sslmode(postgres_tls, pki, tmp_path):
    def serve(name: str, url: str, *extra: str) -> ImagedServer:
        return ImagedServer(tmp_path / name, "--catalog", url, *extra)

    # verify-full with the test CA (from sslrootcert, or from --ca-file): the catalog works over TLS.
    for name, url, extra in [("rootcert", f"{postgres_tls}?schema=tls_a&sslmode=verify-full&sslrootcert={pki['ca']}", ()),
                             ("cafile", f"{postgres_tls}?schema=tls_b&sslmode=verify-full", ("--ca-file", str(pki["ca"])))]:
        srv = serve(name, url, *extra)
        srv.start()
        try:
            alice = Raw(srv.url, "alice")
            made = alice.create(name=unique("pg-tls"))
            assert made["id"] in [i["id"] for i in alice.get("/v2/images").json()["images"]]
        finally:
            srv.kill()
    # verify-full without the CA: the server's certificate is not trusted and the node does not come up.
    untrusted = serve("untrusted", f"{postgres_tls}?schema=tls_c&sslmode=verify-full")
    with pytest.raises(RuntimeError):
        untrusted.start(timeout=15)
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.log_text(), untrusted.log_text()[-2000:]
    # require encrypts without checking the certificate (libpq's meaning); disable is refused by pg_hba (hostssl only).
    srv = serve("require", f"{postgres_tls}?schema=tls_d&sslmode=require")
    srv.start()
    srv.kill()
    plain = serve("disable", f"{postgres_tls}?schema=tls_e&sslmode=disable")
    with pytest.raises(RuntimeError):
        plain.start(timeout=15)
    assert "no encryption" in plain.log_text(), plain.log_text()[-2000:]   # pg_hba refused a plain connection


def test_avi_login_and_refs_over_https(tls_server, pki):
    """A vendor API over HTTPS: Avi's /login with a password (what TLS is for), then its image
    objects, whose refs carry the https base URL."""
    from conftest import imaged_bin
    out = subprocess.run([str(imaged_bin()), "account", "create", "avi-tls", "--project", "p-alice", "--role", "member",
                          "--password-stdin", "--data-dir", str(tls_server.data_dir)],
                         input="avi-tls-password\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = requests.Session()
    s.trust_env = False
    s.verify = str(pki["ca"])
    login = s.post(tls_server.url + "/login", json={"username": "avi-tls", "password": "avi-tls-password"})
    assert login.status_code == 200, login.text
    assert s.cookies.get("sessionid") and s.cookies.get("csrftoken")
    headers = {"X-CSRFToken": s.cookies["csrftoken"], "Referer": tls_server.url + "/", "X-Avi-Tenant": "p-alice"}
    made = s.post(tls_server.url + "/api/image", json={"name": unique("avi-tls")}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["url"].startswith(f"https://127.0.0.1:{tls_server.port}/api/image/image-"), made.json()
    listed = s.get(tls_server.url + "/api/image", headers=headers).json()
    assert made.json()["uuid"] in [o["uuid"] for o in listed["results"]]


def test_config_check_refuses_files_that_do_not_load(pki):
    from conftest import config_check as check

    good = check("--tls-cert", str(pki["one"][0]), "--tls-key", str(pki["one"][1]), "--ca-file", str(pki["ca"]))
    assert good.returncode == 0, good.stderr
    assert f"tls: certificate {pki['one'][0]}" in good.stdout and f"ca-file: {pki['ca']}" in good.stdout, good.stdout
    mismatched = check("--tls-cert", str(pki["one"][0]), "--tls-key", str(pki["two"][1]))   # another certificate's key
    assert mismatched.returncode != 0 and "do not load" in mismatched.stderr, mismatched.stderr
    alone = check("--tls-cert", str(pki["one"][0]))
    assert alone.returncode != 0 and "go together" in alone.stderr, alone.stderr
    bad_ca = check("--ca-file", str(pki["one"][1]))   # a key, not a certificate
    assert bad_ca.returncode != 0 and "--ca-file" in bad_ca.stderr, bad_ca.stderr
