"""Scalr, round two (issue 18), on the default `imaged serve` (no options but the data dir): Scalr 7's 422
`ConfigurationMismatch` for settings that conflict, `size`/`type` (and `cloudFeatures`) stored when given, the OS
catalogue (`…/os/` in the three scopes, `os.id` checked against it, extended by `--scalr-os-file`) and `lastUsed`
kept by the core when a VM is recorded. Driven by `scalr-ctl` where it has the command, signed raw HTTP for the
statuses (scalr-ctl ignores them); every refusal is shown to change nothing."""

import json
import re
import subprocess
from datetime import datetime, timezone

import pytest
import requests

from conftest import ImagedServer, Raw, imaged_bin
from test_scalr import PASSWORDS, Key, ScalrCtl, error, imaged, registration, signed


def setup_accounts(srv: ImagedServer) -> None:
    for name, project, role in [("sc-admin", "admin", "admin"), ("sc-alice", "p-alice", "member")]:
        imaged("account", "create", name, "--project", project, "--role", role, "--password-stdin", "--data-dir", str(srv.data_dir),
               stdin=PASSWORDS[name] + "\n")
    srv.keys = {"admin": Key(srv, "sc-admin", "admin"), "alice": Key(srv, "sc-alice", "p-alice")}


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-scalr-round2"))
    srv.start()
    setup_accounts(srv)
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def ctl(sc, tmp_path_factory):
    return ScalrCtl(sc, tmp_path_factory.mktemp("scalr-ctl-alice"), sc.keys["alice"], sc.keys["admin"])


def env_path(sc, who: str = "alice") -> str:
    return f"/api/v1beta0/user/{sc.keys[who].env_id}/images/"


def everything(sc) -> list:
    """Every registration the admin sees in alice's environment, as Scalr renders them."""
    return signed(sc, sc.keys["alice"], "GET", env_path(sc)).json()["data"]


def iso_seconds(text: str) -> float:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


# ---------------------------------------------------------------------------------------------------------------
# The OS catalogue

def test_os_catalogue_through_scalr_ctl_in_every_scope(sc, ctl):
    listed = ctl("os", "list", "--json")
    ids = [o["id"] for o in listed["data"]]
    assert {"ubuntu-16-04", "ubuntu-22-04", "centos-7-x", "debian-12-x", "redhat-9-x", "windows-2022", "unknown-os"} <= set(ids)
    assert len(ids) == len(set(ids)) and len(ids) <= 100 and listed["pagination"] == {"first": None, "last": None, "prev": None, "next": None}
    jammy = ctl("os", "get", "--osId", "ubuntu-22-04", "--json")["data"]
    assert jammy == {"id": "ubuntu-22-04", "name": "Ubuntu 22.04 Jammy", "family": "ubuntu", "generation": "22.04", "version": "22.04"}
    assert ctl("global", "os", "get", "--osId", "centos-7-x", "--json")["data"] == \
        {"id": "centos-7-x", "name": "CentOS 7.X Final", "family": "centos", "generation": "7", "version": "7.X"}
    # filters and pages, as for images
    ubuntus = ctl("account", "os", "list", "--filters", "family=ubuntu", "--json")["data"]
    assert signed(sc, sc.keys["alice"], "GET", "/api/v1beta0/account/os/", "family=ubuntu").json()["data"] == ubuntus
    assert ubuntus and all(o["family"] == "ubuntu" for o in ubuntus) and "ubuntu-22-04" in [o["id"] for o in ubuntus]
    assert [o["id"] for o in ctl("os", "list", "--filters", "family=windows,generation=2019", "--json")["data"]] == ["windows-2019"]
    page = ctl("os", "list", "--max-results", "3", "--page-number", "2", "--json")
    assert [o["id"] for o in page["data"]] == ids[3:6]
    env = sc.keys["alice"].env_id
    assert page["pagination"]["next"] == f"/api/v1beta0/user/{env}/os/?maxResults=3&pageNum=3"
    # Scalr's answers for what is not there
    alice = sc.keys["alice"]
    os_path = f"/api/v1beta0/user/{env}/os/"
    assert error(signed(sc, alice, "GET", os_path + "plan9-4/"), 404, "ObjectNotFound") == "Unable to find requested OS"
    assert "ObjectNotFound" in ctl("os", "get", "--osId", "plan9-4", "--json", ok=False)
    assert error(signed(sc, alice, "GET", os_path + "not_an_id/"), 404, "EndpointNotFound")
    assert error(signed(sc, alice, "GET", os_path, "colour=red"), 400, "InvalidStructure") == \
        "Unsupported filter. Fields which are available for filtering: [id, name, family, generation]"
    assert error(signed(sc, alice, "POST", os_path, body=b'{"id": "mine-1"}'), 404, "EndpointNotFound")
    assert error(signed(sc, alice, "DELETE", os_path + "ubuntu-22-04/"), 404, "EndpointNotFound")
    assert signed(sc, alice, "GET", os_path + "ubuntu-22-04/").json()["data"] == jammy


def test_os_id_is_checked_against_the_catalogue(sc, ctl):
    before = everything(sc)
    # scalr-ctl prints Scalr's error; raw HTTP shows the status; nothing is registered
    out = ctl("images", "register", "--stdin", stdin={**registration("os-unknown", ami="ami-os-unknown"), "os": {"id": "plan9-4"}}, ok=False)
    assert "InvalidValue: OS with id 'plan9-4' not found." in out
    r = signed(sc, sc.keys["alice"], "POST", env_path(sc), body=json.dumps({**registration("os-bare", ami="ami-os-bare"), "os": "plan9-4"}).encode())
    assert error(r, 400, "InvalidValue") == "OS with id 'plan9-4' not found."
    assert everything(sc) == before
    # a catalogue id registers, the bare-id form too; the image keeps it
    made = ctl("images", "register", "--stdin", stdin={**registration("os-jammy", ami="ami-os-jammy"), "os": {"id": "ubuntu-22-04"}})["data"]
    assert made["os"] == {"id": "ubuntu-22-04"}
    bare = signed(sc, sc.keys["alice"], "POST", env_path(sc), body=json.dumps({**registration("os-win", ami="ami-os-win"), "os": "windows-2019"}).encode())
    assert bare.status_code == 201 and bare.json()["data"]["os"] == {"id": "windows-2019"}
    assert [i["name"] for i in ctl("images", "list", "--filters", "os=ubuntu-22-04", "--json")["data"]] == ["os-jammy"]
    assert error(signed(sc, sc.keys["alice"], "GET", env_path(sc), "os=no%20such"), 400, "InvalidValue") == "Invalid identifier of the OS"
    # os is create-only in Scalr: a PATCH naming it is refused, whatever the id, and changes nothing
    for os_id in ["centos-7-x", "plan9-4"]:
        r = signed(sc, sc.keys["alice"], "PATCH", env_path(sc) + made["id"] + "/", body=json.dumps({"os": {"id": os_id}}).encode())
        assert error(r, 400, "InvalidStructure").startswith("You are trying to set the property os which either is not alterable")
    assert signed(sc, sc.keys["alice"], "GET", env_path(sc) + made["id"] + "/").json()["data"] == made


def test_the_operator_extends_the_catalogue_with_a_file(tmp_path):
    systems = tmp_path / "os.json"
    systems.write_text(json.dumps([
        {"id": "alpine-3-19", "name": "Alpine 3.19", "family": "alpine", "generation": "3", "version": "3.19"},
        {"id": "ubuntu-22-04", "name": "Ubuntu 22.04 LTS (site build)", "family": "ubuntu", "generation": "22.04", "version": "22.04.4"},
        {"id": "centos-6-x", "status": "inactive"},
    ]))
    srv = ImagedServer(tmp_path / "srv", "--scalr-os-file", systems)
    srv.start()
    try:
        setup_accounts(srv)
        alice = srv.keys["alice"]
        os_path = f"/api/v1beta0/user/{alice.env_id}/os/"
        assert signed(srv, alice, "GET", os_path + "alpine-3-19/").json()["data"] == \
            {"id": "alpine-3-19", "name": "Alpine 3.19", "family": "alpine", "generation": "3", "version": "3.19"}
        assert signed(srv, alice, "GET", os_path + "ubuntu-22-04/").json()["data"]["name"] == "Ubuntu 22.04 LTS (site build)"
        assert error(signed(srv, alice, "GET", os_path + "centos-6-x/"), 404, "ObjectNotFound")
        ids = [o["id"] for o in signed(srv, alice, "GET", os_path).json()["data"]]
        assert "alpine-3-19" in ids and "centos-6-x" not in ids and "centos-7-x" in ids
        path = f"/api/v1beta0/user/{alice.env_id}/images/"
        r = signed(srv, alice, "POST", path, body=json.dumps({**registration("alpine-img", ami="ami-alpine"), "os": {"id": "alpine-3-19"}}).encode())
        assert r.status_code == 201 and r.json()["data"]["os"] == {"id": "alpine-3-19"}
        r = signed(srv, alice, "POST", path, body=json.dumps({**registration("c6-img", ami="ami-c6"), "os": {"id": "centos-6-x"}}).encode())
        assert error(r, 400, "InvalidValue") == "OS with id 'centos-6-x' not found."
        assert [i["name"] for i in signed(srv, alice, "GET", path).json()["data"]] == ["alpine-img"]
        config = subprocess.run([str(imaged_bin()), "config", "check", "--data-dir", str(srv.data_dir), "--scalr-os-file", str(systems)],
                                capture_output=True, text=True, timeout=60)
        assert config.returncode == 0 and str(systems) in config.stdout, config.stdout + config.stderr
    finally:
        srv.kill()
    # a file that is not a catalogue stops the server at start, naming the option and the entry
    for bad, why in [("{}", "expected a JSON array"), ('[{"id": "x y", "name": "n", "family": "f", "generation": "", "version": ""}]', "entry 1"),
                     ('[{"id": "ok-1", "name": "n", "family": "f", "generation": "1"}]', "'version' must be a string")]:
        systems.write_text(bad)
        out = subprocess.run([str(imaged_bin()), "serve", "--data-dir", str(tmp_path / "bad"), "--listen", "127.0.0.1:0",
                              "--scalr-os-file", str(systems)], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "--scalr-os-file" in out.stderr and why in out.stderr, out.stderr


# ---------------------------------------------------------------------------------------------------------------
# size, type, cloudFeatures, and 422 ConfigurationMismatch

def test_size_type_and_cloud_features_are_stored_when_given(sc, ctl):
    body = {**registration("sized-img", ami="ami-sized"), "size": 8, "type": "ebs-hvm",
            "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}
    made = ctl("images", "register", "--stdin", stdin=body)["data"]
    assert (made["size"], made["type"], made["cloudFeatures"]) == (8, "ebs-hvm", {"type": "AwsImageCloudFeatures", "virtualization": "hvm"})
    assert ctl("images", "get", "--imageId", made["id"], "--json")["data"] == made
    # the global scope too (the admin's key), and a VMware image's vCenter host
    glob = ctl("global", "images", "register", "--stdin", stdin={
        **registration("vmw-img", location="dc1", ami="vm-1234"), "cloudPlatform": "vmware", "size": 40,
        "cloudFeatures": {"type": "VmwareImageCloudFeatures", "vCenterHost": "vc1.example"}})["data"]
    assert (glob["size"], glob["type"], glob["cloudFeatures"]["vCenterHost"]) == (40, None, "vc1.example")
    # not given: null as before; scalr-ctl's update (a PATCH without the create-only members) keeps them
    plain = ctl("images", "register", "--stdin", stdin=registration("plain-img", ami="ami-plain"))["data"]
    assert (plain["size"], plain["type"], plain["cloudFeatures"]) == (None, None, {"type": "AwsImageCloudFeatures"})
    renamed = ctl("images", "update", "--imageId", made["id"], "--stdin", stdin={"name": "sized-img-2"})["data"]
    assert (renamed["name"], renamed["size"], renamed["type"]) == ("sized-img-2", 8, "ebs-hvm")
    r = signed(sc, sc.keys["alice"], "PATCH", env_path(sc) + made["id"] + "/", body=b'{"size": 16}')
    assert error(r, 400, "InvalidStructure").startswith("You are trying to set the property size which either is not alterable")
    assert signed(sc, sc.keys["alice"], "GET", env_path(sc) + made["id"] + "/").json()["data"] == renamed
    ctl("global", "images", "delete", "--imageId", glob["id"])


@pytest.mark.parametrize("extra, status, code, message", [
    ({"size": "8"}, 400, "InvalidValue", "Property size must be a positive integer."),
    ({"size": 0}, 400, "InvalidValue", "Property size must be a positive integer."),
    ({"size": 8.5}, 400, "InvalidValue", "Property size must be a positive integer."),
    ({"type": "ssd"}, 400, "InvalidValue", "Invalid type of the Image: one of ebs, ebs-hvm, instance-store, instance-store-hvm."),
    ({"cloudFeatures": {"type": "CloudFeatures"}}, 400, "InvalidValue", "Invalid cloudFeatures.type value"),
    ({"cloudFeatures": {"virtualization": "hvm"}}, 400, "InvalidStructure", "Missed property 'cloudFeatures.type'"),
    ({"cloudFeatures": {"type": "AwsImageCloudFeatures", "colour": "red"}}, 400, "InvalidStructure",
     "You are trying to set the property cloudFeatures.colour which does not exist."),
    ({"cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "fast"}}, 400, "InvalidValue", "Invalid cloudFeatures.virtualization value"),
    # well-formed settings that conflict: Scalr 7's 422 ConfigurationMismatch
    ({"type": "ebs", "cloudPlatform": "gce", "cloudLocation": ""}, 422, "ConfigurationMismatch",
     "The Image type ebs is only used on the ec2 platform, not on gce."),
    ({"cloudFeatures": {"type": "AwsImageCloudFeatures"}, "cloudPlatform": "openstack"}, 422, "ConfigurationMismatch",
     "cloudFeatures of type AwsImageCloudFeatures cannot be applied to an Image on the openstack platform."),
    ({"cloudFeatures": {"type": "VmwareImageCloudFeatures", "vCenterHost": "vc1"}}, 422, "ConfigurationMismatch",
     "cloudFeatures of type VmwareImageCloudFeatures cannot be applied to an Image on the ec2 platform."),
    ({"type": "ebs", "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}, 422, "ConfigurationMismatch",
     "The Image type ebs conflicts with cloudFeatures.virtualization hvm."),
    ({"type": "instance-store-hvm", "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "paravirtual"}}, 422,
     "ConfigurationMismatch", "The Image type instance-store-hvm conflicts with cloudFeatures.virtualization paravirtual."),
])
def test_refused_settings_answer_scalrs_codes_and_change_nothing(sc, extra, status, code, message):
    before = everything(sc)
    body = json.dumps({**registration("refused-img", ami="ami-refused"), **extra}).encode()
    assert error(signed(sc, sc.keys["alice"], "POST", env_path(sc), body=body), status, code) == message
    assert everything(sc) == before


def test_scalr_ctl_shows_the_422(sc, ctl):
    before = everything(sc)
    out = ctl("images", "register", "--stdin", stdin={**registration("mismatch-img", ami="ami-mismatch"), "type": "ebs",
                                                      "cloudFeatures": {"type": "AwsImageCloudFeatures", "virtualization": "hvm"}}, ok=False)
    assert "ConfigurationMismatch: The Image type ebs conflicts with cloudFeatures.virtualization hvm." in out
    assert everything(sc) == before


# ---------------------------------------------------------------------------------------------------------------
# lastUsed

def test_last_used_is_set_when_a_vm_is_recorded(sc, ctl):
    made = ctl("images", "register", "--stdin", stdin=registration("used-later", ami="ami-used-later"))["data"]
    assert made["lastUsed"] is None
    token = requests.post(sc.url + "/api/accounts/login/", json={"username": "sc-admin", "password": PASSWORDS["sc-admin"]}).json()["token"]
    admin = {"Authorization": f"Token {token}", "ES-STREAM": "es"}
    start = datetime.now(timezone.utc).timestamp()
    assert requests.put(sc.url + "/api/image/used-later/vm/web01/", json={}, headers=admin).json()["result"] == ["web01"]
    after = datetime.now(timezone.utc).timestamp()
    got = ctl("images", "get", "--imageId", made["id"], "--json")["data"]
    first = iso_seconds(got["lastUsed"])
    assert int(start) <= first <= after + 1
    assert {k: v for k, v in got.items() if k != "lastUsed"} == {k: v for k, v in made.items() if k != "lastUsed"}
    # forgetting the VM is no use: lastUsed stays; the list and a second VM agree
    assert requests.delete(sc.url + "/api/image/used-later/vm/web01/", json={}, headers=admin).json()["result"] == []
    assert ctl("images", "get", "--imageId", made["id"], "--json")["data"]["lastUsed"] == got["lastUsed"]
    assert requests.put(sc.url + "/api/image/used-later/vm/web02/", json={}, headers=admin).json()["result"] == ["web02"]
    again = [i for i in ctl("images", "list", "--filters", "name=used-later", "--json")["data"]][0]
    assert iso_seconds(again["lastUsed"]) >= first
    # an edit through Scalr or OpenStack is no use either
    ctl("images", "update", "--imageId", made["id"], "--stdin", stdin={"deprecated": True})
    assert Raw(sc.url, "alice").patch(f"/v2/images/{made['id']}", [{"op": "add", "path": "/note", "value": "x"}]).status_code == 200
    assert ctl("images", "get", "--imageId", made["id"], "--json")["data"]["lastUsed"] == again["lastUsed"]
    assert requests.delete(sc.url + "/api/image/used-later/vm/web02/", json={}, headers=admin).json()["result"] == []


# ---------------------------------------------------------------------------------------------------------------
# Other divergences a Scalr client would hit (found reviewing the front-end against the reference)

def test_the_seeds_register_body_and_a_preflight(sc, ctl):
    """The seed page's example body (global scope, every member, `ImageCloudFeatures` on ec2) registers with real values;
    OPTIONS is answered before authentication as Scalr's preflight middleware does; a scope filter Scalr does not know
    is refused as Scalr refuses it."""
    seed = {"architecture": "i386", "cloudFeatures": {"type": "ImageCloudFeatures"}, "cloudImageId": "ami-seed0001", "cloudInitInstalled": True,
            "cloudLocation": "us-east-1", "cloudPlatform": "ec2", "deprecated": True, "name": "seed-example", "os": {"id": "ubuntu-22-04"},
            "scalrAgentInstalled": True, "size": 1, "type": "ebs"}
    made = ctl("global", "images", "register", "--stdin", stdin=seed)["data"]
    assert {k: made[k] for k in seed} == seed and made["scope"] == "scalr" and made["lastUsed"] is None
    ctl("global", "images", "delete", "--imageId", made["id"])
    path = env_path(sc)
    browser = requests.options(sc.url + path, headers={"Origin": "https://ui.example", "User-Agent": "Mozilla/5.0",
                                                       "Access-Control-Request-Method": "POST"})
    assert browser.status_code == 200 and browser.content == b""
    assert browser.headers["Access-Control-Allow-Methods"] == "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"
    assert browser.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Scalr-Date, X-Scalr-Key-Id, X-Scalr-Signature, X-Scalr-Debug"
    plain = requests.options(sc.url + path, headers={"User-Agent": ""})
    assert plain.status_code == 200 and plain.headers["Allow"] == "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"
    assert "Access-Control-Allow-Methods" not in plain.headers
    assert error(signed(sc, sc.keys["alice"], "GET", path, "scope=galaxy"), 400, "InvalidValue") == "Unexpected scope value"
    assert error(signed(sc, sc.keys["alice"], "GET", path, "scope="), 400, "InvalidValue") == "Invalid scope value"
    assert all(i["scope"] == "environment" for i in signed(sc, sc.keys["alice"], "GET", path, "scope=environment").json()["data"])
