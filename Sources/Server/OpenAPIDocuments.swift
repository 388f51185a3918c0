import HTTPTypes
import Hummingbird
import NIOCore

/// The OpenAPI 3.1 document of each front-end, embedded at build time from `Sources/Server/OpenAPI/<name>.json`
/// and served at `/openapi/<name>.json` without authentication (they describe the API, not the catalog).
/// The e2e contract tests validate real answers against these documents and run schemathesis on them.
enum OpenAPIDocuments {
    /// In the order `/openapi/` lists them.
    static let ordered: [(name: String, document: [UInt8])] = [
        ("openstack", PackageResources.openstack_json),
        ("avi", PackageResources.avi_json),
        ("zstack", PackageResources.zstack_json),
        ("danube", PackageResources.danube_json),
        ("scalr", PackageResources.scalr_json),
    ]
    static let documents = Dictionary(uniqueKeysWithValues: ordered.map { ($0.name, $0.document) })
    static var names: [String] { ordered.map(\.name) }

    static func claims(_ path: String) -> Bool { path == "/openapi" || path.hasPrefix("/openapi/") }

    /// `/openapi/` lists the documents; `/openapi/<name>.json` is one of them; GET and HEAD only.
    static func respond(path: String, method: HTTPRequest.Method) -> Response {
        guard method == .get || method == .head else {
            return json(.methodNotAllowed, #"{"error":"method not allowed"}"#, extra: [.allow: "GET, HEAD"])
        }
        if path == "/openapi" || path == "/openapi/" {
            let list = names.map { #"{"name":"\#($0)","url":"/openapi/\#($0).json"}"# }.joined(separator: ",")
            return json(.ok, #"{"documents":[\#(list)]}"#)
        }
        let file = path.dropFirst("/openapi/".count)
        guard file.hasSuffix(".json"), let document = documents[String(file.dropLast(5))] else {
            return json(.notFound, #"{"error":"no such document; see /openapi/"}"#)
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                        body: .init(byteBuffer: ByteBuffer(bytes: document)))
    }

    private static func json(_ status: HTTPResponse.Status, _ body: String, extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
