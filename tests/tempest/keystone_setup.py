"""Prepare a fresh Keystone (scripts/keystone.sh) for Tempest against imaged; standard library only.

    python3 keystone_setup.py KEYSTONE_URL ADMIN_PASSWORD SERVICE_PASSWORD [TYPE:]REGION=URL ...

Creates what a devstack with Glance has: the `service` role, the `service` project with the image service
user `imaged` (roles service + admin, as devstack gives glance), the `image` service named glance with
public/internal/admin endpoints in each REGION (created if missing), and with TYPE:REGION=URL a service of
that type (devstack's `image_remote`: a second worker on the same catalog, which Tempest's
alternate_image_endpoint names). Idempotent. Prints nothing on success.
"""

import json
import sys
import urllib.error
import urllib.request


class Keystone:
    def __init__(self, url, admin_password):
        self.url = url.rstrip("/")
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": admin_password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        _, headers = self._call("POST", "/auth/tokens", body, token=None)
        self.token = headers["X-Subject-Token"]

    def _call(self, method, path, body=None, token=""):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("X-Auth-Token", token or self.token)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return (json.loads(raw) if raw else {}), r.headers
        except urllib.error.HTTPError as e:
            raise SystemExit(f"keystone_setup: {method} {path}: {e.code} {e.read()[:300]!r}")

    def get(self, path):
        return self._call("GET", path)[0]

    def post(self, path, body):
        return self._call("POST", path, body)[0]

    def put(self, path):
        return self._call("PUT", path)

    def find_or_create(self, collection, key, name, body, query=""):
        found = self.get(f"/{collection}?name={name}{query}")[collection]
        if found:
            return found[0]["id"]
        return self.post(f"/{collection}", {key: body})[key]["id"]


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    url, admin_password, service_password = argv[:3]
    regions = [a.split("=", 1) for a in argv[3:]]
    ks = Keystone(url, admin_password)
    roles = {name: ks.find_or_create("roles", "role", name, {"name": name}) for name in ("service", "admin")}
    project = ks.find_or_create("projects", "project", "service",
                                {"name": "service", "domain_id": "default", "description": "OpenStack services"},
                                "&domain_id=default")
    user = ks.find_or_create("users", "user", "imaged",
                             {"name": "imaged", "domain_id": "default", "password": service_password,
                              "default_project_id": project}, "&domain_id=default")
    for role in roles.values():
        ks.put(f"/projects/{project}/users/{user}/roles/{role}")
    known_regions = {r["id"] for r in ks.get("/regions")["regions"]}
    for spec, endpoint in regions:
        # TYPE:REGION, or REGION alone for the `image` service
        service_type, _, region = spec.rpartition(":")
        service_id = image_service(ks, service_type or "image")
        existing = ks.get(f"/endpoints?service_id={service_id}")["endpoints"]
        if region not in known_regions:
            ks.post("/regions", {"region": {"id": region}})
            known_regions.add(region)
        for interface in ("public", "internal", "admin"):
            if any(e["region_id"] == region and e["interface"] == interface for e in existing):
                continue
            ks.post("/endpoints", {"endpoint": {"service_id": service_id, "interface": interface, "url": endpoint,
                                                "region_id": region, "enabled": True}})


def image_service(ks, service_type):
    """The id of the service of this type (`image`, or devstack's `image_remote` for a second worker)."""
    found = ks.get(f"/services?type={service_type}")["services"]
    if found:
        return found[0]["id"]
    name = "glance" if service_type == "image" else f"glance-{service_type.replace('_', '-')}"
    return ks.post("/services", {"service": {
        "name": name, "type": service_type, "description": "imaged, as the Image service"}})["service"]["id"]

if __name__ == "__main__":
    main(sys.argv[1:])
