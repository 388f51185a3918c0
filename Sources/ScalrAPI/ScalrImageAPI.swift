import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData

public struct ScalrAPIOptions: Sendable {
    /// Seals and opens the Scalr keys' secrets (the servers' secret key).
    public var sealer: SecretSealer?
    /// The OSes `…/os/` lists and `os.id` is checked against (`--scalr-os-file` extends the seeded ones).
    public var systems: ScalrOSCatalogue
    public init(sealer: SecretSealer?, systems: ScalrOSCatalogue = .seeded) { self.sealer = sealer; self.systems = systems }
}

/// Scalr's API v1beta0 for images (`/api/v1beta0/{global|account[/<id>]|user/<envId>}/images/…`):
/// signed requests with local accounts' Scalr keys, Scalr's envelope and errors, and its specs at
/// `/api/{user,account,global}.v1beta0.yml` for `scalr-ctl`.
public struct ScalrImageAPI<Context: RequestContext>: HTTPResponder {
    let data: ImageDataService
    let accounts: LocalAccounts
    let options: ScalrAPIOptions
    var service: ImageService { data.images }

    static var maxBody: Int { 1 << 20 }
    /// Scalr has accounts above environments; imaged has one account (id 1) holding every project.
    static var accountId: String { "1" }

    public init(data: ImageDataService, accounts: LocalAccounts, options: ScalrAPIOptions) {
        self.data = data; self.accounts = accounts; self.options = options
    }

    public static func claims(_ request: Request) -> Bool {
        let path = request.uri.path
        return path.hasPrefix("/api/v1beta0/") || ["/api/user.v1beta0.yml", "/api/account.v1beta0.yml", "/api/global.v1beta0.yml"].contains(path)
    }

    typealias Scope = ScalrScope
    typealias Failure = ScalrFailure

    public func respond(to request: Request, context: Context) async throws -> Response {
        var meta: [(String, JSONValue)] = [("requestId", .string(ImageID.generate()))]
        do {
            return try await route(request, &meta)
        } catch let f as Failure {
            return Self.envelope(meta, [("errors", .array([.object([("code", .string(f.code)), ("message", .string(f.message))])]))], status: f.status)
        } catch let r as ScalrSignature.Refusal {
            return Self.envelope(meta, [("errors", .array([.object([("code", .string(r.code)), ("message", .string(r.message))])]))],
                                 status: HTTPResponse.Status(code: r.status))
        } catch let e as ImageError {
            let f: Failure = switch e.kind {
            case .badRequest, .unsupportedMediaType, .rangeNotSatisfiable: .value(e.message)
            case .forbidden, .unauthorized: .insufficient
            case .notFound, .gone: .notFound
            case .conflict: Failure(409, "UnacceptableState", e.message)
            case .duplicate: Failure(409, "UnicityViolation", "This Image has already been registered in Scalr")
            case .inUse: Failure(409, "ObjectInUse", "The Image is used by some Role or Server.")
            case .payloadTooLarge: Failure(409, "LimitExceeded", e.message)
            case .unavailable: Failure(503, "ServiceUnavailable", e.message)
            case .insufficientStorage: Failure(507, "InsufficientStorage", e.message)
            case .internal: Failure(500, "InternalServerError", "Server Error")
            }
            return Self.envelope(meta, [("errors", .array([.object([("code", .string(f.code)), ("message", .string(f.message))])]))], status: f.status)
        } catch {
            context.logger.error("scalr request failed", metadata: ["error": "\(error)"])
            return Self.envelope(meta, [("errors", .array([.object([("code", .string("InternalServerError")), ("message", .string("Server Error"))])]))],
                                 status: .internalServerError)
        }
    }

    static func envelope(_ meta: [(String, JSONValue)], _ members: [(String, JSONValue)], status: HTTPResponse.Status = .ok) -> Response {
        JSONResponse.make(.object([("meta", .object(meta))] + members), status: status, contentType: "application/json; charset=utf-8")
    }

    static func success(_ meta: [(String, JSONValue)], _ data: JSONValue, status: HTTPResponse.Status = .ok, pagination: JSONValue? = nil) -> Response {
        var members: [(String, JSONValue)] = [("data", data)]
        if let pagination { members.append(("pagination", pagination)) }
        members += [("warnings", .array([])), ("errors", .array([]))]
        return envelope(meta, members, status: status)
    }

    func route(_ request: Request, _ meta: inout [(String, JSONValue)]) async throws -> Response {
        let path = request.uri.path
        if path.hasSuffix(".v1beta0.yml") {
            guard request.method == .get, let spec = ScalrSpec.document(level: String(path.dropFirst("/api/".count).prefix { $0 != "." })) else {
                throw Failure.endpoint
            }
            return JSONResponse.make(spec, contentType: "application/yaml")
        }
        if request.method == .options { return Self.preflight(request) }
        let body: [UInt8]
        do { body = Array(try await RequestReading.body(request, limit: Self.maxBody).readableBytesView) } catch {
            throw Failure(400, "BadRequest", "The request body is too large.")
        }
        let p = try await authenticate(request, body, &meta)
        if !body.isEmpty, let type = request.headers[.contentType],
           type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != "application/json" {
            throw Failure(400, "BadRequest", "Invalid Content-Type")
        }
        var s = path.dropFirst("/api/v1beta0/".count).split(separator: "/").map(String.init)
        let scope: Scope
        switch s.first {
        case "global":
            guard p.isAdmin else { throw Failure.insufficient }
            scope = .global
            s.removeFirst()
        case "account":
            s.removeFirst()
            if let id = s.first, id != "images", id != "os" {
                guard id == Self.accountId else { throw Failure(403, "PermissionViolation", "You don't have access to the account.") }
                s.removeFirst()
            }
            scope = .account
        case "user":
            s.removeFirst()
            guard let text = s.first, let envId = Int64(text), envId > 0 else {
                throw Failure.value("Environment has not been provided with the request")
            }
            s.removeFirst()
            scope = .environment(project: try await project(ofEnvironment: envId, p))
        default:
            throw Failure.endpoint
        }
        if s.first == "os" {
            s.removeFirst()
            return try operatingSystems(request, s, meta)
        }
        guard s.first == "images" else { throw Failure.endpoint }
        s.removeFirst()
        let method = request.method
        if s.isEmpty {
            switch method {
            case .get: return try await list(request, scope, p, meta)
            case .post: return try await register(body, scope, p, meta)
            default: throw Failure.endpoint
            }
        }
        guard ImageID.isValid(s[0]) else { throw Failure.endpoint }
        let id = s[0].lowercased()
        if s.count == 3, s[1] == "actions", method == .post, ["copy", "replace"].contains(s[2]) {
            _ = try await visible(id, scope, p)
            throw Failure.notImplemented(s[2] == "copy"
                ? "Copying an image between cloud regions is not offered by imaged: it registers images, it does not reach the clouds."
                : "Replacing an image in Roles is not offered by imaged: it has no Roles.")
        }
        guard s.count == 1 else { throw Failure.endpoint }
        switch method {
        case .get: return Self.success(meta, ScalrImage.render(try await visible(id, scope, p)))
        case .patch: return try await edit(id, body, scope, p, meta)
        case .delete: return try await deregister(id, request, scope, p, meta)
        default: throw Failure.endpoint
        }
    }

    /// `OPTIONS` is answered before authentication, as Scalr's preflight middleware does: a browser's
    /// preflight (`Origin` and `User-Agent`) gets the CORS methods and headers, anything else `Allow`.
    static func preflight(_ request: Request) -> Response {
        let methods = "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"
        var headers = HTTPFields()
        if request.headers[.origin] != nil, request.headers[.userAgent] != nil {
            headers[.accessControlAllowMethods] = methods
            headers[.accessControlAllowHeaders] = "Content-Type, X-Scalr-Date, X-Scalr-Key-Id, X-Scalr-Signature, X-Scalr-Debug"
        } else {
            headers[.allow] = methods
        }
        headers[.contentLength] = "0"
        return Response(status: .ok, headers: headers)
    }

    // MARK: Authentication and scopes

    func authenticate(_ request: Request, _ body: [UInt8], _ meta: inout [(String, JSONValue)]) async throws -> Principal {
        let h = request.headers
        let debug = h[HTTPField.Name("x-scalr-debug")!] == "1"
        let date = h[HTTPField.Name("x-scalr-date")!]
        if debug, let date {
            meta.append(("stringToSign", .string(String(decoding: ScalrSignature.stringToSign(
                method: request.method.rawValue, date: date, path: request.uri.path, query: request.uri.query, body: body), as: UTF8.self))))
        }
        let sealer = options.sealer
        let accounts = self.accounts
        let box = AccountBox()
        _ = try await ScalrSignature.verify(
            keyId: h[HTTPField.Name("x-scalr-key-id")!], date: date, signature: h[HTTPField.Name("x-scalr-signature")!],
            method: request.method.rawValue, path: request.uri.path, query: request.uri.query, body: body) { keyId in
                guard let sealer, let found = try await accounts.signingKey(id: keyId, sealer: sealer) else { return nil }
                box.account = found.account
                return found.secret
            }
        guard let account = box.account else { throw ScalrSignature.Refusal.unknownKey }
        return account.principal
    }

    final class AccountBox: @unchecked Sendable { var account: LocalAccount? }

    /// The project behind an environment id: the caller's own, or for admins any account's project.
    func project(ofEnvironment envId: Int64, _ p: Principal) async throws -> String {
        if let own = p.projectId, ScalrEnvironment.id(ofProject: own) == envId { return own }
        if p.isAdmin, let match = try await accounts.all().first(where: { ScalrEnvironment.id(ofProject: $0.projectId) == envId }) {
            return match.projectId
        }
        throw Failure(403, "ObjectNotFound", "Invalid environment")
    }

    /// Whether a registration is visible in a scope: Scalr shows the scope's own images and those of
    /// the scopes above it.
    static func sees(_ image: Image, _ scope: Scope) -> Bool {
        guard let s = ScalrImage.scope(image) else { return false }
        switch scope {
        case .global: return s == "scalr"
        case .account: return s == "scalr" || s == "account"
        case .environment(let project): return s == "scalr" || s == "account" || (s == "environment" && image.owner == project)
        }
    }

    /// Changes only where the image belongs to the request's scope.
    static func owns(_ image: Image, _ scope: Scope) -> Bool {
        switch scope {
        case .environment(let project): return ScalrImage.scope(image) == "environment" && image.owner == project
        default: return ScalrImage.scope(image) == scope.name
        }
    }

    func registrations(_ scope: Scope, _ p: Principal) async throws -> [Image] {
        var request = ImageListRequest()
        request.visibility = .all
        request.sort = [.init(.createdAt, .asc)]
        return try await service.listAllImages(request, by: p).filter { Self.sees($0, scope) }
    }

    func visible(_ id: String, _ scope: Scope, _ p: Principal) async throws -> Image {
        guard let image = try await service.visibleImageIfAny(id: id, by: p), Self.sees(image, scope) else { throw Failure.notFound }
        return image
    }

    // MARK: Endpoints

    func list(_ request: Request, _ scope: Scope, _ p: Principal, _ meta: [(String, JSONValue)]) async throws -> Response {
        let listing = try ScalrRequests.listing(request.uri.query)
        let matching = try await registrations(scope, p).map(ScalrImage.render).filter { ScalrRequests.matches($0, listing.filters) }
        let (page, pagination) = ScalrRequests.page(matching, listing, path: request.uri.path)
        return Self.success(meta, page, pagination: pagination)
    }

    /// `GET …/os/` (filters `id`, `name`, `family`, `generation`; paged as images are) and `GET …/os/<osId>/`.
    func operatingSystems(_ request: Request, _ rest: [String], _ meta: [(String, JSONValue)]) throws -> Response {
        guard request.method == .get, rest.count <= 1 else { throw Failure.endpoint }
        if let id = rest.first {
            guard ScalrImage.validOS(id) else { throw Failure.endpoint }
            guard let os = options.systems.os(id) else { throw Failure(404, "ObjectNotFound", "Unable to find requested OS") }
            return Self.success(meta, os.rendered)
        }
        let listing = try ScalrRequests.listing(request.uri.query, filterable: ScalrOS.filterable)
        let matching = options.systems.systems.map(\.rendered).filter { ScalrRequests.matches($0, listing.filters) }
        let (page, pagination) = ScalrRequests.page(matching, listing, path: request.uri.path)
        return Self.success(meta, page, pagination: pagination)
    }

    func register(_ body: [UInt8], _ scope: Scope, _ p: Principal, _ meta: [(String, JSONValue)]) async throws -> Response {
        let r = try ScalrRequests.registration(body, scope: scope, systems: options.systems)
        let (name, platform, location, cloudImageId, architecture, os) = (r.name, r.platform, r.location, r.cloudImageId, r.architecture, r.os)
        switch scope {
        case .global, .account: guard p.isAdmin else { throw Failure.insufficient }
        case .environment: guard p.isMember || p.isAdmin else { throw Failure.insufficient }
        }
        var document: [(String, JSONValue)] = [("scope", .string(scope.name)), ("cloudPlatform", .string(platform)),
                                               ("cloudImageId", .string(cloudImageId)), ("os", .string(os))]
        if let location { document.append(("cloudLocation", .string(location))) }
        if let features = r.features { document.append(("cloudFeatures", features)) }
        if let size = r.size { document.append(("size", .int(size))) }
        if let type = r.type { document.append(("type", .string(type))) }
        document += r.flags
        let visibility = switch scope { case .global: "public"; case .account: "community"; case .environment: "private" }
        var attributes: [(String, JSONValue)] = [("name", .string(name)), ("visibility", .string(visibility)),
                                                 ("architecture", .string(architecture)), ("os_distro", .string(os)),
                                                 (NameRule.cloudPlatformKey, .string(platform)), (NameRule.cloudImageIdKey, .string(cloudImageId))]
        if let location { attributes.append((NameRule.cloudLocationKey, .string(location))) }
        if case .environment(let project) = scope, project != p.projectId { attributes.append(("owner", .string(project))) }
        // A cloud image is registered once among the registrations in sight (`cloudImageInSight`,
        // decided inside the insert).
        let image = try await service.createImage(attributes, extensions: [ScalrImage.vendor: .object(document)],
                                                  nameRule: .cloudImageInSight, by: p)
        return Self.success(meta, ScalrImage.render(image), status: .created)
    }

    func edit(_ id: String, _ body: [UInt8], _ scope: Scope, _ p: Principal, _ meta: [(String, JSONValue)]) async throws -> Response {
        let members = try ScalrRequests.edit(body)
        let image = try await visible(id, scope, p)
        guard Self.owns(image, scope) else { throw Failure.scopeViolation }
        let (changes, fields) = try ScalrRequests.editChanges(members)
        let updated = try await service.updateImage(id: image.id, changes: changes, vendorChanges: [ScalrImage.vendor: { stored in
            JSONValue.merging(stored, fields)
        }], by: p)
        return Self.success(meta, ScalrImage.render(updated))
    }

    func deregister(_ id: String, _ request: Request, _ scope: Scope, _ p: Principal, _ meta: [(String, JSONValue)]) async throws -> Response {
        let image = try await visible(id, scope, p)
        guard Self.owns(image, scope) else { throw Failure.scopeViolation }
        if ScalrRequests.deletesFromCloud(request.uri.query) {
            throw Failure.notImplemented("Deleting images from clouds is not offered by imaged: deregister without deleteFromCloud, then delete it on the cloud.")
        }
        try await data.deleteImage(id: image.id, by: p)
        return Self.envelope(meta, [("data", .null), ("warnings", .array([])), ("errors", .array([]))])
    }
}

package enum ScalrScope: Equatable {
    case global, account, environment(project: String)
    /// The `scope` value of images registered here.
    package var name: String {
        switch self { case .global: "scalr"; case .account: "account"; case .environment: "environment" }
    }
}

struct ScalrFailure: Error {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    init(_ status: Int, _ code: String, _ message: String) {
        self.status = HTTPResponse.Status(code: status); self.code = code; self.message = message
    }
    static let endpoint = ScalrFailure(404, "EndpointNotFound", "The endpoint you are trying to access does not exist.")
    static let notFound = ScalrFailure(404, "ObjectNotFound", "Requested Image either does not exist or is not owned by your environment.")
    static let insufficient = ScalrFailure(403, "PermissionViolation", "Insufficient Permissions")
    static let scopeViolation = ScalrFailure(403, "ScopeViolation", "The image is not either from the environment scope or owned by your environment.")
    static func structure(_ m: String) -> ScalrFailure { ScalrFailure(400, "InvalidStructure", m) }
    static func value(_ m: String) -> ScalrFailure { ScalrFailure(400, "InvalidValue", m) }
    /// Scalr 7's one 422 code: well-formed settings that conflict with each other or the current state.
    static func mismatch(_ m: String) -> ScalrFailure { ScalrFailure(422, "ConfigurationMismatch", m) }
    static func notImplemented(_ m: String) -> ScalrFailure { ScalrFailure(501, "NotImplemented", m) }
}


enum ScalrQuery {
    /// `a=b&c=d` decoded (`+` is a space), in order.
    static func parse(_ query: String?) -> [(String, String)] { RequestReading.formPairs(query) }
}
