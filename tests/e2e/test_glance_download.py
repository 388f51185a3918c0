"""glance-download (issue 20, point 4): two imaged in Keystone mode against a real Keystone, the
second registered in Keystone's catalog as the image service of RegionTwo. An import on the first
finds RegionTwo's endpoint in the caller's catalog, reads the remote image's record and bytes with
the caller's token (through the URL guard: loopback is opened with --import-allow-cidr and the
remote's port, as an operator opens an internal endpoint), verifies the digests, and copies the
disk/container formats and Glance's default property prefixes (hw_, trait:, os_distro, ...)."""

import hashlib
import os

import pytest
import requests

import keystone_env
from conftest import ImagedServer, keystone_running, keystone_service_args, register_image_service, unique, wait_for

ADMIN_PASSWORD = "admin-secret"


class Region:
    def __init__(self, server, token):
        self.server, self.token = server, token

    def call(self, method, path, **kw):
        headers = {"X-Auth-Token": self.token, "Accept": "application/json", **kw.pop("headers", {})}
        return requests.request(method, self.server.url + path, headers=headers, timeout=60, **kw)

    def create(self, **body):
        r = self.call("POST", "/v2/images", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def patch(self, iid, ops):
        r = self.call("PATCH", f"/v2/images/{iid}", json=ops,
                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        assert r.status_code == 200, r.text
        return r.json()

    def show(self, iid):
        return self.call("GET", f"/v2/images/{iid}").json()

    def newest_task(self, iid):
        def done():
            tasks = self.call("GET", f"/v2/images/{iid}/tasks").json()["tasks"]
            return tasks[0] if tasks and tasks[0]["status"] in ("success", "failure") else None
        return wait_for(done, timeout=60, interval=0.2, what=f"the import task of {iid}")


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    with keystone_running(tmp_path_factory.mktemp("keystone-gd"), ADMIN_PASSWORD) as (keystone_url, info):
        work = tmp_path_factory.mktemp("imaged-gd")
        keystone_args = keystone_service_args(keystone_url, info, work)
        servers = []
        try:
            remote = ImagedServer(work / "region-two", *keystone_args)
            remote.start()
            servers.append(remote)
            local = ImagedServer(work / "region-one", *keystone_args, "--import-allow-cidr", "127.0.0.1/32",
                                 "--import-allow-port", str(remote.port), "--task-lease-seconds", "3")
            local.start()
            servers.append(local)
            register_image_service(keystone_url, ADMIN_PASSWORD, {"RegionOne": local.url, "RegionTwo": remote.url})
            u = info["users"]["alpha-member"]
            token = keystone_env.token(keystone_url, "alpha-member", u["password"], u["project"])
            yield Region(local, token), Region(remote, token), remote
        finally:
            for s in servers:
                s.kill()


def remote_image(remote: Region, data: bytes, **props) -> dict:
    src = remote.create(name=unique("gd-src"), disk_format="raw", container_format="bare")
    r = remote.call("PUT", f"/v2/images/{src['id']}/file", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    if props:
        remote.patch(src["id"], [{"op": "add", "path": f"/{k}", "value": v} for k, v in props.items()])
    return remote.show(src["id"])


def glance_download(local: Region, iid: str, remote_id: str, region: str = "RegionTwo", **extra):
    method = {"name": "glance-download", "glance_image_id": remote_id, "glance_region": region,
              "glance_service_interface": "public", **extra}
    return local.call("POST", f"/v2/images/{iid}/import", json={"method": method})


def test_glance_download_copies_data_formats_and_properties(regions):
    local, remote, _ = regions
    assert "glance-download" in local.call("GET", "/v2/info/import").json()["import-methods"]["value"]
    data = os.urandom(3 * (1 << 20) + 5)
    src = remote_image(remote, data, hw_cpu_cores="5", os_distro="rhel", speed="88mph", **{"trait:STORAGE_DISK_SSD": "required"})

    dst = local.create(name=unique("gd-dst"), disk_format="iso", container_format="ovf")
    local.patch(dst["id"], [{"op": "add", "path": "/hw_cpu_cores", "value": "1"},
                            {"op": "add", "path": "/os_distro", "value": "windows"}])
    r = glance_download(local, dst["id"], src["id"])
    assert r.status_code == 202, r.text
    task = local.newest_task(dst["id"])
    assert task["status"] == "success", task

    got = local.show(dst["id"])
    assert got["status"] == "active"
    assert (got["disk_format"], got["container_format"]) == ("raw", "bare")
    assert got["hw_cpu_cores"] == "5" and got["os_distro"] == "rhel" and got["trait:STORAGE_DISK_SSD"] == "required"
    assert "speed" not in got
    assert got["size"] == len(data) and got["checksum"] == hashlib.md5(data).hexdigest() == src["checksum"]
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest() == src["os_hash_value"]
    assert local.call("GET", f"/v2/images/{dst['id']}/file").content == data
    # The token never lands in the task row.
    assert local.token not in str(task)


def test_remote_data_that_does_not_match_its_checksum_fails_the_task(regions):
    local, remote, remote_server = regions
    data = os.urandom(1 << 20)
    src = remote_image(remote, data)
    # Damage the remote copy behind the remote service's back: same size, other bytes.
    blob = remote_server.blob_path(src["id"])
    damaged = bytearray(blob.read_bytes())
    damaged[1000] ^= 0xFF
    blob.write_bytes(bytes(damaged))

    dst = local.create(name=unique("gd-bad"), disk_format="raw", container_format="bare")
    assert glance_download(local, dst["id"], src["id"]).status_code == 202
    task = local.newest_task(dst["id"])
    assert task["status"] == "failure", task
    got = local.show(dst["id"])
    assert got["status"] == "queued" and got["checksum"] is None and got["size"] is None


def test_bad_parameters_and_missing_region_or_image(regions):
    local, remote, _ = regions
    iid = local.create(name=unique("gd-neg"), disk_format="raw", container_format="bare")["id"]
    r = glance_download(local, iid, "foo")
    assert r.status_code == 400 and "does not look like a UUID" in r.text
    r = local.call("POST", f"/v2/images/{iid}/import", json={"method": {"name": "glance-download", "glance_image_id": iid}})
    assert r.status_code == 400 and "'glance_region' needs to be set" in r.text

    # An unknown region, and an image the remote does not have: accepted, then the task fails
    # and the image is queued again with its own properties.
    local.patch(iid, [{"op": "add", "path": "/hw_cpu_cores", "value": "1"}])
    assert glance_download(local, iid, "36d4b546-64a2-4bb9-bdd0-ba676aa48f2c", region="not a region").status_code == 202
    first = task = local.newest_task(iid)
    assert task["status"] == "failure" and "not found for region not a region" in task["message"], task
    got = local.show(iid)
    assert got["status"] == "queued" and got["hw_cpu_cores"] == "1"

    assert glance_download(local, iid, "36d4b546-64a2-4bb9-bdd0-ba676aa48f2c").status_code == 202
    def second():
        tasks = [t for t in local.call("GET", f"/v2/images/{iid}/tasks").json()["tasks"] if t["id"] != first["id"]]
        return tasks[0] if tasks and tasks[0]["status"] in ("success", "failure") else None
    task = wait_for(second, timeout=60, interval=0.2, what="the second import task")
    assert task["status"] == "failure" and "404" in task["message"], task
    assert local.show(iid)["status"] == "queued"
