import Crypto
import Foundation
import NIOCore
@testable import AviAPI
@testable import ImageData
import HTTPTypes
import HummingbirdTesting
import Identity
import ImageCore
import Server
import Testing

/// A session the way avisdk holds one: the cookies of `/login` and the CSRF token.
struct AviSession {
    let api: API
    var cookies: [String: String] = [:]
    var tenant: String?
    var version: String?

    var csrf: String { cookies["csrftoken"] ?? "" }

    static func login(_ api: API, _ name: String, _ password: String, tenant: String? = nil) async throws -> AviSession {
        let r = try await api.call(.post, "/login", token: nil, body: "username=\(name)&password=\(password)",
                                   contentType: "application/x-www-form-urlencoded")
        #expect(r.status == .ok, "\(r.text)")
        var s = AviSession(api: api, tenant: tenant)
        for field in r.headers where field.name == .setCookie {
            let pair = field.value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            s.cookies[String(pair[0])] = pair.count > 1 ? String(pair[1]) : ""
        }
        return s
    }

    func call(_ method: HTTPRequest.Method, _ path: String, json: String? = nil, csrf: String?? = .none,
              headers extra: [String: String] = [:]) async throws -> Reply {
        var headers = ["Cookie": cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), "Referer": "http://localhost"]
        switch csrf {
        case .none: headers["X-CSRFToken"] = self.csrf
        case .some(.some(let token)): headers["X-CSRFToken"] = token
        case .some(.none): break
        }
        if let tenant { headers["X-Avi-Tenant"] = tenant }
        if let version { headers["X-Avi-Version"] = version }
        for (k, v) in extra { headers[k] = v }
        return try await api.call(method, path, token: nil, json: json, contentType: "application/json", accept: nil, headers: headers)
    }
}

@Suite struct AviAPITests {
    static func accounts(_ api: API) async throws {
        let accounts = LocalAccounts(catalog: api.imaged.catalog, iterations: 1000)
        _ = try await accounts.create(name: "alice", project: "pa", roles: ["member"], password: "alice-password")
        _ = try await accounts.create(name: "bob", project: "pb", roles: ["member"], password: "bob-password")
        _ = try await accounts.create(name: "root", project: "admin", roles: ["admin"], password: "root-password")
    }

    @Test func loginCookiesAndRefusals() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let bad = try await api.call(.post, "/login", token: nil, body: "username=alice&password=nope",
                                         contentType: "application/x-www-form-urlencoded")
            #expect(bad.status == .unauthorized && bad["error"] == .string("log in failed"))
            let json = try await api.call(.post, "/login", token: nil, json: #"{"username":"alice","password":"alice-password"}"#)
            #expect(json.status == .ok && json["session_cookie_name"] == .string("sessionid"))
            let s = try await AviSession.login(api, "alice", "alice-password")
            #expect(s.cookies["sessionid"] != nil && s.cookies["sessionid"] == s.cookies["avi-sessionid"] && s.csrf.count >= 32)
            // No session: 401, so the SDK logs in again.
            let anonymous = try await api.call(.get, "/api/image", token: nil)
            #expect(anonymous.status == .unauthorized && anonymous["error"] != nil)
            #expect(try await s.call(.get, "/api/image").status == .ok)
            #expect(try await s.call(.post, "/logout").status == .ok)
            #expect(try await s.call(.get, "/api/image").status == .unauthorized)
        }
    }

    /// An image imported from a URL whose task row has been purged shows how the import ended, from its status.
    @Test func urlImportStateOutlivesItsTaskRow() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let catalog = api.imaged.catalog
            var ids: [String] = []
            for status in [ImageStatus.active, .queued] {
                let image = Image(id: ImageID.generate(), name: "pkg-\(status.rawValue)", status: status, visibility: .private, owner: "pa",
                                  containerFormat: "bare", diskFormat: "raw", size: status == .active ? 10 : nil, createdAt: 100, updatedAt: 160,
                                  extensions: ["avi": .object([("progress", .int(40)), ("img_state", AviUpload.state("IMAGE_FSM_IN_PROGRESS", at: Date()))])])
                try await catalog.insertImage(image)
                ids.append(image.id)
            }
            let done = try await s.call(.get, "/api/image/image-\(ids[0])")
            #expect(done["progress"] == .int(100) && done["img_state"]?["state"] == .string("IMAGE_FSM_COMPLETED") && done["duration"] == .int(60))
            let failed = try await s.call(.get, "/api/image/image-\(ids[1])")
            #expect(failed["img_state"]?["state"] == .string("IMAGE_FSM_FAILED") && failed["progress"] == .int(40))
        }
    }

    @Test func createListGetDeleteWithTheAviShapes() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let body = #"{"name":"img1","type":"IMAGE_TYPE_SYSTEM","controller_info":{"build":{"version":"30.2.1","build_no":9056},"hash":"5d41402abc4b2a76b9719d911017c592","path":"/host/pkgs/controller.pkg"},"uber_bundle":false,"migrations":{"api_version":"22.1.1","versions":["22.1.3"]},"url":"ignored","_last_modified":"1"}"#
            let created = try await s.call(.post, "/api/image", json: body)
            #expect(created.status == .created, "\(created.text)")
            let uuid = try #require(created["uuid"]?.stringValue)
            #expect(uuid.hasPrefix("image-") && ImageID.isValid(String(uuid.dropFirst(6))))
            #expect(created["url"] == .string("http://localhost/api/image/\(uuid)#img1"))
            #expect(created.header("Location") == "http://localhost/api/image/\(uuid)#img1")
            #expect(created["tenant_ref"] == .string("http://localhost/api/tenant/pa#pa"))
            #expect(created["controller_info"] == (try JSONValue.parse(body))["controller_info"])
            #expect(created["fips_mode_transition_applicable"] == .bool(true))
            #expect(created["_last_modified"]?.stringValue.flatMap(Int64.init).map { $0 > 1_000_000_000_000_000 } == true)

            let got = try await s.call(.get, "/api/image/\(uuid)")
            #expect(got.status == .ok && got["url"] == .string("http://localhost/api/image/\(uuid)"))
            #expect(got["migrations"] == (try JSONValue.parse(body))["migrations"] && got["type"] == .string("IMAGE_TYPE_SYSTEM"))
            let duplicate = try await s.call(.post, "/api/image", json: #"{"name":"img1"}"#)
            #expect(duplicate.status == .conflict && duplicate.text.contains("already exists"))

            for i in 2...6 { #expect(try await s.call(.post, "/api/image", json: #"{"name":"img\#(i)"}"#).status == .created) }
            let page1 = try await s.call(.get, "/api/image?page_size=4")
            #expect(page1["count"] == .int(6) && page1["results"]?.arrayValue.count == 4)
            let next = try #require(page1["next"]?.stringValue)
            #expect(next.hasPrefix("http://localhost/api/image?") && next.contains("page=2") && next.contains("page_size=4"))
            let page2 = try await s.call(.get, "/api/image?page_size=4&page=2")
            #expect(page2["results"]?.arrayValue.compactMap { $0["name"]?.stringValue } == ["img5", "img6"] && page2["next"] == nil)
            let byName = try await s.call(.get, "/api/image?name=img3")
            #expect(byName["count"] == .int(1) && byName["results"]?.arrayValue.first?["name"] == .string("img3"))
            let miss = try await s.call(.get, "/api/image?name=nope")
            #expect(miss.status == .ok && miss["count"] == .int(0) && miss["results"] == .array([]))

            #expect(try await s.call(.delete, "/api/image/\(uuid)").status == .noContent)
            let gone = try await s.call(.get, "/api/image/\(uuid)")
            #expect(gone.status == .notFound && gone["error"] == .string("Image object not found!"))
        }
    }

    /// Found by schemathesis on the OpenAPI document: a huge page trapped the process, `next` lost the query's
    /// meaning, a numeric `_last_modified` skipped the lost-update check, 405s had no `Allow`.
    @Test func hostileListParametersAndMistypedStamps() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            for name in ["a&b#c", "a+b c"] {
                #expect(try await s.call(.post, "/api/image", json: #"{"name":"\#(name)"}"#).status == .created)
            }
            #expect(try await s.call(.post, "/api/image", json: #"{"name":"other"}"#).status == .created)
            for page in ["9223372036854775807", "92233720368547758", "10737419"] {
                let huge = try await s.call(.get, "/api/image?page=\(page)&page_size=200")
                #expect(huge.status == .badRequest && huge["error"]?.stringValue?.contains("page must be an integer from 1 to 10737418") == true)
            }
            let last = try await s.call(.get, "/api/image?page=10737418&page_size=200")
            #expect(last.status == .ok && last["results"] == .array([]))
            let page1 = try await s.call(.get, "/api/image?page_size=1&fields=name,%20url&sort=name")
            let next = try #require(page1["next"]?.stringValue)
            #expect(next.contains("fields=name,%20url") && next.contains("sort=name") && next.hasSuffix("&page=2") && !next.contains(" "), "\(next)")
            // Following `next` gives the second page of the same listing.
            let nextPath = String(next.dropFirst("http://localhost".count))
            let page2 = try await s.call(.get, nextPath)
            #expect(page2.status == .ok && page2["results"]?.arrayValue.first?["name"] == .string("a+b c"))
            let filtered = try await s.call(.get, "/api/image?name=a%26b%23c")
            #expect(filtered["count"] == .int(1) && filtered["results"]?.arrayValue.first?["name"] == .string("a&b#c"))

            let created = try await s.call(.post, "/api/image", json: #"{"name":"stamped"}"#)
            let uuid = try #require(created["uuid"]?.stringValue)
            let numeric = try await s.call(.put, "/api/image/\(uuid)", json: #"{"name":"stamped2","_last_modified":1}"#)
            #expect(numeric.status == .badRequest && numeric["error"] == .string("Field '_last_modified' must be a string."))
            #expect(try await s.call(.get, "/api/image/\(uuid)")["name"] == .string("stamped"))

            for (method, path, allow) in [(HTTPRequest.Method.get, "/login", "POST"), (.delete, "/api/image", "GET, POST"),
                                          (.post, "/api/image/\(uuid)", "GET, PUT, PATCH, DELETE")] {
                let refused = try await s.call(method, path)
                #expect(refused.status == .methodNotAllowed && refused.header("Allow") == allow, "\(path)")
            }
        }
    }

    @Test func csrfIsRequiredOnUnsafeMethodsAndNothingChanges() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let created = try await s.call(.post, "/api/image", json: #"{"name":"keep"}"#)
            let uuid = try #require(created["uuid"]?.stringValue)
            for token: String? in [nil, "wrong-token", s.csrf + "x"] {
                let post = try await s.call(.post, "/api/image", json: #"{"name":"sneaky"}"#, csrf: .some(token))
                #expect(post.status == .unauthorized && post.text == "CSRF token missing or incorrect.")
                #expect(post.header("Content-Type") == "text/plain; charset=utf-8")
                let delete = try await s.call(.delete, "/api/image/\(uuid)", csrf: .some(token))
                #expect(delete.status == .unauthorized)
            }
            for token: String? in [nil, "wrong-token"] {
                let put = try await s.call(.put, "/api/image/\(uuid)", json: #"{"name":"renamed"}"#, csrf: .some(token))
                let patch = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"replace":{"name":"renamed"}}"#, csrf: .some(token))
                #expect(put.status == .unauthorized && patch.status == .unauthorized)
            }
            #expect(try await s.call(.get, "/api/image/\(uuid)")["name"] == .string("keep"))
            // A Referer (or an Origin) naming another site is refused too: 403, Django's words (issue 19).
            let foreign = try await s.call(.post, "/api/image", json: #"{"name":"sneaky"}"#, headers: ["Referer": "http://evil.example"])
            #expect(foreign.status == .forbidden)
            let origin = try await s.call(.post, "/api/image", json: #"{"name":"sneaky"}"#, headers: ["Origin": "http://evil.example"])
            #expect(origin.status == .forbidden && origin.text.contains("Origin checking failed - http://evil.example"))
            let all = try await s.call(.get, "/api/image")
            #expect(all["count"] == .int(1) && all["results"]?.arrayValue.first?["uuid"] == .string(uuid))
        }
    }

    @Test func versionsGateFieldsBothWays() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            var s = try await AviSession.login(api, "alice", "alice-password")
            let made = try await s.call(.post, "/api/image", json: #"{"name":"v","progress":40,"uber_bundle":true}"#)
            let uuid = try #require(made["uuid"]?.stringValue)
            s.version = "20.1.1"
            // progress came in 21.1.3: refused on POST, left out on GET.
            let refused = try await s.call(.post, "/api/image", json: #"{"name":"old","progress":10}"#)
            #expect(refused.status == .badRequest && refused.text.contains("progress"))
            let old = try await s.call(.get, "/api/image/\(uuid)")
            #expect(old["progress"] == nil && old["uber_bundle"] == .bool(true) && old.header("AVI_API_VERSION") == "20.1.1")
            #expect(old["fips_mode_transition_applicable"] == nil)
            s.version = "99.1.1"
            let future = try await s.call(.get, "/api/image")
            #expect(future.status == .badRequest && future.text.contains("Invalid version"))
        }
    }

    @Test func badInputIsRefusedInAvisFormat() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let cases: [(String, String)] = [
                (#"{"name":"x","colour":"red"}"#, "Unknown field"),
                (#"{"name":"x","progress":101}"#, "between 0 and 100"),
                (#"{"name":"x","progress":"half"}"#, "wrong type"),
                (#"{"name":"x","type":"IMAGE_TYPE_TOASTER"}"#, "IMAGE_TYPE_PATCH"),
                (#"{"name":"x","img_state":{"state":"IMAGE_FSM_DANCING"}}"#, "img_state.state"),
                (#"{"name":"x","uber_bundle":"yes"}"#, "wrong type"),
                (#"{"type":"IMAGE_TYPE_SYSTEM"}"#, "'name' is required"),
                (#"{"name":"x""#, "Malformed JSON"),
                (#"[1]"#, "Image object is expected"),
            ]
            for (body, phrase) in cases {
                let r = try await s.call(.post, "/api/image", json: body)
                #expect(r.status == .badRequest, "\(body): \(r.text)")
                #expect(r["error"]?.stringValue?.contains(phrase) == true, "\(body): \(r.text)")
            }
            let none = try await s.call(.get, "/api/image")
            #expect(none["count"] == .int(0))
            #expect(try await s.call(.get, "/api/image?page=0").status == .badRequest)
            #expect(try await s.call(.get, "/api/image/not-a-uuid").status == .notFound)
        }
    }

    @Test func tenantsAreSeparateAndTheCatalogIsShared() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let alice = try await AviSession.login(api, "alice", "alice-password")
            let bob = try await AviSession.login(api, "bob", "bob-password")
            let made = try await alice.call(.post, "/api/image", json: #"{"name":"alice-img"}"#)
            let uuid = try #require(made["uuid"]?.stringValue)
            #expect(try await bob.call(.get, "/api/image")["count"] == .int(0))
            #expect(try await bob.call(.get, "/api/image/\(uuid)").status == .notFound)
            // Only an admin may act in another tenant.
            var sneaky = bob
            sneaky.tenant = "pa"
            #expect(try await sneaky.call(.get, "/api/image").status == .forbidden)
            var root = try await AviSession.login(api, "root", "root-password")
            root.tenant = "pa"
            let seen = try await root.call(.get, "/api/image")
            #expect(seen["results"]?.arrayValue.compactMap { $0["uuid"]?.stringValue }.contains(uuid) == true)

            // The same image through the OpenStack API, and an OpenStack image through Avi.
            let id = String(uuid.dropFirst("image-".count))
            let viaOpenStack = try await api.show(id, token: Tok.alice)
            #expect(viaOpenStack["name"] == .string("alice-img") && viaOpenStack["owner"] == .string("pa"))
            let osId = try await api.create(#"{"name":"from-openstack","disk_format":"raw","container_format":"bare"}"#, token: Tok.alice)
            let listed = try await alice.call(.get, "/api/image?name=from-openstack")
            #expect(listed["results"]?.arrayValue.first?["uuid"] == .string("image-" + osId))
        }
    }

    @Test func putReplacesAndPatchAddsReplacesDeletes() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let made = try await s.call(.post, "/api/image", json: #"{"name":"p1","type":"IMAGE_TYPE_PATCH","uber_bundle":true,"events":[{"task_name":"a"}],"se_patch_name":"x"}"#)
            let uuid = try #require(made["uuid"]?.stringValue)
            _ = try await s.call(.post, "/api/image", json: #"{"name":"other"}"#)

            let added = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"add":{"events":[{"task_name":"b"}],"progress":30}}"#)
            #expect(added.status == .ok, "\(added.text)")
            #expect(added["events"] == (try JSONValue.parse(#"[{"task_name":"a"},{"task_name":"b"}]"#)) && added["progress"] == .int(30))
            let replaced = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"replace":{"name":"p2","events":[{"task_name":"c"}],"uber_bundle":false}}"#)
            #expect(replaced["name"] == .string("p2") && replaced["uber_bundle"] == .bool(false))
            #expect(replaced["events"] == (try JSONValue.parse(#"[{"task_name":"c"}]"#)))
            #expect(replaced["url"] == .string("http://localhost/api/image/\(uuid)#p2"))
            let deleted = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"delete":{"se_patch_name":"","events":[{"task_name":"c"}]}}"#)
            #expect(deleted["se_patch_name"] == nil && deleted["events"] == .array([]) && deleted["type"] == .string("IMAGE_TYPE_PATCH"))
            let plain = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"progress":60}"#)
            #expect(plain["progress"] == .int(60))
            // Read back: every change is stored.
            let read = try await s.call(.get, "/api/image/\(uuid)")
            #expect(read["name"] == .string("p2") && read["progress"] == .int(60) && read["uber_bundle"] == .bool(false))
            #expect(read["se_patch_name"] == nil && read["events"] == .array([]))

            // Malformed PATCHes change nothing.
            for body in [#"{"Replace":{"name":"z"}}"#, #"{"add":{"a":1},"delete":{"b":2}}"#, #"{"replace":{"progress":101}}"#,
                         #"{"replace":{"name":"other"}}"#, #"{"delete":{"name":"p2"}}"#, #"{"replace":5}"#, #"{"replace":{"uuid":"x"}}"#] {
                let r = try await s.call(.patch, "/api/image/\(uuid)", json: body)
                #expect(r.status == .badRequest || r.status == .conflict, "\(body): \(r.text)")
                #expect(r["error"] != nil, "\(body): \(r.text)")
            }
            #expect(try await s.call(.get, "/api/image/\(uuid)")["_last_modified"] == read["_last_modified"])

            // PUT replaces the whole object (what is left out is unset); a stale _last_modified is 412.
            guard case .object(var full) = try read.json else { Issue.record("not an object"); return }
            full.removeAll { $0.0 == "progress" }
            if let i = full.firstIndex(where: { $0.0 == "type" }) { full[i].1 = .string("IMAGE_TYPE_SYSTEM") }
            let put = try await s.call(.put, "/api/image/\(uuid)", json: JSONValue.object(full).serialized)
            #expect(put.status == .ok && put["type"] == .string("IMAGE_TYPE_SYSTEM") && put["progress"] == nil)
            let stale = try await s.call(.put, "/api/image/\(uuid)", json: JSONValue.object(full).serialized)
            #expect(stale.status == .preconditionFailed && stale["error"] != nil)
            #expect(try await s.call(.get, "/api/image/\(uuid)")["type"] == .string("IMAGE_TYPE_SYSTEM"))
        }
    }
}

@Suite struct MultipartReaderTests {
    /// A body cut into chunks at every position still yields the same parts and bytes.
    @Test func partsSurviveEveryChunking() async throws {
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31) } + Array("\r\n--notquite".utf8)
        let boundary = "XyZ123"
        var body = Array("preamble\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\nhello\r\n--\(boundary)\r\n".utf8)
        body += Array("Content-Disposition: form-data; name=\"file\"; filename=\"se_patch.pkg\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body += payload + Array("\r\n--\(boundary)--\r\n".utf8)
        for size in [1, 2, 3, 7, 64, 1000, body.count] {
            let chunks = stride(from: 0, to: body.count, by: size).map { ByteBuffer(bytes: body[$0..<min($0 + size, body.count)]) }
            let reader = MultipartReader(body: AsyncStream<ByteBuffer> { c in chunks.forEach { c.yield($0) }; c.finish() }, boundary: boundary)
            let first = try #require(try await reader.nextPart())
            #expect(first.name == "meta" && first.filename == nil)   // skipped unread
            let file = try #require(try await reader.nextPart())
            #expect(file == .init(name: "file", filename: "se_patch.pkg", contentType: "application/octet-stream"))
            var got: [UInt8] = []
            for try await chunk in reader.partBody { got += chunk.readableBytesView }
            #expect(got == payload, "chunk size \(size)")
            let end = try await reader.nextPart()
            #expect(end == nil)
        }
    }

    @Test func truncatedOrBoundarylessBodiesAreRefused() async throws {
        for text in ["no boundary here", "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc", "--b\r\nContent-Disp"] {
            let reader = MultipartReader(body: AsyncStream<ByteBuffer> { c in c.yield(ByteBuffer(string: text)); c.finish() }, boundary: "b")
            await #expect(throws: MultipartReader<AsyncStream<ByteBuffer>>.Malformed.self) {
                while try await reader.nextPart() != nil { for try await _ in reader.partBody {} }
            }
        }
        #expect(MultipartReader<AsyncStream<ByteBuffer>>.boundary(of: "multipart/form-data; boundary=\"a b\"") == "a b")
        #expect(MultipartReader<AsyncStream<ByteBuffer>>.boundary(of: "application/json") == nil)
    }
}

extension AviAPITests {
    @Test func packageUploadStreamsIntoTheCatalogAndShowsItsState() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let boundary = "imagedtest"
            var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/controller.pkg\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += data + Array("\r\n--\(boundary)--\r\n".utf8)
            let headers = ["Cookie": s.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), "X-CSRFToken": s.csrf]
            let r = try await api.call(.post, "/api/image", token: nil, bytes: body, contentType: "multipart/form-data; boundary=\(boundary)",
                                       accept: nil, headers: headers)
            #expect(r.status == .created, "\(r.text)")
            #expect(r["name"] == .string("controller.pkg") && r["progress"] == .int(100))
            #expect(r["img_state"]?["state"] == .string("IMAGE_FSM_COMPLETED") && r["tasks_completed"] == .int(1))
            #expect(r["events"]?.arrayValue.first?["nodes_events"]?.arrayValue.first?["status"] == .string("SYSERR_SUCCESS"))
            let uuid = try #require(r["uuid"]?.stringValue)
            // The same bytes through the OpenStack API, with the digests recorded on the way in.
            let id = String(uuid.dropFirst("image-".count))
            let shown = try await api.show(id, token: Tok.alice)
            #expect(shown["status"] == .string("active") && shown["checksum"]?.stringValue == hexDigest(Insecure.MD5.hash(data: data)))
            #expect(try await api.call(.get, "/v2/images/\(id)/file", token: Tok.alice).bytes == data)

            // Without CSRF: refused, nothing created.
            let refused = try await api.call(.post, "/api/image", token: nil, bytes: body, contentType: "multipart/form-data; boundary=\(boundary)",
                                             accept: nil, headers: ["Cookie": headers["Cookie"]!])
            #expect(refused.status == .unauthorized)
            // A body without its boundary: 400 before anything is created.
            let lost = try await api.call(.post, "/api/image", token: nil, bytes: body, contentType: "multipart/form-data; boundary=other",
                                          accept: nil, headers: headers)
            #expect(lost.status == .badRequest)
            #expect(try await s.call(.get, "/api/image")["count"] == .int(1))
            // A truncated upload: 400; the image it started shows IMAGE_FSM_FAILED and holds no data.
            var renamed = body
            let from = Array("controller.pkg".utf8), to = Array("truncated.pkg!".utf8)
            if let at = (0...(renamed.count - from.count)).first(where: { Array(renamed[$0..<($0 + from.count)]) == from }) {
                renamed.replaceSubrange(at..<(at + from.count), with: to)
            }
            let cut = Array(renamed.prefix(renamed.count - 40))
            let broken = try await api.call(.post, "/api/image", token: nil, bytes: cut, contentType: "multipart/form-data; boundary=\(boundary)",
                                            accept: nil, headers: headers)
            #expect(broken.status == .badRequest, "\(broken.text)")
            let failed = try await s.call(.get, "/api/image?name=truncated.pkg!")
            let image = try #require(failed["results"]?.arrayValue.first)
            #expect(image["img_state"]?["state"] == .string("IMAGE_FSM_FAILED") && image["progress"] != .int(100))
            let failedId = String(try #require(image["uuid"]?.stringValue).dropFirst("image-".count))
            #expect(try await api.show(failedId, token: Tok.alice)["status"] == .string("queued"))
        }
    }
}

extension AviAPITests {
    @Test func jsonPatchVariant() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let made = try await s.call(.post, "/api/image", json: #"{"name":"j1","events":[{"task_name":"a"}],"controller_info":{"hash":"h","path":"/p"}}"#)
            let uuid = try #require(made["uuid"]?.stringValue)
            let ops = #"{"json_patch":[{"op":"add","path":"/events/-","value":{"task_name":"b"}},{"op":"replace","path":"/controller_info/hash","value":"h2"},{"op":"remove","path":"/controller_info/path"},{"op":"replace","path":"/name","value":"j2"},{"op":"add","path":"/progress","value":5}]}"#
            let r = try await s.call(.patch, "/api/image/\(uuid)", json: ops)
            #expect(r.status == .ok, "\(r.text)")
            let read = try await s.call(.get, "/api/image/\(uuid)")
            #expect(read["name"] == .string("j2") && read["progress"] == .int(5))
            #expect(read["events"] == (try JSONValue.parse(#"[{"task_name":"a"},{"task_name":"b"}]"#)))
            #expect(read["controller_info"] == (try JSONValue.parse(#"{"hash":"h2"}"#)))
            for bad in [#"{"json_patch":[{"op":"replace","path":"/progress","value":101}]}"#,
                        #"{"json_patch":[{"op":"remove","path":"/name"}]}"#,
                        #"{"json_patch":[{"op":"move","path":"/name","from":"/x"}]}"#,
                        #"{"json_patch":[{"op":"remove","path":"/nothing"}]}"#,
                        #"{"json_patch":[{"op":"replace","path":"/uuid","value":"x"}]}"#,
                        #"{"json_patch":[]}"#] {
                let b = try await s.call(.patch, "/api/image/\(uuid)", json: bad)
                #expect(b.status == .badRequest, "\(bad): \(b.text)")
            }
            let test = try await s.call(.patch, "/api/image/\(uuid)", json: #"{"json_patch":[{"op":"test","path":"/name","value":"other"},{"op":"replace","path":"/name","value":"j3"}]}"#)
            #expect(test.status == .conflict)
            #expect(try await s.call(.get, "/api/image/\(uuid)")["_last_modified"] == read["_last_modified"])
        }
    }
}

extension AviAPITests {
    @Test func fieldsAndSkipDefault() async throws {
        try await withAPI { api in
            try await Self.accounts(api)
            let s = try await AviSession.login(api, "alice", "alice-password")
            let made = try await s.call(.post, "/api/image", json: #"{"name":"f1","type":"IMAGE_TYPE_SYSTEM","uber_bundle":false,"progress":3}"#)
            let uuid = try #require(made["uuid"]?.stringValue)
            let one = try await s.call(.get, "/api/image/\(uuid)?fields=type")
            guard case .object(let members) = try one.json else { Issue.record("not an object"); return }
            #expect(Set(members.map(\.0)) == ["url", "uuid", "name", "type"])
            let list = try await s.call(.get, "/api/image?fields=progress,tenant_ref")
            guard case .object(let first)? = list["results"]?.arrayValue.first else { Issue.record("no results"); return }
            #expect(Set(first.map(\.0)) == ["url", "uuid", "name", "progress", "tenant_ref"])
            let skipped = try await s.call(.get, "/api/image/\(uuid)?skip_default=true")
            #expect(skipped["uber_bundle"] == nil && skipped["fips_mode_transition_applicable"] == nil && skipped["progress"] == .int(3))
            let full = try await s.call(.get, "/api/image/\(uuid)")
            #expect(full["uber_bundle"] == .bool(false) && full["fips_mode_transition_applicable"] == .bool(true))
        }
    }
}
