import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageCore
import Logging
import Server
import Testing

/// Principals of the test token file.
enum Tok {
    static let admin = "tok-admin"      // project "adminproj", role admin
    static let alice = "tok-alice"      // project "pa", role member
    static let alice2 = "tok-alice2"    // project "pa", role member (another user)
    static let bob = "tok-bob"          // project "pb", role member
    static let carol = "tok-carol"      // project "pc", role member
    static let reader = "tok-reader"    // project "pa", role reader only
    static let readerB = "tok-reader-b" // project "pb", role reader only
}

struct Reply {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let text: String
    var bytes: [UInt8] = []

    var json: JSONValue {
        get throws { try JSONValue.parse(text) }
    }
    func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
    subscript(key: String) -> JSONValue? { try? json[key] }
    var string: (String) -> String? { { key in self[key]?.stringValue } }
}

/// Drives the real application (all front-ends, real SQLite in a temp dir) in-process.
struct API {
    let client: any TestClientProtocol
    let imaged: Imaged

    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = Tok.alice, json: String? = nil,
              body: String? = nil, bytes: [UInt8]? = nil, contentType: String? = nil, accept: String? = "application/json",
              headers extra: [String: String] = [:]) async throws -> Reply {
        var headers = HTTPFields()
        if let token { headers[HTTPField.Name("x-auth-token")!] = token }
        if let accept { headers[.accept] = accept }
        var payload: ByteBuffer?
        if let json {
            payload = ByteBuffer(string: json)
            headers[.contentType] = contentType ?? (method == .patch ? "application/openstack-images-v2.1-json-patch" : "application/json")
        } else if let body {
            payload = ByteBuffer(string: body)
            if let contentType { headers[.contentType] = contentType }
        } else if let bytes {
            payload = ByteBuffer(bytes: bytes)
            if let contentType { headers[.contentType] = contentType }
        }
        if let payload { headers[.contentLength] = String(payload.readableBytes) }
        for (k, v) in extra { headers[HTTPField.Name(k)!] = v }
        let r = try await client.executeRequest(uri: uri, method: method, headers: headers, body: payload)
        return Reply(status: r.status, headers: r.headers, text: String(decoding: r.body.readableBytesView, as: UTF8.self),
                     bytes: Array(r.body.readableBytesView))
    }

    /// Creates an image and returns its id (expects 201).
    @discardableResult
    func create(_ json: String = "{}", token: String = Tok.alice, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let r = try await call(.post, "/v2/images", token: token, json: json)
        #expect(r.status == .created, "create \(json): \(r.text)", sourceLocation: sourceLocation)
        return try #require(r["id"]?.stringValue, sourceLocation: sourceLocation)
    }

    func show(_ id: String, token: String = Tok.alice) async throws -> JSONValue {
        let r = try await call(.get, "/v2/images/\(id)", token: token)
        #expect(r.status == .ok, "show \(id): \(r.text)")
        return try r.json
    }

    func patch(_ id: String, _ json: String, token: String = Tok.alice, draft04: Bool = false) async throws -> Reply {
        try await call(.patch, "/v2/images/\(id)", token: token, json: json,
                       contentType: draft04 ? "application/openstack-images-v2.0-json-patch" : "application/openstack-images-v2.1-json-patch")
    }

    /// Ids in a list response, in order.
    func listIDs(_ query: String, token: String = Tok.alice, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        let r = try await call(.get, "/v2/images" + (query.isEmpty ? "" : "?" + query), token: token)
        #expect(r.status == .ok, "list \(query): \(r.text)", sourceLocation: sourceLocation)
        guard case .array(let items)? = r["images"] else { return [] }
        return items.compactMap { $0["id"]?.stringValue }
    }

    /// Puts an image straight into the catalog (for states the API reaches only with data, e.g. active).
    @discardableResult
    func insert(status: ImageStatus, owner: String = "pa", visibility: Visibility = .private, name: String? = nil,
                size: Int64? = nil, diskFormat: String? = "raw") async throws -> String {
        let now = Timestamp.now()
        let image = Image(id: ImageID.generate(), name: name, status: status, visibility: visibility, owner: owner,
                          containerFormat: "bare", diskFormat: diskFormat, size: size, createdAt: now, updatedAt: now)
        try await imaged.catalog.insertImage(image)
        return image.id
    }
}

func withAPI(configure: (inout ServerConfig) -> Void = { _ in }, _ test: @Sendable (API) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let tokens = """
        {"tokens": [
          {"token": "\(Tok.admin)", "user_id": "u-admin", "project_id": "adminproj", "roles": ["admin"]},
          {"token": "\(Tok.alice)", "user_id": "u-alice", "project_id": "pa", "roles": ["member"]},
          {"token": "\(Tok.alice2)", "user_id": "u-alice2", "project_id": "pa", "roles": ["Member"]},
          {"token": "\(Tok.bob)", "user_id": "u-bob", "project_id": "pb", "roles": ["member"]},
          {"token": "\(Tok.carol)", "user_id": "u-carol", "project_id": "pc", "roles": ["member"]},
          {"token": "\(Tok.reader)", "user_id": "u-reader", "project_id": "pa", "roles": ["reader"]},
          {"token": "\(Tok.readerB)", "user_id": "u-reader-b", "project_id": "pb", "roles": ["reader"]}
        ]}
        """
    try tokens.write(toFile: dir + "/tokens.json", atomically: true, encoding: .utf8)
    var config = ServerConfig()
    config.dataDirectory = dir + "/data"
    config.auth = .tokenFile(dir + "/tokens.json")
    config.durability = .normal
    configure(&config)
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let imaged = try await buildImaged(config, logger: logger)
    let app = Application(responder: imaged.responder, logger: logger)
    try await app.test(.router) { client in
        try await test(API(client: client, imaged: imaged))
    }
}

extension JSONValue {
    var objectKeys: [String] {
        if case .object(let m) = self { return m.map(\.0) }
        return []
    }
    var arrayValue: [JSONValue] {
        if case .array(let a) = self { return a }
        return []
    }
}
