import Foundation
import HTTPTypes
import Hummingbird
import ImageCore
import NIOCore
@testable import Server
import Testing

/// `/readyz`, `/metrics` and request ids, through the real application.
@Suite struct ObservabilityTests {
    /// The value of one sample line of the exposition (`name{labels} value`), 0 when absent.
    static func sample(_ text: String, _ series: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1)) ?? 0
        }
        return 0
    }

    @Test func readinessMetricsAndRequestIds() async throws {
        try await withAPI { api in
            let ready = try await api.call(.get, "/readyz", token: nil)
            #expect(ready.status == .ok && ready["status"] == .string("ready"))
            #expect(ready["checks"]?["catalog"] == .string("ok") && ready["checks"]?.objectKeys.count == 2)

            let before = try await api.call(.get, "/metrics", token: nil, accept: nil).text
            let created = try await api.call(.post, "/v2/images", json: #"{"name":"m","disk_format":"raw","container_format":"bare"}"#)
            #expect(created.status == .created)
            // OpenStack's id is the request id of every front-end's answer too.
            #expect(created.header("x-request-id") != nil && created.header("x-request-id") == created.header("x-openstack-request-id"))
            let id = try #require(created.string("id"))
            let payload = [UInt8](repeating: 7, count: 300_000)
            let put = try await api.call(.put, "/v2/images/\(id)/file", bytes: payload, contentType: "application/octet-stream")
            #expect(put.status == .noContent)
            let got = try await api.call(.get, "/v2/images/\(id)/file", accept: nil)
            #expect(got.bytes == payload)
            let after = try await api.call(.get, "/metrics", token: nil, accept: nil)
            #expect(after.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            let series = #"imaged_http_requests_total{frontend="openstack",route="/v2/images/{id}/file",method="PUT",status="204"}"#
            #expect(Self.sample(after.text, series) >= Self.sample(before, series) + 1)
            #expect(Self.sample(after.text, "imaged_image_bytes_in_total") >= Self.sample(before, "imaged_image_bytes_in_total") + 300_000)
            #expect(Self.sample(after.text, "imaged_image_bytes_out_total") >= Self.sample(before, "imaged_image_bytes_out_total") + 300_000)
            #expect(after.text.contains("imaged_http_request_duration_seconds_bucket{frontend=\"openstack\""))
            #expect(after.text.contains("# TYPE imaged_uploads_in_flight gauge"))

            // The vendor front-ends answer with a request id too; a sane one from the caller is kept.
            let zs = try await api.call(.get, "/zstack/v1/images", token: nil)
            #expect(zs.header("x-request-id")?.hasPrefix("req-") == true)
            let echoed = try await api.call(.get, "/api/image", token: nil, headers: ["X-Request-Id": "trace-42"])
            #expect(echoed.header("x-request-id") == "trace-42")
            let hostile = try await api.call(.get, "/api/image", token: nil, headers: ["X-Request-Id": "a b\\c"])
            #expect(hostile.header("x-request-id")?.hasPrefix("req-") == true)
        }
    }

    /// A store that cannot be reached makes the server not ready (503), naming it.
    @Test func routeLabelsAreBounded() {
        #expect(Observability.route("/v2/images/6f1c0c1e-7d2a-4d8b-9a51-0c1d2e3f4a5b/file") == "/v2/images/{id}/file")
        #expect(Observability.route("/api/image/ubuntu-24.04/") == "/api/image/{id}/")
        #expect(Observability.route("/zstack/v1/images/0123456789abcdef0123456789abcdef/actions") == "/zstack/v1/images/{id}/actions")
        #expect(Observability.route("/api/v1beta0/user/12345/images/") == "/api/v1beta0/user/{id}/images/")
        #expect(Observability.route("/") == "/" && Observability.route("") == "/")
        // Whatever a caller sends, the label is built from the fixed words, `{id}` and a depth cut.
        #expect(Observability.route("/evil/\u{1F600}/%00/a/b/c/d/e/f") == "/{id}/{id}/{id}/{id}/{id}/{id}/…")
        // The same label as splitting the path on "/" (its definition), odd paths included.
        func bySplitting(_ path: String) -> String {
            var out = ""
            for (depth, segment) in path.split(separator: "/").enumerated() {
                if depth == 6 { out += "/…"; break }
                out += "/" + (Observability.routeWords.contains(segment) ? String(segment) : "{id}")
            }
            if path.hasSuffix("/") && !out.isEmpty { out += "/" }
            return out.isEmpty ? "/" : out
        }
        for path in ["//v2//images//x", "/v2/images/", "v2/images", "/a/b/c/d/e/f/g/", "/a/b/c/d/e/f/", "/v2/images/abc", "///", "/x",
                     "images", "/v2/images/\u{E9}t\u{E9}/tags/t", "/api/image-x/login/",
                     // GET one image's shortcut and its edges: a route word, an id with a trailing slash, a long word.
                     "/v2/images/6f1c0c1e-7d2a-4d8b-9a51-0c1d2e3f4a5b", "/v2/images/6f1c0c1e-7d2a-4d8b-9a51-0c1d2e3f4a5b/",
                     "/v2/images/members", "/v2/images/user.v1beta0.yml", "/v2/images/user.v1beta0.ymlx", "/v2/imagesx/0123456789abcdefghij"] {
            #expect(Observability.route(path) == bySplitting(path), "\(path)")
        }
    }

    @Test func openAPIDocumentsAreServed() async throws {
        try await withAPI { api in
            let index = try await api.call(.get, "/openapi/", token: nil)
            #expect(index.status == .ok)
            #expect(index["documents"]?.arrayValue.count == 5)
            for name in OpenAPIDocuments.names {
                let doc = try await api.call(.get, "/openapi/\(name).json", token: nil)
                #expect(doc.status == .ok && doc.header("content-type") == "application/json")
                #expect(doc["openapi"] == .string("3.1.0"), "\(name)")
                #expect(doc.bytes == OpenAPIDocuments.documents[name])
            }
            let missing = try await api.call(.get, "/openapi/nope.json", token: nil)
            #expect(missing.status == .notFound)
            let post = try await api.call(.post, "/openapi/avi.json", token: nil, json: "{}")
            #expect(post.status == .methodNotAllowed && post.header("allow") == "GET, HEAD")
        }
    }

    @Test func aFailingStoreIsNotReady() async throws {
        try await withAPI { api in
            let readiness = Readiness(catalog: api.imaged.catalog, stores: [BrokenStore()])
            let (ready, body) = await readiness.check()
            #expect(!ready && body["status"] == .string("not ready") && body["checks"]?["catalog"] == .string("ok"))
            #expect(body["checks"]?["store:broken"]?.stringValue?.contains("unreachable") == true)
        }
    }
}

/// A store whose every call fails (a test double for readiness).
struct BrokenStore: BlobStore {
    struct Down: Error, CustomStringConvertible { var description: String { "unreachable" } }
    let id = "broken"
    func makeWriter(key: String) async throws -> any BlobWriter { throw Down() }
    func size(key: String) async throws -> Int64? { throw Down() }
    func read(key: String, range: Range<Int64>?, chunkSize: Int, into sink: (ByteBuffer) async throws -> Void) async throws { throw Down() }
    func delete(key: String) async throws { throw Down() }
    func keys(prefix: String) async throws -> [String] { throw Down() }
    func removeLeftovers() async throws -> Int { throw Down() }
}
