import AviAPI
import Console
import DanubeAPI
import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore
import Logging
import OpenStackAPI
import ScalrAPI
import ZStackAPI

/// The front door: the operational endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi/…`), then
/// each request handed to the front-end that claims it, through `RequestTelemetry`: the Avi paths
/// (`/login`, `/logout`, `/api/image…` without a trailing slash), ZStack's `/zstack/v1`, Scalr's
/// `/api/v1beta0/…`, Danube's `/api/…` and its IMGAPI `/imgapi/images…`, then the OpenStack API. The web
/// console (`/console/…`, and `/` when a browser asks for HTML) goes first.
public struct ImagedResponder: HTTPResponder {
    public typealias Context = ImagedRequestContext
    let openstack: OpenStackImageAPI<ImagedRequestContext>
    let avi: AviImageAPI<ImagedRequestContext>
    let zstack: ZStackImageAPI<ImagedRequestContext>
    let danube: DanubeImageAPI<ImagedRequestContext>
    let scalr: ScalrImageAPI<ImagedRequestContext>
    let console: WebConsole<ImagedRequestContext>
    /// The front-ends `--frontend` left on; a request for another one's paths goes on down the list.
    let enabled: Set<Frontend>
    let readiness: Readiness
    /// Where audit lines go; nil: not audited.
    var audit: AuditLog? = nil
    /// Cross-origin access (`--cors-origin`); nil: none.
    var cors: CORSPolicy? = nil

    /// `Retry-After` on a 503 that did not set one: a restarting database or store is back within seconds.
    static let retryAfterSeconds = 5

    public func respond(to request: Request, context: Context) async throws -> Response {
        guard let cors else { return try await answer(request, context: context) }
        if let preflight = cors.preflight(request) { return preflight }
        var response = try await answer(request, context: context)
        cors.decorate(&response, for: request)
        return response
    }

    func answer(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch path {
        case "/healthz":
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
        case "/readyz":
            let (ready, body) = await readiness.check()
            return JSONResponse.make(body, status: ready ? .ok : .serviceUnavailable)
        case "/metrics":
            await StoreSpaceMetrics.publish(readiness.stores)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: Observability.exposition())))
        default:
            if OpenAPIDocuments.claims(path) { return OpenAPIDocuments.respond(path: path, method: request.method) }
        }
        let handler = frontend(for: request)
        var response = try await RequestTelemetry<Context>(frontend: handler.label, audit: audit).handle(request, context: context) { request, context in
            try await handler.respond(request, context)
        }
        // Every API's 503 (catalog or store down) tells the client when to try again, in one place.
        if response.status == .serviceUnavailable, response.headers[.retryAfter] == nil {
            response.headers[.retryAfter] = String(Self.retryAfterSeconds)
        }
        return response
    }

    static let v2 = "/v2"

    /// Which front-end answers a request: a label for metrics and logs, and its responder.
    struct Handler {
        let label: String
        let respond: (Request, Context) async throws -> Response
    }

    func frontend(for request: Request) -> Handler {
        // No vendor front-end claims a path under `/v2` (Danube's prefix is the operator's, so it is
        // asked): OpenStack's traffic skips the other claim checks.
        if request.uri.path.utf8.starts(with: Self.v2.utf8), enabled.contains(.openstack), !danube.claims(request) {
            return Handler(label: "openstack", respond: openstack.respond)
        }
        if enabled.contains(.console), WebConsole<Context>.claims(request) { return Handler(label: "console", respond: console.respond) }
        if enabled.contains(.avi), AviImageAPI<Context>.claims(request) { return Handler(label: "avi", respond: avi.respond) }
        if enabled.contains(.zstack), ZStackImageAPI<Context>.claims(request) { return Handler(label: "zstack", respond: zstack.respond) }
        if enabled.contains(.scalr), ScalrImageAPI<Context>.claims(request) { return Handler(label: "scalr", respond: scalr.respond) }
        if enabled.contains(.danube), danube.claims(request) {
            return Handler(label: request.uri.path.hasPrefix("/imgapi") ? "imgapi" : "danube", respond: danube.respond)
        }
        // OpenStack keeps Glance's own id (`x-openstack-request-id`, taken from the caller's when sent).
        if enabled.contains(.openstack) { return Handler(label: "openstack", respond: openstack.respond) }
        return Handler(label: "none") { _, _ in
            Response(status: .notFound, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(string: #"{"error":"not found: no front-end of this node serves this path"}"#)))
        }
    }
}

/// One request id per request, in every front-end's logs and answer (`X-Request-Id`; OpenStack's own
/// `x-openstack-request-id` carries the same value), the request counted in the metrics by front-end,
/// route, method and status, and one log line.
struct RequestTelemetry<Context: OpenStackRequestContext>: RouterMiddleware {
    let frontend: String
    var audit: AuditLog? = nil

    static var requestIdHeader: HTTPField.Name { RequestIdHeaders.requestId }
    static var openstackRequestId: HTTPField.Name { .requestID }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let requestId = Self.requestId(request)
        var context = context
        context.requestId = requestId
        context.logger[metadataKey: "request_id"] = .string(requestId)
        var response = try await audited(request, context, requestId: requestId, next: next)
        let id = RequestReading.header(Self.openstackRequestId, in: response.headers) ?? requestId
        response.headers[Self.requestIdHeader] = id
        let path = request.uri.path
        Observability.record(frontend: frontend, route: Observability.route(path), method: request.method.rawValue,
                             status: Int(response.status.code), since: start)
        if context.logger.logLevel <= .info {
            // The path only (queries may carry signatures), with the secrets some paths hold masked.
            context.logger.info("\(request.method) \(LogRedaction.path(path)) \(response.status.code)", metadata: ["request_id": .string(id), "frontend": .string(frontend)])
        }
        return response
    }

    /// The caller's `X-Request-Id` when it is a sane token, else a new `req-<uuid>` (Glance's form).
    static func requestId(_ request: Request) -> String {
        RequestReading.requestId(RequestReading.header(requestIdHeader, in: request.headers)
                                 ?? RequestReading.header(openstackRequestId, in: request.headers)) ?? RequestReading.newRequestId()
    }
}

/// Made once (a generic type cannot store it): building a name validates it, on every request.
enum RequestIdHeaders {
    static let requestId = HTTPField.Name("x-request-id")!
}
