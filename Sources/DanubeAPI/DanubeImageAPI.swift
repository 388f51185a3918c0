import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData

public struct DanubeAPIOptions: Sendable {
    /// Base URL clients reach us at (imagestore of another imaged, snapshot links); from Host when nil.
    public var publicEndpoint: String?
    /// `AUTHTOKEN_DURATION`: seconds a login token lives.
    public var tokenLifetime: Int64 = 3600
    /// Where VM snapshot disks are fetched from: `{vm}`, `{snap}`, `{disk_id}` and `{dc}` are filled in
    /// (URL-encoded), e.g. `http://snapshots.example/vm/{vm}/snapshot/{snap}/disk/{disk_id}`. Without
    /// it, snapshot → image answers 428 as Danube does without an image server.
    public var snapshotURLTemplate: String?
    /// Remote IMGAPI repositories (`VMS_IMAGE_REPOSITORIES`): name → base URL.
    public var imagestores: [(name: String, url: String)] = []
    /// Where the API is mounted: `/api` (what `esdc_api.Client(api_url="http://host/api")` uses), or
    /// another prefix when Avi's controller paths must keep `/api/image` to themselves.
    public var prefix = "/api"
    public init(publicEndpoint: String? = nil) { self.publicEndpoint = publicEndpoint }
}

/// Danube Cloud's image API (`/api/image/…`, `/api/task/…`, `/api/imagestore/…`, snapshot → image)
/// over the shared catalog, and a read-only IMGAPI (`/images…`) so one imaged can be another's
/// imagestore. Images are addressed by name, unique per owner project. Imports are catalog tasks.
public struct DanubeImageAPI<Context: RequestContext>: HTTPResponder {
    let imports: ImageImports
    let accounts: LocalAccounts
    let sessions: LoginSessions
    let options: DanubeAPIOptions
    let repositories: DanubeImagestores
    var data: ImageDataService { imports.data }
    var service: ImageService { data.images }

    static var maxJSONBody: Int { 1 << 20 }
    /// The read-only IMGAPI: `/imgapi/images…`, so a repository URL `http://host:9292/imgapi/` resolves
    /// `images` as IMGAPI clients do, and `/images` stays OpenStack's version negotiation (300).
    static var imgapiRoot: String { "/imgapi/images" }
    static var maxManifestBytes: Int64 { 8192 }

    public init(imports: ImageImports, accounts: LocalAccounts, options: DanubeAPIOptions = .init()) {
        self.imports = imports
        self.accounts = accounts
        self.sessions = LoginSessions(accounts: accounts, lifetime: options.tokenLifetime)
        self.options = options
        self.repositories = DanubeImagestores(options.imagestores, fetcher: imports.fetcher)
    }

    /// `/api/…` (what the Avi front-end leaves: Danube's paths end in a slash or carry its headers)
    /// and the IMGAPI paths `/images…`.
    public func claims(_ request: Request) -> Bool {
        let path = request.uri.path
        return path == options.prefix || path.hasPrefix(options.prefix + "/") || path == Self.imgapiRoot || path.hasPrefix(Self.imgapiRoot + "/")
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        if request.uri.path == Self.imgapiRoot || request.uri.path.hasPrefix(Self.imgapiRoot + "/") {
            return await IMGAPI(service: service, data: data).respond(to: request, context: context)
        }
        var reply = DanubeReply(username: "")
        do {
            return try await route(request, &reply)
        } catch let v as DanubeValidation {
            return reply.failure(v)
        } catch {
            if let e = DanubeError.from(error) { return reply.detail(e) }
            context.logger.error("danube request failed", metadata: ["error": "\(error)"])
            return reply.detail(DanubeError(.internalServerError, "Internal server error"))
        }
    }

    func route(_ request: Request, _ reply: inout DanubeReply) async throws -> Response {
        var s = request.uri.path.dropFirst(options.prefix.count).split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        // `/api/dc/<dc>/vm/…` is the same VM API in a DC.
        if s.count > 2, s[0] == "dc", s[2] == "vm" {
            // One datacenter: another name is not found, as in a body's `dc`.
            guard s[1] == DanubeReply.dc else { throw DanubeError(.notFound, "Datacenter not found") }
            s.removeFirst(2)
        }
        let method = request.method
        func notAllowed() -> DanubeError { DanubeError(.methodNotAllowed, "Method \"\(method)\" not allowed.") }
        if s == ["accounts", "login"] {
            guard method == .post else { throw notAllowed() }
            return try await login(request, reply)
        }
        let p = try await caller(request)
        reply.username = p.userName ?? p.userId
        switch s.count {
        case 2 where s == ["accounts", "logout"]:
            guard method == .get else { throw notAllowed() }
            if let token = Self.token(request) { try await sessions.logout(sessionId: token) }
            return reply.json(.object([("detail", .string("Bye."))]))
        case 1 where s[0] == "image":
            guard method == .get else { throw notAllowed() }
            return try await list(request, p, reply)
        case 2 where s[0] == "image":
            let name = s[1]
            switch method {
            case .get: return reply.success(DanubeImage.render(try await resolve(name, p), extended: Self.flag(request, "extended")))
            case .post: return try await importFromManifest(name, try await Self.data(request), p, reply)
            case .put: return try await update(name, try await Self.data(request), p, reply)
            case .delete: return try await delete(name, p, reply)
            default: throw notAllowed()
            }
        case 3 where s[0] == "image" && s[2] == "vm":
            guard method == .get else { throw notAllowed() }
            let image = try await resolve(s[1], p)
            let hosts = DanubeImage.vms(image).sorted()
            return reply.success(.array(hosts.map { Self.flag(request, "full") ? .object([("hostname", .string($0))]) : .string($0) }))
        case 4 where s[0] == "image" && s[2] == "vm":
            guard method == .put || method == .delete else { throw notAllowed() }
            return try await recordUsage(s[1], vm: s[3], using: method == .put, p, reply)
        case 1 where s[0] == "task":
            guard method == .get else { throw notAllowed() }
            let pending = try await service.listTasks(limit: 1000, by: p).filter {
                $0.type == ImageImports.taskType && !$0.status.isFinished && Self.isDanube($0)
            }
            return reply.json(.array(pending.map { .string(DanubeTaskID.real($0.id)) }))
        case 2 where s[0] == "task", 3 where s[0] == "task":
            guard method == .get else { throw notAllowed() }
            return try await task(s[1], view: s.count == 3 ? s[2] : "", p, reply)
        case 6 where s[0] == "vm" && s[2] == "snapshot" && s[4] == "image":
            guard method == .post else { throw notAllowed() }
            return try await imageFromSnapshot(vm: s[1], snapshot: s[3], name: s[5], try await Self.data(request), p, reply)
        case 1 where s[0] == "imagestore", 2 where s[0] == "imagestore":
            guard p.isMember || p.isAdmin else { throw DanubeError.forbidden }
            let one = s.count == 2 ? s[1] : nil
            switch method {
            case .get:
                if let one { return reply.success(try await repositories.repository(one).json) }
                let all = await repositories.all()
                return reply.success(.array(all.map { Self.flag(request, "full") ? $0.json : .string($0.name) }))
            case .put:
                let refreshed = one == nil ? try await repositories.refreshAll() : [try await repositories.refresh(one!)]
                let body: JSONValue = .array(refreshed.map(\.json))
                if refreshed.contains(where: { $0.error != nil }) {
                    let id = DanubeTaskID.dummy()
                    return reply.json(.object([("task_id", .string(id)), ("status", .string("FAILURE")), ("result", body)]),
                                      status: .badRequest, taskId: id)
                }
                return reply.success(one == nil ? body : body.arrayItems![0])
            default: throw notAllowed()
            }
        case 3 where s[0] == "imagestore" && s[2] == "image":
            guard method == .get else { throw notAllowed() }
            let repo = try await repositories.repository(s[1])
            let full = Self.flag(request, "full")
            return reply.success(.array(repo.images.map { full ? $0.json(repo: repo.url) : .string($0.uuid) }))
        case 4 where s[0] == "imagestore" && s[2] == "image":
            switch method {
            case .get: return reply.success(try await repositories.image(s[1], uuid: s[3]).json(repo: try await repositories.repository(s[1]).url))
            case .post: return try await importFromRepository(s[1], uuid: s[3], try await Self.data(request), p, reply)
            default: throw notAllowed()
            }
        default:
            throw DanubeError(.notFound, "Not found")
        }
    }

    // MARK: Authentication

    func login(_ request: Request, _ reply: DanubeReply) async throws -> Response {
        let body = try await Self.data(request)
        let fields = JSONValue.object(body)
        guard let name = fields["username"]?.stringValue, let password = fields["password"]?.stringValue, !name.isEmpty else {
            throw DanubeError(.badRequest, "Must include \"username\" and \"password\".")
        }
        guard let principal = try await accounts.authenticate(name: name, password: password) else {
            throw DanubeError(.badRequest, "Unable to log in with provided credentials.")
        }
        let opened = try await sessions.open(accountName: name, principal: principal, hexBytes: 20)
        return DanubeReply(username: name).json(.object([
            ("token", .string(opened.sessionId)), ("expires", .string(DanubeImage.iso(opened.expiresAt))),
            ("detail", .string("Welcome to Danube Cloud API.")),
        ]))
    }

    static func token(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix("Token ") else { return nil }
        return String(header.dropFirst("Token ".count)).trimmingCharacters(in: .whitespaces)
    }

    /// `ES-API-KEY: <key id>:<secret>` (a local API key) or `Authorization: Token <login token>`.
    func caller(_ request: Request) async throws -> Principal {
        if let key = request.headers[.esAPIKey] {
            let parts = key.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let p = try await accounts.authenticate(keyId: String(parts[0]), secret: String(parts[1])) else {
                throw DanubeError(.unauthorized, "Invalid API key")
            }
            return p
        }
        // An unknown or expired token counts as no credentials, as in Danube.
        if let token = Self.token(request), let session = try await sessions.resume(sessionId: token) { return session.principal }
        throw DanubeError.notAuthenticated
    }

    // MARK: Reading

    func list(_ request: Request, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        let sort = try DanubeRequests.sortOrder(request.uri.queryParameters["order_by"].map(String.init))
        let images = try await visibleImages(p, sort: sort).filter { $0.name != nil }
        let full = Self.flag(request, "full"), extended = Self.flag(request, "extended")
        return reply.success(.array(images.map { full || extended ? DanubeImage.render($0, extended: extended) : .string($0.name!) }))
    }

    func visibleImages(_ p: Principal, sort: [ImageListQuery.Sort], filters: [ImageListQuery.Filter] = []) async throws -> [Image] {
        var request = ImageListRequest()
        request.sort = sort
        request.filters = filters
        return try await service.listAllImages(request, by: p)
    }

    /// The image a name means to the caller: its own project's first, else the oldest it can see.
    func resolve(_ name: String, _ p: Principal) async throws -> Image {
        guard DanubeImage.routable(name) else { throw DanubeError(.notFound, "Not found") }
        let named = try await visibleImages(p, sort: [.init(.createdAt, .asc)], filters: [.oneOf(.name, [name])])
        guard let image = named.first(where: { $0.owner == p.projectId }) ?? named.first else { throw DanubeError.imageNotFound }
        return image
    }

    // MARK: Import

    /// The steps every import shares (from a manifest URL, from a repository, from a snapshot): the
    /// name and fields checked, the image created with its Danube document, its data fetched by a
    /// task that deletes the image if it fails (Danube's rollback of a failed import).
    struct ImportPlan {
        var name: String
        var id: String?
        var fields: DanubeFields
        var document: [(String, JSONValue)]
        var fileURL: String
        var expectedSize: Int64?
        var expectedSHA1: String?
    }

    func checkNewName(_ name: String, _ p: Principal) async throws {
        guard DanubeImage.routable(name) else { throw DanubeError(.notFound, "Not found") }
        var v = DanubeValidation()
        for e in DanubeImage.nameErrors(name) { v.add("name", e) }
        if !v.isEmpty { throw v }
        // Answered before the other fields, as Danube does; the insert decides again (`namePerOwner`).
        if try await service.nameTaken(name, owner: p.projectId) { throw DanubeError.exists }
    }

    /// Field rules shared by every import; `v` collects the refusals.
    func checkFields(_ fields: inout DanubeFields, _ p: Principal, _ v: inout DanubeValidation) async throws {
        if !p.isAdmin { fields.dcBound = nil }  // only a SuperAdmin chooses; others get DC-bound images
        if fields.access == 4 { v.add("access", "An image cannot be imported as deleted; import it, then set access 4.") }
        if fields.access == 1 && !p.isAdmin { throw DanubeError.forbidden }  // public images are the SuperAdmin's (Glance's policy)
        if fields.dcBound ?? true {
            if let dc = fields.dc {
                guard dc == DanubeReply.dc else { throw DanubeError(.notFound, "Datacenter not found") }
            } else {
                let message = "You have to specify to which datacenter shall the image be bound. Either use the \"dc\" parameter or set the \"dc_bound\" parameter to false."
                v.add("dc_bound", message)
                v.add("dc", message)
            }
        }
        if let owner = fields.owner { try await checkOwner(owner, p, &v) }
    }

    func checkOwner(_ owner: String, _ p: Principal, _ v: inout DanubeValidation) async throws {
        guard let account = try await accounts.account(named: owner) else {
            v.add("owner", "Object with username=\(owner) does not exist.")
            return
        }
        if !p.isAdmin && account.projectId != p.projectId { v.add("owner", "Object with username=\(owner) does not exist.") }
    }

    /// alias + version are unique (alias compared without case) among the images the caller sees.
    /// `newName`: the name of an image being imported. Danube answers a taken name (406) before any
    /// field, so an import whose alias clashes because another import of its name has just committed
    /// (it passed the name check first) is answered as a taken name too.
    func checkAliasVersion(alias: String, version: String, except id: String?, newName: String? = nil, _ p: Principal,
                           _ v: inout DanubeValidation) async throws {
        let clash = try await visibleImages(p, sort: [.init(.createdAt, .asc)]).contains { other in
            other.id != id && (DanubeImage.string(other, "alias") ?? other.name ?? "").lowercased() == alias.lowercased()
                && (DanubeImage.string(other, "version") ?? "1.0") == version
        }
        guard clash else { return }
        if let newName, try await service.nameTaken(newName, owner: p.projectId) { throw DanubeError.exists }
        v.add("alias", "This alias is already in use. Please supply a different alias or version.")
    }

    func start(_ plan: ImportPlan, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        var attributes: [(String, JSONValue)] = [("name", .string(plan.name)), ("disk_format", .string("raw")),
                                                 ("container_format", .string("bare")),
                                                 ("visibility", .string(plan.fields.access == 1 ? "public" : "private"))]
        if let id = plan.id { attributes.append(("id", .string(id))) }
        var owner = p
        if let name = plan.fields.owner, let account = try await accounts.account(named: name), account.projectId != p.projectId {
            attributes.append(("owner", .string(account.projectId)))
            owner.projectId = account.projectId
        }
        let document = JSONValue.merging(.object([("owner", .string(plan.fields.owner ?? p.userName ?? p.userId)),
                                                  ("dc_bound", .bool(plan.fields.dcBound ?? true)), ("dc", .string(DanubeReply.dc))]),
                                         plan.document + plan.fields.documentFields)
        let image = try await service.createImage(attributes, extensions: [DanubeImage.vendor: document], nameRule: .namePerOwner, by: p)
        let taskId = ImageID.generate()
        do {
            _ = try await imports.startVendorImport(imageId: image.id, uri: plan.fileURL, request: [("danube", .bool(true))],
                                                    taskId: taskId, deleteImageOnFailure: true, expectedSize: plan.expectedSize,
                                                    expectedSHA1: plan.expectedSHA1, by: p)
        } catch {
            if let e = error as? ImageError, e.kind == .badRequest {
                var v = DanubeValidation()
                v.add("file_url", "Image file URL is unreachable (\(e.message)).")
                throw v
            }
            throw error
        }
        return reply.pending(DanubeTaskID.real(taskId))
    }

    /// `POST /image/(name)/` with `manifest_url` (and optional `file_url`): reference §7.3.
    func importFromManifest(_ name: String, _ body: [(String, JSONValue)], _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        try await checkNewName(name, p)
        let params = JSONValue.object(body)
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        try await checkFields(&fields, p, &v)
        guard let manifestURL = params["manifest_url"]?.stringValue, !manifestURL.isEmpty else {
            v.add("manifest_url", "This field is required.")
            throw v
        }
        guard manifestURL.count <= 1024, manifestURL.hasPrefix("http://") || manifestURL.hasPrefix("https://") else {
            v.add("manifest_url", "Enter a valid URL.")
            throw v
        }
        if !v.isEmpty { throw v }
        let manifest = try await fetchManifest(manifestURL)
        let fileURL = params["file_url"]?.stringValue ?? Self.trimSlashes(manifestURL) + "/file"
        return try await importManifest(manifest, name: name, fields: fields, manifestURL: manifestURL, fileURL: fileURL, p, reply)
    }

    func importManifest(_ manifest: DanubeImage.Manifest, name: String, fields: DanubeFields, manifestURL: String, fileURL: String,
                        _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        var v = DanubeValidation()
        if try await service.idIsTaken(manifest.uuid) {
            // The name only when the caller may see the image; the id says nothing more.
            let existing = try await service.visibleImageIfAny(id: manifest.uuid, by: p)
            v.add("manifest_url", "Image UUID is already registered by image \"\(existing?.name ?? manifest.uuid.lowercased())\".")
            throw v
        }
        guard fileURL.hasPrefix("http://") || fileURL.hasPrefix("https://") else {
            v.add("file_url", "Enter a valid URL.")
            throw v
        }
        do { try await imports.fetcher.vet(fileURL) } catch let e as ImageError {
            v.add("file_url", "Image file URL is unreachable (\(e.message)).")
            throw v
        }
        let version = fields.version ?? manifest.version
        try await checkAliasVersion(alias: fields.alias ?? name, version: version, except: nil, newName: name, p, &v)
        if !v.isEmpty { throw v }
        var document: [(String, JSONValue)] = [
            ("version", .string(version)), ("desc", .string(manifest.description ?? "")), ("ostype", .int(manifest.ostype)),
            ("size", .int(manifest.sizeMB)), ("resize", .bool(manifest.resize ?? false)), ("deploy", .bool(manifest.deploy ?? false)),
            ("tags", .array((manifest.tags ?? []).map { .string($0) })), ("manifest", manifest.raw), ("manifest_url", .string(manifestURL)),
        ]
        document = JSONValue.merging(.object(document), []).objectMembers
        return try await start(ImportPlan(name: name, id: manifest.uuid, fields: fields, document: document, fileURL: fileURL,
                                          expectedSize: manifest.fileSize, expectedSHA1: manifest.sha1), p, reply)
    }

    /// GET of a manifest: through the URL guard, at most 8 KiB, 5 s, JSON (reference §7.3 step 2).
    func fetchManifest(_ url: String) async throws -> DanubeImage.Manifest {
        var v = DanubeValidation()
        let bytes: [UInt8]
        do {
            bytes = try await DanubeImagestores.fetchSmall(imports.fetcher, url, maxBytes: Self.maxManifestBytes, seconds: 5)
        } catch {
            let reason = (error as? ImageError)?.message ?? "\(error)"
            v.add("manifest_url", "Image manifest URL is unreachable (\(reason)).")
            throw v
        }
        guard let json = try? JSONValue.parse(bytes) else {
            v.add("manifest_url", "Could not parse image manifest.")
            throw v
        }
        return try DanubeImage.Manifest(json)
    }

    static func trimSlashes(_ s: String) -> String {
        var t = Substring(s)
        while t.hasSuffix("/") { t = t.dropLast() }
        return String(t)
    }

    /// `POST /imagestore/(repo)/image/(uuid)/`: like `POST /image/(name)/` from the repository's manifest.
    func importFromRepository(_ repo: String, uuid: String, _ body: [(String, JSONValue)], _ p: Principal,
                              _ reply: DanubeReply) async throws -> Response {
        guard p.isMember || p.isAdmin else { throw DanubeError.forbidden }
        let entry = try await repositories.image(repo, uuid: uuid)
        let name = JSONValue.object(body)["name"]?.stringValue ?? entry.name
        if try await service.idIsTaken(entry.uuid) { throw DanubeError.exists }
        try await checkNewName(name, p)
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        try await checkFields(&fields, p, &v)
        if !v.isEmpty { throw v }
        let base = try await repositories.repository(repo).url
        let manifestURL = DanubeImagestores.join(base, "images/\(entry.uuid)")
        let manifest = try DanubeImage.Manifest(entry.manifest)
        return try await importManifest(manifest, name: name, fields: fields, manifestURL: manifestURL, fileURL: manifestURL + "/file", p, reply)
    }

    /// `POST /vm/(vm)/snapshot/(snap)/image/(name)/`: the snapshot's disk, fetched from the operator's
    /// snapshot source through the URL guard as a normal import task.
    func imageFromSnapshot(vm: String, snapshot: String, name: String, _ body: [(String, JSONValue)], _ p: Principal,
                           _ reply: DanubeReply) async throws -> Response {
        // Danube routes only plain hostnames and snapshot names; anything else never reaches the snapshot source.
        guard DanubeImage.routable(vm), DanubeImage.routable(snapshot) else { throw DanubeError(.notFound, "Not found") }
        guard let template = options.snapshotURLTemplate else { throw DanubeError.noImageServer }
        try await checkNewName(name, p)
        let params = JSONValue.object(body)
        let diskId = try DanubeRequests.diskId(params["disk_id"])
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        fields.dcBound = true
        fields.dc = DanubeReply.dc
        try await checkFields(&fields, p, &v)
        try await checkAliasVersion(alias: fields.alias ?? name, version: fields.version ?? "1.0", except: nil, newName: name, p, &v)
        if !v.isEmpty { throw v }
        func encoded(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? s }
        let url = template.replacingOccurrences(of: "{vm}", with: encoded(vm)).replacingOccurrences(of: "{snap}", with: encoded(snapshot))
            .replacingOccurrences(of: "{disk_id}", with: String(diskId)).replacingOccurrences(of: "{dc}", with: DanubeReply.dc)
        let document: [(String, JSONValue)] = [("version", .string(fields.version ?? "1.0")), ("desc", .string(fields.desc ?? "")),
                                               ("ostype", .int(1)), ("resize", .bool(fields.resize ?? false)),
                                               ("deploy", .bool(fields.deploy ?? false)), ("tags", .array((fields.tags ?? []).map { .string($0) })),
                                               ("source", .object([("vm", .string(vm)), ("snapshot", .string(snapshot)), ("disk_id", .int(diskId))]))]
        return try await start(ImportPlan(name: name, id: nil, fields: fields, document: document, fileURL: url), p, reply)
    }

    // MARK: Update, delete, VM usage

    /// `PUT /image/(name)/`: one atomic catalog write of the fields (a refused one changes nothing);
    /// access 4 deactivates the image in the core and 1/3 reactivates it.
    func update(_ name: String, _ body: [(String, JSONValue)], _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        let image = try await resolve(name, p)
        guard DanubeImage.status(image) == 1 else { throw DanubeError.statusNotOK }
        var v = DanubeValidation()
        let fields = DanubeFields(body, &v)
        if fields.dcBound != nil && !p.isAdmin && fields.dcBound != DanubeImage.bool(image, "dc_bound") ?? true {
            v.add("dc_bound", "You don't have permission to modify this field.")
        }
        if let owner = fields.owner { try await checkOwner(owner, p, &v) }
        if fields.alias != nil || fields.version != nil {
            try await checkAliasVersion(alias: fields.alias ?? DanubeImage.string(image, "alias") ?? name,
                                        version: fields.version ?? DanubeImage.string(image, "version") ?? "1.0", except: image.id, p, &v)
        }
        if !v.isEmpty { throw v }
        var changes: [ImageChange] = []
        if let access = fields.access, access != 4 {
            let visibility = access == 1 ? "public" : "private"
            if visibility != image.visibility.rawValue { changes.append(ImageChange(.replace, "visibility", .string(visibility))) }
        }
        if let owner = fields.owner, let account = try await accounts.account(named: owner), account.projectId != image.owner {
            changes.append(ImageChange(.replace, "owner", .string(account.projectId)))
        }
        let wasDeactivated = image.status == .deactivated
        let deactivate = fields.access == 4 && !wasDeactivated
        let reactivate = fields.access != nil && fields.access != 4 && wasDeactivated
        var doc = fields.documentFields
        if let owner = fields.owner { doc.append(("owner", .string(owner))) }
        let documentChange = doc
        // Fields and state in one write: a refused deactivation leaves the fields as they were too.
        let updated = try await service.updateImage(id: image.id, changes: changes, vendorChanges: [DanubeImage.vendor: { stored in
            JSONValue.merging(stored, documentChange)
        }], activate: deactivate ? false : reactivate ? true : nil, by: p)
        return reply.success(DanubeImage.render(updated, extended: false))
    }

    func delete(_ name: String, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        let image = try await resolve(name, p)
        guard DanubeImage.status(image) == 1 else { throw DanubeError.statusNotOK }
        try await data.deleteImage(id: image.id, by: p)
        return reply.success(.null)
    }

    /// The admin endpoint that records which VMs use an image (`PUT`/`DELETE /image/(name)/vm/(host)/`):
    /// Danube knows it from its VMs; imaged is told by the operator's tooling.
    func recordUsage(_ name: String, vm: String, using: Bool, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        guard p.isAdmin else { throw DanubeError.forbidden }
        guard DanubeImage.routable(vm) else { throw DanubeError(.notFound, "Not found") }
        let image = try await resolve(name, p)
        let updated = try await service.updateImage(id: image.id, changes: [], vendorChanges: [DanubeImage.vendor: { stored in
            var hosts = stored?["vms"]?.arrayItems?.compactMap(\.stringValue) ?? []
            hosts.removeAll { $0 == vm }
            if using { hosts.append(vm) }
            return JSONValue.merging(stored, [("vms", .array(hosts.sorted().map { .string($0) }))])
        }], by: p)
        return reply.success(.array(DanubeImage.vms(updated).map { .string($0) }))
    }

    // MARK: Tasks

    static func isDanube(_ t: ImageTask) -> Bool {
        (try? JSONValue.parse(t.input))?["import_req"]?["danube"]?.boolValue == true
    }

    /// `GET /task/(id)/`, `/status/` (`/state/`), `/done/`: the catalog task behind a real task id.
    func task(_ id: String, view: String, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        guard ["", "status", "state", "done"].contains(view) else { throw DanubeError(.notFound, "Not found") }
        guard let coreId = DanubeTaskID.coreId(id), let t = try await service.task(id: coreId, by: p),
              t.type == ImageImports.taskType else {
            throw view == "" ? DanubeError(.notFound, "Task does not exist") : DanubeError.taskGone
        }
        let image = try await service.image(ofJob: t)
        if view == "" {
            guard !t.status.isFinished else { throw DanubeError(.notFound, "Task does not exist") }
            return reply.json(.object([("view", .string("image_manage")), ("method", .string("POST")),
                                       ("image", .string(image?.name ?? "")), ("task_id", .string(id))]))
        }
        let (word, status, result): (String, HTTPResponse.Status, JSONValue) = switch t.status {
        case .pending, .processing: ("PENDING", .created, .null)
        case .success: ("SUCCESS", .ok, .object([("returncode", .int(0)),
                                                 ("message", .string("Successfully imported image \(t.imageId ?? "")"))]))
        case .failure: ("FAILURE", .badRequest, .object([("returncode", .int(1)), ("message", .string(t.message)),
                                                         ("detail", .string("Got bad return code (1). Error: \(t.message)"))]))
        }
        let body: JSONValue = view == "done"
            ? .object([("task_id", .string(id)), ("done", .bool(t.status.isFinished))])
            : .object([("task_id", .string(id)), ("status", .string(word)), ("result", result)])
        return reply.json(body, status: status, taskId: id, taskResponse: true)
    }

    // MARK: Helpers

    /// `data`: the query string for GET, the JSON body otherwise (`{}` when empty).
    static func data(_ request: Request) async throws -> [(String, JSONValue)] {
        if request.method == .get {
            return DanubeRequests.query(request.uri.queryParameters)
        }
        let buffer: ByteBuffer
        do { buffer = try await RequestReading.body(request, limit: maxJSONBody) } catch { throw DanubeError(.contentTooLarge, "Request body is too large") }
        return try DanubeRequests.body(buffer.readableBytesView)
    }

    /// Danube's lenient query booleans (the client sends Python's `True`/`False`).
    static func flag(_ request: Request, _ name: String) -> Bool {
        DanubeRequests.flag(request.uri.queryParameters[Substring(name)])
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
