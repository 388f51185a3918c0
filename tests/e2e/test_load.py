"""A bounded mixed load with `wrk` (Debian) across the front-ends — reads through OpenStack, Avi, ZStack and
Danube, downloads, metadata writes and uploads — then every image's bytes re-verified: zero errors, nothing lost
or corrupted. The figures are printed in a `LOAD` line."""

import hashlib
import re
import shutil
import subprocess

import pytest
import requests

from conftest import REPO, ImagedServer, Raw, imaged_bin, random_bytes, upload

DURATION = 15


def test_mixed_load_loses_and_corrupts_nothing(tmp_path):
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: scripts/test.sh installs the Debian package"
    srv = ImagedServer(tmp_path / "loaded")
    srv.start()
    try:
        out = subprocess.run([str(imaged_bin()), "account", "create", "ld-alice", "--project", "p-alice", "--role", "member",
                              "--password-stdin", "--data-dir", str(srv.data_dir)], input="load-alice-password\n",
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        alice = Raw(srv.url, "alice")
        # known images to download, and a pool of queued images to upload into
        known = {}
        for i in range(8):
            data = random_bytes(256 << 10, 300 + i)
            image = alice.create(name=f"known-{i}", disk_format="raw", container_format="bare")
            assert upload(alice, image["id"], data).status_code == 204
            known[image["id"]] = hashlib.md5(data).hexdigest()
        pool = [alice.create(name=f"pool-{i}", disk_format="raw", container_format="bare")["id"] for i in range(400)]
        payload = random_bytes(64 << 10, 399)
        (tmp_path / "payload").write_bytes(payload)
        # sessions of the vendor front-ends, as their clients hold them
        avi = requests.post(srv.url + "/login", data={"username": "ld-alice", "password": "load-alice-password"})
        zs = requests.put(srv.url + "/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "ld-alice", "password": hashlib.sha512(b"load-alice-password").hexdigest()}}).json()["inventory"]["uuid"]
        dn = requests.post(srv.url + "/api/accounts/login/", json={"username": "ld-alice", "password": "load-alice-password"}).json()["token"]
        lines = [
            "header\topenstack\tX-Auth-Token: alicetok",
            f"header\tavi\tCookie: sessionid={avi.cookies['sessionid']}; csrftoken={avi.cookies['csrftoken']}",
            f"header\tzstack\tAuthorization: OAuth {zs}",
            f"header\tdanube\tAuthorization: Token {dn}",
            "header\tdanube\tES-STREAM: es",
        ]
        some = next(iter(known))
        for front, path in [("openstack", "/v2/images?limit=25"), ("openstack", f"/v2/images/{some}"), ("avi", "/api/image?page_size=10"),
                            ("zstack", "/zstack/v1/images?limit=10&q=status=Ready"), ("danube", "/api/image/?full=true"),
                            ("openstack", "/v2/images?limit=25&sort=name:asc"), ("danube", "/api/image/known-1/")]:
            lines.append(f"get\t{front}\t{path}")
        lines += [f"download\t{i}" for i in known] + [f"pool\t{i}" for i in pool]
        (tmp_path / "plan").write_text("\n".join(lines) + "\n")
        # wrk's own 2 s timeout would count a slow answer on a loaded machine as a failure; a server that
        # answers at all within 60 s answers every request.
        run = subprocess.run([wrk, "-t2", "-c8", f"-d{DURATION}s", "--timeout", "60s", "-s", str(REPO / "tests" / "load" / "mixed.lua"), srv.url],
                             capture_output=True, text=True, timeout=DURATION + 180,
                             env={"LOAD_PLAN": str(tmp_path / "plan"), "LOAD_PAYLOAD": str(tmp_path / "payload"), "LOAD_THREADS": "2",
                                  "PATH": "/usr/bin:/bin"})
        print(run.stdout)
        m = re.search(r"LOAD requests=(\d+) errors=(\d+) socket_errors=(\d+) uploads=(\d+)", run.stdout)
        assert m, run.stdout + run.stderr
        requests_done, errors, socket_errors, uploads = map(int, m.groups())
        assert requests_done > 500 and errors == 0 and socket_errors == 0, run.stdout
        assert uploads > 0
        # every image intact: the known ones unchanged, every upload complete with the payload's digest
        md5 = hashlib.md5(payload).hexdigest()
        listed = []
        marker = None
        while True:
            page = alice.get("/v2/images", params={"limit": 200, **({"marker": marker} if marker else {})}).json()["images"]
            listed += page
            if len(page) < 200:
                break
            marker = page[-1]["id"]
        by_id = {i["id"]: i for i in listed}
        for iid, digest in known.items():
            assert by_id[iid]["checksum"] == digest
            assert hashlib.md5(alice.get(f"/v2/images/{iid}/file").content).hexdigest() == digest
        uploaded = [by_id[i] for i in pool if by_id[i]["status"] == "active"]
        assert len(uploaded) >= uploads - 8  # uploads still in flight when wrk stopped may have been cut
        for image in uploaded:
            assert image["checksum"] == md5 and image["size"] == len(payload)
            assert hashlib.md5(alice.get(f"/v2/images/{image['id']}/file").content).hexdigest() == md5
        for iid in pool:
            assert by_id[iid]["status"] in ("active", "queued")  # none half-written
        assert srv.temporaries() == []
        assert len([i for i in listed if i["name"].startswith("load-")]) > 0
    finally:
        srv.kill()
