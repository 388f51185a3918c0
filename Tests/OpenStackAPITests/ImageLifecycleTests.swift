import HTTPTypes
import ImageCore
import Testing

@Suite struct ImageLifecycleTests {
    static let baseKeys = ["id", "name", "status", "visibility", "protected", "os_hidden", "owner", "container_format",
                           "disk_format", "size", "virtual_size", "min_disk", "min_ram", "checksum", "os_hash_algo",
                           "os_hash_value", "created_at", "updated_at", "tags", "self", "file", "schema"]

    @Test func createShowsEveryBaseAttributeWithDefaults() async throws {
        try await withAPI { api in
            let r = try await api.call(.post, "/v2/images", json: "{}")
            #expect(r.status == .created)
            let image = try r.json
            #expect(image.objectKeys == Self.baseKeys)
            let id = try #require(image["id"]?.stringValue)
            #expect(ImageID.isValid(id) && id == id.lowercased())
            #expect(image["status"] == .string("queued"))
            #expect(image["visibility"] == .string("shared"))
            #expect(image["owner"] == .string("pa"))
            #expect(image["protected"] == .bool(false) && image["os_hidden"] == .bool(false))
            for key in ["name", "container_format", "disk_format", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value"] {
                #expect(image[key] == .null, "\(key)")
            }
            #expect(image["min_disk"] == .int(0) && image["min_ram"] == .int(0))
            #expect(image["tags"] == .array([]))
            #expect(image["self"] == .string("/v2/images/\(id)"))
            #expect(image["file"] == .string("/v2/images/\(id)/file"))
            #expect(image["schema"] == .string("/v2/schemas/image"))
            let created = try #require(image["created_at"]?.stringValue)
            #expect(created.count == 20 && created.hasSuffix("Z") && Timestamp.parse(created) != nil)
            #expect(r.header("location")?.hasSuffix("/v2/images/\(id)") == true)
            #expect(r.header("location")?.hasPrefix("http://") == true)
            #expect(try await api.show(id) == image)
        }
    }

    @Test func createKeepsEverythingGiven() async throws {
        try await withAPI { api in
            let id = "0c1d9f5e-7a2b-4c3d-8e9f-a0b1c2d3e4f5"
            let r = try await api.call(.post, "/v2/images", json: """
                {"id": "\(id.uppercased())", "name": "débian ☃", "visibility": "private", "protected": true, "os_hidden": true,
                 "min_disk": 10, "min_ram": 512, "container_format": "bare", "disk_format": "qcow2",
                 "tags": ["b", "a", "b"], "os_distro": "debian", "hw_disk_bus": "scsi", "empty": "",
                 "owner_specified.openstack.md5": "", "trait:STORAGE_DISK_SSD": "required",
                 "ramdisk_id": "6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4", "owner": "pa"}
                """)
            #expect(r.status == .created, "\(r.text)")
            let image = try r.json
            #expect(image["id"] == .string(id))
            #expect(image["name"] == .string("débian ☃"))
            #expect(image["visibility"] == .string("private"))
            #expect(image["protected"] == .bool(true) && image["os_hidden"] == .bool(true))
            #expect(image["min_disk"] == .int(10) && image["min_ram"] == .int(512))
            #expect(image["disk_format"] == .string("qcow2") && image["container_format"] == .string("bare"))
            #expect(image["tags"] == .array([.string("a"), .string("b")]))
            #expect(image["os_distro"] == .string("debian") && image["hw_disk_bus"] == .string("scsi"))
            #expect(image["empty"] == .string("") && image["owner_specified.openstack.md5"] == .string(""))
            #expect(image["trait:STORAGE_DISK_SSD"] == .string("required"))
            #expect(image["ramdisk_id"] == .string("6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4"))
            #expect(try await api.show(id) == image)
        }
    }

    @Test func idsAreNeverReused() async throws {
        try await withAPI { api in
            let id = ImageID.generate()
            try await api.create(#"{"id": "\#(id)"}"#)
            let dup = try await api.call(.post, "/v2/images", json: #"{"id": "\#(id)"}"#)
            #expect(dup.status == .conflict)
            #expect(try await api.call(.delete, "/v2/images/\(id)").status == .noContent)
            let reuse = try await api.call(.post, "/v2/images", json: #"{"id": "\#(id)"}"#)
            #expect(reuse.status == .conflict)
            #expect(try reuse.json["code"] == .string("409 Conflict"))
        }
    }

    @Test func adminMayCreateForAnotherOwnerAndPublic() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"owner": "0123456789abcdef0123456789abcdef", "visibility": "public"}"#, token: Tok.admin)
            let image = try await api.show(id, token: Tok.bob)
            #expect(image["owner"] == .string("0123456789abcdef0123456789abcdef"))
            #expect(image["visibility"] == .string("public"))
            let community = try await api.create(#"{"visibility": "community"}"#)
            #expect(try await api.show(community, token: Tok.bob)["visibility"] == .string("community"))
        }
    }

    @Test func showHidesWhatTheCallerCannotSee() async throws {
        try await withAPI { api in
            let priv = try await api.create(#"{"visibility": "private"}"#)
            let shared = try await api.create(#"{"visibility": "shared"}"#)
            for id in [priv, shared, ImageID.generate()] {
                let r = try await api.call(.get, "/v2/images/\(id)", token: Tok.bob)
                #expect(r.status == .notFound)
                #expect(try r.json["message"]?.stringValue?.contains("No image found with ID \(id)") == true)
            }
            for bad in ["not-a-uuid", "6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4x", String(repeating: "a", count: 300), "%20"] {
                #expect(try await api.call(.get, "/v2/images/\(bad)").status == .notFound, "\(bad)")
            }
            #expect(try await api.show(priv, token: Tok.admin)["id"] == .string(priv))
            #expect(try await api.show(priv, token: Tok.alice2)["id"] == .string(priv))
            #expect(try await api.show(priv, token: Tok.reader)["id"] == .string(priv))
        }
    }

    @Test func patchV21OperationsOnAttributesAndProperties() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "one", "os_distro": "debian", "tags": ["x"]}"#)
            let before = try await api.show(id)
            let r = try await api.patch(id, """
                [{"op": "replace", "path": "/name", "value": "two"},
                 {"op": "add", "path": "/os_version", "value": "13"},
                 {"op": "add", "path": "/os_distro", "value": "ubuntu"},
                 {"op": "replace", "path": "/min_ram", "value": 1024},
                 {"op": "replace", "path": "/protected", "value": true},
                 {"op": "replace", "path": "/tags", "value": ["z", "y", "z"]},
                 {"op": "add", "path": "/a~1b~0c", "value": "escaped"},
                 {"op": "replace", "path": "/disk_format", "value": "iso"},
                 {"op": "replace", "path": "/visibility", "value": "private"}]
                """)
            #expect(r.status == .ok, "\(r.text)")
            let image = try r.json
            #expect(image["name"] == .string("two"))
            #expect(image["os_version"] == .string("13") && image["os_distro"] == .string("ubuntu"))
            #expect(image["min_ram"] == .int(1024) && image["protected"] == .bool(true))
            #expect(image["tags"] == .array([.string("y"), .string("z")]))
            #expect(image["a/b~c"] == .string("escaped"))
            #expect(image["disk_format"] == .string("iso") && image["visibility"] == .string("private"))
            #expect(image["created_at"] == before["created_at"])
            #expect(try await api.show(id) == image)

            let removed = try await api.patch(id, #"[{"op": "remove", "path": "/os_version"}, {"op": "replace", "path": "/name", "value": null}]"#)
            #expect(removed.status == .ok)
            #expect(try removed.json["os_version"] == nil)
            #expect(try removed.json["name"] == .null)

            let noop = try await api.patch(id, "[]")
            #expect(noop.status == .ok)
            #expect(try noop.json == (try removed.json))
        }
    }

    @Test func patchDraft04AsTempestSendsIt() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "old", "os_distro": "debian"}"#)
            let r = try await api.patch(id, #"[{"replace": "/name", "value": "new"}, {"add": "/new_prop", "value": "v"}, {"remove": "/os_distro"}]"#, draft04: true)
            #expect(r.status == .ok, "\(r.text)")
            #expect(try r.json["name"] == .string("new"))
            #expect(try r.json["new_prop"] == .string("v"))
            #expect(try r.json["os_distro"] == nil)
            // draft-04 add never overwrites.
            let again = try await api.patch(id, #"[{"add": "/new_prop", "value": "w"}]"#, draft04: true)
            #expect(again.status == .conflict)
            let base = try await api.patch(id, #"[{"add": "/name", "value": "w"}]"#, draft04: true)
            #expect(base.status == .conflict)
            let two = try await api.patch(id, #"[{"add": "/x", "replace": "/y", "value": "w"}]"#, draft04: true)
            #expect(two.status == .badRequest)
            #expect(try await api.show(id)["new_prop"] == .string("v"))
        }
    }

    @Test func patchConflictsAndForbiddenTargets() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "keep", "os_distro": "debian"}"#)
            let cases: [(String, HTTPResponse.Status)] = [
                (#"[{"op": "replace", "path": "/missing", "value": "x"}]"#, .conflict),
                (#"[{"op": "remove", "path": "/missing"}]"#, .conflict),
                (#"[{"op": "remove", "path": "/name"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/status", "value": "active"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/id", "value": "6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/checksum", "value": "x"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/size", "value": 5}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/created_at", "value": "x"}]"#, .forbidden),
                (#"[{"op": "add", "path": "/os_glance_foo", "value": "x"}]"#, .forbidden),
                (#"[{"op": "add", "path": "/deleted", "value": "x"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/locations", "value": []}]"#, .forbidden),
                (#"[{"op": "add", "path": "/locations/-", "value": {"url": "file:///etc/passwd", "metadata": {}}}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/owner", "value": "pb"}]"#, .forbidden),
                (#"[{"op": "replace", "path": "/visibility", "value": "public"}]"#, .forbidden),
                // A valid change followed by a bad one changes nothing.
                (#"[{"op": "replace", "path": "/name", "value": "changed"}, {"op": "replace", "path": "/missing", "value": "x"}]"#, .conflict),
                (#"[{"op": "replace", "path": "/name", "value": "changed"}, {"op": "replace", "path": "/min_ram", "value": "x"}]"#, .badRequest),
            ]
            for (body, status) in cases {
                let r = try await api.patch(id, body)
                #expect(r.status == status, "\(body): \(r.text)")
                #expect(try r.json["code"]?.stringValue?.hasPrefix("\(status.code) ") == true)
            }
            let image = try await api.show(id)
            #expect(image["name"] == .string("keep"))
            #expect(image["owner"] == .string("pa") && image["visibility"] == .string("shared"))
            #expect(image["os_distro"] == .string("debian"))
            // Admin may change the owner.
            let owner = try await api.patch(id, #"[{"op": "replace", "path": "/owner", "value": "pb"}]"#, token: Tok.admin)
            #expect(owner.status == .ok)
            #expect(try await api.show(id, token: Tok.bob)["owner"] == .string("pb"))
        }
    }

    @Test func patchMediaTypesAndPermissions() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "mine", "visibility": "public"}"#, token: Tok.admin)
            let own = try await api.create(#"{"name": "alice"}"#)
            for type in ["application/json", "application/json-patch+json", "text/plain"] {
                let r = try await api.call(.patch, "/v2/images/\(own)", json: "[]", contentType: type)
                #expect(r.status == .unsupportedMediaType, "\(type)")
                #expect(r.header("accept-patch") == "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch")
            }
            let charset = try await api.call(.patch, "/v2/images/\(own)", json: #"[{"op": "replace", "path": "/name", "value": "cs"}]"#,
                                             contentType: "application/openstack-images-v2.1-json-patch; charset=UTF-8")
            #expect(charset.status == .ok)
            // Visible but not ours: 403. Invisible: 404.
            #expect(try await api.patch(id, #"[{"op": "replace", "path": "/name", "value": "x"}]"#).status == .forbidden)
            #expect(try await api.patch(own, #"[{"op": "replace", "path": "/name", "value": "x"}]"#, token: Tok.bob).status == .notFound)
            // A reader of the owning project may look but not change.
            #expect(try await api.patch(own, #"[{"op": "replace", "path": "/name", "value": "x"}]"#, token: Tok.reader).status == .forbidden)
            // Another member of the owning project may change it.
            #expect(try await api.patch(own, #"[{"op": "replace", "path": "/name", "value": "x"}]"#, token: Tok.alice2).status == .ok)
        }
    }

    @Test func formatsAreFrozenOnceDataExists() async throws {
        try await withAPI { api in
            let active = try await api.insert(status: .active, owner: "pa")
            let r = try await api.patch(active, #"[{"op": "replace", "path": "/disk_format", "value": "qcow2"}]"#)
            #expect(r.status == .forbidden)
            let same = try await api.patch(active, #"[{"op": "replace", "path": "/disk_format", "value": "raw"}]"#)
            #expect(same.status == .ok)
            #expect(try await api.patch(active, #"[{"op": "replace", "path": "/name", "value": "renamed"}]"#).status == .ok)
        }
    }

    @Test func deleteRules() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "gone"}"#)
            #expect(try await api.call(.delete, "/v2/images/\(id)", token: Tok.bob).status == .notFound)
            let r = try await api.call(.delete, "/v2/images/\(id)")
            #expect(r.status == .noContent && r.text.isEmpty)
            #expect(try await api.call(.get, "/v2/images/\(id)").status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(id)", token: Tok.admin).status == .notFound)
            #expect(try await api.call(.delete, "/v2/images/\(id)").status == .notFound)
            #expect(try await api.listIDs("", token: Tok.admin).contains(id) == false)

            let protected = try await api.create(#"{"protected": true}"#)
            let refused = try await api.call(.delete, "/v2/images/\(protected)")
            #expect(refused.status == .forbidden)
            #expect(try refused.json["message"]?.stringValue?.contains("is protected and cannot be deleted") == true)
            #expect(try await api.show(protected)["status"] == .string("queued"))
            #expect(try await api.patch(protected, #"[{"op": "replace", "path": "/protected", "value": false}]"#).status == .ok)
            #expect(try await api.call(.delete, "/v2/images/\(protected)").status == .noContent)

            let publicImage = try await api.create(#"{"visibility": "public"}"#, token: Tok.admin)
            #expect(try await api.call(.delete, "/v2/images/\(publicImage)").status == .forbidden)
            #expect(try await api.call(.delete, "/v2/images/\(publicImage)", body: "x", contentType: "text/plain").status == .badRequest)
        }
    }

    @Test func deactivateAndReactivate() async throws {
        try await withAPI { api in
            let id = try await api.insert(status: .active, owner: "pa")
            let queued = try await api.create()
            #expect(try await api.call(.post, "/v2/images/\(queued)/actions/deactivate").status == .forbidden)
            #expect(try await api.call(.post, "/v2/images/\(queued)/actions/reactivate").status == .forbidden)
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate", token: Tok.bob).status == .notFound)
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate", token: Tok.reader).status == .forbidden)

            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate").status == .noContent)
            #expect(try await api.show(id)["status"] == .string("deactivated"))
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate").status == .noContent)
            #expect(try await api.show(id)["status"] == .string("deactivated"))
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/reactivate").status == .noContent)
            #expect(try await api.show(id)["status"] == .string("active"))
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/reactivate").status == .noContent)
            #expect(try await api.call(.post, "/v2/images/\(id)/actions/deactivate", json: "{}").status == .badRequest)
            #expect(try await api.show(id)["status"] == .string("active"))
        }
    }

    @Test func tags() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"tags": ["keep"]}"#)
            #expect(try await api.call(.put, "/v2/images/\(id)/tags/new%20tag").status == .noContent)
            #expect(try await api.call(.put, "/v2/images/\(id)/tags/new%20tag").status == .noContent)
            #expect(try await api.show(id)["tags"] == .array([.string("keep"), .string("new tag")]))
            #expect(try await api.call(.delete, "/v2/images/\(id)/tags/keep").status == .noContent)
            #expect(try await api.show(id)["tags"] == .array([.string("new tag")]))
            #expect(try await api.call(.delete, "/v2/images/\(id)/tags/keep").status == .notFound)
            #expect(try await api.call(.put, "/v2/images/\(ImageID.generate())/tags/x").status == .notFound)
            #expect(try await api.call(.put, "/v2/images/\(id)/tags/x", token: Tok.bob).status == .notFound)
            let long = String(repeating: "t", count: 256)
            #expect(try await api.call(.put, "/v2/images/\(id)/tags/\(long)").status == .badRequest)
            #expect(try await api.call(.put, "/v2/images/\(id)/tags/\(String(long.dropFirst()))").status == .noContent)
        }
    }

    @Test func tagQuotaIs413() async throws {
        try await withAPI { api in
            let tags = (0..<128).map { "\"t\($0)\"" }.joined(separator: ",")
            let id = try await api.create(#"{"tags": [\#(tags)]}"#)
            let r = try await api.call(.put, "/v2/images/\(id)/tags/one-more")
            #expect(r.status == .contentTooLarge)
            #expect(try r.json["code"] == .string("413 Request Entity Too Large"))
            #expect(try await api.show(id)["tags"]?.arrayValue.count == 128)
        }
    }
}

@Suite struct ConcurrencyTests {
    /// Concurrent writers to one image all land: the optimistic update retries instead of losing changes.
    @Test func concurrentTagAndPropertyWritesAllLand() async throws {
        try await withAPI { api in
            let id = try await api.create()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        let r = i % 2 == 0
                            ? try await api.call(.put, "/v2/images/\(id)/tags/t\(i)")
                            : try await api.patch(id, #"[{"op": "add", "path": "/p\#(i)", "value": "v"}]"#)
                        #expect(r.status == .noContent || r.status == .ok, "\(r.text)")
                    }
                }
                try await group.waitForAll()
            }
            let image = try await api.show(id)
            #expect(image["tags"]?.arrayValue.count == 10)
            for i in stride(from: 1, to: 20, by: 2) { #expect(image["p\(i)"] == .string("v")) }
        }
    }
}
