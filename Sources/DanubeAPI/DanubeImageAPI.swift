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
    /// Where a VM's existence is asked (`{vm}`, `{dc}`): 404/410 there is `VM not found`. Without it an
    /// unknown VM is found out by its snapshot (`Snapshot not found`).
    public var vmURLTemplate: String?
    /// Remote IMGAPI repositories (`VMS_IMAGE_REPOSITORIES`): name → base URL.
    public var imagestores: [(name: String, url: String)] = []
    /// Where the API is mounted: `/api` (what `esdc_api.Client(api_url="http://host/api")` uses), or
    /// another prefix when Avi's controller paths must keep `/api/image` to themselves.
    public var prefix = "/api"
    /// The virtual datacenters (`--danube-dc`, repeatable); the first is the default DC, which the image
    /// API's requests run in (`es_dc`), as Danube forces for `/image`.
    public var datacenters = ["main"]
    /// `ES-STREAM` answers: a keep-alive space this often, and the longest a stream waits (`API_SYNC_TIMEOUT`).
    public var streamKeepAlive: Duration = .seconds(2)
    public var streamTimeout: Duration = .seconds(3600)
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
    var tasks: DanubeTasks { DanubeTasks(service: service, data: data) }
    var defaultDC: String { options.datacenters.first ?? "main" }

    static var maxJSONBody: Int { 1 << 20 }
    /// The read-only IMGAPI: `/imgapi/images…`, so a repository URL `http://host:9292/imgapi/` resolves
    /// `images` as IMGAPI clients do, and `/images` stays OpenStack's version negotiation (300).
    static var imgapiRoot: String { "/imgapi/images" }
    static var maxManifestBytes: Int64 { 8192 }

    public init(imports: ImageImports, accounts: LocalAccounts, options: DanubeAPIOptions = .init()) {
        self.imports = imports
        self.accounts = accounts
        self.sessions = LoginSessions(accounts: accounts, scope: .danube, lifetime: options.tokenLifetime)
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
        var reply = DanubeReply(username: "", dc: defaultDC)
        reply.stream = request.headers[.esStream] != nil
        do {
            let response = try await route(request, &reply, client: ClientAddress.of(context))
            // `ES-STREAM`: a started task is followed to its end on this connection (reference §3).
            if reply.stream, response.status == .created, response.headers[.esTaskResponse] == "true",
               let taskId = response.headers[.esTaskID], let p = reply.principal {
                return DanubeStream(tasks: tasks, keepAlive: options.streamKeepAlive, timeout: options.streamTimeout)
                    .response(taskId: taskId, p, headers: response.headers)
            }
            return response
        } catch let v as DanubeValidation {
            return reply.failure(v)
        } catch {
            if let e = DanubeError.from(error) { return reply.detail(e) }
            context.logger.error("danube request failed", metadata: ["error": "\(error)"])
            return reply.detail(DanubeError(.internalServerError, "Internal server error"))
        }
    }

    func route(_ request: Request, _ reply: inout DanubeReply, client: String?) async throws -> Response {
        var s = request.uri.path.dropFirst(options.prefix.count).split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        // `/api/dc/<dc>/vm/…` is the same VM API in a DC.
        var vmDC: String?
        if s.count > 2, s[0] == "dc", s[2] == "vm" {
            guard options.datacenters.contains(s[1]) else { throw DanubeError(.notFound, "Datacenter not found") }
            vmDC = s[1]
            s.removeFirst(2)
        }
        let method = request.method
        func notAllowed() -> DanubeError { DanubeError(.methodNotAllowed, "Method \"\(method)\" not allowed.") }
        if s == ["accounts", "login"] {
            guard method == .post else { throw notAllowed() }
            return try await login(request, reply, client: client)
        }
        let (p, credential) = try await caller(request)
        reply.username = p.userName ?? p.userId
        reply.principal = p
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
            case .get: return reply.success(DanubeImage.render(try await resolve(name, p), extended: Self.flag(request, "extended"),
                                                                         defaultDC: defaultDC))
            case .post: return try await importFromManifest(name, try await Self.data(request), p, credential, reply)
            case .put: return try await update(name, try await Self.data(request), p, credential, reply)
            case .delete: return try await delete(name, try await Self.data(request), p, credential, reply)
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
                !$0.status.isFinished && DanubeTasks.isDanube($0)
            }
            return reply.json(.array(pending.map { .string(DanubeTaskID.real($0.id)) }))
        case 3 where s[0] == "task" && s[2] == "cancel":
            guard method == .put else { throw notAllowed() }
            let cancelled = try await tasks.cancel(s[1], by: p)
            let (status, body) = DanubeTasks.envelope(s[1], cancelled)
            return reply.json(body, status: status, taskId: s[1], taskResponse: true)
        case 2 where s[0] == "task", 3 where s[0] == "task":
            guard method == .get else { throw notAllowed() }
            return try await task(s[1], view: s.count == 3 ? s[2] : "", p, reply)
        case 6 where s[0] == "vm" && s[2] == "snapshot" && s[4] == "image":
            guard method == .post else { throw notAllowed() }
            return try await imageFromSnapshot(vm: s[1], snapshot: s[3], name: s[5], dc: vmDC ?? defaultDC, try await Self.data(request), p,
                                               credential, reply)
        case 3 where s[0] == "dc" && s[2] == "image", 4 where s[0] == "dc" && s[2] == "image":
            return try await datacenterImages(request, s, p, reply)
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
            case .post: return try await importFromRepository(s[1], uuid: s[3], try await Self.data(request), p, credential, reply)
            default: throw notAllowed()
            }
        default:
            throw DanubeError(.notFound, "Not found")
        }
    }

    // MARK: Authentication

    func login(_ request: Request, _ reply: DanubeReply, client: String?) async throws -> Response {
        let body = try await Self.data(request)
        let fields = JSONValue.object(body)
        guard let name = fields["username"]?.stringValue, let password = fields["password"]?.stringValue, !name.isEmpty else {
            throw DanubeError(.badRequest, "Must include \"username\" and \"password\".")
        }
        guard let principal = try await accounts.authenticate(name: name, password: password, client: client) else {
            throw DanubeError(.badRequest, "Unable to log in with provided credentials.")
        }
        let opened = try await sessions.open(accountName: name, principal: principal, hexBytes: 20)
        return DanubeReply(username: name, dc: defaultDC).json(.object([
            ("token", .string(opened.sessionId)), ("expires", .string(DanubeImage.iso(opened.expiresAt))),
            ("detail", .string("Welcome to Danube Cloud API.")),
        ]))
    }

    static func token(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix("Token ") else { return nil }
        return String(header.dropFirst("Token ".count)).trimmingCharacters(in: .whitespaces)
    }

    /// `ES-API-KEY: <key id>:<secret>` (a local API key) or `Authorization: Token <login token>`; with
    /// the secret the caller proved it holds (the key for `cb_url`'s `security_token`).
    func caller(_ request: Request) async throws -> (Principal, credential: String) {
        if let key = request.headers[.esAPIKey] {
            let parts = key.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let p = try await accounts.authenticate(keyId: String(parts[0]), secret: String(parts[1])) else {
                throw DanubeError(.unauthorized, "Invalid API key")
            }
            return (p, String(parts[1]))
        }
        // An unknown or expired token counts as no credentials, as in Danube.
        if let token = Self.token(request), let session = try await sessions.resume(sessionId: token) { return (session.principal, token) }
        throw DanubeError.notAuthenticated
    }

    // MARK: Reading

    func list(_ request: Request, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        let sort = try DanubeRequests.sortOrder(request.uri.queryParameters["order_by"].map(String.init))
        let images = try await visibleImages(p, sort: sort).filter { $0.name != nil }
        let full = Self.flag(request, "full"), extended = Self.flag(request, "extended")
        return reply.success(.array(images.map { full || extended ? DanubeImage.render($0, extended: extended, defaultDC: defaultDC) : .string($0.name!) }))
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
        /// The manifest's files[0].sha1, checked as a pin: a file that does not match is never committed.
        var pinned: [PinnedDigest]
        var callback: DanubeCallback?
    }

    /// `cb_url`/`cb_method` of a request that starts a task (refusals into `v`).
    func callback(_ body: [(String, JSONValue)], _ credential: String, _ p: Principal, _ v: inout DanubeValidation) async -> DanubeCallback? {
        await DanubeCallback.from(body, key: credential, sender: imports.callbacks, p, &v)
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
        if fields.access == 1 && !p.isAdmin { throw DanubeError.forbidden }  // public images are the SuperAdmin's (Glance's policy)
        if fields.dcBound ?? true {
            if let dc = fields.dc {
                guard options.datacenters.contains(dc) else { throw DanubeError(.notFound, "Datacenter not found") }
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
        // The DCs it is attached to: the one it is bound to (`dc`), else the given or default DC.
        let dc = plan.fields.dc ?? defaultDC
        var first: [(String, JSONValue)] = [("owner", .string(plan.fields.owner ?? p.userName ?? p.userId)),
                                            ("dc_bound", .bool(plan.fields.dcBound ?? true)), ("dc", .string(dc)), ("dcs", .array([.string(dc)]))]
        // Access 4 (deleted): imported, then deactivated once its data is in (`DanubeImage.importAccessKey`).
        if plan.fields.access == 4 { first.append((DanubeImage.importAccessKey, .int(4))) }
        let document = JSONValue.merging(.object(first), plan.document + plan.fields.documentFields)
        let image = try await service.createImage(attributes, extensions: [DanubeImage.vendor: document], nameRule: .namePerOwner, by: p)
        let taskId = ImageID.generate()
        do {
            // IMGAPI serves the file its manifest describes (sha1, size, compression): kept as sent.
            var request: [(String, JSONValue)] = [("danube", .bool(true)), ("decompress", .bool(false))]
            if let callback = plan.callback { request.append(("callback", callback.json)) }
            _ = try await imports.startVendorImport(imageId: image.id, uri: plan.fileURL, request: request,
                                                    taskId: taskId, deleteImageOnFailure: true, expectedSize: plan.expectedSize,
                                                    pinned: plan.pinned, by: p)
        } catch {
            if let e = error as? ImageError, e.kind == .badRequest {
                var v = DanubeValidation()
                v.add("file_url", "Image file URL is unreachable (\(e.message)).")
                throw v
            }
            throw error
        }
        follow(taskId, callback: plan.callback, p)
        return reply.pending(DanubeTaskID.real(taskId))
    }

    /// `POST /image/(name)/` with `manifest_url` (and optional `file_url`): reference §7.3.
    func importFromManifest(_ name: String, _ body: [(String, JSONValue)], _ p: Principal, _ credential: String,
                            _ reply: DanubeReply) async throws -> Response {
        try await checkNewName(name, p)
        let params = JSONValue.object(body)
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        try await checkFields(&fields, p, &v)
        let callback = await callback(body, credential, p, &v)
        guard let manifestURL = params["manifest_url"]?.stringValue, !manifestURL.isEmpty else {
            v.add("manifest_url", "This field is required.")
            throw v
        }
        guard manifestURL.count <= 1024, manifestURL.hasPrefix("http://") || manifestURL.hasPrefix("https://") else {
            v.add("manifest_url", "Enter a valid URL.")
            throw v
        }
        if !v.isEmpty { throw v }
        let manifest = try await fetchManifest(manifestURL, by: p)
        let fileURL = params["file_url"]?.stringValue ?? Self.trimSlashes(manifestURL) + "/file"
        return try await importManifest(manifest, name: name, fields: fields, manifestURL: manifestURL, fileURL: fileURL,
                                        callback: callback, p, reply)
    }

    func importManifest(_ manifest: DanubeImage.Manifest, name: String, fields: DanubeFields, manifestURL: String, fileURL: String,
                        callback: DanubeCallback?, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        var v = DanubeValidation()
        if try await service.idIsTaken(manifest.uuid) {
            // The name only when the caller may see the image: another project's image is a bare
            // conflict (its name, owner and state are not the caller's to learn).
            if let existing = try await service.visibleImageIfAny(id: manifest.uuid, by: p) {
                v.add("manifest_url", "Image UUID is already registered by image \"\(existing.name ?? "")\".")
            } else {
                v.add("manifest_url", "Image UUID is already registered.")
            }
            throw v
        }
        guard fileURL.hasPrefix("http://") || fileURL.hasPrefix("https://") else {
            v.add("file_url", "Enter a valid URL.")
            throw v
        }
        do { try await imports.vet(fileURL, by: p) } catch let e as ImageError {
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
                                          expectedSize: manifest.fileSize,
                                          pinned: try manifest.sha1.map { [try PinnedDigest(algorithm: .sha1, hex: $0)] } ?? [],
                                          callback: callback), p, reply)
    }

    /// GET of a manifest: through the URL guard, at most 8 KiB, 5 s, JSON (reference §7.3 step 2).
    func fetchManifest(_ url: String, by p: Principal) async throws -> DanubeImage.Manifest {
        var v = DanubeValidation()
        let bytes: [UInt8]
        do {
            bytes = try await DanubeImagestores.fetchSmall(imports.fetcher, url, asAdmin: p.isAdmin, maxBytes: Self.maxManifestBytes, seconds: 5)
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
    func importFromRepository(_ repo: String, uuid: String, _ body: [(String, JSONValue)], _ p: Principal, _ credential: String,
                              _ reply: DanubeReply) async throws -> Response {
        guard p.isMember || p.isAdmin else { throw DanubeError.forbidden }
        let entry = try await repositories.image(repo, uuid: uuid)
        let name = JSONValue.object(body)["name"]?.stringValue ?? entry.name
        if try await service.idIsTaken(entry.uuid) { throw DanubeError.exists }
        try await checkNewName(name, p)
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        try await checkFields(&fields, p, &v)
        let callback = await callback(body, credential, p, &v)
        if !v.isEmpty { throw v }
        let base = try await repositories.repository(repo).url
        let manifestURL = DanubeImagestores.join(base, "images/\(entry.uuid)")
        let manifest = try DanubeImage.Manifest(entry.manifest)
        return try await importManifest(manifest, name: name, fields: fields, manifestURL: manifestURL, fileURL: manifestURL + "/file",
                                        callback: callback, p, reply)
    }

    /// `POST /vm/(vm)/snapshot/(snap)/image/(name)/`: the snapshot's disk, fetched from the operator's
    /// snapshot source through the URL guard as a normal import task.
    func imageFromSnapshot(vm: String, snapshot: String, name: String, dc: String, _ body: [(String, JSONValue)], _ p: Principal,
                           _ credential: String, _ reply: DanubeReply) async throws -> Response {
        // Danube routes only plain hostnames and snapshot names; anything else never reaches the snapshot source.
        guard DanubeImage.routable(vm), DanubeImage.routable(snapshot) else { throw DanubeError(.notFound, "Not found") }
        guard let template = options.snapshotURLTemplate else { throw DanubeError.noImageServer }
        let params = JSONValue.object(body)
        let diskId = try DanubeRequests.diskId(params["disk_id"])
        func encoded(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? s }
        let url = template.replacingOccurrences(of: "{vm}", with: encoded(vm)).replacingOccurrences(of: "{snap}", with: encoded(snapshot))
            .replacingOccurrences(of: "{disk_id}", with: String(diskId)).replacingOccurrences(of: "{dc}", with: encoded(dc))
        // Danube's order: an unknown VM, then an unknown snapshot, is 404 before the name, the fields or any task.
        if let vmTemplate = options.vmURLTemplate {
            let vmURL = vmTemplate.replacingOccurrences(of: "{vm}", with: encoded(vm)).replacingOccurrences(of: "{dc}", with: encoded(dc))
            try await probe(vmURL, missing: "VM not found", p)
        }
        try await probe(url, missing: "Snapshot not found", p)
        try await checkNewName(name, p)
        var v = DanubeValidation()
        var fields = DanubeFields(body, &v)
        fields.dcBound = true
        fields.dc = dc
        try await checkFields(&fields, p, &v)
        try await checkAliasVersion(alias: fields.alias ?? name, version: fields.version ?? "1.0", except: nil, newName: name, p, &v)
        let callback = await callback(body, credential, p, &v)
        if !v.isEmpty { throw v }
        let document: [(String, JSONValue)] = [("version", .string(fields.version ?? "1.0")), ("desc", .string(fields.desc ?? "")),
                                               ("ostype", .int(1)), ("resize", .bool(fields.resize ?? false)),
                                               ("deploy", .bool(fields.deploy ?? false)), ("tags", .array((fields.tags ?? []).map { .string($0) })),
                                               ("source", .object([("vm", .string(vm)), ("snapshot", .string(snapshot)), ("disk_id", .int(diskId))]))]
        return try await start(ImportPlan(name: name, id: nil, fields: fields, document: document, fileURL: url, pinned: [], callback: callback), p, reply)
    }

    /// A VM or a snapshot's disk, asked for its first bytes through the URL guard (as Danube probes a
    /// file URL): the source answering 404/410 is Danube's 404 `missing`; a source that cannot be
    /// reached, or that the guard refuses, is its 428 `Image server is not available`.
    func probe(_ url: String, missing: String, _ p: Principal) async throws {
        do {
            _ = try await DanubeImagestores.fetchSmall(imports.fetcher, url, asAdmin: p.isAdmin, maxBytes: 32, seconds: 5)
        } catch let e as ImageError where e.kind == .payloadTooLarge {
            return  // more than 32 bytes: it is there
        } catch let e as ImageError where e.message.contains("HTTP 404 ") || e.message.contains("HTTP 410 ") {
            throw DanubeError(.notFound, missing)
        } catch {
            throw DanubeError.noImageServer
        }
    }

    // MARK: Update, delete, VM usage

    /// `PUT /image/(name)/`: one atomic catalog write of the fields (a refused one changes nothing);
    /// access 4 deactivates the image in the core and 1/3 reactivates it. Changing only `dc_bound` or
    /// `owner` is answered at once (200 with the image), as in Danube; any other change is a task:
    /// 201 PENDING, its outcome kept as a finished task row to poll.
    func update(_ name: String, _ body: [(String, JSONValue)], _ p: Principal, _ credential: String,
                _ reply: DanubeReply) async throws -> Response {
        let image = try await resolve(name, p)
        guard DanubeImage.status(image) == 1 else { throw DanubeError.statusNotOK }
        var v = DanubeValidation()
        let fields = DanubeFields(body, &v)
        if fields.dcBound != nil && !p.isAdmin && fields.dcBound != DanubeImage.bool(image, "dc_bound") ?? true {
            v.add("dc_bound", "You don't have permission to modify this field.")
        }
        if fields.dcBound == true, DanubeImage.bool(image, "dc_bound") == false {
            let dcs = DanubeImage.dcs(image, default: defaultDC)
            if dcs.count > 1 { v.add("dc_bound", "Image is attached into more than one datacenter.") }
            if dcs.isEmpty { v.add("dc_bound", "Image is not attached into any datacenters.") }
        }
        if let owner = fields.owner { try await checkOwner(owner, p, &v) }
        if fields.alias != nil || fields.version != nil {
            try await checkAliasVersion(alias: fields.alias ?? DanubeImage.string(image, "alias") ?? name,
                                        version: fields.version ?? DanubeImage.string(image, "version") ?? "1.0", except: image.id, p, &v)
        }
        let given = Set(body.map(\.0)).intersection(DanubeFields.writable)
        let asTask = !given.isSubset(of: ["dc_bound", "owner"])
        let callback = asTask ? await callback(body, credential, p, &v) : nil
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
        if fields.dcBound == true, let only = DanubeImage.dcs(image, default: defaultDC).first { doc.append(("dc", .string(only))) }
        let documentChange = doc
        let accessGiven = fields.access != nil
        // Fields and state in one write: a refused deactivation leaves the fields as they were too.
        let updated = try await service.updateImage(id: image.id, changes: changes, vendorChanges: [DanubeImage.vendor: { stored in
            var merged = JSONValue.merging(stored, documentChange)
            // An access given now replaces an import's pending access 4.
            if accessGiven { merged = .object(merged.objectMembers.filter { $0.0 != DanubeImage.importAccessKey }) }
            return merged
        }], activate: deactivate ? false : reactivate ? true : nil, by: p)
        guard asTask else { return reply.success(DanubeImage.render(updated, extended: false, defaultDC: defaultDC)) }
        let taskId = try await tasks.record(p, method: "PUT", image: updated, message: "Successfully updated image \(name)", callback: callback)
        sendCallback(callback, taskId: taskId, p)
        return reply.pending(taskId)
    }

    /// `DELETE /image/(name)/`: refused at once when the image is busy (417) or used by VMs (428);
    /// otherwise a task (201 PENDING) whose work, the deletion, is done before the answer.
    func delete(_ name: String, _ body: [(String, JSONValue)], _ p: Principal, _ credential: String,
                _ reply: DanubeReply) async throws -> Response {
        let image = try await resolve(name, p)
        guard DanubeImage.status(image) == 1 else { throw DanubeError.statusNotOK }
        var v = DanubeValidation()
        let callback = await callback(body, credential, p, &v)
        if !v.isEmpty { throw v }
        try await data.deleteImage(id: image.id, by: p)
        let taskId = try await tasks.record(p, method: "DELETE", image: image, message: "Successfully deleted image \(name)", callback: callback)
        sendCallback(callback, taskId: taskId, p)
        return reply.pending(taskId)
    }

    /// `/dc/(dc)/image/[(name)/]` (reference §7.9): the images attached to a datacenter; a SuperAdmin
    /// attaches (POST, 201) and detaches (DELETE) DC-unbound images. The attachments are the `dcs` of
    /// the image's Danube document.
    func datacenterImages(_ request: Request, _ s: [String], _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        let dc = s[1]
        guard options.datacenters.contains(dc) else { throw DanubeError(.notFound, "Datacenter not found") }
        let method = request.method
        if s.count == 3 {
            guard method == .get else { throw DanubeError(.methodNotAllowed, "Method \"\(method)\" not allowed.") }
            let sort = try DanubeRequests.sortOrder(request.uri.queryParameters["order_by"].map(String.init))
            let images = try await visibleImages(p, sort: sort).filter { $0.name != nil && DanubeImage.dcs($0, default: defaultDC).contains(dc) }
            let full = Self.flag(request, "full"), extended = Self.flag(request, "extended")
            return reply.success(.array(images.map {
                full || extended ? DanubeImage.render($0, extended: extended, defaultDC: defaultDC) : .string($0.name!)
            }))
        }
        let image = try await resolve(s[3], p)
        let attached = DanubeImage.dcs(image, default: defaultDC)
        switch method {
        case .get:
            guard attached.contains(dc) else { throw DanubeError.imageNotFound }
            return reply.success(DanubeImage.render(image, extended: Self.flag(request, "extended"), defaultDC: defaultDC))
        case .post, .delete:
            guard p.isAdmin else { throw DanubeError.forbidden }
            let attach = method == .post
            if attach && attached.contains(dc) { throw DanubeError.exists }
            if !attach && !attached.contains(dc) { throw DanubeError.imageNotFound }
            if DanubeImage.bool(image, "dc_bound") ?? (image.visibility != .public) {
                throw DanubeError(HTTPResponse.Status(code: 428, reasonPhrase: "Precondition Required"), "Image is DC-bound")
            }
            if !attach && !image.recordedVMs.isEmpty { throw DanubeError.usedByVMs }
            let fallback = defaultDC
            let updated = try await service.updateImage(id: image.id, changes: [], vendorChanges: [DanubeImage.vendor: { stored in
                var dcs = stored?["dcs"]?.arrayItems?.compactMap(\.stringValue) ?? [stored?["dc"]?.stringValue ?? fallback]
                dcs.removeAll { $0 == dc }
                if attach { dcs.append(dc) }
                return JSONValue.merging(stored, [("dcs", .array(dcs.map { .string($0) }))])
            }], by: p)
            let body = DanubeImage.render(updated, extended: true, defaultDC: defaultDC)
            if attach {
                let id = DanubeTaskID.dummy()
                return reply.json(.object([("task_id", .string(id)), ("status", .string("SUCCESS")), ("result", body)]), status: .created, taskId: id)
            }
            return reply.success(body)
        default:
            throw DanubeError(.methodNotAllowed, "Method \"\(method)\" not allowed.")
        }
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

    /// `GET /task/(id)/`, `/status/` (`/state/`), `/done/`: the catalog task behind a real task id.
    func task(_ id: String, view: String, _ p: Principal, _ reply: DanubeReply) async throws -> Response {
        guard ["", "status", "state", "done"].contains(view) else { throw DanubeError(.notFound, "Not found") }
        guard let found = try await tasks.task(id, by: p) else {
            throw view == "" ? DanubeError(.notFound, "Task does not exist") : DanubeError.taskGone
        }
        let t = try await tasks.settled(found, by: p)
        if view == "" {
            guard !t.status.isFinished else { throw DanubeError(.notFound, "Task does not exist") }
            let image = try await service.image(ofJob: t)
            return reply.json(.object([("view", .string("image_manage")), ("method", .string(DanubeTasks.method(t))),
                                       ("image", .string(image?.name ?? "")), ("task_id", .string(id))]))
        }
        let (status, envelope) = DanubeTasks.envelope(id, t)
        let body: JSONValue = view == "done" ? .object([("task_id", .string(id)), ("done", .bool(t.status.isFinished))]) : envelope
        return reply.json(body, status: status, taskId: id, taskResponse: true)
    }

    /// Follows an import started here to its end: settles its access 4 and reports it to `cb_url`
    /// (exactly once: only the node that accepted the request follows it). Never blocks the answer.
    func follow(_ coreId: String, callback: DanubeCallback?, _ p: Principal) {
        let tasks = self.tasks, sender = imports.callbacks
        Task {
            guard let seen = try? await tasks.wait(coreId, by: p, until: .now + .seconds(7 * 24 * 3600)), seen.status.isFinished else { return }
            let final = (try? await tasks.settled(seen, by: p)) ?? seen
            if let callback {
                await callback.send(DanubeTasks.envelope(DanubeTaskID.real(coreId), final).1, via: sender, asAdmin: p.isAdmin)
            }
        }
    }

    /// The `cb_url` report of a PUT/DELETE task, whose row is already final.
    func sendCallback(_ callback: DanubeCallback?, taskId: String, _ p: Principal) {
        guard let callback else { return }
        let tasks = self.tasks, sender = imports.callbacks
        Task {
            guard let t = try? await tasks.task(taskId, by: p) else { return }
            await callback.send(DanubeTasks.envelope(taskId, t).1, via: sender, asAdmin: p.isAdmin)
        }
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
