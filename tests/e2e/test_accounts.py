"""Local accounts and API keys (`imaged account …`) on a running server, and where secrets never go."""

import re
import subprocess

import pytest
import requests

from conftest import ImagedServer, imaged_bin, unique, wait_for

PASSWORD = "Corr3ct-Horse-" + unique("pw")


def imaged(*args, stdin=None):
    proc = subprocess.run([str(imaged_bin()), *args], input=stdin, capture_output=True, text=True, timeout=120)
    return proc


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # debug logging: the most a log could ever say about a request
    s = ImagedServer(tmp_path_factory.mktemp("accounts"), "--log-level", "debug")
    s.start()
    yield s
    s.kill()


def test_accounts_and_api_keys_work_while_the_server_runs_and_secrets_stay_secret(srv):
    data = str(srv.data_dir)
    created = imaged("account", "create", "ops", "--project", "p-ops", "--role", "member", "--password-stdin",
                     "--data-dir", data, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "account ops created" in created.stdout and "project p-ops" in created.stdout
    again = imaged("account", "create", "ops", "--project", "p-ops", "--role", "member", "--data-dir", data)
    assert again.returncode != 0 and "already exists" in again.stderr

    key = imaged("account", "key", "create", "ops", "--data-dir", data)
    assert key.returncode == 0, key.stderr
    key_id = re.search(r"^key id: (imk_[0-9a-f]+)$", key.stdout, re.M).group(1)
    secret = re.search(r"^secret: (\S+)$", key.stdout, re.M).group(1)
    assert len(secret) == 43

    # The key authenticates on the OpenStack API as the account's project and role.
    auth = {"X-Auth-Token": f"{key_id}:{secret}"}
    r = requests.post(srv.url + "/v2/images", json={"name": "by-key"}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "p-ops"
    listed = requests.get(srv.url + "/v2/images", headers=auth, timeout=30)
    assert [i["name"] for i in listed.json()["images"]] == ["by-key"]
    bad = requests.get(srv.url + "/v2/images", headers={"X-Auth-Token": f"{key_id}:{secret[:-1]}x"}, timeout=30)
    assert bad.status_code == 401

    listing = imaged("account", "list", "--data-dir", data)
    assert listing.returncode == 0
    assert "ops\tproject=p-ops\troles=member\tpassword=yes\tkeys=" + key_id in listing.stdout

    # Neither the password nor the secret is in any log, response, listing or file of the data dir.
    texts = {"server log": srv.all_logs(), "account list": listing.stdout + listing.stderr,
             "responses": r.text + listed.text + bad.text, "key create stderr": key.stderr}
    for path in srv.data_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    for name, text in texts.items():
        assert PASSWORD not in text, f"password found in {name}"
        assert secret not in text, f"API key secret found in {name}"
    catalog = (srv.data_dir / "catalog.sqlite").read_bytes().decode("latin-1")
    assert "pbkdf2-sha256-sha512hex$600000$" in catalog or "pbkdf2-sha256-sha512hex$600000$" in texts.get(str(srv.data_dir / "catalog.sqlite-wal"), "")

    # Revoking the key takes effect at once (keys are not cached).
    assert imaged("account", "key", "delete", key_id, "--data-dir", data).returncode == 0
    assert requests.get(srv.url + "/v2/images", headers=auth, timeout=30).status_code == 401
    assert imaged("account", "delete", "ops", "--data-dir", data).returncode == 0


def test_account_commands_refuse_bad_input(srv):
    data = str(srv.data_dir)
    short = imaged("account", "create", "x1", "--project", "p", "--role", "reader", "--password-stdin",
                   "--data-dir", data, stdin="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    no_role = imaged("account", "create", "x2", "--project", "p", "--data-dir", data)
    assert no_role.returncode != 0 and "at least one role" in no_role.stderr
    bad_name = imaged("account", "create", "bad name;", "--project", "p", "--role", "reader", "--data-dir", data)
    assert bad_name.returncode != 0 and "must be 1 to 64 characters" in bad_name.stderr
    assert imaged("account", "key", "create", "nobody", "--data-dir", data).returncode != 0
    quota = imaged("quota", "set", "p", "--image-size", "12 parsecs", "--data-dir", data)
    assert quota.returncode != 0 and "is not a size" in quota.stderr


def test_quota_set_applies_to_the_running_server(srv):
    data = str(srv.data_dir)
    project_token = {"X-Auth-Token": "bobtok"}
    out = imaged("quota", "set", "p-bob", "--image-count", "1", "--data-dir", data)
    assert out.returncode == 0 and "image_count_total=1" in out.stdout
    # The server remembers a project's overrides for 5 s at most.
    wait_for(lambda: requests.get(srv.url + "/v2/info/usage", headers=project_token, timeout=30)
             .json()["usage"]["image_count_total"]["limit"] == 1, timeout=8, what="override seen by the server")
    first = requests.post(srv.url + "/v2/images", json={"name": unique("q")}, headers=project_token, timeout=30)
    assert first.status_code == 201, first.text
    second = requests.post(srv.url + "/v2/images", json={"name": unique("q")}, headers=project_token, timeout=30)
    assert second.status_code == 413 and "image_count_total" in second.text
    usage = requests.get(srv.url + "/v2/info/usage", headers=project_token, timeout=30).json()["usage"]
    assert usage["image_count_total"] == {"limit": 1, "usage": 1}
    assert imaged("quota", "clear", "p-bob", "--data-dir", data).returncode == 0
    wait_for(lambda: requests.post(srv.url + "/v2/images", json={}, headers=project_token, timeout=30).status_code == 201,
             timeout=8, what="override cleared")
