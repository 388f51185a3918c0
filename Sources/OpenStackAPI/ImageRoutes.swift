import FrontEndSupport
import HTTPTypes
import Foundation
import Hummingbird
import ImageCore
import ImageData

/// The `/v2` routes. Each handler parses the request, calls `ImageService`, and writes Glance's JSON.
struct ImageRoutes<Context: OpenStackRequestContext>: Sendable {
    let service: ImageService
    let data: ImageDataService
    let options: OpenStackAPIOptions
    let imageSchema: String
    let imagesSchema: String
    /// `direct_url` and `locations` in image views (`--show-image-direct-url`, `--show-multiple-locations`).
    let locationDisplay: LocationDisplay

    init(service: ImageService, data: ImageDataService, options: OpenStackAPIOptions) {
        self.service = service
        self.data = data
        self.options = options
        imageSchema = Schemas.image(service.config)
        imagesSchema = Schemas.images(service.config)
        locationDisplay = LocationDisplay(options: options, stores: data.stores)
    }

    typealias Handler = @Sendable (Request, Context) async throws -> Response

    func register(on router: Router<Context>) {
        route(router, "/v2/images", [.get: list, .post: create])
        route(router, "/v2/images/{id}", [.get: show, .patch: update, .delete: delete])
        route(router, "/v2/images/{id}/actions/deactivate", [.post: deactivate])
        route(router, "/v2/images/{id}/actions/reactivate", [.post: reactivate])
        route(router, "/v2/images/{id}/tags/{tag}", [.put: addTag, .delete: removeTag])
        route(router, "/v2/images/{id}/members", [.get: listMembers, .post: addMember])
        route(router, "/v2/images/{id}/members/{member}", [.get: showMember, .put: updateMember, .delete: removeMember])
        // Unmatched paths get Glance's negotiated 404 (the router's own 404 has no body).
        for method: HTTPRequest.Method in [.get, .post, .put, .patch, .delete, .head] + Self.otherMethods {
            router.on("/v2/**", method: method) { _, _ -> Response in
                throw GlanceError(.notFound, "The resource could not be found.")
            }
        }
        for (name, body) in [("image", imageSchema), ("images", imagesSchema), ("member", Schemas.member), ("members", Schemas.members),
                             ("task", Schemas.task), ("tasks", Schemas.tasks)] {
            route(router, RouterPath("/v2/schemas/\(name)"), [.get: { request, _ in
                try await Self.requireNoBody(request)
                return Views.json(body)
            }])
        }
    }

    /// Methods no route serves but clients and scanners send: 405 with `Allow` on known paths.
    static var otherMethods: [HTTPRequest.Method] { [.options, .trace, .connect, HTTPRequest.Method("QUERY")!] }

    /// Registers handlers and answers every other common method with 405 and `Allow`.
    func route(_ router: Router<Context>, _ path: RouterPath, _ handlers: [HTTPRequest.Method: Handler]) {
        let order: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete]
        let allow = order.filter { handlers[$0] != nil }.map(\.rawValue).joined(separator: ", ")
        for method in order + Self.otherMethods {
            if let handler = handlers[method] {
                router.on(path, method: method, use: handler)
            } else {
                router.on(path, method: method) { _, _ -> Response in
                    throw GlanceError(.methodNotAllowed, "The method is not allowed for the requested URL.", headers: [.allow: allow])
                }
            }
        }
    }

    // MARK: Helpers

    static func principal(_ context: Context) throws -> Principal {
        guard let p = context.principal else {
            throw GlanceError(.unauthorized, "The request you have made requires authentication.")
        }
        return p
    }

    static func parameter(_ context: Context, _ name: String) throws -> String {
        RequestReading.percentDecoded(try context.parameters.require(name))
    }

    /// The request's media type, lower-case, without parameters; "" when absent.
    static func mediaType(_ request: Request) -> String {
        (request.headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingSpaces.lowercased() } ?? ""
    }

    static func baseURL(_ request: Request, _ options: OpenStackAPIOptions) -> String {
        RequestReading.baseURL(request, publicEndpoint: options.publicEndpoint)
    }

    /// Up to Glance's request size limit.
    static func body(_ request: Request) async throws -> ByteBuffer {
        do { return try await RequestReading.body(request, limit: OpenStackAPILimits.maxJSONBody) } catch {
            throw GlanceError(.contentTooLarge, "Request body is larger than the limit of \(OpenStackAPILimits.maxJSONBody) bytes.")
        }
    }

    /// Reads a JSON body up to Glance's request size limit; nil when the body is empty.
    static func readJSON(_ request: Request) async throws -> JSONValue? {
        try OpenStackRequests.json(try await body(request).readableBytesView)
    }

    static func requireNoBody(_ request: Request) async throws {
        if let length = request.headers[.contentLength].flatMap(Int.init), length == 0 { return }
        guard request.headers[.contentLength] != nil || request.headers[.transferEncoding] != nil else { return }
        let buffer = try await body(request)
        if buffer.readableBytes > 0 { throw GlanceError(.badRequest, "A body is not expected with this request.") }
    }

    static func imageResponse(_ image: Image, status: HTTPResponse.Status = .ok, shown: LocationDisplay.Viewer? = nil,
                              headers: HTTPFields = [:]) -> Response {
        var w = JSONWriter(capacity: 1024)
        Views.image(image, into: &w) { shown?.write(image, into: &$0) }
        return Views.json(w, status: status, headers: headers)
    }

    static var noContent: Response { Response(status: .noContent) }

    /// A body-less action answered with 204: the service call gets the caller and the path parameters.
    func action(_ perform: @escaping @Sendable (ImageService, Principal, (String) throws -> String) async throws -> Void) -> Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            try await Self.requireNoBody(request)
            try await perform(service, p) { try Self.parameter(context, $0) }
            return Self.noContent
        }
    }

    var delete: Handler {
        { [data] request, context in
            let p = try Self.principal(context)
            try await Self.requireNoBody(request)
            try await data.deleteImage(id: try Self.parameter(context, "id"), by: p)
            return Self.noContent
        }
    }
    var deactivate: Handler { action { s, p, param in try await s.deactivateImage(id: try param("id"), by: p) } }
    var reactivate: Handler { action { s, p, param in try await s.reactivateImage(id: try param("id"), by: p) } }
    var addTag: Handler { action { s, p, param in try await s.addTag(id: try param("id"), tag: try param("tag"), by: p) } }
    var removeTag: Handler { action { s, p, param in try await s.removeTag(id: try param("id"), tag: try param("tag"), by: p) } }
    var removeMember: Handler {
        action { s, p, param in try await s.removeMember(imageId: try param("id"), memberId: try param("member"), by: p) }
    }

    // MARK: Images

    var create: Handler {
        { [service, data, options, locationDisplay] request, context in
            let p = try Self.principal(context)
            let members = try OpenStackRequests.createAttributes(try await Self.readJSON(request))
            let image = try await service.createImage(members, by: p)
            let location = Self.baseURL(request, options) + "/v2/images/" + image.id
            return Self.imageResponse(image, status: .created, shown: locationDisplay.viewer(p), headers: [
                .location: location, .importMethods: data.importMethods.joined(separator: ","),
            ])
        }
    }

    var show: Handler {
        { [self] request, context in
            try await show(request, id: try Self.parameter(context, "id"), principal: try Self.principal(context))
        }
    }

    /// GET one image: through the router (`show`), or called directly for `GET /v2/images/{id}`.
    func show(_ request: Request, id: String, principal p: Principal) async throws -> Response {
        try await Self.requireNoBody(request)
        return Self.imageResponse(try await service.showImage(id: id, by: p), shown: locationDisplay.viewer(p))
    }

    var list: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            try await Self.requireNoBody(request)
            let query = request.uri.query  // made from the URI's bytes at each read: read once
            let listRequest = try ListParameters.parse(query)
            let images = try await service.listImages(listRequest, by: p)
            let shown = locationDisplay.viewer(p)
            let limit = min(listRequest.limit ?? service.config.listDefaultLimit, service.config.listMaxLimit)

            // `first` is the query without `marker`; `next` adds the last id whenever the page is full.
            let kept = ListParameters.withoutMarker(query)
            var w = JSONWriter(capacity: 1024 * (images.count + 1))
            w.raw("{\"images\":[")
            for (i, image) in images.enumerated() {
                if i > 0 { w.raw(",") }
                Views.image(image, into: &w) { shown?.write(image, into: &$0) }
            }
            w.raw("],\"first\":"); w.string(kept.isEmpty ? "/v2/images" : "/v2/images?" + kept)
            w.raw(",\"schema\":\"/v2/schemas/images\"")
            if let last = images.last, images.count >= limit {
                w.raw(",\"next\":"); w.string("/v2/images?" + (kept.isEmpty ? "" : kept + "&") + "marker=" + last.id)
            }
            w.raw("}")
            return Views.json(w)
        }
    }

    static var patchTypes: [String] { ["application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch"] }

    var update: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            let mediaType = Self.mediaType(request)
            guard let kind = Self.patchTypes.firstIndex(of: mediaType) else {
                throw GlanceError(.unsupportedMediaType,
                    "The request media type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported by this server. Use one of: \(Self.patchTypes.joined(separator: ", ")).",
                    headers: [.acceptPatch: "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch"])
            }
            guard let body = try await Self.readJSON(request) else { throw GlanceError(.badRequest, "Body expected in request.") }
            let changes = try JSONPatch.changes(from: body, draft04: kind == 1)
            let image = try await service.updateImage(id: try Self.parameter(context, "id"), changes: changes, by: p)
            return Self.imageResponse(image, shown: locationDisplay.viewer(p))
        }
    }






    // MARK: Members

    static func memberResponse(_ m: ImageMember) -> Response {
        var w = JSONWriter(capacity: 256)
        Views.member(m, into: &w)
        return Views.json(w)
    }

    var addMember: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            let memberId = try OpenStackRequests.stringField(try await Self.readJSON(request), "member")
            return Self.memberResponse(try await service.addMember(imageId: try Self.parameter(context, "id"), memberId: memberId, by: p))
        }
    }

    var listMembers: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            try await Self.requireNoBody(request)
            let members = try await service.listMembers(imageId: try Self.parameter(context, "id"), by: p)
            var w = JSONWriter(capacity: 256 * (members.count + 1))
            w.raw("{\"members\":[")
            w.elements(members) { w, m in Views.member(m, into: &w) }
            w.raw("],\"schema\":\"/v2/schemas/members\"}")
            return Views.json(w)
        }
    }

    var showMember: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            try await Self.requireNoBody(request)
            return Self.memberResponse(try await service.showMember(
                imageId: try Self.parameter(context, "id"), memberId: try Self.parameter(context, "member"), by: p))
        }
    }

    var updateMember: Handler {
        { [service] request, context in
            let p = try Self.principal(context)
            let status = try OpenStackRequests.stringField(try await Self.readJSON(request), "status")
            return Self.memberResponse(try await service.setMemberStatus(
                imageId: try Self.parameter(context, "id"), memberId: try Self.parameter(context, "member"), status: status, by: p))
        }
    }

}
