import Foundation
import Logging
import Server
import HTTPTypes
import ImageCore
import Testing

@Suite struct VersionsAndErrorsTests {
    @Test func rootIsMultipleChoicesWithoutToken() async throws {
        try await withAPI { api in
            for path in ["/", "/v1/images", "/images", "/v3/", "/v2"] {
                let r = try await api.call(.get, path, token: nil)
                #expect(r.status == .multipleChoices, "\(path)")
                let versions = try r.json["versions"]?.arrayValue ?? []
                #expect(versions.first?["id"] == .string("v2.17"))
                #expect(versions.first?["status"] == .string("CURRENT"))
                #expect(versions.dropFirst().allSatisfy { $0["status"] == .string("SUPPORTED") })
                let ids = versions.compactMap { $0["id"]?.stringValue }
                #expect(ids == ["v2.17", "v2.16", "v2.15", "v2.14"] + (0...13).reversed().map { "v2.\($0)" })
                let href = versions.first?["links"]?.arrayValue.first?["href"]?.stringValue
                #expect(href?.hasSuffix("/v2/") == true)
                #expect(r.header("x-openstack-request-id")?.hasPrefix("req-") == true)
            }
            let v = try await api.call(.get, "/versions", token: nil)
            #expect(v.status == .ok)
            #expect(try v.json["versions"]?.arrayValue.count == 18)
        }
    }

    /// `--no-auth` means no credentials at all: a request without a token is the local admin.
    @Test func noAuthNeedsNoToken() async throws {
        try await withAPI(configure: { $0.auth = .none }) { api in
            let created = try await api.call(.post, "/v2/images", token: nil, json: #"{"name":"n"}"#)
            #expect(created.status == .created)
            #expect(created["owner"] == .string("local"))
            #expect(try await api.call(.get, "/v2/images", token: nil)["images"]?.arrayValue.count == 1)
        }
    }

    @Test func missingOrUnknownTokenIs401() async throws {
        try await withAPI { api in
            for token in [nil, "", "no-such-token"] as [String?] {
                let r = try await api.call(.get, "/v2/images", token: token)
                #expect(r.status == .unauthorized)
                #expect(try r.json["code"] == .string("401 Unauthorized"))
            }
        }
    }

    @Test func errorBodyFollowsAccept() async throws {
        try await withAPI { api in
            let missing = "/v2/images/" + ImageID.generate()
            let json = try await api.call(.get, missing, accept: "application/json")
            #expect(json.status == .notFound)
            #expect(json.header("content-type") == "application/json")
            #expect(try json.json["code"] == .string("404 Not Found"))
            #expect(try json.json["title"] == .string("Not Found"))
            #expect(try json.json["message"]?.stringValue?.contains("No image found with ID") == true)

            let html = try await api.call(.get, missing, accept: "*/*")
            #expect(html.header("content-type") == "text/html; charset=UTF-8")
            #expect(html.text.contains("<h1>404 Not Found</h1>"))
            #expect(html.text.contains("No image found with ID"))

            let both = try await api.call(.get, missing, accept: "text/html, application/json")
            #expect(both.header("content-type") == "text/html; charset=UTF-8")
            let jsonFirst = try await api.call(.get, missing, accept: "application/json;q=0.9, text/html")
            #expect(jsonFirst.header("content-type") == "application/json")

            let text = try await api.call(.get, missing, accept: nil)
            #expect(text.header("content-type") == "text/plain; charset=UTF-8")
            #expect(text.text.hasPrefix("404 Not Found\n\nNo image found with ID"))
        }
    }

    @Test func requestIDIsAdoptedOrGenerated() async throws {
        try await withAPI { api in
            let adopted = try await api.call(.get, "/v2/images", headers: ["x-openstack-request-id": "abc-123"])
            #expect(adopted.header("x-openstack-request-id") == "req-abc-123")
            let kept = try await api.call(.get, "/v2/images", headers: ["x-openstack-request-id": "req-77"])
            #expect(kept.header("x-openstack-request-id") == "req-77")
            let hostile = try await api.call(.get, "/v2/images", headers: ["x-openstack-request-id": "a b<script>"])
            let generated = try #require(hostile.header("x-openstack-request-id"))
            #expect(generated.hasPrefix("req-") && generated.count == 40 && !generated.contains("script"))
            let failed = try await api.call(.get, "/v2/images/nope")
            #expect(failed.header("x-openstack-request-id")?.hasPrefix("req-") == true)
        }
    }

    @Test(arguments: [
        (HTTPRequest.Method.put, "/v2/images", "GET, POST"),
        (.post, "/v2/images/6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4", "GET, PATCH, DELETE"),
        (.get, "/v2/images/6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4/actions/deactivate", "POST"),
        (.get, "/v2/images/6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4/tags/x", "PUT, DELETE"),
        (.delete, "/v2/schemas/image", "GET"),
    ])
    func wrongMethodIs405WithAllow(method: HTTPRequest.Method, path: String, allow: String) async throws {
        try await withAPI { api in
            let r = try await api.call(method, path)
            #expect(r.status == .methodNotAllowed)
            #expect(r.header("allow") == allow)
            #expect(try r.json["code"] == .string("405 Method Not Allowed"))
        }
    }

    @Test func unknownPathsAndEmptyIdsAre404() async throws {
        try await withAPI { api in
            for (method, path) in [(HTTPRequest.Method.get, "/v2/images/"), (.delete, "/v2/images/"), (.get, "/v2/nothing"),
                                   (.get, "/v2/schemas/bogus")] {
                let r = try await api.call(method, path)
                #expect(r.status == .notFound, "\(method) \(path)")
            }
        }
    }

    @Test func minorVersionPrefixAliasesV2() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "aliased"}"#)
            let r = try await api.call(.get, "/v2.1/images/\(id)")
            #expect(r.status == .ok)
            #expect(r["name"] == .string("aliased"))
            let list = try await api.call(.get, "/v2.7/images?name=aliased")
            #expect(list["images"]?.arrayValue.count == 1)
            let unknownMinor = try await api.call(.get, "/v2.99/images")
            #expect(unknownMinor.status == .multipleChoices)
        }
    }

    /// `GET /v2/images/{id}` skips the router (a hot path); `/v2.N/images/{id}` still goes through it.
    /// Both answer the same bytes and headers, and the shortcut keeps every rule of the route.
    @Test func getOneImageAnswersAlikeWithOrWithoutTheRouter() async throws {
        try await withAPI { api in
            let id = try await api.create(#"{"name": "same", "tags": ["a"], "os_distro": "debian"}"#)
            let direct = try await api.call(.get, "/v2/images/\(id)", headers: ["x-openstack-request-id": "req-direct"])
            let routed = try await api.call(.get, "/v2.16/images/\(id)", headers: ["x-openstack-request-id": "req-direct"])
            #expect(direct.status == .ok && routed.status == .ok)
            #expect(direct.text == routed.text)
            #expect(direct["name"] == .string("same") && direct["os_distro"] == .string("debian"))
            for name in ["content-type", "content-length", "x-openstack-request-id", "x-request-id"] {
                #expect(direct.header(name) == routed.header(name), "\(name)")
            }
            #expect(direct.header("x-openstack-request-id") == "req-direct" && direct.header("x-request-id") == "req-direct")
            // A percent-encoded id, upper case: the same image.
            let encoded = "%" + String(id.utf8.first!, radix: 16) + String(id.dropFirst()).uppercased()
            #expect(try await api.call(.get, "/v2/images/\(encoded)")["id"] == .string(id))
            // Not visible to another project, unknown, malformed: Glance's 404, both ways.
            for path in ["/v2/images/\(id)", "/v2.16/images/\(id)"] {
                let hidden = try await api.call(.get, path, token: Tok.bob)
                #expect(hidden.status == .notFound)
                #expect(hidden.text.contains("No image found with ID \(id)"), "\(hidden.text)")
            }
            #expect(try await api.call(.get, "/v2/images/6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4").status == .notFound)
            #expect(try await api.call(.get, "/v2/images/not-a-uuid").status == .notFound)
            #expect(try await api.call(.get, "/v2/images/\(id)", token: nil).status == .unauthorized)
            // A body on a GET is refused; HEAD (through the router) has the GET's headers and no body.
            let withBody = try await api.call(.get, "/v2/images/\(id)", json: "{}")
            #expect(withBody.status == .badRequest)
            #expect(withBody.text.contains("A body is not expected"))
            let head = try await api.call(.head, "/v2/images/\(id)")
            #expect(head.status == .ok && head.bytes.isEmpty)
            #expect(head.header("content-length") == direct.header("content-length"))
            // An empty id (a trailing slash) is Glance's 404, not the image.
            #expect(try await api.call(.get, "/v2/images/\(id)/").status == .notFound)
        }
    }

    @Test func healthzIsAnonymous() async throws {
        try await withAPI { api in
            let r = try await api.call(.get, "/healthz", token: nil)
            #expect(r.status == .ok)
            #expect(r["status"] == .string("ok"))
        }
    }

    @Test func schemasDescribeWhatShowReturns() async throws {
        try await withAPI { api in
            for name in ["image", "images", "member", "members", "task", "tasks"] {
                let r = try await api.call(.get, "/v2/schemas/\(name)")
                #expect(r.status == .ok)
                #expect(try r.json["name"] == .string(name))
            }
            let schema = try await api.call(.get, "/v2/schemas/image").json
            let declared = Set(schema["properties"]?.objectKeys ?? [])
            #expect(schema["additionalProperties"]?["type"] == .string("string"))
            let id = try await api.create(#"{"name": "s", "os_distro": "x"}"#)
            let shown = try await api.show(id)
            // Every base attribute shown is declared; extra properties are strings.
            for key in shown.objectKeys where !declared.contains(key) {
                #expect(shown[key]?.stringValue != nil, "undeclared \(key) must be a string")
            }
            #expect(schema["properties"]?["disk_format"]?["enum"]?.arrayValue.contains(.null) == true)
            #expect(schema["properties"]?["status"]?["readOnly"] == .bool(true))
            let images = try await api.call(.get, "/v2/schemas/images").json
            #expect(images["properties"]?["images"]?["items"]?["name"] == .string("image"))
            // The task documents link to /v2/schemas/task: it declares every member a task is shown with.
            let task = try await api.call(.get, "/v2/schemas/task").json
            #expect(Set(task["properties"]?.objectKeys ?? []) == ["id", "type", "status", "input", "result", "owner", "message", "image_id",
                                                                  "request_id", "user_id", "expires_at", "created_at", "updated_at", "self", "schema"])
            #expect(task["properties"]?["status"]?["enum"]?.arrayValue.count == 4)
        }
    }
}

@Suite struct UnmatchedPathTests {
    @Test(arguments: ["/v2/no-such-collection", "/v2/images/6f3a5d66-2c38-4c36-9f11-0ed5a1b2c3d4/nothing", "/v2/tenants/x/y"])
    func unmatchedV2PathsGetGlanceErrors(path: String) async throws {
        try await withAPI { api in
            let r = try await api.call(.get, path)
            #expect(r.status == .notFound)
            #expect(r.header("content-type") == "application/json")
            #expect(try r.json["code"] == .string("404 Not Found"))
            let html = try await api.call(.post, path, accept: "*/*")
            #expect(html.status == .notFound && html.text.contains("<h1>404 Not Found</h1>"))
        }
    }
}

@Suite struct DataDirectoryTests {
    @Test func oneServerPerDataDirectory() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-lock-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = ServerConfig()
        config.dataDirectory = dir
        config.auth = .none
        let first = try await buildImaged(config, logger: Logger(label: "t"))
        await #expect(throws: ConfigError.self) { _ = try await buildImaged(config, logger: Logger(label: "t")) }
        #expect(first.dataDirectory.hasSuffix(dir.split(separator: "/").last.map(String.init) ?? "?"))
    }

    @Test func firstStartCreatesAPrivateAdminTokenFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-tokens-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = ServerConfig()
        config.dataDirectory = dir
        let imaged = try await buildImaged(config, logger: Logger(label: "t"))
        let file = imaged.dataDirectory + "/tokens.json"
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let doc = try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
        let entry = try #require(doc["tokens"]?.arrayValue.first)
        #expect(entry["token"]?.stringValue?.count == 48)
        #expect(entry["roles"] == .array([.string("admin")]))
        #expect(imaged.authDescription.contains(file))
    }
}
