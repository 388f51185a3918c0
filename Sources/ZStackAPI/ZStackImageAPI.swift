import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData

extension HTTPField.Name {
    static let jobUUID = HTTPField.Name("x-job-uuid")!
}

public struct ZStackAPIOptions: Sendable {
    /// Base URL clients reach us at, for job `location`s; from the request's Host when nil.
    public var publicEndpoint: String?
    /// `identity.session.timeout`.
    public var sessionLifetime: Int64 = 7200
    /// How long a finished job's result can be fetched (`rest.completedApi.expiredPeriod`).
    public var jobLifetime: Int64 = 10_800
    /// How long an ExportImageFromBackupStorage URL serves the image (`--zstack-export-seconds`).
    public var exportLifetime: Int64 = 86_400
    /// At most this many unexpired api jobs per project (`--zstack-max-jobs`); 0: unbounded.
    public var maxLiveJobs: Int = 1000
    /// Opens the sealed secrets of access keys (`Authorization: ZStack …`); without it only sessions work.
    public var sealer: SecretSealer?
    public init(publicEndpoint: String? = nil) { self.publicEndpoint = publicEndpoint }
}

/// ZStack's REST API for images (`/zstack/v1`) over the shared catalog: account sessions, the
/// api-job protocol (every job is a catalog task row, so it survives restarts and is seen by every
/// node), imaged's stores as backup storages, and the image APIs with ZStack's query language.
public struct ZStackImageAPI<Context: RequestContext>: HTTPResponder {
    let imports: ImageImports
    let sessions: LoginSessions
    let storages: ZStackBackupStorages
    let options: ZStackAPIOptions
    var data: ImageDataService { imports.data }
    var service: ImageService { data.images }

    static var prefix: String { ZStackReply.prefix }
    static var maxJSONBody: Int { 1 << 20 }
    /// Task rows of jobs that finish within their request (everything but AddImage from a URL).
    public static var jobType: String { ZStackJobs.type }
    static var addImageTimeout: Int64 { ZStackJobs.addImageTimeout }

    public init(imports: ImageImports, accounts: LocalAccounts, options: ZStackAPIOptions = .init()) {
        self.imports = imports
        self.sessions = LoginSessions(accounts: accounts, scope: .zstack, lifetime: options.sessionLifetime)
        self.storages = ZStackBackupStorages(stores: imports.data.stores)
        self.options = options
    }

    public static func claims(_ request: Request) -> Bool {
        let path = request.uri.path
        return path == prefix || path.hasPrefix(prefix + "/")
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        do {
            return try await route(request, context: context)
        } catch let e as ZStackHTTPError {
            return e.response
        } catch {
            if let z = ZStackError.from(error) {
                var response = Self.json(z.body, status: .serviceUnavailable)
                if let retryAfter = z.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
                return response
            }
            context.logger.error("zstack request failed", metadata: ["error": "\(error)"])
            return Self.json(ZStackError("SYS.1000", "internal error").body, status: .serviceUnavailable)
        }
    }

    func route(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        let s = path.dropFirst(Self.prefix.count).split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let method = request.method
        func wrongMethod(_ allow: String) -> ZStackHTTPError {
            ZStackHTTPError(.methodNotAllowed, "The method[\(method)] is not allowed for the path[/v1/\(s.joined(separator: "/"))]", allow: allow)
        }
        switch s.count {
        case 2 where s[0] == "accounts" && s[1] == "login":
            guard method == .put else { throw wrongMethod("PUT") }
            return try await login(request, client: ClientAddress.of(context))
        case 3 where s[0] == "accounts" && s[1] == "sessions":
            guard method == .delete else { throw wrongMethod("DELETE") }
            try await sessions.logout(sessionId: s[2])
            return Self.json(.object([]))
        case 4 where s[0] == "accounts" && s[1] == "sessions" && s[3] == "valid":
            // As ZStack's own (APIValidateSessionMsg needs no credentials): the id in the path is the
            // credential, and the answer tells its holder no more than using it would. Only ZStack's
            // sessions are known here; another front-end's id is not valid.
            guard method == .get else { throw wrongMethod("GET") }
            let valid = try await sessions.resume(sessionId: s[2]) != nil
            return Self.json(.object([("valid", .bool(valid))]))
        case 2 where s[0] == "api-jobs":
            guard method == .get else { throw ZStackHTTPError(.methodNotAllowed, "only GET method is allowed for querying job status", allow: "GET") }
            return try await poll(s[1], request)
        case 1 where s[0] == "backup-storage":
            guard method == .get else { throw wrongMethod("GET") }
            return try await backupStorages(request, uuid: nil)
        case 2 where s[0] == "backup-storage":
            guard method == .get else { throw wrongMethod("GET") }
            return try await backupStorages(request, uuid: s[1])
        case 3 where s[0] == "backup-storage" && s[2] == "actions":
            guard method == .put else { throw wrongMethod("PUT") }
            return try await backupStorageAction(request, bsUuid: s[1])
        case 4 where s[0] == "backup-storage" && s[2] == "exported-images":
            guard method == .delete else { throw wrongMethod("DELETE") }
            return try await deleteExport(request, bsUuid: s[1], imageUuid: s[3])
        case 5 where s[0] == "exports":
            guard method == .get || method == .head else { throw wrongMethod("GET, HEAD") }
            return try await serveExport(request, bsUuid: s[1], imageUuid: s[2], token: s[3])
        case 1 where s[0] == "images":
            switch method {
            case .get: return try await query(request, uuid: nil)
            case .post: return try await addImage(request)
            default: throw wrongMethod("GET, POST")
            }
        case 2 where s[0] == "images" && s[1] == "candidate-backup-storage":
            guard method == .get else { throw wrongMethod("GET") }
            return try await backupStorages(request, uuid: nil)
        case 2 where s[0] == "images":
            switch method {
            case .get: return try await query(request, uuid: s[1])
            case .delete: return try await delete(request, uuid: s[1])
            default: throw wrongMethod("GET, DELETE")
            }
        case 1 where s[0] == "user-tags":
            switch method {
            case .get: return try await queryUserTags(request, uuid: nil)
            case .post: return try await createUserTag(request)
            default: throw wrongMethod("GET, POST")
            }
        case 2 where s[0] == "user-tags":
            guard method == .get else { throw wrongMethod("GET") }
            return try await queryUserTags(request, uuid: s[1])
        case 2 where s[0] == "tags":
            guard method == .delete else { throw wrongMethod("DELETE") }
            return try await deleteTag(request, uuid: s[1])
        case 3 where s[0] == "uploads":
            guard method == .post || method == .put else { throw wrongMethod("POST, PUT") }
            return try await receiveUpload(request, uuid: s[1], token: s[2])
        case 3 where s[0] == "images" && s[2] == "qga":
            guard method == .get else { throw wrongMethod("GET") }
            return try await getQga(request, uuid: s[1])
        case 3 where s[0] == "images" && s[2] == "actions":
            guard method == .put else { throw wrongMethod("PUT") }
            return try await action(request, uuid: s[1])
        default:
            throw ZStackHTTPError(.notFound, "no api mapping to /v1/\(s.joined(separator: "/"))")
        }
    }

    // MARK: Sessions

    func login(_ request: Request, client: String?) async throws -> Response {
        let (name, password) = try ZStackRequests.login(try await Self.body(request))
        guard let (account, principal) = try await sessions.accounts.authenticate(name: name, passwordSHA512: password, client: client) else {
            throw ZStackError("ID.1000", "wrong account name or password")
        }
        let opened = try await sessions.open(accountName: account.name, principal: principal, hexBytes: 16)
        let now = Timestamp.now()
        return Self.json(.object([("inventory", .object([
            ("uuid", .string(opened.sessionId)), ("accountUuid", .string(account.userId)), ("userUuid", .string(account.userId)),
            ("userType", .string("AccountVO")), ("expiredDate", .string(GsonDate.format(opened.expiresAt))),
            ("createDate", .string(GsonDate.format(now))),
        ]))]))
    }

    /// The session id of `Authorization: OAuth <id>` ("" for an access key's `ZStack <id>:<signature>`);
    /// a missing header or another scheme is a plain 400.
    static func sessionToken(_ request: Request) throws -> String {
        if try accessKey(request) != nil { return "" }
        return try ZStackRequests.sessionToken(request.headers[.authorization])
    }

    /// `Authorization: ZStack <AccessKeyId>:<signature>`, nil for another scheme.
    static func accessKey(_ request: Request) throws -> (keyId: String, signature: String)? {
        guard let header = request.headers[.authorization] else { return nil }
        do { return try ZStackSignature.credential(header) } catch let r as ZStackSignature.Refusal {
            throw ZStackHTTPError(HTTPResponse.Status(code: r.status), r.message)
        }
    }

    /// The account of a signed request: the signature over method, `Date` and the path after `/zstack`
    /// checked with the key's secret. Refusals are plain text: 400 bad Date, 403 skew, 401 otherwise.
    func accessKeyCaller(_ request: Request, keyId: String, signature: String) async throws -> Principal {
        let path = String(request.uri.path.dropFirst("/zstack".count))
        let accounts = sessions.accounts, sealer = options.sealer
        var account: LocalAccount?
        do {
            _ = try await ZStackSignature.verify(keyId: keyId, signature: signature, date: request.headers[.date],
                                                 method: request.method.rawValue, path: path) { id in
                guard let sealer, let found = try await accounts.signingKey(id: id, sealer: sealer, prefix: LocalAccounts.zstackKeyPrefix) else { return nil }
                account = found.account
                return found.secret
            }
        } catch let r as ZStackSignature.Refusal {
            throw ZStackHTTPError(HTTPResponse.Status(code: r.status), r.message)
        }
        guard let account else { throw ZStackHTTPError(.unauthorized, ZStackSignature.Refusal.refused.message) }
        return account.principal
    }

    /// The caller of a live session or a signed request, or ID.1001. Async APIs answer this directly
    /// too, rather than storing a job for an unauthenticated request.
    func caller(_ request: Request) async throws -> Principal {
        if let (keyId, signature) = try Self.accessKey(request) {
            return try await accessKeyCaller(request, keyId: keyId, signature: signature)
        }
        let token = try Self.sessionToken(request)
        guard let session = try await sessions.resume(sessionId: token) else { throw ZStackError.sessionExpired }
        return session.principal
    }

    // MARK: Jobs

    var jobs: ZStackJobs { ZStackJobs(service: service, lifetime: options.jobLifetime, maxLive: options.maxLiveJobs) }

    func newJob(_ request: Request) async throws -> String { try await jobs.newJob(request) }

    /// The caller of an async API that will store a job: authenticated, and within its project's
    /// bound of live jobs (refused before any work).
    func jobCaller(_ request: Request) async throws -> Principal {
        let p = try await caller(request)
        try await jobs.admit(p)
        return p
    }

    func accepted(_ job: String, _ request: Request, timeout: Int64) -> Response {
        ZStackJobs.accepted(job, base: baseURL(request), timeout: timeout)
    }

    func runJob(_ job: String, _ request: Request, _ p: Principal, api: String, imageId: String?,
                timeout: Int64 = ZStackJobs.defaultTimeout, _ work: () async throws -> JSONValue) async throws -> Response {
        let hook = try await webHook(request, p)
        let outcome = try await jobs.run(job, p, api: api, imageId: imageId, work)
        notify(hook, job: job, outcome, p)
        return accepted(job, request, timeout: timeout)
    }

    func storeJob(_ job: String, _ p: Principal, api: String, imageId: String?, _ outcome: Result<JSONValue, ZStackError>,
                  hook: String? = nil) async throws {
        try await jobs.store(job, p, api: api, imageId: imageId, outcome)
        notify(hook, job: job, outcome, p)
    }

    /// `GET /api-jobs/{uuid}`: 202 while running, 200 with the result, 503 with the error, 404 when
    /// unknown, expired or another project's. The caller's session or key is needed (ID.1001
    /// otherwise). AddImage jobs are the import task itself, answered with the image's inventory.
    func poll(_ job: String, _ request: Request) async throws -> Response {
        _ = try Self.sessionToken(request)
        let p = try await caller(request)
        guard let (body, ok) = try await outcome(job, by: p) else { return Self.json(.object([]), status: .accepted) }
        return Self.json(body, status: ok ? .ok : .serviceUnavailable)
    }

    /// A finished job's answer (`ok`: 200, else 503), nil while it runs.
    func outcome(_ job: String, by p: Principal) async throws -> (body: JSONValue, ok: Bool)? {
        switch try await jobs.lookup(job, by: p) {
        case .finished(let body, let ok):
            return (body, ok)
        case .running:
            return nil
        case .imported(let task):
            let owner = Principal(userId: task.userId ?? "job", projectId: task.owner, roles: ["reader"])
            guard let image = try await service.image(ofJob: task) else { throw ZStackError.notFound("image[uuid:\(job)] is gone") }
            return (.object([("inventory", .object(try await inventory(image, by: owner)))]), true)
        case .importFailed(let task):
            let image = try await service.image(ofJob: task)
            let targets = (try? JSONValue.parse(task.input))?["backend"]?.arrayItems?.compactMap(\.stringValue) ?? []
            let error = ZStackError("SYS.1002", "Failed to download image[name:\(image?.name ?? "")] on all backup storage[\(targets.map(ZStackBackupStorages.uuid(ofStore:)).joined(separator: ", "))].",
                                    cause: ZStackCause(.failed(task.message)))
            return (error.body, false)
        }
    }

    // MARK: Reading

    /// The stores an unfinished AddImage of the image is filling.
    func pendingStores(_ image: Image, by p: Principal) async throws -> [String] {
        guard [.queued, .saving, .uploading, .importing].contains(image.status) else { return [] }
        let running = try await service.tasks(imageId: image.id, by: p).first { $0.type == ImageImports.taskType && !$0.status.isFinished }
        guard let running, let input = try? JSONValue.parse(running.input) else { return [] }
        return input["backend"]?.arrayItems?.compactMap(\.stringValue) ?? []
    }

    func inventory(_ image: Image, base: String? = nil, by p: Principal) async throws -> [(String, JSONValue)] {
        var pending = try await pendingStores(image, by: p)
        var uploadURL: String?
        if image.status == .queued, let token = ZStackImage.string(image, "uploadToken"), let store = ZStackImage.string(image, "uploadStore") {
            pending = [store]
            uploadURL = "\(base ?? options.publicEndpoint ?? "")\(Self.prefix)/uploads/\(ZStackImage.uuid(image.id))/\(token)"
        }
        return ZStackImage.inventory(image, stores: storages, pending: pending, uploadURL: uploadURL)
    }

    /// QueryImage and `GET /images/{uuid}` (the query `uuid=<uuid>`, other parameters ignored).
    func query(_ request: Request, uuid: String?) async throws -> Response {
        let p = try await caller(request)
        let q = try ZStackQuery.forRequest(query: request.uri.query, uuid: uuid)
        try ZStackMatcher.check(q.conditions)
        if let sort = q.sort { try ZStackMatcher.checkSortable(sort.field) }
        var items: [(Image, [(String, JSONValue)])] = []
        for image in try await candidates(q.conditions, p) {
            let inv = try await inventory(image, base: baseURL(request), by: p)
            if try q.conditions.allSatisfy({ try ZStackMatcher.matches($0, image, inv) }) { items.append((image, inv)) }
        }
        return Self.json(ZStackRequests.queryAnswer(q, items))
    }

    /// Images the caller may see, softly deleted ones of its own included. `uuid=` and `name=`
    /// conditions narrow what is read; the rest are evaluated on the inventories.
    func candidates(_ conditions: [ZStackQuery.Condition], _ p: Principal) async throws -> [Image] {
        if let byId = conditions.first(where: { $0.field == "uuid" && $0.op == .equal }) {
            guard let id = ZStackImage.coreId(byId.value) else { return [] }
            do { return [try await service.visibleImageOrSoftDeleted(id: id, by: p)] } catch let e as ImageError where e.kind == .notFound { return [] }
        }
        var request = ImageListRequest()
        request.visibility = p.isAdmin ? .all : .default
        request.includePendingDelete = true
        request.sort = [.init(.createdAt, .asc)]
        if let byName = conditions.first(where: { $0.field == "name" && $0.op == .equal }) { request.filters = [.oneOf(.name, [byName.value])] }
        let batch = service.config.listMaxLimit
        request.limit = batch
        var out: [Image] = []
        while true {
            let images = try await service.listImages(request, by: p)
            out += images.filter { $0.status != .pendingDelete || p.isAdmin || $0.owner == p.projectId }
            if images.count < batch { break }
            request.offset += batch
        }
        return out
    }

    func backupStorages(_ request: Request, uuid: String?) async throws -> Response {
        _ = try await caller(request)
        var conditions: [ZStackQuery.Condition] = []
        if let uuid { conditions = [.init(field: "uuid", op: .equal, value: uuid)] } else {
            conditions = try ZStackQuery(parameters: ZStackQuery.parameters(request.uri.query)).conditions
        }
        var out: [JSONValue] = []
        for storage in await storages.all() {
            let inv = storages.inventory(storage)
            let keep = try conditions.allSatisfy { c in
                guard c.op == .equal || c.op == .notEqual else {
                    throw ZStackError.invalidArgument("operator[\(c.op.rawValue)] is not supported on backup storage queries")
                }
                guard let v = inv[c.field] else {
                    throw ZStackError.invalidArgument("condition name[\(c.field)] is invalid, no such field on inventory class[org.zstack.header.storage.backup.BackupStorageInventory]")
                }
                return (ZStackMatcher.text(v) == c.value) == (c.op == .equal)
            }
            if keep { out.append(inv) }
        }
        return Self.json(.object([("inventories", .array(out))]))
    }

    // MARK: AddImage

    func addImage(_ request: Request) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let body = try await Self.body(request)
        guard case .object(let params)? = body["params"] else {
            throw ZStackHTTPError(.badRequest, "the body doesn't contain action mapping to the URL[/v1/images]")
        }
        try ZStackFields.checkBooleans(params, ["system", "virtio"])
        let p = try await jobCaller(request)
        let hook = try await webHook(request, p)
        var spec: AddImageSpec
        do {
            spec = try AddImageSpec(params: params, body: body, storages: storages)
            let attached = try await tagsNamed(spec.document["tagUuids"]?.arrayItems ?? [], p)
            if !attached.isEmpty {
                let own = spec.document[ZStackTags.key]?.arrayItems ?? []
                let added = attached.filter { a in !own.contains { $0["tag"] == a["tag"] } }
                spec.document = JSONValue.merging(spec.document, [(ZStackTags.key, .array(own + added))])
            }
            if spec.url.hasPrefix("http://") || spec.url.hasPrefix("https://") {
                do { try await imports.vet(spec.url, by: p) } catch let e as ImageError {
                    throw ZStackError.invalidArgument("url[\(spec.url)] is not allowed: \(e.message)")
                }
            }
        } catch let e as ZStackError {
            try await storeJob(job, p, api: "AddImage", imageId: nil, .failure(e), hook: hook)
            return accepted(job, request, timeout: Self.addImageTimeout)
        }
        do {
            if spec.isUpload {
                // The job is done at once: the image waits, Downloading, for the bytes at its upload URL.
                let token = Secrets.hex(try Secrets.randomBytes(16))
                let document = JSONValue.merging(spec.document, [("uploadToken", .string(token)), ("uploadStore", .string(spec.stores[0])),
                                                                  ("uploader", .string(p.userId))])
                let image = try await service.createImage(spec.coreAttributes, extensions: [ZStackImage.vendor: document], by: p)
                let inventory = try await inventory(image, base: baseURL(request), by: p)
                try await storeJob(job, p, api: "AddImage", imageId: image.id, .success(.object([("inventory", .object(inventory))])), hook: hook)
                return accepted(job, request, timeout: Self.addImageTimeout)
            }
            let image = try await service.createImage(spec.coreAttributes, extensions: [ZStackImage.vendor: spec.document], by: p)
            _ = try await imports.startVendorImport(
                imageId: image.id, uri: spec.url,
                request: [("stores", .array(spec.stores.map { .string($0) })), ("all_stores_must_succeed", .bool(false)),
                          ZStackJobs.importMarker],
                taskId: ZStackImage.coreId(job), deleteImageOnFailure: true, by: p)
            if let hook { follow(job, hook: hook, p) }
            return accepted(job, request, timeout: Self.addImageTimeout)
        } catch {
            var z = ZStackError.from(error) ?? ZStackError("SYS.1000", "internal error")
            if z.code == "SYS.1006", let resourceUuid = spec.resourceUuid, try await service.idIsTaken(resourceUuid) {
                z = .invalidArgument("resourceUuid[\(ZStackImage.uuid(resourceUuid))] is already used")
            }
            try await storeJob(job, p, api: "AddImage", imageId: nil, .failure(z), hook: hook)
            return accepted(job, request, timeout: Self.addImageTimeout)
        }
    }

    // MARK: upload://

    /// The upload URL of an `upload://` image (ZStack's backup storage agent endpoint): the bytes as
    /// `multipart/form-data` (one file part) or as the raw body, with `X-IMAGE-UUID` and
    /// `X-IMAGE-SIZE`. The URL's token is the credential, as the agent's upload slot is. The bytes
    /// take the ordinary data path (digests, format inspection, size cap, quota); the image turns
    /// Ready when they are committed, or stays Downloading for another try.
    func receiveUpload(_ request: Request, uuid: String, token: String) async throws -> Response {
        guard let coreId = ZStackImage.coreId(uuid),
              let (image, uploader) = try await service.uploadSlot(imageId: coreId, token: token, vendor: ZStackImage.vendor),
              let store = ZStackImage.string(image, "uploadStore") else {
            throw ZStackHTTPError(.notFound, "no upload is expected at this URL")
        }
        guard image.status == .queued else { throw ZStackHTTPError(.conflict, "image[uuid:\(uuid)] is not waiting for an upload") }
        if let named = request.headers[HTTPField.Name("x-image-uuid")!], ZStackImage.coreId(named) != coreId {
            throw ZStackHTTPError(.badRequest, "X-IMAGE-UUID[\(named)] is not the image of this upload URL")
        }
        guard let sizeText = request.headers[HTTPField.Name("x-image-size")!], let size = Int64(sizeText), size >= 0 else {
            throw ZStackHTTPError(.badRequest, "missing or invalid header X-IMAGE-SIZE")
        }
        let pinned: [PinnedDigest]
        do { pinned = try PinnedDigestHeaders.read(request.headers) } catch let e as ImageError {
            throw ZStackHTTPError(.badRequest, e.message)
        }
        do {
            if let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/") {
                guard let boundary = MultipartReader<RequestBody>.boundary(of: type) else {
                    throw ZStackHTTPError(.badRequest, "multipart/form-data needs a boundary")
                }
                let reader = MultipartReader(body: request.body, boundary: boundary)
                guard try await reader.nextPart() != nil else { throw ZStackHTTPError(.badRequest, "the multipart body has no part") }
                _ = try await data.upload(id: coreId, declaredSize: size, pinned: pinned, store: store, body: reader.partBody, by: uploader)
            } else {
                _ = try await data.upload(id: coreId, declaredSize: size, pinned: pinned, store: store, body: request.body, by: uploader)
            }
        } catch let e as MultipartReader<RequestBody>.Malformed {
            throw ZStackHTTPError(.badRequest, "incomplete upload: \(e.reason)")
        } catch let e as ImageError {
            switch e.kind {
            case .badRequest, .unsupportedMediaType: throw ZStackHTTPError(.badRequest, "incomplete upload: \(e.message)")
            case .payloadTooLarge: throw ZStackHTTPError(.contentTooLarge, e.message)
            case .conflict, .gone, .notFound: throw ZStackHTTPError(.conflict, e.message)
            default: throw e
            }
        }
        // The slot is used: the token goes, so the URL no longer names anything.
        try? await service.closeUploadSlot(imageId: coreId, vendor: ZStackImage.vendor)
        return Self.json(.object([]))
    }

    // MARK: Actions

    func action(_ request: Request, uuid: String) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let (name, params) = try ZStackRequests.action(try await Self.body(request), uuid: uuid)
        let p = try await jobCaller(request)
        let api = name.prefix(1).uppercased() + name.dropFirst()
        let coreId = ZStackImage.coreId(uuid)
        return try await runJob(job, request, p, api: api, imageId: coreId) {
            guard let coreId else { throw ZStackError.notFound("invalid value[\(uuid)] of field [uuid]") }
            if ZStackRequests.unsupportedActions.contains(name) {
                throw ZStackError("SYS.1014", "\(api) is an action of backup storages: PUT /v1/backup-storage/{backupStorageUuid}/actions")
            }
            let image: Image
            do { image = try await service.visibleImageOrSoftDeleted(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
                throw ZStackError.notFound("resource[uuid:\(uuid), type:ImageVO] not found")
            }
            switch name {
            case "updateImage": return .object([("inventory", .object(try await inventory(try await update(image, params, p), base: baseURL(request), by: p)))])
            case "changeImageState": return .object([("inventory", .object(try await inventory(try await changeState(image, params, p), by: p)))])
            case "setImageBootMode": return try await setBootMode(image, params, p)
            case "setImageQga": return try await setQga(image, params, p)
            case "calculateImageHash": return try await calculateHash(image, params, p)
            case "expungeImage":
                let named = try checkStorages(JSONValue.object(params)["backupStorageUuids"], of: image)
                let deleted = deletedStores(image)
                let target = named ?? deleted
                guard !target.isEmpty else {
                    throw ZStackError.failed("the image[uuid:\(uuid), name:\(image.name ?? "")] is not deleted on any backup storage")
                }
                try refsDeleted(image, target, deleted)
                if image.status == .pendingDelete && target == Set(storages.ids(of: image)) {
                    try await data.expungeImage(id: image.id, by: p)
                } else {
                    // some backup storages only: their copies go, the image stays where it is elsewhere
                    _ = try await data.dropCopies(id: image.id, stores: target, by: p) { image in
                        image.extensions[ZStackImage.vendor] = ZStackImageAPI.settingDeletedOn(image, Set(ZStackImage.deletedOn(image)).subtracting(target))
                    }
                }
                return .object([])
            case "recoverImage":
                let named = try checkStorages(JSONValue.object(params)["backupStorageUuids"], of: image)
                let deleted = deletedStores(image)
                let target = named ?? deleted
                guard !target.isEmpty else {
                    let held = storages.ids(of: image).map(ZStackBackupStorages.uuid(ofStore:)).joined(separator: ", ")
                    throw ZStackError.failed("image[uuid:\(uuid)]'s status[\(ZStackImage.status(image))] is not Deleted on the backup storage[\(held)]")
                }
                try refsDeleted(image, target, deleted)
                let stillDeleted = deleted.subtracting(target)
                let recovered: Image
                if image.status == .pendingDelete {
                    let to: ImageStatus = ZStackImage.state(image) == "Disabled" ? .deactivated : .active
                    recovered = try await service.recoverImage(id: image.id, to: to, by: p) { image in
                        image.extensions[ZStackImage.vendor] = ZStackImageAPI.settingDeletedOn(image, stillDeleted)
                    }
                } else {
                    recovered = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                        JSONValue.merging(doc, [(ZStackImage.deletedOnKey, .array(stillDeleted.sorted().map { .string($0) }))])
                    }], by: p)
                }
                return .object([("inventory", .object(try await inventory(recovered, by: p)))])
            default:  // syncImageSize: sizes are exact already, measured as the data streamed in
                guard image.status == .active || image.status == .deactivated else {
                    throw ZStackError.failed("the image[uuid:\(uuid)] is not on any backup storage")
                }
                return .object([("inventory", .object(try await inventory(image, by: p)))])
            }
        }
    }

    func update(_ image: Image, _ params: [(String, JSONValue)], _ p: Principal) async throws -> Image {
        let (changes, fields) = try ZStackRequests.updateChanges(params, of: image)
        return try await service.updateImage(id: image.id, changes: changes, vendorChanges: [ZStackImage.vendor: { stored in
            JSONValue.merging(stored, fields)
        }], by: p)
    }

    func changeState(_ image: Image, _ params: [(String, JSONValue)], _ p: Principal) async throws -> Image {
        let message = "org.zstack.header.image.APIChangeImageStateMsg"
        guard let event = params.first(where: { $0.0 == "stateEvent" })?.1.stringValue else {
            throw ZStackError.invalidArgument("field[stateEvent] of message[\(message)] is mandatory, can not be null")
        }
        _ = try ZStackFields.oneOf(event, ["enable", "disable"], "stateEvent", message)
        guard image.status == .active || image.status == .deactivated else {
            throw ZStackError.failed("image[uuid:\(ZStackImage.uuid(image.id))] is \(ZStackImage.status(image)), its state cannot be changed")
        }
        if event == "disable" { try await service.deactivateImage(id: image.id, by: p) } else { try await service.reactivateImage(id: image.id, by: p) }
        return try await service.showImage(id: image.id, by: p)
    }

    /// `backupStorageUuids` of Delete/Expunge/Recover as store ids, nil when none are named: each must
    /// be a backup storage (SYS.1003) holding the image (SYS.1007).
    func checkStorages(_ value: JSONValue?, of image: Image) throws -> Set<String>? {
        guard let items = value?.arrayItems, !items.isEmpty else { return nil }
        var named = Set<String>()
        for item in items {
            guard let uuid = item.stringValue, let id = storages.storeId(ofUUID: uuid) else {
                throw ZStackError.notFound("invalid field[backupStorageUuids], resource[uuid:\(ZStackMatcher.text(item)), type:BackupStorageVO] not found")
            }
            named.insert(id)
        }
        let held = Set(storages.ids(of: image))
        if let other = named.subtracting(held).first {
            throw ZStackError.invalidArgument("the image[uuid:\(ZStackImage.uuid(image.id))] is not on the backup storage[uuid:\(ZStackBackupStorages.uuid(ofStore: other))]")
        }
        return named
    }

    /// The stores where the image's ref is Deleted: all of them once it is deleted softly, else those
    /// it was deleted from alone.
    func deletedStores(_ image: Image) -> Set<String> {
        let held = Set(storages.ids(of: image))
        if image.status == .pendingDelete { return held }
        guard image.status == .active || image.status == .deactivated else { return [] }
        return held.intersection(ZStackImage.deletedOn(image))
    }

    /// Refuses an expunge or recover naming a backup storage whose ref is not Deleted.
    func refsDeleted(_ image: Image, _ target: Set<String>, _ deleted: Set<String>) throws {
        if let live = target.subtracting(deleted).sorted().first {
            throw ZStackError.failed("image[uuid:\(ZStackImage.uuid(image.id))]'s status[\(ZStackImage.status(image))] is not Deleted on the backup storage[\(ZStackBackupStorages.uuid(ofStore: live))]")
        }
    }

    /// The zstack document of `image` with `stores` as the stores it is deleted from alone.
    static func settingDeletedOn(_ image: Image, _ stores: Set<String>) -> JSONValue {
        JSONValue.merging(image.extensions[ZStackImage.vendor], [(ZStackImage.deletedOnKey, .array(stores.sorted().map { .string($0) }))])
    }

    // MARK: DeleteImage

    /// `DELETE /images/{uuid}?deleteMode=`: images with data are deleted softly (status Deleted,
    /// recoverable, expunged later); images still downloading are deleted at once, as ZStack does.
    func delete(_ request: Request, uuid: String) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let p = try await jobCaller(request)
        let parameters = ZStackQuery.parameters(request.uri.query)
        let coreId = ZStackImage.coreId(uuid)
        return try await runJob(job, request, p, api: "DeleteImage", imageId: coreId) {
            guard let coreId else { throw ZStackError.notFound("invalid value[\(uuid)] of field [uuid]") }
            let mode = parameters.first { $0.0 == "deleteMode" }?.1 ?? "Permissive"
            _ = try ZStackFields.oneOf(mode, ["Permissive", "Enforcing"], "deleteMode", "org.zstack.header.image.APIDeleteImageMsg")
            let storagesNamed = parameters.filter { $0.0 == "backupStorageUuids" || $0.0.hasPrefix("backupStorageUuids.") }.map { JSONValue.string($0.1) }
            let image: Image
            do { image = try await service.visibleImageOrSoftDeleted(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
                return .object([])  // successIfResourceNotExisting
            }
            let named = try checkStorages(.array(storagesNamed), of: image)
            switch image.status {
            case .pendingDelete, .deleted: break
            case .active, .deactivated:
                let deleted = Set(ZStackImage.deletedOn(image)).union(named ?? [])
                if let named, !Set(storages.ids(of: image)).isSubset(of: deleted) {
                    // some backup storages only: their refs turn Deleted, the image stays Ready on the others
                    _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                        JSONValue.merging(doc, [(ZStackImage.deletedOnKey, .array(deleted.sorted().map { .string($0) }))])
                    }], by: p)
                    return .object([])
                }
                let state = ZStackImage.state(image)
                _ = try await service.softDeleteImage(id: image.id, by: p) { image in
                    image.extensions[ZStackImage.vendor] = JSONValue.merging(image.extensions[ZStackImage.vendor],
                                                                             [("state", .string(state)), (ZStackImage.deletedOnKey, .array([]))])
                }
            default:
                try await data.deleteImage(id: image.id, by: p)
            }
            return .object([])
        }
    }

    // MARK: Helpers

    func baseURL(_ request: Request) -> String {
        RequestReading.baseURL(request, publicEndpoint: options.publicEndpoint)
    }

    static func body(_ request: Request) async throws -> JSONValue {
        let buffer: ByteBuffer
        do { buffer = try await RequestReading.body(request, limit: maxJSONBody) } catch {
            throw ZStackHTTPError(.contentTooLarge, "the request body is larger than \(maxJSONBody) bytes")
        }
        do { return try JSONValue.parse(buffer.readableBytesView) } catch {
            throw ZStackHTTPError(.badRequest, "the body is not valid JSON: \(error)")
        }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response { ZStackReply.json(value, status: status) }
}

/// ZStack's answers: JSON in UTF-8 under `/zstack/v1`.
enum ZStackReply {
    static let prefix = "/zstack/v1"

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        JSONResponse.make(value, status: status, contentType: "application/json; charset=utf-8")
    }
}
