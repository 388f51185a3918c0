"""imaged in Keystone mode, against a real Keystone (PyPI, SQLite, fernet tokens, gunicorn).

scripts/keystone.sh starts Keystone; keystone_env provisions projects alpha and beta with an admin,
a member and a reader each, and the `imaged` service user. imaged is registered in Keystone's
catalog as the image service, so the clients find it the way they find Glance: the `openstack` CLI
and openstacksdk log in with passwords and never see a static token.
"""

import json
import os
import subprocess
import time

import openstack
import pytest
import requests

import keystone_env
from conftest import (ImagedServer, keystone_running, keystone_service_args, openstack_cli, register_image_service,
                      unique)

ADMIN_PASSWORD = "admin-secret"
# Short, so the revocation test does not wait long; the benchmark uses the default (300 s).
CACHE_SECONDS = 3


class Cloud:
    def __init__(self, keystone_url, info, server):
        self.keystone_url = keystone_url
        self.info = info
        self.server = server

    def user(self, name):
        return self.info["users"][name]

    def project_id(self, name):
        return self.info["projects"][name]

    def token(self, name):
        u = self.user(name)
        return keystone_env.token(self.keystone_url, name, u["password"], u["project"])

    def sdk(self, name):
        u = self.user(name)
        return openstack.connect(load_yaml_config=False, load_envvars=False, auth_url=self.keystone_url,
                                 username=name, password=u["password"], project_name=u["project"],
                                 user_domain_id="default", project_domain_id="default",
                                 region_name="RegionOne", identity_api_version="3", image_api_version="2")

    def osc(self, name, *args, json_out=True, check=True):
        """The real `openstack` CLI, logged in with a password: endpoint from Keystone's catalog."""
        u = self.user(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = os.devnull
        cmd = [openstack_cli(), "--os-auth-url", self.keystone_url, "--os-identity-api-version", "3",
               "--os-username", name, "--os-password", u["password"], "--os-project-name", u["project"],
               "--os-user-domain-id", "default", "--os-project-domain-id", "default",
               "--os-region-name", "RegionOne", "--os-image-api-version", "2", *args]
        if json_out:
            cmd += ["-f", "json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180,
                              stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
        if check:
            assert proc.returncode == 0, f"{' '.join(args)} as {name}: {proc.stderr}"
            return json.loads(proc.stdout) if json_out and proc.stdout.strip() else proc.stdout
        return proc

    def raw(self, method, path, token, **kw):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["X-Auth-Token"] = token
        return requests.request(method, self.server.url + path, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with keystone_running(tmp_path_factory.mktemp("keystone"), ADMIN_PASSWORD) as (keystone_url, info):
        work = tmp_path_factory.mktemp("imaged-keystone")
        server = ImagedServer(work, *keystone_service_args(keystone_url, info, work),
                              "--keystone-cache-seconds", str(CACHE_SECONDS))
        try:
            server.start()
            # imaged is the cloud's image service: clients find it in the catalog.
            register_image_service(keystone_url, ADMIN_PASSWORD, {"RegionOne": server.url})
            yield Cloud(keystone_url, info, server)
        finally:
            server.kill()


def raw_image(tmp_path, size=4096):
    path = tmp_path / f"{unique('disk')}.raw"
    path.write_bytes(os.urandom(size))
    return path


def test_owner_is_the_keystone_project_and_private_images_stay_private(cloud, tmp_path):
    disk = raw_image(tmp_path)
    created = cloud.osc("alpha-member", "image", "create", "--private", "--disk-format", "raw", "--container-format",
                        "bare", "--file", str(disk), unique("alpha-private"))
    iid = created["id"]
    assert created["owner"] == cloud.project_id("alpha")
    assert created["visibility"] == "private" and created["status"] == "active"

    # beta sees nothing of it: 404 (not 403), and not in its lists
    proc = cloud.osc("beta-member", "image", "show", iid, check=False)
    assert proc.returncode != 0 and "No Image found" in proc.stderr
    beta = cloud.sdk("beta-member")
    assert iid not in [i.id for i in beta.image.images()]
    with pytest.raises(openstack.exceptions.NotFoundException):
        beta.image.get_image(iid)
    assert cloud.raw("GET", f"/v2/images/{iid}", cloud.token("beta-admin")).status_code == 200  # admin is global
    assert cloud.raw("GET", f"/v2/images/{iid}/file", cloud.token("beta-member")).status_code == 404

    # the other alpha users see it; the data comes back intact for the member
    alpha = cloud.sdk("alpha-member")
    assert iid in [i.id for i in alpha.image.images()]
    out = tmp_path / "out.raw"
    cloud.osc("alpha-member", "image", "save", "--file", str(out), iid, json_out=False)
    assert out.read_bytes() == disk.read_bytes()


def test_other_project_cannot_change_a_public_image(cloud):
    # publicize_image is admin-only: the member gets 403, alpha's admin may
    # (a failing `openstack image create` dies on its closed stdin before printing the status: SDK here)
    with pytest.raises(openstack.exceptions.ForbiddenException):
        cloud.sdk("alpha-member").image.create_image(name=unique("not-allowed"), visibility="public")
    # (`openstack image create` without --file reads its closed stdin under password auth: SDK here)
    created = cloud.sdk("alpha-admin").image.create_image(name=unique("alpha-public"), visibility="public",
                                                          disk_format="raw", container_format="bare")
    image = cloud.osc("alpha-member", "image", "show", created.id)
    iid = image["id"]
    assert image["visibility"] == "public" and image["owner"] == cloud.project_id("alpha")

    beta = cloud.sdk("beta-member")
    assert beta.image.get_image(iid).name == image["name"]
    proc = cloud.osc("beta-member", "image", "set", "--name", "hijacked", iid, json_out=False, check=False)
    assert proc.returncode != 0 and "403" in proc.stderr
    with pytest.raises(openstack.exceptions.ForbiddenException):
        beta.image.delete_image(iid)
    r = cloud.raw("PATCH", f"/v2/images/{iid}", cloud.token("beta-member"),
                  headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                  data=json.dumps([{"op": "replace", "path": "/name", "value": "x"}]))
    assert r.status_code == 403
    assert cloud.osc("alpha-member", "image", "show", iid)["name"] == image["name"]
    # the owning project's member may change it
    cloud.osc("alpha-member", "image", "set", "--property", "os_distro=debian", iid, json_out=False)
    assert cloud.sdk("beta-reader").image.get_image(iid).os_distro == "debian"


def test_shared_image_appears_for_the_member_project_only_after_it_accepts(cloud, tmp_path):
    disk = raw_image(tmp_path)
    image = cloud.osc("alpha-member", "image", "create", "--shared", "--disk-format", "raw", "--container-format",
                      "bare", "--file", str(disk), unique("alpha-shared"))
    iid = image["id"]
    beta_project = cloud.project_id("beta")
    member = cloud.osc("alpha-member", "image", "add", "project", iid, beta_project)
    assert member["status"] == "pending" and member["member_id"] == beta_project

    # pending: readable (and bootable) by beta, but not in beta's default list
    beta = cloud.sdk("beta-member")
    assert iid not in [i.id for i in beta.image.images()]
    assert beta.image.get_image(iid).id == iid
    # only beta decides its membership: the owner gets 403
    r = cloud.raw("PUT", f"/v2/images/{iid}/members/{beta_project}", cloud.token("alpha-member"),
                  json={"status": "accepted"})
    assert r.status_code == 403

    cloud.osc("beta-member", "image", "set", "--accept", iid, json_out=False)
    assert iid in [i["ID"] for i in cloud.osc("beta-member", "image", "list")]
    members = beta.image.members(iid)
    assert [(m.member_id, m.status) for m in members] == [(beta_project, "accepted")]
    out = tmp_path / "shared.out"
    cloud.osc("beta-member", "image", "save", "--file", str(out), iid, json_out=False)
    assert out.read_bytes() == disk.read_bytes()

    # a member may not re-share it
    r = cloud.raw("POST", f"/v2/images/{iid}/members", cloud.token("beta-member"), json={"member": "someone"})
    assert r.status_code == 403


def test_reader_lists_and_shows_but_cannot_download_or_change(cloud, tmp_path):
    disk = raw_image(tmp_path)
    iid = cloud.osc("alpha-member", "image", "create", "--private", "--disk-format", "raw", "--container-format",
                    "bare", "--file", str(disk), unique("for-reader"))["id"]
    assert iid in [i["ID"] for i in cloud.osc("alpha-reader", "image", "list")]
    assert cloud.osc("alpha-reader", "image", "show", iid)["id"] == iid
    proc = cloud.osc("alpha-reader", "image", "save", "--file", str(tmp_path / "nope"), iid, json_out=False, check=False)
    # This openstacksdk does not check the status of GET /file: it hashes the 403 body and reports
    # a checksum mismatch (it would do the same against Glance). What matters: no image bytes.
    assert proc.returncode != 0 and "Unable to download image" in proc.stderr
    nope = tmp_path / "nope"
    assert not nope.exists() or nope.read_bytes() != disk.read_bytes()
    r = cloud.raw("GET", f"/v2/images/{iid}/file", cloud.token("alpha-reader"))
    assert r.status_code == 403 and r.content != disk.read_bytes()
    with pytest.raises(openstack.exceptions.ForbiddenException):
        cloud.sdk("alpha-reader").image.create_image(name=unique("reader-create"))
    with pytest.raises(openstack.exceptions.ForbiddenException):
        cloud.sdk("alpha-reader").image.delete_image(iid)


def test_revoked_token_is_refused_within_the_cache_ttl(cloud):
    tok = cloud.token("beta-member")
    assert cloud.raw("GET", "/v2/images", tok).status_code == 200
    admin_tok = keystone_env.token(cloud.keystone_url, "admin", ADMIN_PASSWORD, "admin")
    keystone_env.revoke(cloud.keystone_url, admin_tok, tok)
    revoked_at = time.monotonic()
    deadline = revoked_at + CACHE_SECONDS + 5
    while True:
        status = cloud.raw("GET", "/v2/images", tok).status_code
        if status == 401:
            break
        assert status == 200
        assert time.monotonic() < deadline, "revoked token still accepted after the cache TTL"
        time.sleep(0.2)
    assert time.monotonic() - revoked_at <= CACHE_SECONDS + 5
    # and it stays refused
    assert cloud.raw("GET", "/v2/images", tok).status_code == 401


def test_wrong_or_missing_token_is_401_with_www_authenticate(cloud):
    expected = f'Keystone uri="{cloud.keystone_url}"'
    for tok in ["not-a-token", "gAAAAABforged-fernet-token", None]:
        r = cloud.raw("GET", "/v2/images", tok)
        assert r.status_code == 401, tok
        assert r.headers["WWW-Authenticate"] == expected
        assert "requires authentication" in r.text
    # discovery stays anonymous
    assert cloud.raw("GET", "/versions", None).status_code == 200
    # a valid token of another service does not vouch for a bad one
    r = cloud.raw("GET", "/v2/images", "bogus", headers={"X-Service-Token": cloud.token("alpha-member")})
    assert r.status_code == 401


def test_admin_sees_every_project_and_usage_is_per_project(cloud):
    beta_private = cloud.sdk("beta-member").image.create_image(name=unique("beta-private"), visibility="private")
    admin = cloud.sdk("alpha-admin")
    assert beta_private.id in [i.id for i in admin.image.images()]
    assert admin.image.get_image(beta_private.id).owner == cloud.project_id("beta")
    usage = cloud.raw("GET", "/v2/info/usage", cloud.token("beta-reader")).json()["usage"]
    assert usage["image_count_total"]["usage"] >= 1 and usage["image_count_total"]["limit"] == -1
    alpha_ids = {i.id for i in cloud.sdk("alpha-member").image.images()}
    assert beta_private.id not in alpha_ids


def test_no_credential_reaches_imaged_logs(cloud):
    tok = cloud.token("alpha-member")
    assert cloud.raw("GET", "/v2/images", tok).status_code == 200
    assert cloud.raw("GET", "/v2/images", tok + "x").status_code == 401
    logs = cloud.server.all_logs()
    assert "/v2/images" in logs  # the log is there and records requests
    secrets = [cloud.info["service"]["password"], tok, *(u["password"] for u in cloud.info["users"].values())]
    for secret in secrets:
        assert secret not in logs


def console_login(cloud, form):
    """The web console's login form as a browser posts it; returns the session and the answer."""
    import re
    s = requests.Session()
    page = s.get(cloud.server.url + "/console/login", timeout=30)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(cloud.server.url + "/console/login", data={"csrf": csrf, **form}, allow_redirects=False, timeout=60)
    return s, r


def test_console_signs_in_through_keystone_and_logout_revokes_the_token(cloud):
    import subprocess
    from conftest import imaged_bin

    # The login form offers Keystone first, with the project and the default domain.
    page = requests.get(cloud.server.url + "/console/login", timeout=30).text
    assert '<option value="keystone" selected>Keystone</option>' in page and 'name="domain" autocomplete="off" value="Default"' in page
    u = cloud.user("alpha-member")
    image = requests.post(cloud.server.url + "/v2/images", headers={"X-Auth-Token": cloud.token("alpha-member")}, timeout=30,
                          json={"name": unique("ks-console"), "disk_format": "raw", "container_format": "bare"}).json()

    # Wrong password, or a project the user has no role on: refused, no session.
    for bad in [{"password": "wrong-" + u["password"], "project": "alpha"}, {"password": u["password"], "project": "beta"}]:
        _, r = console_login(cloud, {"source": "keystone", "username": "alpha-member", "domain": "Default", **bad})
        assert r.status_code == 401 and "Keystone refused these credentials" in r.text
        assert "imaged_console=" not in r.headers.get("Set-Cookie", "")

    s, r = console_login(cloud, {"source": "keystone", "username": "alpha-member", "password": u["password"],
                                 "project": "alpha", "domain": "Default"})
    assert r.status_code == 303 and r.headers["Location"] == "/console/images"
    cookie = s.cookies.get("imaged_console")
    assert cookie.startswith("ks1.") and u["password"] not in cookie  # sealed: neither token nor password readable
    set_cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/console" in set_cookie
    images = s.get(cloud.server.url + "/console/images", timeout=30)
    assert images.status_code == 200
    assert '<span class="user" title="user">alpha-member</span>' in images.text and '<span class="project" title="project">alpha</span>' in images.text
    assert image["id"] in images.text  # the project's image, through the same policy as the API
    assert s.get(cloud.server.url + "/console/admin", timeout=30).status_code == 403  # a member is no admin

    # A tampered cookie is no session.
    forged = requests.get(cloud.server.url + "/console/images", cookies={"imaged_console": cookie[:-4] + "AAAA"},
                          allow_redirects=False, timeout=30)
    assert forged.status_code == 303 and forged.headers["Location"].startswith("/console/login")

    # Logout revokes the Keystone token: the same cookie, replayed, opens nothing any more.
    import re
    csrf = re.search(r'name="csrf" value="([^"]+)"', images.text).group(1)
    out = s.post(cloud.server.url + "/console/logout", data={"csrf": csrf}, allow_redirects=False, timeout=30)
    assert out.status_code == 303
    replay = requests.get(cloud.server.url + "/console/images", cookies={"imaged_console": cookie}, allow_redirects=False, timeout=30)
    assert replay.status_code == 303 and replay.headers["Location"].startswith("/console/login")

    # Local accounts still sign in on a Keystone-mode server, by choosing them.
    password = "Local-" + unique("pw")
    proc = subprocess.run([str(imaged_bin()), "account", "create", unique("local"), "--project", "p-local", "--role", "member",
                           "--password-stdin", "--data-dir", str(cloud.server.data_dir)], input=password + "\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.split()[1]
    _, r = console_login(cloud, {"source": "local", "username": name, "password": password})
    assert r.status_code == 303 and not r.cookies.get("imaged_console", "").startswith("ks1.")
