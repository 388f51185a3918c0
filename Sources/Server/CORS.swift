import HTTPTypes
import Hummingbird

/// Cross-origin access for browsers (`--cors-origin`, off by default): a page served from an allowed
/// origin may call the APIs directly, e.g. to upload an image with the resumable-upload protocol.
/// Preflights are answered here, before authentication (a browser sends them without credentials);
/// every other answer to an allowed origin says so and exposes the headers tus clients read.
public struct CORSPolicy: Sendable, Equatable {
    /// Exact origins (`https://console.example.net`), or every origin with `*`.
    public var origins: Set<String>
    public var maxAgeSeconds = 600

    public init(origins: [String]) { self.origins = Set(origins) }

    public func allows(_ origin: String) -> Bool { origins.contains("*") || origins.contains(origin) }

    static let allowMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    static let allowHeaders = [
        "X-Auth-Token", "Content-Type", "Content-MD5", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Tus-Resumable",
        "Repr-Digest", "X-Image-Meta-Expected-Hash", "X-Image-Meta-Store", "X-OpenStack-Image-Size", "OpenStack-API-Version",
        "X-Openstack-Request-Id", "Authorization",
    ].joined(separator: ", ")
    static let exposeHeaders = [
        "Upload-Offset", "Upload-Length", "Upload-Expires", "Location", "Tus-Resumable", "Tus-Version", "Tus-Extension",
        "Tus-Max-Size", "X-Openstack-Request-Id", "X-Request-Id", "Content-MD5", "OpenStack-Image-Import-Methods",
    ].joined(separator: ", ")

    static let origin = HTTPField.Name("origin")!
    static let requestMethod = HTTPField.Name("access-control-request-method")!
    static let allowOrigin = HTTPField.Name("access-control-allow-origin")!
    static let allowMethodsName = HTTPField.Name("access-control-allow-methods")!
    static let allowHeadersName = HTTPField.Name("access-control-allow-headers")!
    static let exposeHeadersName = HTTPField.Name("access-control-expose-headers")!
    static let maxAge = HTTPField.Name("access-control-max-age")!
    static let vary = HTTPField.Name("vary")!

    /// The allowed origin a request comes from, if any.
    func allowedOrigin(_ request: Request) -> String? {
        guard let origin = request.headers[Self.origin], allows(origin) else { return nil }
        return origin
    }

    /// The answer to a preflight from an allowed origin (nil: not a preflight, or not allowed).
    func preflight(_ request: Request) -> Response? {
        guard request.method == .options, request.headers[Self.requestMethod] != nil, let origin = allowedOrigin(request) else { return nil }
        return Response(status: .noContent, headers: [
            Self.allowOrigin: origin, Self.allowMethodsName: Self.allowMethods, Self.allowHeadersName: Self.allowHeaders,
            Self.maxAge: String(maxAgeSeconds), Self.vary: "Origin",
        ])
    }

    /// Marks an answer to an allowed origin as readable by it.
    func decorate(_ response: inout Response, for request: Request) {
        guard let origin = allowedOrigin(request) else { return }
        response.headers[Self.allowOrigin] = origin
        response.headers[Self.exposeHeadersName] = Self.exposeHeaders
        response.headers[Self.vary] = "Origin"
    }
}
