/// A resumable upload in progress (tus 1.0 on the OpenStack API). It lives in its image's row, under
/// `extensions["imaged_upload"]`, so any node can continue it, and every change to it (claiming it,
/// recording a checkpoint, ending it) is one conditional write against the image's own state: a
/// session and a plain `PUT /file`, two nodes' PATCHes, or a PATCH and the expiry sweep can never
/// both win. While it is open the image is `saving` (target file) or `uploading` (target stage),
/// its writer is `upload:<session id>` (never judged by node heartbeats), and its `size` holds the
/// session's declared length, which counts toward the owner's `image_stage_total` until it ends.
public struct UploadSession: Sendable, Equatable {
    public static let extensionKey = "imaged_upload"
    public static let writerPrefix = "upload:"

    public enum Target: String, Sendable, CaseIterable {
        /// The finished upload makes the image active (`PUT /file`).
        case file
        /// The finished upload stages the bytes for a `glance-direct` import (`PUT /stage`).
        case stage
    }

    public var id: String
    public var target: Target
    /// The store the bytes go to (an id from `BlobStores`).
    public var store: String
    /// Bytes the client will send in all (`Upload-Length`).
    public var length: Int64
    /// Bytes durably received so far.
    public var offset: Int64
    public var createdAt: Int64
    /// Seconds since the epoch after which the session is dropped (refreshed by every write).
    public var expiresAt: Int64
    /// Digests the client pinned at creation ("sha256:<hex>"), checked on completion.
    public var pinned: [String]
    /// The store's handle on the bytes written so far (nil before the first byte).
    public var token: String?
    /// The key the bytes will be committed under (decided with the first bytes).
    public var key: String?
    /// The ingest's saved state at `offset` (digests and inspection, opaque JSON).
    public var state: String?
    /// The bytes are kept as sent and processed (decompressed, converted) on completion.
    public var deferred: Bool
    /// Who is writing now: one request on one node, until `heldUntil` (seconds since the epoch).
    public var holder: String?
    public var heldUntil: Int64?

    public init(id: String, target: Target, store: String, length: Int64, createdAt: Int64, expiresAt: Int64, pinned: [String]) {
        self.id = id; self.target = target; self.store = store; self.length = length; self.offset = 0
        self.createdAt = createdAt; self.expiresAt = expiresAt; self.pinned = pinned
        self.deferred = false
    }

    /// The image's writer while the session is open.
    public var writer: String { Self.writerPrefix + id }

    public static func isSessionWriter(_ writer: String?) -> Bool { writer?.hasPrefix(writerPrefix) ?? false }

    public func isHeld(now: Int64) -> Bool { holder != nil && (heldUntil ?? 0) > now }

    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("id", .string(id)), ("target", .string(target.rawValue)), ("store", .string(store)),
            ("length", .int(length)), ("offset", .int(offset)), ("createdAt", .int(createdAt)),
            ("expiresAt", .int(expiresAt)), ("pinned", .array(pinned.map { .string($0) })), ("deferred", .bool(deferred)),
        ]
        if let token { fields.append(("token", .string(token))) }
        if let key { fields.append(("key", .string(key))) }
        if let state { fields.append(("state", .string(state))) }
        if let holder { fields.append(("holder", .string(holder))) }
        if let heldUntil { fields.append(("heldUntil", .int(heldUntil))) }
        return .object(fields)
    }

    public init?(json: JSONValue) {
        guard let id = json["id"]?.stringValue, let target = json["target"]?.stringValue.flatMap(Target.init(rawValue:)),
              let store = json["store"]?.stringValue, case .int(let length)? = json["length"], case .int(let offset)? = json["offset"],
              case .int(let created)? = json["createdAt"], case .int(let expires)? = json["expiresAt"] else { return nil }
        self.init(id: id, target: target, store: store, length: length, createdAt: created, expiresAt: expires,
                  pinned: json["pinned"]?.arrayItems?.compactMap(\.stringValue) ?? [])
        self.offset = offset
        token = json["token"]?.stringValue
        key = json["key"]?.stringValue
        state = json["state"]?.stringValue
        deferred = json["deferred"]?.boolValue ?? false
        holder = json["holder"]?.stringValue
        if case .int(let t)? = json["heldUntil"] { heldUntil = t }
    }
}

extension Image {
    /// The resumable upload open on the image, if any.
    public var uploadSession: UploadSession? {
        extensions[UploadSession.extensionKey].flatMap(UploadSession.init(json:))
    }
}

/// A PATCH whose `Upload-Offset` is not the session's offset (a gap or an overlap): 409 with the offset.
public struct UploadOffsetMismatch: Error, Equatable, CustomStringConvertible {
    public var current: Int64
    public var sent: Int64
    public init(current: Int64, sent: Int64) { self.current = current; self.sent = sent }
    public var description: String {
        "Upload-Offset \(sent) does not match the upload's offset \(current): send the bytes from \(current)."
    }
}

/// Another request is writing to the session (423 Locked): retry after it ends (HEAD tells the offset).
public struct UploadSessionLocked: Error, Equatable, CustomStringConvertible {
    public init() {}
    public var description: String { "The upload is being written by another request; retry once it has ended." }
}

extension ImageService {
    public static func noSession(_ image: String, _ session: String) -> ImageError {
        ImageError.notFound("No upload \(session) is open for image \(image).")
    }

    /// The policy action a session of `target` needs: the same as `PUT /file` or `PUT /stage`.
    static func sessionAction(_ target: UploadSession.Target) -> PolicyAction {
        target == .file ? .uploadImage : .modifyImage
    }

    /// Opens a session: queued → saving (file) or uploading (stage), the declared length reserved in
    /// the stage quota, all in one write (a full quota: 413, nothing changed).
    public func beginUploadSession(id: String, session: UploadSession, by p: Principal) async throws -> Image {
        let to: ImageStatus = session.target == .file ? .saving : .uploading
        AuditTrail.note(to == .saving ? "image.upload" : "image.stage", imageId: id, by: p)
        let image = try await mutate(id: id, by: p, action: Self.sessionAction(session.target), verb: "upload data to") { image in
            try Self.startWriting(&image, to: to, writer: session.writer)
            image.size = session.length
            image.extensions[UploadSession.extensionKey] = session.json
        }
        emit("image.prepare", image: image, extra: EventPayload.importStores(image))
        return image
    }

    /// The session `sessionId` of an image the caller may write to; 404 when it is not open (or expired).
    public func uploadSession(imageId: String, sessionId: String, by p: Principal, now: Int64 = Timestamp.now()) async throws -> (Image, UploadSession) {
        let (image, member) = try await visibleImageAndMembership(id: imageId, by: p)
        guard let session = image.uploadSession, session.id == sessionId.lowercased(), session.expiresAt > now,
              image.writerNode == session.writer else {
            throw Self.noSession(imageId, sessionId)
        }
        guard Policy.allows(Self.sessionAction(session.target), p, PolicyTarget(image, callerIsImageMember: member != nil)) else {
            throw ImageError.forbidden("You are not authorized to upload data to image \(image.id).")
        }
        return (image, session)
    }

    /// Changes the open session `sessionId` of image `id` in one write; 404 when it is no longer open.
    /// Returns the image and session as written.
    @discardableResult
    public func updateUploadSession(id: String, sessionId: String,
                                    _ change: @escaping @Sendable (inout UploadSession) throws -> Void) async throws -> (Image, UploadSession) {
        let updated = try await catalog.updateImage(id: id) { image in
            guard image.status == .saving || image.status == .uploading, var session = image.uploadSession,
                  session.id == sessionId, image.writerNode == session.writer else {
                throw Self.noSession(id, sessionId)
            }
            try change(&session)
            image.extensions[UploadSession.extensionKey] = session.json
        }
        guard let updated, let session = updated.uploadSession else { throw Self.noSession(id, sessionId) }
        return (updated, session)
    }

    /// Takes the session for one writing request: the offset must be the session's (else
    /// `UploadOffsetMismatch`) and nobody else may hold it (else `UploadSessionLocked`).
    public func claimUploadSession(id: String, sessionId: String, offset: Int64, holder: String,
                                   until: Int64, now: Int64 = Timestamp.now()) async throws -> (Image, UploadSession) {
        try await updateUploadSession(id: id, sessionId: sessionId) { session in
            guard session.expiresAt > now else { throw Self.noSession(id, sessionId) }
            if session.isHeld(now: now), session.holder != holder { throw UploadSessionLocked() }
            guard offset == session.offset else { throw UploadOffsetMismatch(current: session.offset, sent: offset) }
            session.holder = holder
            session.heldUntil = until
        }
    }

    /// Ends an open session without data: the image goes back to queued (size cleared), the session
    /// is gone. nil when it had already ended. The caller discards the bytes.
    @discardableResult
    public func dropUploadSession(id: String, session: UploadSession) async throws -> Image? {
        let after = try await returnToQueued(id: id, from: [.saving, .uploading], writer: .exactly(session.writer)) { image in
            image.extensions[UploadSession.extensionKey] = nil
        }
        guard let after, after.status == .queued else { return nil }
        return after
    }

    /// Open sessions whose expiry has passed (for the sweep of every node).
    public func expiredUploadSessions(now: Int64 = Timestamp.now()) async throws -> [(Image, UploadSession)] {
        try await catalog.images(withStatus: [.saving, .uploading]).compactMap { image in
            guard let s = image.uploadSession, image.writerNode == s.writer, s.expiresAt <= now, !s.isHeld(now: now) else { return nil }
            return (image, s)
        }
    }

    /// Every open session's store token (what the stores must not reap as orphans), by store id.
    public func openUploadTokens() async throws -> [String: [String]] {
        var tokens: [String: [String]] = [:]
        for image in try await catalog.images(withStatus: [.saving, .uploading]) {
            guard let s = image.uploadSession, image.writerNode == s.writer, let token = s.token else { continue }
            tokens[s.store, default: []].append(token)
        }
        return tokens
    }
}
