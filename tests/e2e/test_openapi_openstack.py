"""The OpenStack Image API v2 front-end's OpenAPI document (issue 10), kept true by the server's real answers.

(a) The document imaged serves at /openapi/openstack.json is a valid OpenAPI 3.1 document naming every route.
(b) A glanceclient-style flow (versions, schemas, discovery, create, list/page/filter, show, both JSON-patch
    dialects, tags, upload with Content-MD5, download whole and by range, members between projects,
    deactivate/reactivate, stage + glance-direct, web-download, copy-image between stores, image tasks and the
    admin tasks API, delete, and many error cases in all three of Glance's error formats): every response is
    checked against the document with schemathesis' own checks (status code, content type, headers, body);
    doctored responses must fail the same checks.
(c) The schemathesis CLI against a live server (fixed seed, bounded examples; X-Auth-Token by -H, the JSON-patch
    media types serialized by schemathesis_openstack_hooks.py): no 5xx, no answer outside the document, no
    schema-invalid request accepted, 405 for undeclared methods, auth really enforced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import checks as st_checks

from conftest import ImagedServer, project, random_bytes, schemathesis_cli, served_openapi, token, unique, wait_for

FRONTEND = "openstack"
HERE = Path(__file__).resolve().parent
RESPONSE_CHECKS = [not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
                   st_checks.response_headers_conformance, st_checks.response_schema_conformance]
# What the CLI run checks: every built-in check but positive_data_acceptance. negative_data_rejection is
# meaningful here (the server validates ids, query parameters, bodies and patch operations strictly), and so
# are unsupported_method (405 + Allow), ignored_auth, use_after_free and ensure_resource_availability.
# positive_data_acceptance is not: whether a schema-valid request is accepted depends on state JSON Schema
# cannot see (a `marker` must name an image the caller sees, data needs a queued image with formats set,
# `sort` excludes `sort_key`, sizes must fit the cap and the quota), so a 400 there is no contract breach.
# `/` and `/versions` answer every method alike, as Glance's version negotiation does, so unsupported_method
# is off for those two.
CLI_CONFIG = """\
[checks]
positive_data_acceptance.enabled = false
# A schema-invalid body over Glance's 112 KiB limit is refused with 413 before it is read; a resumable upload's
# request naming another tus version (an empty Tus-Resumable, say) is refused with 412.
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "412", "413", "415", "422",
                                             "428", "429", "5xx"]

[[operations]]
include-path-regex = "^/(versions)?$"
checks.unsupported_method.enabled = false
"""
SEED = int(os.environ.get("IMAGED_OPENAPI_SEED", "20261"))
MAX_EXAMPLES = int(os.environ.get("IMAGED_OPENAPI_MAX_EXAMPLES", "15"))
OPERATIONS = {
    "listVersionsRoot", "listVersions", "listImages", "createImage", "showImage", "updateImage", "deleteImage",
    "deactivateImage", "reactivateImage", "addImageTag", "removeImageTag", "listImageMembers", "createImageMember",
    "showImageMember", "updateImageMember", "deleteImageMember", "uploadImageData", "downloadImageData",
    "stageImageData", "importImage", "listImageTasks", "getImportInfo", "getStoresInfo", "getUsage", "listTasks", "createTask",
    "showTask", "addImageLocation", "listImageLocations", "getStoresDetail", "deleteImageFromStore", "showImageSchema", "showImagesSchema", "showMemberSchema", "showMembersSchema", "showTaskSchema", "showTasksSchema",
    "getCacheState", "clearCache", "cleanCache", "pruneCache", "queueCachedImage", "deleteCachedImage", "listCachedNodes",
    "createUploadSession", "listUploadSessions", "describeUploads", "showUploadOffset", "appendUploadData",
    "terminateUploadSession",
}


@pytest.fixture(scope="module")
def os_server(tmp_path_factory, origin):
    # Two named stores, so /v2/info/stores, copy-image and X-Image-Meta-Store answer too; imports may fetch
    # from the test origin.
    srv = ImagedServer(tmp_path_factory.mktemp("imaged-openapi-openstack"), "--store", "fast=file",
                       "--store", "archive=file", "--import-allow-cidr", "127.0.0.1/32",
                       "--import-allow-port", str(origin.port), "--task-lease-seconds", "5")
    srv.start()
    yield srv
    srv.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def document(os_server) -> dict:
    return served_openapi(os_server.url, FRONTEND)


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


class Glance:
    """Requests as glanceclient sends them, each answer checked against the document."""

    def __init__(self, document: dict, schema, base: str, who: str | None):
        self.document = document
        self.schema = schema
        self.base = base
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        if who:
            self.http.headers["X-Auth-Token"] = token(who)
        self.seen: set[str] = set()
        self.validated = 0
        self.templates = sorted(document["paths"], key=lambda p: (-p.count("/"), p.count("{")))

    def template_of(self, path: str) -> tuple[str, dict]:
        for template in self.templates:
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            m = re.fullmatch(pattern, path)
            if m:
                return template, m.groupdict()
        raise AssertionError(f"{path} is not in the document")

    def call(self, method: str, path: str, *, expect: int | None = None, checks=None, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        r = self.http.request(method, self.base + path, **kw)
        self.check(method, r, checks=checks)
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text[:500])
        return r

    def check(self, method: str, r: requests.Response, checks=None) -> None:
        template, params = self.template_of(r.request.path_url.split("?")[0])
        operation = self.schema[template][method]
        case = operation.Case(path_parameters=params or None)
        case.validate_response(r, checks=checks or RESPONSE_CHECKS)
        # schemathesis validates JSON bodies only; Glance's HTML and text errors are checked here.
        media = r.headers.get("Content-Type", "").split(";")[0].strip()
        if media in ("text/html", "text/plain"):
            definition = resolve(self.document, self.document["paths"][template][method.lower()]["responses"][str(r.status_code)])
            jsonschema.validate(r.text, definition["content"][media]["schema"])
        self.seen.add(operation.definition.raw["operationId"])
        self.validated += 1

    def create(self, **body) -> dict:
        r = self.call("POST", "/v2/images", json=body, expect=201)
        return r.json()

    def patch(self, path: str, ops, media: str = "application/openstack-images-v2.1-json-patch", **kw):
        return self.call("PATCH", path, data=json.dumps(ops), headers={"Content-Type": media}, **kw)


def test_document_is_valid_openapi(document):
    operations = {op["operationId"] for item in document["paths"].values() for m, op in item.items() if m != "parameters"}
    assert operations == OPERATIONS
    scheme = document["components"]["securitySchemes"]["keystoneToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Auth-Token")


def test_real_answers_match_the_document(os_server, document, origin):
    schema = schemathesis.openapi.from_dict(document)
    base = os_server.url
    anon = Glance(document, schema, base, None)
    alice = Glance(document, schema, base, "alice")
    bob = Glance(document, schema, base, "bob")
    admin = Glance(document, schema, base, "admin")
    carol = Glance(document, schema, base, "carol")  # reader

    # Version discovery without a token; the v2 API refuses it.
    root = anon.call("GET", "/", expect=300).json()
    assert anon.call("GET", "/versions", expect=200).json() == root
    assert root["versions"][0] == {"id": "v2.17", "status": "CURRENT", "links": [{"rel": "self", "href": base + "/v2/"}]}
    assert anon.call("GET", "/v2/images", expect=401).json()["title"] == "Unauthorized"
    anon.http.headers["X-Auth-Token"] = "not-a-token"
    anon.call("GET", "/v2/info/import", expect=401)

    # Schemas and discovery.
    for name in ("image", "images", "member", "members", "task", "tasks"):
        assert alice.call("GET", f"/v2/schemas/{name}", expect=200).json()["name"] == name
    methods = alice.call("GET", "/v2/info/import", expect=200).json()["import-methods"]["value"]
    assert methods == ["glance-direct", "web-download", "copy-image"]
    stores = alice.call("GET", "/v2/info/stores", expect=200).json()["stores"]
    assert [s["id"] for s in stores] == ["fast", "archive"] and stores[0]["default"] is True
    assert set(alice.call("GET", "/v2/info/usage", expect=200).json()["usage"]) == {
        "image_size_total", "image_stage_total", "image_count_total", "image_count_uploading"}

    # Create, as `glance image-create` (extra properties are strings; the id may be chosen).
    name = unique("oa")
    chosen = str(uuid.uuid4())
    r = alice.call("POST", "/v2/images", expect=201, json={
        "id": chosen, "name": name, "disk_format": "raw", "container_format": "bare", "visibility": "shared",
        "tags": ["b", "a", "a"], "min_ram": 512, "os_distro": "debian", "kernel_id": str(uuid.uuid4())})
    img = r.json()
    iid = img["id"]
    assert iid == chosen and img["tags"] == ["a", "b"] and img["os_distro"] == "debian" and img["owner"] == project("alice")
    assert r.headers["Location"] == f"{base}/v2/images/{iid}"
    assert r.headers["OpenStack-image-import-methods"] == "glance-direct,web-download,copy-image"
    alice.call("POST", "/v2/images", expect=409, json={"id": chosen})
    for bad, status in ([{"min_ram": -1}, 400], [{"name": "x" * 256}, 400], [{"disk_format": "floppy"}, 400],
                        [{"os_distro": 7}, 400], [{"kernel_id": "nope"}, 400], [{"status": "active"}, 403],
                        [{"locations": []}, 403], [{"os_glance_x": "y"}, 403], [{"visibility": "public"}, 403],
                        [{"owner": "p-bob"}, 403], [{"tags": [f"t{i}" for i in range(129)]}, 413]):
        alice.call("POST", "/v2/images", expect=status, json=bad)
    alice.call("POST", "/v2/images", expect=400, data=b"{not json", headers={"Content-Type": "application/json"})
    alice.call("POST", "/v2/images", expect=400, data=b"[]", headers={"Content-Type": "application/json"})
    alice.call("POST", "/v2/images", expect=413, data=b"{" + b" " * 120_000 + b"}", headers={"Content-Type": "application/json"})
    carol.call("POST", "/v2/images", expect=403, json={"name": "reader"})

    # Show, in every error format.
    assert alice.call("GET", f"/v2/images/{iid}", expect=200).json() == img
    missing = "/v2/images/00000000-0000-4000-8000-000000000000"
    alice.call("GET", missing, expect=404)
    alice.call("GET", missing, expect=404, headers={"Accept": "*/*"})   # HTML
    alice.call("GET", missing, expect=404, headers={"Accept": None})    # plain text
    alice.call("GET", "/v2/images/not-a-uuid", expect=404)
    bob.call("GET", f"/v2/images/{iid}", expect=404)  # not shared with bob (yet)

    # Lists: pages with `next`, filters, sorting, extra-property filters, refusals.
    for i in range(3):
        alice.create(name=f"{name}-page-{i}", disk_format="qcow2", container_format="bare", os_distro="page")
    page = alice.call("GET", "/v2/images?limit=2&os_distro=page&sort=name:asc", expect=200).json()
    assert [i["name"] for i in page["images"]] == [f"{name}-page-0", f"{name}-page-1"] and "next" in page
    rest = alice.call("GET", page["next"], expect=200).json()
    assert [i["name"] for i in rest["images"]] == [f"{name}-page-2"] and "next" not in rest
    listed = alice.call("GET", f"/v2/images?name=in:{name},other&status=queued&visibility=shared&tag=a&tag=b"
                               f"&sort_key=created_at&sort_dir=desc&min_ram=512&protected=false&os_hidden=false"
                               f"&created_at=gte:2020-01-01T00:00:00Z&member_status=all", expect=200).json()
    assert [i["id"] for i in listed["images"]] == [iid]
    for query in ("limit=x", "limit=-1", "marker=00000000-0000-4000-8000-000000000000", "sort_key=colour",
                  "sort_dir=up", "sort=name&sort_key=id", "visibility=everyone", "status=sleeping", "protected=maybe",
                  "size_min=big", "created_at=yesterday", "name=like:x", "changes-since=2020-01-01"):
        alice.call("GET", f"/v2/images?{query}", expect=400)
    admin.call("GET", "/v2/images?visibility=all&limit=1", expect=200)

    # PATCH in both dialects, and its refusals.
    patched = alice.patch(f"/v2/images/{iid}", [
        {"op": "replace", "path": "/name", "value": name + "-2"}, {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
        {"op": "remove", "path": "/os_distro"}, {"op": "replace", "path": "/min_disk", "value": 1}], expect=200).json()
    assert patched["name"] == name + "-2" and patched["hw_disk_bus"] == "scsi" and "os_distro" not in patched
    d04 = "application/openstack-images-v2.0-json-patch"
    assert alice.patch(f"/v2/images/{iid}", [{"add": "/os_version", "value": "12"}], d04, expect=200).json()["os_version"] == "12"
    alice.patch(f"/v2/images/{iid}", [{"add": "/os_version", "value": "13"}], d04, expect=409)
    alice.patch(f"/v2/images/{iid}", [{"op": "remove", "path": "/nothing"}], expect=409)
    alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/status", "value": "active"}], expect=403)
    alice.patch(f"/v2/images/{iid}", [{"op": "add", "path": "/locations/-", "value": {"url": "x"}}], expect=403)
    alice.patch(f"/v2/images/{iid}", [{"op": "move", "path": "/name"}], expect=400)
    alice.patch(f"/v2/images/{iid}", {"op": "add"}, expect=400)
    alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/protected", "value": "yes"}], expect=400)
    r = alice.patch(f"/v2/images/{iid}", [], "application/json", expect=415)
    assert "application/openstack-images-v2.1-json-patch" in r.headers["Accept-Patch"]
    bob.patch(f"/v2/images/{iid}", [], expect=404)

    # Tags.
    alice.call("PUT", f"/v2/images/{iid}/tags/blue", expect=204)
    alice.call("PUT", f"/v2/images/{iid}/tags/blue", expect=204)
    alice.call("DELETE", f"/v2/images/{iid}/tags/blue", expect=204)
    alice.call("DELETE", f"/v2/images/{iid}/tags/blue", expect=404)
    alice.call("PUT", f"/v2/images/{iid}/tags/{'t' * 256}", expect=400)

    # Upload (glanceclient: octet-stream, chunked or sized) with a Content-MD5 the server checks.
    data = random_bytes(300_000, 7)
    md5 = hashlib.md5(data).hexdigest()
    octet = {"Content-Type": "application/octet-stream"}
    alice.call("PUT", f"/v2/images/{iid}/file", data=b"x", headers={"Content-Type": "text/plain"}, expect=415)
    alice.call("PUT", f"/v2/images/{iid}/file", data=data, expect=400,
               headers={**octet, "Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()})
    alice.call("PUT", f"/v2/images/{iid}/file", data=data, headers={**octet, "x-openstack-image-size": "12"}, expect=400)
    alice.call("PUT", f"/v2/images/{iid}/file", data=data, headers={**octet, "X-Image-Meta-Store": "nowhere"}, expect=400)
    alice.call("PUT", f"/v2/images/{iid}/file", data=data, expect=204,
               headers={**octet, "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode()})
    alice.call("PUT", f"/v2/images/{iid}/file", data=data, headers=octet, expect=409)
    active = alice.call("GET", f"/v2/images/{iid}", expect=200).json()
    assert active["status"] == "active" and active["checksum"] == md5 and active["size"] == len(data)
    assert active["stores"] == "fast"
    noformat = alice.create(name=unique("oa-nofmt"))
    alice.call("PUT", f"/v2/images/{noformat['id']}/file", data=b"abc", headers=octet, expect=400)
    alice.call("GET", f"/v2/images/{noformat['id']}/file", expect=204)
    bob.call("PUT", f"/v2/images/{noformat['id']}/file", data=b"abc", headers=octet, expect=404)
    qcow = alice.create(name=unique("oa-qcow"), disk_format="qcow2", container_format="bare")
    alice.call("PUT", f"/v2/images/{qcow['id']}/file", data=b"not a qcow2 at all" * 100, headers=octet, expect=415)

    # Download: whole, ranges, refusals.
    r = alice.call("GET", f"/v2/images/{iid}/file", expect=200)
    assert r.content == data and r.headers["Content-MD5"] == md5
    r = alice.call("GET", f"/v2/images/{iid}/file", headers={"Range": "bytes=10-19"}, expect=206)
    assert r.content == data[10:20] and r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert alice.call("GET", f"/v2/images/{iid}/file", headers={"Range": "bytes=-5"}, expect=206).content == data[-5:]
    alice.call("GET", f"/v2/images/{iid}/file", headers={"Range": f"bytes={len(data)}-"}, expect=416)
    alice.call("GET", f"/v2/images/{iid}/file", headers={"Range": "bytes=0-1,5-6"}, expect=400)
    carol.call("GET", f"/v2/images/{iid}/file", expect=404)  # not carol's project

    # Members: alice shares with bob, bob accepts, the image shows in bob's list.
    m = alice.call("POST", f"/v2/images/{iid}/members", json={"member": project("bob")}, expect=200).json()
    assert m["status"] == "pending" and m["image_id"] == iid
    alice.call("POST", f"/v2/images/{iid}/members", json={"member": project("bob")}, expect=409)
    alice.call("POST", f"/v2/images/{iid}/members", json={"member": "  "}, expect=400)
    alice.call("POST", f"/v2/images/{iid}/members", json={}, expect=400)
    assert [x["member_id"] for x in alice.call("GET", f"/v2/images/{iid}/members", expect=200).json()["members"]] == [project("bob")]
    member_path = f"/v2/images/{iid}/members/{project('bob')}"
    alice.call("PUT", member_path, json={"status": "accepted"}, expect=403)  # only the member decides
    bob.call("PUT", member_path, json={"status": "maybe"}, expect=400)
    assert bob.call("PUT", member_path, json={"status": "accepted"}, expect=200).json()["status"] == "accepted"
    assert bob.call("GET", member_path, expect=200).json()["status"] == "accepted"
    assert iid in [i["id"] for i in bob.call("GET", "/v2/images", expect=200).json()["images"]]
    bob.call("GET", f"/v2/images/{iid}/file", expect=200)
    bob.call("DELETE", member_path, expect=403)  # a member cannot manage members
    alice.call("GET", f"/v2/images/{iid}/members/p-nobody", expect=404)
    alice.call("DELETE", member_path, expect=204)
    bob.call("GET", member_path, expect=404)
    private = alice.create(name=unique("oa-private"), visibility="private")
    alice.call("GET", f"/v2/images/{private['id']}/members", expect=403)
    alice.call("POST", f"/v2/images/{private['id']}/members", json={"member": project("bob")}, expect=403)

    # Deactivate / reactivate: data is admin-only meanwhile.
    alice.call("POST", f"/v2/images/{iid}/actions/deactivate", expect=204)
    assert alice.call("GET", f"/v2/images/{iid}", expect=200).json()["status"] == "deactivated"
    alice.call("GET", f"/v2/images/{iid}/file", expect=403)
    admin.call("GET", f"/v2/images/{iid}/file", expect=200)
    alice.call("POST", f"/v2/images/{iid}/actions/reactivate", expect=204)
    alice.call("POST", f"/v2/images/{noformat['id']}/actions/deactivate", expect=403)  # queued

    # Stage + glance-direct import, then the image's tasks and the admin tasks API.
    staged = alice.create(name=unique("oa-staged"), disk_format="raw", container_format="bare")
    sid = staged["id"]
    alice.call("POST", f"/v2/images/{sid}/import", json={"method": {"name": "glance-direct"}}, expect=409)  # nothing staged
    alice.call("PUT", f"/v2/images/{sid}/stage", data=data[:1000], headers=octet, expect=204)
    alice.call("PUT", f"/v2/images/{sid}/stage", data=data[:1000], headers=octet, expect=409)
    alice.call("POST", f"/v2/images/{sid}/import", json={"method": {"name": "teleport"}}, expect=400)
    alice.call("POST", f"/v2/images/{sid}/import", json={"method": {"name": "glance-direct"}, "stores": ["moon"]}, expect=409)
    alice.call("POST", f"/v2/images/{sid}/import", json={"method": {"name": "glance-direct"}}, expect=202)
    wait_for(lambda: alice.call("GET", f"/v2/images/{sid}", expect=200).json()["status"] == "active", timeout=60,
             interval=0.3, what="the glance-direct import")
    tasks = alice.call("GET", f"/v2/images/{sid}/tasks", expect=200).json()["tasks"]
    assert len(tasks) == 1 and tasks[0]["status"] == "success"
    shown = admin.call("GET", f"/v2/tasks/{tasks[0]['id']}", expect=200).json()
    assert shown["input"]["import_req"] == {"method": {"name": "glance-direct"}}
    assert tasks[0]["id"] in [t["id"] for t in admin.call("GET", "/v2/tasks", expect=200).json()["tasks"]]
    alice.call("GET", "/v2/tasks", expect=403)
    alice.call("GET", f"/v2/tasks/{tasks[0]['id']}", expect=403)
    admin.call("GET", "/v2/tasks/00000000-0000-4000-8000-000000000000", expect=404)

    # web-download from the test origin, then copy-image into the second store (admin).
    url = origin.serve("/oa-openstack.raw", data[:4096])
    web = alice.create(name=unique("oa-web"), disk_format="raw", container_format="bare")
    alice.call("POST", f"/v2/images/{web['id']}/import", json={"method": {"name": "web-download"}}, expect=400)
    alice.call("POST", f"/v2/images/{web['id']}/import", json={"method": {"name": "web-download", "uri": "http://10.0.0.1/x"}}, expect=400)
    alice.call("POST", f"/v2/images/{web['id']}/import", json={"method": {"name": "web-download", "uri": url}}, expect=202)
    wait_for(lambda: alice.call("GET", f"/v2/images/{web['id']}", expect=200).json()["status"] == "active", timeout=60,
             interval=0.3, what="the web-download import")
    admin.call("POST", f"/v2/images/{web['id']}/import", json={"method": {"name": "copy-image"}, "stores": ["archive"]}, expect=202)
    wait_for(lambda: set(alice.call("GET", f"/v2/images/{web['id']}", expect=200).json().get("stores", "").split(",")) == {"fast", "archive"},
             timeout=60, interval=0.3, what="the copy-image import")
    admin.call("POST", f"/v2/images/{web['id']}/import", json={"method": {"name": "copy-image"}, "stores": ["archive"]}, expect=409)
    assert len(alice.call("GET", f"/v2/images/{web['id']}/tasks", expect=200).json()["tasks"]) == 2

    # Store details (admin), removing one store's copy (admin; never the last), and the v2.17 locations API
    # (GET is the service role's: 403 for everyone here).
    detail = admin.call("GET", "/v2/info/stores/detail", expect=200).json()
    assert {s["id"]: s["type"] for s in detail["stores"]} == {"fast": "file", "archive": "file"}
    alice.call("GET", "/v2/info/stores/detail", expect=403)
    alice.call("DELETE", f"/v2/stores/archive/{web['id']}", expect=403)
    admin.call("DELETE", f"/v2/stores/moon/{web['id']}", expect=409)
    admin.call("DELETE", f"/v2/stores/archive/{web['id']}", expect=204)
    assert alice.call("GET", f"/v2/images/{web['id']}", expect=200).json()["stores"] == "fast"
    admin.call("DELETE", f"/v2/stores/fast/{web['id']}", expect=403)
    located = alice.create(name=unique("oa-location"), disk_format="raw", container_format="bare")
    alice.call("POST", f"/v2/images/{located['id']}/locations", json={"url": "file:///etc/passwd"}, expect=400)
    alice.call("POST", f"/v2/images/{located['id']}/locations", json={"url": url}, expect=202)
    wait_for(lambda: alice.call("GET", f"/v2/images/{located['id']}", expect=200).json()["status"] == "active", timeout=60,
             interval=0.3, what="the location import")
    assert alice.call("GET", f"/v2/images/{located['id']}/tasks", expect=200).json()["tasks"][0]["type"] == "location_import"
    alice.call("GET", f"/v2/images/{located['id']}/locations", expect=403)
    admin.call("GET", f"/v2/images/{located['id']}/locations", expect=403)

    # The tasks API's legacy import (admin only), a bad body, and a filtered page with its links.
    legacy = {"type": "import", "input": {"import_from": origin.serve("/oa-task.raw", data[:2048]), "import_from_format": "raw",
                                          "image_properties": {"name": unique("oa-task"), "disk_format": "raw", "container_format": "bare"}}}
    alice.call("POST", "/v2/tasks", json=legacy, expect=403)
    admin.call("POST", "/v2/tasks", json={"type": "import"}, expect=400)
    made = admin.call("POST", "/v2/tasks", json=legacy, expect=201).json()
    wait_for(lambda: admin.call("GET", f"/v2/tasks/{made['id']}", expect=200).json()["status"] == "success", timeout=60,
             interval=0.3, what="the legacy import task")
    page = admin.call("GET", "/v2/tasks?type=import&status=success&limit=1", expect=200).json()
    assert len(page["tasks"]) == 1 and "marker=" in page["next"]
    admin.call("GET", "/v2/tasks?sort_key=colour", expect=400)

    # This node's cache (admin only): queue, prefetched, nodes (409), prune, clean, remove, clear.
    alice.call("GET", "/v2/cache", expect=403)
    admin.call("PUT", f"/v2/cache/{iid}", expect=202)
    wait_for(lambda: iid in [e["image_id"] for e in admin.call("GET", "/v2/cache", expect=200).json()["cached_images"]],
             timeout=30, interval=0.2, what="the queued image cached")
    admin.call("GET", f"/v2/cache/nodes/{iid}", expect=409)
    assert admin.call("POST", "/v2/cache/prune", expect=200).json() == {"total_files_pruned": 0, "total_bytes_pruned": 0}
    admin.call("POST", "/v2/cache/clean", expect=200)
    admin.call("DELETE", f"/v2/cache/{iid}", expect=204)
    admin.call("DELETE", "/v2/cache", expect=400, headers={"x-image-cache-clear-target": "bogus"})
    admin.call("DELETE", "/v2/cache", expect=204)

    # Usage counts what alice stored; delete (protected first), then gone.
    assert alice.call("GET", "/v2/info/usage", expect=200).json()["usage"]["image_size_total"]["usage"] >= 1
    alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/protected", "value": True}], expect=200)
    alice.call("DELETE", f"/v2/images/{iid}", expect=403)
    alice.patch(f"/v2/images/{iid}", [{"op": "replace", "path": "/protected", "value": False}], expect=200)
    bob.call("DELETE", f"/v2/images/{iid}", expect=404)
    alice.call("DELETE", f"/v2/images/{iid}", expect=204)
    alice.call("GET", f"/v2/images/{iid}", expect=404)
    alice.call("DELETE", f"/v2/images/{iid}", expect=404)
    alice.call("GET", f"/v2/images/{iid}/tasks", expect=404)

    # Resumable uploads (tus 1.0.0): discovery, creation, offsets, gaps, termination, completion.
    tus = {"Tus-Resumable": "1.0.0"}
    r = alice.call("OPTIONS", f"/v2/images/{iid}/uploads", expect=204)
    assert r.headers["Tus-Version"] == "1.0.0" and "creation" in r.headers["Tus-Extension"]
    up = alice.create(name=unique("oa-tus"), disk_format="raw", container_format="bare")
    alice.call("POST", f"/v2/images/{up['id']}/uploads", headers=tus, expect=400)  # no Upload-Length
    alice.call("POST", f"/v2/images/{up['id']}/uploads", headers={"Tus-Resumable": "0.2.2", "Upload-Length": "4"}, expect=412)
    bob.call("POST", f"/v2/images/{up['id']}/uploads", headers={**tus, "Upload-Length": "4"}, expect=404)
    r = alice.call("POST", f"/v2/images/{up['id']}/uploads", headers={**tus, "Upload-Length": str(len(data))}, expect=201)
    location, session = r.headers["Location"], r.json()
    assert location == f"/v2/images/{up['id']}/uploads/{session['id']}" and session["offset"] == 0
    alice.call("POST", f"/v2/images/{up['id']}/uploads", headers={**tus, "Upload-Length": "4"}, expect=409)  # saving now
    assert [u["id"] for u in alice.call("GET", f"/v2/images/{up['id']}/uploads", expect=200).json()["uploads"]] == [session["id"]]
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    assert alice.call("PATCH", location, data=data[:5], headers={**patch, "Upload-Offset": "0"}, expect=204).headers["Upload-Offset"] == "5"
    assert alice.call("PATCH", location, data=data[9:], headers={**patch, "Upload-Offset": "9"}, expect=409).headers["Upload-Offset"] == "5"
    alice.call("PATCH", location, data=data[5:], headers={**tus, "Upload-Offset": "5", "Content-Type": "application/octet-stream"}, expect=415)
    assert alice.call("HEAD", location, expect=200).headers["Upload-Length"] == str(len(data))
    alice.call("PATCH", location, data=data[5:], headers={**patch, "Upload-Offset": "5"}, expect=204)
    assert alice.call("GET", f"/v2/images/{up['id']}", expect=200).json()["checksum"] == hashlib.md5(data).hexdigest()
    alice.call("HEAD", location, expect=404)
    gone = alice.create(name=unique("oa-tus"), disk_format="raw", container_format="bare")
    r = alice.call("POST", f"/v2/images/{gone['id']}/uploads", headers={**tus, "Upload-Length": "10"}, expect=201)
    alice.call("DELETE", r.headers["Location"], headers=tus, expect=204)
    alice.call("DELETE", r.headers["Location"], headers=tus, expect=404)
    assert alice.call("GET", f"/v2/images/{gone['id']}", expect=200).json()["status"] == "queued"

    assert alice.seen | bob.seen | admin.seen | anon.seen | carol.seen == OPERATIONS
    print(f"validated {sum(c.validated for c in (alice, bob, admin, anon, carol))} real answers against the document")


def test_doctored_answers_are_refused(os_server, document):
    """The checks can fail: answers the server never gives are rejected by the same validation."""
    schema = schemathesis.openapi.from_dict(document)
    alice = Glance(document, schema, os_server.url, "alice")
    img = alice.create(name=unique("oa-doctored"))
    show = f"{os_server.url}/v2/images/{img['id']}"

    def refused(r: requests.Response) -> None:
        with pytest.raises((Failure, FailureGroup)):
            alice.check(r.request.method, r)

    r = alice.http.get(show, timeout=30)
    alice.check("GET", r)  # the real answer passes
    real = r.json()
    for doctor in (lambda b: b.update(status="bogus"), lambda b: b.pop("checksum"), lambda b: b.update(size="12"),
                   lambda b: b.update(hw_extra=7), lambda b: b.update(created_at="yesterday"),
                   lambda b: b.update(self="/v2/images/elsewhere")):
        body = json.loads(json.dumps(real))
        doctor(body)
        r._content = json.dumps(body).encode()
        refused(r)

    # A missing request id header, and a status the operation does not document.
    r = alice.http.get(show, timeout=30)
    del r.raw.headers["x-openstack-request-id"]
    refused(r)
    r = alice.http.get(show, timeout=30)
    r.status_code = 202
    refused(r)
    # An error body not in Glance's format, and a plain-text error that is not Glance's.
    r = alice.http.get(f"{os_server.url}/v2/images/00000000-0000-4000-8000-000000000000", timeout=30)
    assert r.status_code == 404
    r._content = json.dumps({"error": "not found"}).encode()
    refused(r)
    r = alice.http.get(f"{os_server.url}/v2/images/00000000-0000-4000-8000-000000000000", headers={"Accept": None}, timeout=30)
    assert r.headers["Content-Type"].startswith("text/plain")
    r._content = b"not found"
    with pytest.raises(jsonschema.ValidationError):
        alice.check("GET", r)


def test_schemathesis_finds_nothing(os_server, document, tmp_path):
    spec = tmp_path / "openstack.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CLI_CONFIG)
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
               SCHEMATHESIS_HOOKS="schemathesis_openstack_hooks")
    # Admin: the tasks API and every project's images are reachable; JSON errors so their bodies are checked too.
    cmd = [schemathesis_cli(), "--no-color", "--config-file", str(config), "run", str(spec), "--url", os_server.url,
           "-H", f"X-Auth-Token: {token('admin')}", "-H", "Accept: application/json",
           "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1", "--request-timeout", "30",
           "--report", "json", "--report-json-path", str(report)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=170, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert report.exists(), out[-5000:]
    result = json.loads(report.read_text())
    operations = result["operations"]["tested"]
    cases = result["test_cases"]["generated"]
    failures = result["test_cases"]["with_failures"] + len(result["errors"])
    print(f"SCHEMATHESIS {FRONTEND} operations={operations} cases={cases} failures={failures} "
          f"({time.monotonic() - started:.0f} s)")
    assert failures == 0 and proc.returncode == 0, out[-15000:]
    assert cases > 0 and operations == len(OPERATIONS), out[-3000:]
