import Foundation
import ImageCore
import Logging
import NIOCore

/// Resumable uploads' settings (`imaged serve --upload-session-ttl`).
public struct ResumableUploadConfig: Sendable {
    /// Seconds a session lives after its last write.
    public var ttl: Int64 = 86_400
    /// Bytes between checkpoints within one request: what a crashed node can lose of a session.
    public var checkpointBytes: Int64 = 32 << 20
    /// Seconds a writing request holds its session without renewing it (a dead node's request frees it then).
    public var leaseSeconds: Int64 = 30
    public init() {}
}

/// What a PATCH achieved.
public struct UploadProgress: Sendable {
    public var session: UploadSession
    /// The image after the upload completed (nil while bytes are still missing).
    public var completed: Image?
}

/// The data path of resumable uploads (tus 1.0 on the OpenStack API; `UploadSession` holds the rules).
///
/// A request appends bytes through the same `ImageIngest` as `PUT /file`, into a store's resumable
/// blob. Every `checkpointBytes` (aligned to the store's parts), when the request's body ends and
/// when it breaks, the ingest is suspended, the store makes the bytes durable (fsync, S3 parts plus
/// a tail object), and the catalog records the new offset with the ingest's state (digests and
/// inspection) in one conditional write; then the bytes are acknowledged. Another request, on any
/// node, continues from that record: no byte is read twice. The request that reaches the declared
/// length finishes the image as `PUT /file` (or `/stage`) would, with the same checks.
extension ImageDataService {
    /// Opens a session on a queued image. `pinned` digests are checked when the upload completes.
    public func createUploadSession(imageId: String, length: Int64, target: UploadSession.Target, store storeId: String?,
                                    pinned: [PinnedDigest], settings: ResumableUploadConfig, by p: Principal) async throws -> UploadSession {
        let pinned = try PinnedDigest.merged(pinned)
        guard length >= 0 else { throw ImageError.badRequest("Upload-Length must be a non-negative integer.") }
        try checkDeclared(length)
        if target == .stage, !config.importMethods.contains("glance-direct") {
            throw ImageError.notFound("'glance-direct' method is not available at this site.")
        }
        // Staged bytes always live in the default store.
        let store = target == .stage ? blobs : try storeId.map { try self.store(named: $0) } ?? blobs
        guard store.resumable != nil else {
            throw ImageError.badRequest("Store \(store.id) does not support resumable uploads.")
        }
        let now = Timestamp.now()
        let session = UploadSession(id: ImageID.generate(), target: target, store: store.id, length: length,
                                    createdAt: now, expiresAt: now + settings.ttl, pinned: pinned.map(\.description))
        let image = try await images.beginUploadSession(id: imageId, session: session, by: p)
        logger.info("upload session opened", metadata: ["image": .string(image.id), "session": .string(session.id),
                                                          "length": "\(length)", "target": .string(target.rawValue)])
        return session
    }

    /// Ends a session without data (tus termination): the image is queued again, the bytes discarded.
    public func terminateUploadSession(imageId: String, sessionId: String, by p: Principal) async throws {
        let (image, session) = try await images.uploadSession(imageId: imageId, sessionId: sessionId, by: p)
        if session.isHeld(now: Timestamp.now()) { throw UploadSessionLocked() }
        guard try await images.dropUploadSession(id: image.id, session: session) != nil else {
            throw ImageService.noSession(imageId, sessionId)
        }
        await discardBytes(of: session)
        logger.info("upload session terminated", metadata: ["image": .string(image.id), "session": .string(session.id)])
    }

    /// Drops every session whose expiry has passed (each node's reaper calls it): images queued
    /// again, bytes discarded. Returns how many.
    @discardableResult
    public func sweepExpiredUploadSessions(now: Int64 = Timestamp.now()) async throws -> Int {
        var dropped = 0
        for (image, session) in try await images.expiredUploadSessions(now: now) {
            guard try await images.dropUploadSession(id: image.id, session: session) != nil else { continue }
            await discardBytes(of: session)
            dropped += 1
            logger.notice("upload session \(session.id) of image \(image.id) expired at offset \(session.offset) of \(session.length): image queued again")
        }
        return dropped
    }

    func discardBytes(of session: UploadSession) async {
        guard let store = stores.store(session.store)?.resumable, let token = session.token else { return }
        await store.discardResumable(token: token)
    }

    /// Appends `body`, which the client sent from `offset`, to the session; finishes the image when
    /// the declared length is reached. A broken body still records what arrived before the error is
    /// rethrown. Errors: `UploadOffsetMismatch` (409), `UploadSessionLocked` (423), `ImageError`.
    /// `declaredBytes` (the request's Content-Length): a body that cannot fit is refused (413) before
    /// any of it is read.
    public func appendToUploadSession(imageId: String, sessionId: String, offset: Int64, declaredBytes: Int64? = nil,
                                      body: some AsyncSequence<ByteBuffer, any Error>,
                                      settings: ResumableUploadConfig, by p: Principal) async throws -> UploadProgress {
        let (visible, current) = try await images.uploadSession(imageId: imageId, sessionId: sessionId, by: p)
        if let declaredBytes, offset == current.offset, offset + declaredBytes > current.length {
            throw ImageError.tooLarge("The upload's bytes would go past its Upload-Length of \(current.length): \(declaredBytes) bytes from offset \(offset).")
        }
        let id = visible.id, sid = sessionId.lowercased()
        let holder = images.nodeId + "/" + ImageID.generate()
        var (image, session) = try await images.claimUploadSession(id: id, sessionId: sid, offset: offset, holder: holder,
                                                                  until: Timestamp.now() + settings.leaseSeconds)
        let writing = SessionWrite(data: self, imageId: id, holder: holder, settings: settings)
        do {
            guard let base = stores.store(session.store), let store = base.resumable else {
                throw ImageError(.internal, "Store \(session.store) of upload \(sid) is not configured on this node.")
            }
            var iterator = body.makeAsyncIterator()
            var pending: ByteBuffer?
            var writer: (any ResumableBlobWriter)?
            if let token = session.token, let key = session.key {
                writer = try await store.resumeWriter(key: key, token: token, offset: session.offset)
            } else if session.length > 0 {
                // The first bytes decide where they go: compressed data (or a converting store) is kept
                // as sent and processed on completion; anything else goes straight under the image's key.
                var head = ByteBuffer()
                while head.readableBytes < SourceCompression.magicLength, var next = try await iterator.next() {
                    head.writeBuffer(&next)
                }
                pending = head
                session = try await writing.begin(session, head: head, in: base)
                writer = try await store.resumeWriter(key: session.key!, token: session.token!, offset: 0)
            }
            if let writer {
                do {
                    session = try await writing.append(session, writer: writer, first: pending, rest: &iterator)
                } catch {
                    await writer.suspend()
                    throw error
                }
                if session.offset == session.length {
                    image = try await finishSession(image, session, writer: writer)
                    return UploadProgress(session: session, completed: image)
                }
                await writer.suspend()
            } else if session.length == 0 {
                image = try await finishEmptySession(image, session, store: store)
                return UploadProgress(session: session, completed: image)
            }
            try await writing.release(session)
            return UploadProgress(session: session, completed: nil)
        } catch let error as UploadSessionLocked {
            throw error
        } catch let error as ImageError where error.kind == .notFound {
            throw error
        } catch {
            _ = try? await writing.release(session)
            throw Self.clientError(error)
        }
    }

    /// The declared length is reached: the same checks as `PUT /file` (pins, format), then the blob
    /// is committed and the image finished in one catalog write that also closes the session. Any
    /// failure discards the bytes and queues the image again.
    private func finishSession(_ image: Image, _ session: UploadSession, writer: any ResumableBlobWriter) async throws -> Image {
        let key = session.key!
        var committed = false
        do {
            guard let encoded = session.state else { throw ImageError(.internal, "upload \(session.id) has no saved state") }
            let state = try JSONDecoder().decode(IngestState.self, from: Data(encoded.utf8))
            let sent = try state.result(algorithm: config.hashAlgorithm)
            let pins = try session.pinned.map(Self.pin)
            if let mismatch = PinnedDigest.mismatch(pins, computed: sent.digests) {
                throw ImageError.badRequest("Checksum verification failed: \(mismatch).")
            }
            let closing = Self.closingSession(pins)
            let writerRule = UploadWriter.exactly(session.writer)
            if session.target == .stage {
                try await writer.commit()
                committed = true
                return try await images.finishStage(id: image.id, size: sent.size, writer: writerRule, also: closing)
            }
            guard let store = stores.store(session.store) else { throw ImageError(.internal, "store \(session.store) is gone") }
            let result: IngestResult
            var virtualSize: Int64?
            if session.deferred {
                try await writer.commit()
                committed = true
                // Decompressed (and converted) from the sent bytes, as PUT /file would have.
                result = try await ingest(into: BlobKey.image(image.id), store: store, declaredSize: nil,
                                          quota: try await quotaRoom(.imageSizeTotal, owner: image.owner, declared: nil),
                                          convert: conversion(for: store), verify: { virtualSize = try decideFormat(image, $0) }) { sink in
                    try await store.read(key: key, range: nil, chunkSize: config.readChunkSize) { try await sink($0) }
                }
                try? await store.delete(key: key)
            } else {
                virtualSize = try decideFormat(image, sent)
                try await writer.commit()
                committed = true
                result = sent
            }
            let record = recordStores([store.id])
            do {
                let done = try await images.finishData(id: image.id, from: .saving, facts: facts(result, virtualSize), writer: writerRule) {
                    record(&$0)
                    closing(&$0)
                }
                logger.info("resumable upload finished", metadata: ["image": .string(image.id), "session": .string(session.id),
                                                                    "size": "\(result.size)", "store": .string(store.id)])
                return done
            } catch {
                try? await store.delete(key: BlobKey.image(image.id))
                throw error
            }
        } catch {
            let committed = committed
            await uncancelled { [self] in
                if committed { try? await stores.store(session.store)?.delete(key: key) } else { await writer.cancel() }
                _ = try? await images.dropUploadSession(id: image.id, session: session)
            }
            logger.info("resumable upload refused, image queued again", metadata: ["image": .string(image.id), "error": "\(error)"])
            throw error
        }
    }

    /// A session of length 0: an empty blob, checked like any other.
    private func finishEmptySession(_ image: Image, _ session: UploadSession, store: any ResumableBlobStore) async throws -> Image {
        let key = session.target == .stage ? BlobKey.staging(image.id) : BlobKey.image(image.id)
        let token = try await store.beginResumable(key: key, session: session.id)
        let writer = try await store.resumeWriter(key: key, token: token, offset: 0)
        let ingest = try ImageIngest(writer: writer, algorithm: config.hashAlgorithm, limits: limits(expected: 0))
        var s = session
        s.token = token
        s.key = key
        s.state = String(decoding: try JSONEncoder().encode(try await ingest.suspend()), as: UTF8.self)
        return try await finishSession(image, s, writer: writer)
    }

    static func pin(_ text: String) throws -> PinnedDigest { try PinnedDigest(parsing: text) }

    /// What the finishing write records besides the data: the pins, and the session gone.
    static func closingSession(_ pins: [PinnedDigest]) -> @Sendable (inout Image) -> Void {
        let recordPins = recordPinned(pins)
        return { image in
            recordPins(&image)
            image.extensions[UploadSession.extensionKey] = nil
        }
    }
}

/// One request's writing into a session: its checkpoints, lease renewals and release.
struct SessionWrite: Sendable {
    let data: ImageDataService
    let imageId: String
    let holder: String
    let settings: ResumableUploadConfig

    var images: ImageService { data.images }

    /// Starts the session's blob with its first bytes in hand (compressed or not decides its key).
    func begin(_ session: UploadSession, head: ByteBuffer, in store: any BlobStore) async throws -> UploadSession {
        var deferred = false
        if session.target == .file {
            let compressed = data.config.decompress && SourceCompression.detect(head.readableBytesView) != nil
            deferred = compressed || data.conversion(for: store) != nil
        }
        let key = deferred ? "uploads/\(session.id)" : session.target == .stage ? BlobKey.staging(imageId) : BlobKey.image(imageId)
        guard let resumable = store.resumable else { throw ImageError(.internal, "store \(store.id) is not resumable") }
        let token = try await resumable.beginResumable(key: key, session: session.id)
        let ingest = try ImageIngest(writer: NoWriter(), algorithm: data.config.hashAlgorithm, limits: limits(session))
        let isDeferred = deferred
        let state = try await ingest.suspend()
        return try await record(session) { s in
            s.token = token
            s.key = key
            s.deferred = isDeferred
            s.state = try Self.encode(state)
        }
    }

    func limits(_ session: UploadSession) throws -> IngestLimits {
        var limits = data.limits(expected: session.length)
        limits.pinned = try session.pinned.map(ImageDataService.pin)
        return limits
    }

    static func encode(_ state: IngestState) throws -> String {
        String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
    }

    /// Appends `first`, then the rest of the body, checkpointing every `checkpointBytes` (aligned to
    /// the store's parts), and at the end, also when the body breaks. Returns the session as recorded.
    func append(_ start: UploadSession, writer: any ResumableBlobWriter, first: ByteBuffer?,
                rest body: inout some AsyncIteratorProtocol<ByteBuffer, any Error>) async throws -> UploadSession {
        var session = start
        guard let encoded = session.state else { throw ImageError(.internal, "upload \(session.id) has no saved state") }
        let saved = try JSONDecoder().decode(IngestState.self, from: Data(encoded.utf8))
        guard saved.received == session.offset else {
            throw ImageError(.internal, "upload \(session.id): saved state at \(saved.received), offset \(session.offset)")
        }
        let alignment = max(1, (data.stores.store(session.store)?.resumable?.checkpointAlignment) ?? 1)
        let step = max(alignment, (settings.checkpointBytes + alignment - 1) / alignment * alignment)
        var nextCheckpoint = (session.offset / step + 1) * step
        var ingest = try ImageIngest(writer: writer, algorithm: data.config.hashAlgorithm, limits: try limits(session), resume: saved)
        var renewed = Timestamp.now()
        var failure: (any Error)?
        // Within the body, a checkpoint's durability (the fsync) and its catalog record run while the next
        // bytes stream in; the next checkpoint, and the request's end, wait for it first, so records stay in order.
        var pending: Task<UploadSession, any Error>?
        do {
            var next = first
            if next == nil { next = try await body.next() }
            while var buffer = next {
                if ingest.received + Int64(buffer.readableBytes) > session.length {
                    throw ImageError.tooLarge("The upload's bytes would go past its Upload-Length of \(session.length).")
                }
                while buffer.readableBytes > 0 {
                    let take = Int(min(Int64(buffer.readableBytes), nextCheckpoint - ingest.received))
                    try await ingest.append(buffer.readSlice(length: take)!)
                    if ingest.received == nextCheckpoint {
                        let state = try await ingest.suspend()
                        let (token, durable) = try await writer.beginCheckpoint()
                        if let previous = pending { session = try await previous.value }
                        let base = session, encoded = try Self.encode(state)
                        pending = Task {
                            try await durable()
                            return try await record(base) { s in
                                s.offset = state.received
                                s.state = encoded
                                s.token = token
                            }
                        }
                        ingest = try ImageIngest(writer: writer, algorithm: data.config.hashAlgorithm, limits: try limits(session), resume: state)
                        nextCheckpoint += step
                        renewed = Timestamp.now()
                    }
                }
                // A slow sender may not reach a checkpoint within the lease: renew it on time too.
                let now = Timestamp.now()
                if now - renewed >= max(1, settings.leaseSeconds / 3) {
                    _ = try await record(session) { _ in }
                    renewed = now
                }
                next = try await body.next()
            }
        } catch {
            failure = error
        }
        if let previous = pending {
            do { session = try await previous.value } catch {
                await ingest.abort()
                throw failure ?? error
            }
        }
        // What arrived is kept, whatever ended the body; a failed store or catalog loses it to the last checkpoint.
        if ingest.received > session.offset {
            do {
                session = try await checkpoint(session, ingest: ingest, writer: writer, last: true)
            } catch {
                await ingest.abort()
                throw failure ?? error
            }
        } else {
            await ingest.abort()
        }
        if let failure { throw failure }
        return session
    }

    /// Suspends the ingest, makes the bytes durable, then records offset and state in the catalog. The
    /// request's last checkpoint lets the session go in the same write, unless it completes the upload
    /// (whose finishing write ends the session).
    func checkpoint(_ session: UploadSession, ingest: ImageIngest, writer: any ResumableBlobWriter,
                    last: Bool = false) async throws -> UploadSession {
        let state = try await ingest.suspend()
        let token = try await writer.checkpoint()
        let encoded = try Self.encode(state)
        return try await record(session, release: last && state.received < session.length) { s in
            s.offset = state.received
            s.state = encoded
            s.token = token
        }
    }

    /// One conditional write of the session, only while this request holds it; renews the lease and the expiry.
    /// `release`: the request is done with the session (the next one may take it).
    func record(_ session: UploadSession, release: Bool = false,
                _ change: @escaping @Sendable (inout UploadSession) throws -> Void) async throws -> UploadSession {
        let holder = self.holder, settings = self.settings
        let now = Timestamp.now()
        return try await images.updateUploadSession(id: imageId, sessionId: session.id) { s in
            guard s.holder == holder else { throw UploadSessionLocked() }
            try change(&s)
            s.heldUntil = release ? nil : now + settings.leaseSeconds
            if release { s.holder = nil }
            s.expiresAt = now + settings.ttl
        }.1
    }

    /// Lets the next request in (nothing to write when its last checkpoint already did).
    func release(_ session: UploadSession) async throws {
        if session.holder == nil { return }
        let holder = self.holder
        _ = try await images.updateUploadSession(id: imageId, sessionId: session.id) { s in
            guard s.holder == holder else { return }
            s.holder = nil
            s.heldUntil = nil
        }
    }
}

/// The ingest of a session's first state: nothing is written through it.
private struct NoWriter: BlobWriter {
    func write(_ buffer: ByteBuffer) async throws {}
    func commit() async throws {}
    func cancel() async {}
}
