import Foundation
import FrontEndSupport
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData

extension HTTPField.Name {
    static let csrfToken = HTTPField.Name("x-csrftoken")!
    static let aviTenant = HTTPField.Name("x-avi-tenant")!
    static let aviTenantUUID = HTTPField.Name("x-avi-tenant-uuid")!
    static let aviVersion = HTTPField.Name("x-avi-version")!
    static let aviAPIVersion = HTTPField.Name("avi_api_version")!
    static let referer = HTTPField.Name("referer")!
}

public struct AviAPIOptions: Sendable {
    /// Base URL clients reach us at, for `url` and `*_ref`; from the request's Host when nil.
    public var publicEndpoint: String?
    public init(publicEndpoint: String? = nil) { self.publicEndpoint = publicEndpoint }
}

/// The Avi controller's `image` API (`/login`, `/logout`, `/api/image[/<uuid>]`) over the shared
/// catalog. Sessions are cookie sessions over the local accounts; unsafe methods need the
/// session's CSRF token in `X-CSRFToken` (Django's double submit, as the controller).
public struct AviImageAPI<Context: RequestContext>: HTTPResponder {
    let imports: ImageImports
    let sessions: LoginSessions
    let options: AviAPIOptions
    let basicAuth = AviBasicAuth()
    var data: ImageDataService { imports.data }
    var service: ImageService { data.images }

    static var maxJSONBody: Int { 1 << 20 }
    static var defaultPageSize: Int { 25 }
    static var maxPageSize: Int { 200 }
    public init(imports: ImageImports, sessions: LoginSessions, options: AviAPIOptions = .init()) {
        self.imports = imports; self.sessions = sessions; self.options = options
    }

    /// Whether a request is for this front-end: the controller's paths, which never end in a slash.
    /// Danube's client uses `/api/image/…` too, always with a trailing slash and `ES-STREAM: es`
    /// (vendor-clients.md §6), so those are left to it.
    public static func claims(_ request: Request) -> Bool {
        let path = request.uri.path
        if path == "/login" || path == "/logout" { return true }
        guard path == "/api/image" || (path.hasPrefix("/api/image/") && !path.hasSuffix("/")) else { return false }
        return request.headers[HTTPField.Name("es-stream")!] == nil && request.headers[HTTPField.Name("es-api-key")!] == nil
            && request.headers[.authorization]?.hasPrefix("Token ") != true
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        var response: Response
        do {
            response = try await route(request, context: context)
        } catch {
            if let rendered = AviError.from(error) {
                response = rendered.response
            } else {
                context.logger.error("avi request failed", metadata: ["error": "\(error)"])
                response = AviError(.internalServerError, "Internal server error.").response
            }
        }
        return response
    }

    func route(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch (path, request.method) {
        case ("/login", .post): return try await login(request, client: ClientAddress.of(context))
        case ("/logout", .post): return try await logout(request)
        case ("/login", _), ("/logout", _): throw AviError(.methodNotAllowed, "Method \(request.method) not allowed.", allow: "POST")
        default: break
        }
        let caller = try await authenticate(request, client: ClientAddress.of(context))
        let version = try Self.version(request)
        let base = baseURL(request)
        if path == "/api/image" {
            switch request.method {
            case .get: return try await list(request, caller, version: version, base: base)
            case .post: return try await create(request, caller, version: version, base: base)
            default: throw AviError(.methodNotAllowed, "Method \(request.method) not allowed on /api/image.", allow: "GET, POST")
            }
        }
        let uuid = String(path.dropFirst("/api/image/".count))
        guard !uuid.contains("/"), let id = AviImage.coreId(uuid) else { throw AviError(.notFound, "Image object not found!") }
        // `?name=` (the seed's "object name") narrows the object like a filter: the image at the uuid
        // must have that name, or there is no such object (404, nothing changed).
        let named = request.uri.queryParameters["name"].map(String.init)
        switch request.method {
        case .get:
            let image = try await live(try await service.showImage(id: id, by: caller), caller)
            try Self.check(image, named: named)
            let withName = Self.flag(request, "include_name")
            let shown = AviImage.render(image, base: base, withName: withName, version: version,
                                        refNames: withName ? await refNames(image, caller) : [:])
            return Self.json(try Self.shaped(shown, request), version: version)
        case .put: return try await replace(id, request, caller, named: named, version: version, base: base)
        case .patch: return try await patch(id, request, caller, named: named, version: version, base: base)
        case .delete:
            if let named { try Self.check(try await service.showImage(id: id, by: caller), named: named) }
            try await data.deleteImage(id: id, by: caller)
            return Response(status: .noContent)
        default: throw AviError(.methodNotAllowed, "Method \(request.method) not allowed on an image.", allow: "GET, PUT, PATCH, DELETE")
        }
    }

    // MARK: Sessions

    func login(_ request: Request, client: String?) async throws -> Response {
        let body = try await Self.body(request)
        let fields = try AviRequests.loginFields(Array(body.readableBytesView), contentType: request.headers[.contentType])
        guard let name = fields["username"], let password = fields["password"],
              let opened = try await sessions.login(name: name, password: password, client: client) else {
            throw AviError(.unauthorized, "log in failed")
        }
        let base = baseURL(request)
        let project = opened.principal.projectId ?? ""
        let tenant: JSONValue = .object([("url", .string("\(base)/api/tenant/\(project)")), ("uuid", .string(project)),
                                         ("name", .string(project)), ("local", .bool(true))])
        let doc: JSONValue = .object([
            ("user_initialized", .bool(true)),
            ("version", .object([("Version", .string(AviVersion.current.description)), ("Product", .string("controller")),
                                 ("ProductName", .string("imaged")), ("min_version", .double(15.2))])),
            ("user", .object([("username", .string(name)), ("name", .string(name)), ("uuid", .string(opened.principal.userId)),
                              ("is_superuser", .bool(opened.principal.isAdmin)), ("local", .bool(true)),
                              ("default_tenant_ref", .string("\(base)/api/tenant/\(project)"))])),
            ("tenants", .array([tenant])),
            ("controller", .object([("api_idle_timeout", .int(sessions.lifetime / 60))])),
            ("session_cookie_name", .string("sessionid")),
        ])
        var response = Self.json(doc, version: .current)
        let secure = base.hasPrefix("https://") ? "; Secure" : ""
        response.headers.append(HTTPField(name: .setCookie, value: "csrftoken=\(opened.csrfToken); Max-Age=31449600; Path=/; SameSite=Lax\(secure)"))
        for cookie in ["sessionid", "avi-sessionid"] {
            response.headers.append(HTTPField(name: .setCookie,
                                              value: "\(cookie)=\(opened.sessionId); HttpOnly; Max-Age=\(sessions.lifetime); Path=/; SameSite=Lax\(secure)"))
        }
        return response
    }

    func logout(_ request: Request) async throws -> Response {
        let cookies = Self.cookies(request)
        if let sid = cookies["sessionid"] ?? cookies["avi-sessionid"], let session = try await sessions.resume(sessionId: sid) {
            try checkCSRF(request, session.csrfToken, cookies)
            try await sessions.logout(sessionId: sid)
        }
        var response = Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        for cookie in ["sessionid", "avi-sessionid"] {
            response.headers.append(HTTPField(name: .setCookie, value: "\(cookie)=; Max-Age=0; Path=/"))
        }
        return response
    }

    /// The caller, acting in the tenant the request selects. Unknown or expired session → 401 (the
    /// SDKs log in again); unsafe methods need the CSRF token. A Basic pair counts toward the login
    /// throttle of `client` like `/login`.
    func authenticate(_ request: Request, client: String?) async throws -> Principal {
        if let authorization = request.headers[.authorization] {
            // Basic authentication (the seed's curl form): no session, so no CSRF token either, as
            // the controller and the SDKs do it. A wrong pair is the controller's `log in failed`.
            guard let (name, password) = AviBasicAuth.credentials(authorization),
                  let principal = try await basicAuth.authenticate(name: name, password: password, client: client, accounts: sessions.accounts) else {
                throw AviError(.unauthorized, "log in failed")
            }
            return try acting(principal, request)
        }
        let cookies = Self.cookies(request)
        guard let sid = cookies["sessionid"] ?? cookies["avi-sessionid"],
              let session = try await sessions.resume(sessionId: sid) else {
            throw AviError(.unauthorized, "Authentication credentials were not provided.")
        }
        if ![.get, .head, .options].contains(request.method) { try checkCSRF(request, session.csrfToken, cookies) }
        return try acting(session.principal, request)
    }

    /// The principal acting in the tenant `X-Avi-Tenant`/`-UUID` selects (another than its own only for admins).
    func acting(_ authenticated: Principal, _ request: Request) throws -> Principal {
        var principal = authenticated
        let asked = request.headers[.aviTenantUUID] ?? request.headers[.aviTenant]
        if let asked, asked != principal.projectId {
            guard principal.isAdmin, (try? LocalAccounts.validName(asked, "tenant")) != nil else {
                throw AviError(.forbidden, "Tenant '\(asked)' does not exist!")
            }
            principal.projectId = asked
            principal.projectName = asked
        }
        return principal
    }

    /// The header must equal the session's token (and the cookie, when sent); an `Origin`, when
    /// sent (else a `Referer`), must name this server: the request's own scheme://host:port or the
    /// public endpoint (403 otherwise).
    func checkCSRF(_ request: Request, _ expected: String, _ cookies: [String: String]) throws {
        guard LoginSessions.csrfMatches(request.headers[.csrfToken], expected),
              cookies["csrftoken"].map({ LoginSessions.csrfMatches($0, expected) }) ?? true else { throw AviError.csrf }
        let ours = [RequestReading.baseURL(request, publicEndpoint: nil), baseURL(request)]
        if let origin = request.headers[.origin] {
            guard AviOrigin.matches(origin, ours: ours) else { throw AviOrigin.refusal(header: "Origin", value: origin) }
        } else if let referer = request.headers[.referer] {
            guard AviOrigin.matches(referer, ours: ours) else { throw AviOrigin.refusal(header: "Referer", value: referer) }
        }
    }

    // MARK: Images

    func list(_ request: Request, _ caller: Principal, version: AviVersion, base: String) async throws -> Response {
        let query = request.uri.queryParameters
        let asked = try AviRequests.listing(query, defaultPageSize: Self.defaultPageSize, maxPageSize: Self.maxPageSize)
        let page = asked.page, pageSize = asked.pageSize
        var listing = asked.request
        let count = try await service.countImages(listing, by: caller)
        listing.limit = pageSize
        listing.offset = asked.offset
        var images: [Image] = []
        for image in try await service.listImages(listing, by: caller) { images.append(try await live(image, caller)) }
        let withName = Self.flag(request, "include_name")
        var members: [(String, JSONValue)] = [("count", .int(Int64(count)))]
        if asked.hasNext(total: count) {
            // The values come decoded: encode them again so `next` is a URL with the same query.
            var params = query.filter { $0.key != "page" }.map { "\(AviRequests.queryEncoded($0.key))=\(AviRequests.queryEncoded($0.value))" }
            params.append("page=\(page + 1)")
            members.append(("next", .string("\(base)/api/image?" + params.joined(separator: "&"))))
        }
        var results: [JSONValue] = []
        for image in images {
            let names = withName ? await refNames(image, caller) : [:]
            results.append(try Self.shaped(AviImage.render(image, base: base, withName: withName, version: version, refNames: names), request))
        }
        members.append(("results", .array(results)))
        return Self.json(.object(members), version: version)
    }

    func create(_ request: Request, _ caller: Principal, version: AviVersion, base: String) async throws -> Response {
        if let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/") {
            guard let boundary = MultipartReader<RequestBody>.boundary(of: type) else {
                throw AviError(.badRequest, "A multipart upload needs multipart/form-data with a boundary.")
            }
            return try await upload(request, caller, boundary: boundary, version: version, base: base)
        }
        let body = try await Self.body(request)
        let creation = try AviRequests.creation(try JSONValue.parse(body.readableBytesView), version: version)
        let name = creation.name, source = creation.source
        var caller = caller
        if let ref = creation.tenantRef {
            // The tenant to create in: the caller's own, or any for an admin (like `X-Avi-Tenant`).
            let project = try tenant(ref, caller)
            if project != caller.projectId { caller.projectId = project; caller.projectName = project }
        }
        var document = try await resolvingRefs(creation.document, caller)
        var attributes = Self.coreAttributes(name)
        if let slug = request.headers[HTTPField.Name("slug")!], let id = AviImage.coreId(slug) { attributes.append(("id", .string(id))) }
        if let source {
            // Refused URLs (scheme, private addresses, ports) are 400 before anything is created.
            try await imports.vet(source, by: caller)
            let started = Date()
            for (k, v) in [("progress", JSONValue.int(0)), ("img_state", AviUpload.state("IMAGE_FSM_STARTED", at: started)),
                           ("start_time", .string(AviUpload.time(started))), ("tasks_completed", .int(0)), ("total_tasks", .int(1))]
            where !document.contains(where: { $0.0 == k }) { document.append((k, v)) }
        }
        var image: Image
        do {
            image = try await service.createImage(attributes, extensions: [AviImage.vendor: .object(document)], nameRule: .namePerOwner, by: caller)
        } catch { throw Self.naming(error, name) }
        if let source {
            _ = try await imports.startVendorImport(imageId: image.id, uri: source, deleteImageOnFailure: false, by: caller)
            image = try await live(try await service.showImage(id: image.id, by: caller), caller)
        }
        var response = Self.json(AviImage.render(image, base: base, withName: true, version: version, refNames: await refNames(image, caller)),
                                 version: version, status: .created)
        response.headers[.location] = "\(base)/api/image/\(AviImage.uuidPrefix)\(image.id)#\(name)"
        return response
    }

    /// PUT: the whole object; fields left out are unset. A `_last_modified` in the body must be the
    /// stored one (412 otherwise: someone changed the image since the client read it); `uuid` and
    /// `tenant_ref`, when sent, must be the image's own (an image does not move between tenants here).
    func replace(_ id: String, _ request: Request, _ caller: Principal, named: String?, version: AviVersion, base: String) async throws -> Response {
        let replacement = try AviRequests.replacement(try JSONValue.parse(try await Self.body(request).readableBytesView), version: version)
        try Self.check(replacement.identity, id: id)
        let final = try await resolvingRefs(replacement.document, caller)
        return try await update(id, caller, name: replacement.name, identity: replacement.identity, named: named, version: version,
                                base: base) { _ in final }
    }

    /// PATCH: Avi's add/replace/delete (or a plain object, or `json_patch`). The body is optional: an
    /// empty one (or `{}`) changes nothing and answers the object. A whole Image object as read is
    /// accepted: its `url` is ignored, `uuid`/`tenant_ref`/`_last_modified` are checked as PUT checks them.
    func patch(_ id: String, _ request: Request, _ caller: Principal, named: String?, version: AviVersion, base: String) async throws -> Response {
        let raw = try await Self.body(request)
        if raw.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return try await unchanged(id, caller, named: named, identity: AviIdentity(), version: version, base: base)
        }
        let body = try JSONValue.parse(raw.readableBytesView)
        // avisdk's `patch(path)` without data sends no body; a JSON `null` is taken the same way.
        if case .null = body { return try await unchanged(id, caller, named: named, identity: AviIdentity(), version: version, base: base) }
        let identity = try AviRequests.patchIdentity(body)
        try Self.check(identity, id: id)
        let (op, name, changes): (AviPatch.Operation, String?, [(String, JSONValue)])
        switch try AviRequests.patch(body, version: version) {
        case .jsonPatch(let ops):
            return try await jsonPatch(id, try await resolvingRefs(ops: ops, caller), caller, named: named, version: version, base: base)
        case .fields(let o, let n, let checked): (op, name, changes) = (o, n, o == .delete ? checked : try await resolvingRefs(checked, caller))
        }
        if name == nil && changes.isEmpty {
            return try await unchanged(id, caller, named: named, identity: identity, version: version, base: base)
        }
        return try await update(id, caller, name: name, identity: identity, named: named, version: version, base: base) { doc in
            try AviPatch.apply(op, changes, to: doc)
        }
    }

    /// A PATCH that changes nothing: the checks a write would make, then the object as it is.
    func unchanged(_ id: String, _ caller: Principal, named: String?, identity: AviIdentity, version: AviVersion, base: String) async throws -> Response {
        let image = try await live(try await service.showImage(id: id, by: caller), caller)
        try Self.expect(image, named: named, identity: identity)
        return Self.json(AviImage.render(image, base: base, withName: true, version: version, refNames: await refNames(image, caller)), version: version)
    }

    /// RFC 6902 ops on `{name, …avi fields}`; the result is validated like a PUT body. The ops run
    /// against the stored document inside the write, so concurrent patches are not lost; a rename
    /// is checked for duplicates first.
    func jsonPatch(_ id: String, _ ops: JSONValue, _ caller: Principal, named: String?, version: AviVersion, base: String) async throws -> Response {
        let current = try await service.showImage(id: id, by: caller)
        try Self.check(current, named: named)
        var seed: [(String, JSONValue)] = [("name", .string(current.name ?? ""))]
        if case .object(let m)? = current.extensions[AviImage.vendor] { seed += m }
        // Validate on the current state (ops and the resulting fields); the write repeats it atomically.
        let preview = try AviRequests.patched(.object(seed), ops, version: version)
        let currentName = current.name ?? ""
        let image: Image
        do { image = try await service.updateImage(
            id: id, changes: preview.name == current.name ? [] : [ImageChange(.replace, "name", .string(preview.name))],
            vendorChanges: [AviImage.vendor: { stored in
                var doc: [(String, JSONValue)] = [("name", .string(currentName))]
                if case .object(let m)? = stored { doc += m }
                return .object(try AviRequests.patched(.object(doc), ops, version: version).fields)
            }],
            expect: { stored in try Self.check(stored, named: named) }, by: caller) } catch { throw Self.naming(error, preview.name) }
        return Self.json(AviImage.render(image, base: base, withName: true, version: version, refNames: await refNames(image, caller)), version: version)
    }

    /// One catalog write: the name (409 when another image of the tenant has it) and the avi document,
    /// after the identity checks on the stored image (inside the write).
    func update(_ id: String, _ caller: Principal, name: String?, identity: AviIdentity, named: String?, version: AviVersion, base: String,
                _ change: @escaping @Sendable ([(String, JSONValue)]) throws -> [(String, JSONValue)]) async throws -> Response {
        let image: Image
        do { image = try await service.updateImage(
            id: id, changes: name.map { [ImageChange(.replace, "name", .string($0))] } ?? [],
            vendorChanges: [AviImage.vendor: { stored in
                var doc: [(String, JSONValue)] = []
                if case .object(let members)? = stored { doc = members }
                return .object(try change(doc))
            }],
            expect: { stored in try Self.expect(stored, named: named, identity: identity) }, by: caller) } catch { throw Self.naming(error, name) }
        return Self.json(AviImage.render(image, base: base, withName: true, version: version, refNames: await refNames(image, caller)), version: version)
    }

    /// `?name=` on an image's URL: the image must have that name (404 otherwise, as a filter).
    static func check(_ image: Image, named: String?) throws {
        if let named, image.name != named { throw AviError(.notFound, "Image object not found!") }
    }

    /// A `uuid` in a PUT/PATCH body must be the image's own.
    static func check(_ identity: AviIdentity, id: String) throws {
        if let uuid = identity.uuid, AviImage.coreId(uuid) != id {
            throw AviError(.badRequest, "Field 'uuid' is read-only: this image is \(AviImage.uuidPrefix)\(id), not '\(uuid)'.")
        }
    }

    /// The checks a write makes on the stored image: `?name=`, `tenant_ref` (the image's tenant; it
    /// does not move), `_last_modified` (the stored stamp, else 412).
    static func expect(_ stored: Image, named: String?, identity: AviIdentity) throws {
        try check(stored, named: named)
        if let ref = identity.tenantRef, try tenantProject(ref) != stored.owner {
            throw AviError(.badRequest, "Field 'tenant_ref' cannot be changed: the image belongs to tenant '\(stored.owner ?? "")'.")
        }
        if let lastModified = identity.lastModified, lastModified != AviImage.lastModified(stored) {
            throw AviError(.preconditionFailed, "Need to reload object data: the image changed since it was read.")
        }
    }

    /// An image fetched from a `url` shows its import as Avi shows an upload: while the task runs,
    /// `progress` from its bytes and IN_PROGRESS; once the image is active, COMPLETED and 100; when the
    /// import failed, FAILED with the task's message. Read from the core, not stored.
    func live(_ image: Image, _ caller: Principal) async throws -> Image {
        guard case .object(let doc)? = image.extensions[AviImage.vendor],
              case .string(let state)? = doc.first(where: { $0.0 == "img_state" })?.1["state"],
              state == "IMAGE_FSM_STARTED" || state == "IMAGE_FSM_IN_PROGRESS" else { return image }
        let tasks = try await service.tasks(imageId: image.id, by: caller)
        guard let task = tasks.first else {
            // The task row has been purged (finished tasks live 48 h): the image's status tells the end.
            var shown = image
            switch image.status {
            case .active, .deactivated:
                shown.extensions[AviImage.vendor] = AviUpload.merge(image.extensions[AviImage.vendor],
                    [("progress", .int(100))] + AviUpload.finished(ok: true, reason: "", started: Date(timeIntervalSince1970: Double(image.createdAt)),
                                                                   ended: Date(timeIntervalSince1970: Double(image.updatedAt))))
            case .queued, .killed:
                shown.extensions[AviImage.vendor] = AviUpload.merge(image.extensions[AviImage.vendor],
                    AviUpload.finished(ok: false, reason: image.properties["os_glance_failed_import"].map { "import to \($0) failed" } ?? "import failed",
                                       started: Date(timeIntervalSince1970: Double(image.createdAt)), ended: Date(timeIntervalSince1970: Double(image.updatedAt))))
            default: break
            }
            return shown
        }
        var fields: [(String, JSONValue)] = []
        switch (image.status, task.status) {
        case (.importing, _):
            let percent = task.bytesTotal.map { $0 > 0 ? min(99, task.bytesDone * 100 / $0) : 0 } ?? 0
            fields = [("progress", .int(percent)), ("img_state", AviUpload.state("IMAGE_FSM_IN_PROGRESS", at: Date(timeIntervalSince1970: Double(task.updatedAt))))]
        case (.active, .success), (.deactivated, .success):
            let start = Date(timeIntervalSince1970: Double(task.createdAt)), end = Date(timeIntervalSince1970: Double(task.updatedAt))
            fields = [("progress", .int(100))] + AviUpload.finished(ok: true, reason: "", started: start, ended: end)
        case (_, .failure):
            let start = Date(timeIntervalSince1970: Double(task.createdAt)), end = Date(timeIntervalSince1970: Double(task.updatedAt))
            fields = AviUpload.finished(ok: false, reason: task.message, started: start, ended: end)
        default: return image
        }
        var shown = image
        shown.extensions[AviImage.vendor] = AviUpload.merge(image.extensions[AviImage.vendor], fields)
        return shown
    }

    /// Names are unique per tenant on a controller (the core's `namePerOwner`, decided inside the
    /// write): a clash is Avi's 409 naming the name.
    static func naming(_ error: any Error, _ name: String?) -> any Error {
        guard let e = error as? ImageError, e.kind == .duplicate else { return error }
        return AviError(.conflict, "Image object with name '\(name ?? "")' already exists.")
    }

    /// Avi packages are opaque bytes to us: raw/bare lets them be uploaded and downloaded as they are.
    static func coreAttributes(_ name: String) -> [(String, JSONValue)] {
        [("name", .string(name)), ("visibility", .string("private")), ("disk_format", .string("raw")), ("container_format", .string("bare"))]
    }

    // MARK: Package upload

    /// `POST /api/image` as multipart with one part `file`: the image is created (named after the
    /// file) and the bytes stream through the data path (digests, size cap, quota); `progress`,
    /// `img_state`, times and `events` are kept in the Avi document as the upload runs, so another
    /// client watching the image sees them climb. Answers 201 once the data is stored.
    func upload(_ request: Request, _ caller: Principal, boundary: String, version: AviVersion, base: String) async throws -> Response {
        let reader = MultipartReader(body: request.body, boundary: boundary)
        let expected = request.headers[.contentLength].flatMap(Int64.init)
        // Pins are for the file part's bytes; a bad one is refused before the image exists.
        let pinned = try PinnedDigestHeaders.read(request.headers)
        var uploaded: Image?
        do {
            while let part = try await reader.nextPart() {
                guard part.name == "file" else { continue }
                guard uploaded == nil else { throw AviError(.badRequest, "Only one part named 'file' is accepted.") }
                guard let filename = part.filename.map({ ($0 as NSString).lastPathComponent }), !filename.isEmpty else {
                    throw AviError(.badRequest, "The 'file' part needs a filename.")
                }
                uploaded = try await receive(reader, name: filename, expected: expected, pinned: pinned, caller)
            }
        } catch let e as MultipartReader<RequestBody>.Malformed {
            throw AviError(.badRequest, "Malformed multipart body: \(e.reason).")
        }
        guard let uploaded else { throw AviError(.badRequest, "A multipart upload needs a part named 'file'.") }
        var response = Self.json(AviImage.render(uploaded, base: base, withName: true, version: version), version: version, status: .created)
        response.headers[.location] = "\(base)/api/image/\(AviImage.uuidPrefix)\(uploaded.id)#\(uploaded.name ?? "")"
        return response
    }

    func receive(_ reader: MultipartReader<RequestBody>, name: String, expected: Int64?, pinned: [PinnedDigest],
                 _ caller: Principal) async throws -> Image {
        let started = Date()
        let document: JSONValue = .object([
            ("progress", .int(0)), ("img_state", AviUpload.state("IMAGE_FSM_STARTED", at: started)),
            ("start_time", .string(AviUpload.time(started))), ("tasks_completed", .int(0)), ("total_tasks", .int(1)),
        ])
        let image: Image
        do {
            image = try await service.createImage(Self.coreAttributes(name), extensions: [AviImage.vendor: document], nameRule: .namePerOwner, by: caller)
        } catch { throw Self.naming(error, name) }
        let service = self.service
        let id = image.id
        let body = AviUpload.Counting(base: reader.partBody) { bytes in
            // Live progress, below 100 until the data is committed.
            let percent = expected.map { Int64(min(99, Double(bytes) * 100 / Double(max($0, 1)))) } ?? 0
            _ = try? await service.updateImage(id: id, changes: [], vendorChanges: [AviImage.vendor: { doc in
                AviUpload.merge(doc, [("progress", .int(percent)), ("img_state", AviUpload.state("IMAGE_FSM_IN_PROGRESS", at: Date()))])
            }], by: caller)
        }
        do {
            _ = try await data.upload(id: id, declaredSize: nil, pinned: pinned, body: body, by: caller)
        } catch {
            let reason = (AviError.from(error)?.message) ?? "upload failed"
            _ = try? await service.updateImage(id: id, changes: [], vendorChanges: [AviImage.vendor: { doc in
                AviUpload.merge(doc, AviUpload.finished(ok: false, reason: reason, started: started))
            }], by: caller)
            throw error
        }
        return try await service.updateImage(id: id, changes: [], vendorChanges: [AviImage.vendor: { doc in
            AviUpload.merge(doc, [("progress", .int(100))] + AviUpload.finished(ok: true, reason: "", started: started))
        }], by: caller)
    }

    // MARK: Helpers

    static func version(_ request: Request) throws -> AviVersion {
        try AviRequests.version(request.headers[.aviVersion])
    }

    /// `fields=a,b` keeps only those (and always `name`, `url`, `uuid`); `skip_default=true` leaves out
    /// fields holding their schema default (`fips_mode_transition_applicable: true`, `uber_bundle: false`).
    static func shaped(_ object: JSONValue, _ request: Request) throws -> JSONValue {
        guard case .object(var members) = object else { return object }
        if let list = request.uri.queryParameters["fields"].map(String.init) {
            let wanted = Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }).union(["name", "url", "uuid"])
            members.removeAll { !wanted.contains($0.0) }
        }
        if flag(request, "skip_default") {
            members.removeAll { ($0.0 == "fips_mode_transition_applicable" && $0.1 == .bool(true)) || ($0.0 == "uber_bundle" && $0.1 == .bool(false)) }
        }
        return .object(members)
    }

    static func flag(_ request: Request, _ name: String) -> Bool {
        request.uri.queryParameters[Substring(name)].map { $0.lowercased() == "true" || $0 == "1" } ?? false
    }

    func baseURL(_ request: Request) -> String {
        RequestReading.baseURL(request, publicEndpoint: options.publicEndpoint)
    }

    static func body(_ request: Request) async throws -> ByteBuffer {
        do { return try await RequestReading.body(request, limit: maxJSONBody) } catch {
            throw AviError(.contentTooLarge, "Request body is larger than \(maxJSONBody) bytes.")
        }
    }

    static func json(_ value: JSONValue, version: AviVersion, status: HTTPResponse.Status = .ok) -> Response {
        JSONResponse.make(value, status: status, headers: [.aviAPIVersion: version.description])
    }

    /// `a=b; c=d` from every Cookie header; the first value of a name wins (the SDK repeats names).
    static func cookies(_ request: Request) -> [String: String] {
        RequestReading.cookies(request.headers[values: .cookie])
    }
}
