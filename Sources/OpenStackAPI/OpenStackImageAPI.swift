import FrontEndSupport
import HTTPTypes
import Foundation
import Hummingbird
import Identity
import ImageCore
import ImageData

/// What the OpenStack front-end needs from the application's request context.
public protocol OpenStackRequestContext: RequestContext {
    var principal: Principal? { get set }
    /// The id the front door gave the request when the caller sent none (nil: make one).
    var requestId: String? { get set }
}

public struct OpenStackAPIOptions: Sendable {
    /// Base URL clients reach us at (e.g. `https://img.example.net`), for `Location` and the
    /// versions document. When nil, it is built from the request's Host.
    public var publicEndpoint: String?
    /// Sent as `WWW-Authenticate: Keystone uri="…"` on 401 when set.
    public var identityURI: String?
    /// Glance's `show_image_direct_url`: image views carry `direct_url` (the first location) for
    /// callers allowed to see locations (`get_image_location`).
    public var showImageDirectURL = false
    /// Glance's `show_multiple_locations`: image views carry `locations`.
    public var showMultipleLocations = false
    /// Resumable uploads' session lifetime and checkpoints (`--upload-session-ttl`).
    public var uploadSessions = ResumableUploadConfig()

    public init(publicEndpoint: String? = nil, identityURI: String? = nil) {
        self.publicEndpoint = publicEndpoint
        self.identityURI = identityURI
    }
}

extension HTTPField.Name {
    /// Glance's `x-openstack-request-id` (the front door reads it too).
    public static let requestID = HTTPField.Name("x-openstack-request-id")!
    static let authToken = HTTPField.Name("x-auth-token")!
    static let serviceToken = HTTPField.Name("x-service-token")!
    static let acceptPatch = HTTPField.Name("accept-patch")!
}

/// The OpenStack Image API v2 front-end. It answers everything itself: version discovery,
/// authentication, routing, and errors in Glance's negotiated format.
public struct OpenStackImageAPI<Context: OpenStackRequestContext>: HTTPResponder {
    let service: ImageService
    let authenticator: any TokenAuthenticator
    let options: OpenStackAPIOptions
    let routes: RouterResponder<Context>
    /// The image routes, for the one request answered without the router (GET one image).
    let images: ImageRoutes<Context>

    /// Minor versions we implement, newest first; the first is CURRENT.
    static var versions: [String] { ["v2.17", "v2.16", "v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"] }

    public init(imports: ImageImports, authenticator: any TokenAuthenticator, options: OpenStackAPIOptions = .init()) {
        self.service = imports.data.images
        self.authenticator = authenticator
        self.options = options
        let router = Router(context: Context.self, options: .autoGenerateHeadEndpoints)
        let imageRoutes = ImageRoutes<Context>(service: service, data: imports.data, options: options)
        // Data routes first: the catch-all `/v2/**` registered with the image routes must stay last.
        DataRoutes<Context>(data: imports.data, imports: imports).register(on: router, using: imageRoutes)
        UploadSessionRoutes<Context>(data: imports.data, settings: options.uploadSessions).register(on: router, using: imageRoutes)
        TaskRoutes<Context>(imports: imports).register(on: router, using: imageRoutes)
        LocationRoutes<Context>(imports: imports).register(on: router, using: imageRoutes)
        CacheRoutes<Context>(data: imports.data).register(on: router, using: imageRoutes)
        MetadefRoutes<Context>(metadefs: service.metadefs).register(on: router, using: imageRoutes)
        imageRoutes.register(on: router)
        routes = router.buildResponder()
        images = imageRoutes
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        // The caller's id when sane, else the one the front door made, so logs and answer agree.
        let requestID = Self.requestID(from: RequestReading.header(.requestID, in: request.headers) ?? context.requestId)
        var response: Response
        do {
            response = try await route(request, requestID: requestID, context: context)
        } catch {
            var rendered = GlanceError.from(error)
            if rendered == nil || rendered?.status == .internalServerError {
                // Details go to the log, never to the client.
                context.logger.error("request failed", metadata: ["error": "\(error)", "request_id": .string(requestID)])
                rendered = GlanceError(.internalServerError,
                                       "The server has either erred or is incapable of performing the requested operation.")
            }
            response = rendered!.response(accept: request.headers[.accept])
        }
        response.headers[.requestID] = requestID
        return response
    }

    func route(_ request: Request, requestID: String, context: Context) async throws -> Response {
        let path = request.uri.path
        // GET one image, the call hypervisors and dashboards make most, goes straight to its handler,
        // recognised from the path's bytes: the router's trie walk, the request copy and splitting the
        // path were about a tenth of what a GET cost on SQLite.
        if request.method == .get, let id = OpenStackPaths.imageIDSegment(path) {
            let principal = try await authenticate(request)
            return try await images.show(request, id: RequestReading.percentDecoded(id), principal: principal)
        }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        // `/` and `/versions` are anonymous; anything that is not a known version is answered with the versions list.
        guard let first = segments.first, !first.isEmpty else { return versionsResponse(request, status: .multipleChoices) }
        if first == "versions", segments.count == 1 { return versionsResponse(request, status: .ok) }
        guard first == "v2" || Self.versions.contains(String(first)) else {
            return versionsResponse(request, status: .multipleChoices)
        }
        segments.removeFirst()
        if segments.isEmpty || segments == [""] { return versionsResponse(request, status: .multipleChoices) }
        // Glance answers 404 for `/v2/images/` (an empty id), never the collection.
        if segments.last == "" { throw GlanceError(.notFound, "The resource could not be found.") }

        var context = context
        context.principal = try await authenticate(request)
        // Handlers that record the request id (imports, tasks) read it here.
        context.requestId = requestID

        // `/v2.N/...` aliases the v2 API.
        var routed = request
        if first != "v2" {
            var head = request.head
            head.path = "/v2/" + segments.joined(separator: "/") + (request.uri.query.map { "?" + $0 } ?? "")
            routed = Request(head: head, body: request.body)
        }
        let response = try await routes.respond(to: routed, context: context)
        // The router's own 404 (a method no route knows) has no body: answer Glance's instead.
        if response.status == .notFound, response.headers[.contentType] == nil {
            throw GlanceError(.notFound, "The resource could not be found.")
        }
        return response
    }

    func versionsResponse(_ request: Request, status: HTTPResponse.Status) -> Response {
        let href = ImageRoutes<Context>.baseURL(request, options) + "/v2/"
        var w = JSONWriter(capacity: 1024)
        w.raw("{\"versions\":[")
        for (i, v) in Self.versions.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"id\":"); w.string(v)
            w.raw(",\"status\":"); w.string(i == 0 ? "CURRENT" : "SUPPORTED")
            w.raw(",\"links\":[{\"rel\":\"self\",\"href\":"); w.string(href); w.raw("}]}")
        }
        w.raw("]}")
        return Views.json(w, status: status)
    }

    /// The caller's principal from its token. The authenticator decides about a missing token:
    /// `--no-auth` accepts it, real ones refuse "".
    func authenticate(_ request: Request) async throws -> Principal {
        guard let principal = try await authenticator.principal(forToken: RequestReading.header(.authToken, in: request.headers) ?? "",
                                                                serviceToken: RequestReading.header(.serviceToken, in: request.headers))
        else {
            var headers: HTTPFields = [:]
            if let uri = options.identityURI { headers[.wwwAuthenticate] = "Keystone uri=\"\(uri)\"" }
            throw GlanceError(.unauthorized, "The request you have made requires authentication.", headers: headers)
        }
        return principal
    }

    /// Adopts a caller's `X-OpenStack-Request-ID` when it is sane (as Glance does), else makes one.
    static func requestID(from incoming: String?) -> String {
        guard let given = RequestReading.requestId(incoming) else { return RequestReading.newRequestId() }
        return given.hasPrefix("req-") ? given : "req-" + given
    }
}

/// Paths the OpenStack API is asked for most, recognised from their bytes.
public enum OpenStackPaths {
    static let imagesPrefix = Array("/v2/images/".utf8)

    /// The id of `/v2/images/{id}` (one non-empty segment after the prefix, as sent), else nil:
    /// `/v2.N/` aliases, `/v2/images/` and deeper paths are the router's.
    public static func imageIDSegment(_ path: String) -> Substring? {
        let utf8 = path.utf8
        guard utf8.count > imagesPrefix.count, utf8.starts(with: imagesPrefix) else { return nil }
        let rest = utf8.dropFirst(imagesPrefix.count)
        guard !rest.contains(UInt8(ascii: "/")) else { return nil }
        return Substring(rest)
    }
}
