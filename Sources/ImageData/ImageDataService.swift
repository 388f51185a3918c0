import Foundation
import ImageCore
import Logging
import NIOCore

public struct ImageDataConfig: Sendable {
    public var hashAlgorithm: HashAlgorithm = .sha512
    /// Glance's `image_size_cap` (1 TiB).
    public var imageSizeCap: Int64 = 1 << 40
    /// Larger virtual sizes are refused as absurd (qemu DoS class, CVE-2015-5162).
    public var maxVirtualSize: Int64 = 16 << 40
    /// Glance's `[image_format] require_image_format_match`.
    public var requireFormatMatch = true
    /// Bytes per read when serving downloads.
    public var readChunkSize = 1 << 20
    public var importMethods = ["glance-direct", "web-download", "copy-image"]
    /// gzip, xz, zstd and bzip2 data is decompressed as it arrives (`--decompress`); off stores it as sent.
    public var decompress = true
    /// Stores whose images are converted on the way in (`?convert=raw` on a store spec), by store id;
    /// "" is the one unnamed store.
    public var storeConversions: [String: ConversionTarget] = [:]
    public init() {}
}

/// Pulls bytes from a URL for imports. Implemented in Outbound, which owns the URL guard.
public protocol RemoteFetcher: Sendable {
    /// Refuses a URL the guard would refuse, before any task is created: throws
    /// `ImageError.badRequest` naming the rule and the option that opens it (400 on the API).
    /// `asAdmin`: the request is made for an admin (the `--import-private` policy decides what that opens).
    func vet(_ url: String, asAdmin: Bool) async throws
    /// Streams the body of `url` (following vetted redirects) into `sink`. `announce` gets the
    /// length the server declared, if any, before the first byte.
    func fetch(_ url: String, asAdmin: Bool, maxBytes: Int64, announce: (Int64?) async throws -> Void,
               into sink: (ByteBuffer) async throws -> Void) async throws
    /// The same with request headers, sent to the URL's own origin only (not across redirects).
    func fetch(_ url: String, asAdmin: Bool, headers: [(String, String)], maxBytes: Int64,
               announce: (Int64?) async throws -> Void, into sink: (ByteBuffer) async throws -> Void) async throws
}

extension RemoteFetcher {
    /// Fetchers that cannot send headers (test doubles) ignore them.
    public func fetch(_ url: String, asAdmin: Bool, headers: [(String, String)], maxBytes: Int64,
                      announce: (Int64?) async throws -> Void, into sink: (ByteBuffer) async throws -> Void) async throws {
        try await fetch(url, asAdmin: asAdmin, maxBytes: maxBytes, announce: announce, into: sink)
    }
}

/// The data path of every front-end: uploads, staging, downloads and the start of imports.
public struct ImageDataService: Sendable {
    public let images: ImageService
    public let stores: BlobStores
    public let config: ImageDataConfig
    let logger: Logger
    /// Reads images whose data is at an http(s) location (the locations API); set at wiring time.
    public var locationReader: (any RemoteFetcher)?
    /// This node's image cache (`--cache-size` > 0); set at wiring time.
    public var cache: ImageCache?
    /// Runs `qemu-img convert` for conversions (a store's `?convert=`, an import's `convert_to`); set at wiring time.
    public var converter: ImageConverter?

    /// The format `store` wants its images in, if it converts them.
    public func conversion(for store: any BlobStore) -> ConversionTarget? {
        config.storeConversions[store.id] ?? (stores.multiple ? nil : config.storeConversions[""])
    }

    /// The default store: uploads and imports without a choice, and every staged blob.
    public var blobs: any BlobStore { stores.defaultStore }

    public init(images: ImageService, stores: BlobStores, config: ImageDataConfig = .init(),
                logger: Logger = Logger(label: "imaged.data")) {
        self.images = images; self.stores = stores; self.config = config; self.logger = logger
    }

    public init(images: ImageService, blobs: any BlobStore, config: ImageDataConfig = .init(),
                logger: Logger = Logger(label: "imaged.data")) {
        self.init(images: images, stores: BlobStores(single: blobs), config: config, logger: logger)
    }

    /// The import methods this site offers: copy-image only with several stores to copy between.
    public var importMethods: [String] {
        config.importMethods.filter { $0 != "copy-image" || stores.multiple }
    }

    /// A store the caller named (an upload's store, import `stores`); 400 when not configured. A
    /// site with one store accepts its own id, as imports do (ZStack's upload URLs name their
    /// backup storage whatever the site).
    public func store(named id: String) throws -> any BlobStore {
        guard let store = stores.store(id), stores.multiple || id == blobs.id else {
            throw ImageError.badRequest("Store for identifier \(id) not found.")
        }
        return store
    }

    /// What an image records about where its data went (only with named stores, as Glance).
    func recordStores(_ ids: [String]) -> @Sendable (inout Image) -> Void {
        let multiple = stores.multiple
        return { image in if multiple { image.properties[ImageService.storesKey] = ids.joined(separator: ",") } }
    }

    // MARK: Upload (`PUT /file`) and stage (`PUT /stage`)

    /// Streams `body` into the image's blob. On success the image is active with size, digests and
    /// virtual size; on any failure the blob is discarded and the image is queued again.
    /// `expectedMD5` (hex), when the client sent one, must match the data or the upload fails with 400;
    /// so must every `pinned` digest, which the image then records (`imaged_pinned_digest`).
    public func upload(id: String, declaredSize: Int64?, expectedMD5: String? = nil, pinned: [PinnedDigest] = [],
                       store storeId: String? = nil,
                       body: some AsyncSequence<ByteBuffer, any Error>, by p: Principal) async throws -> Image {
        let pinned = try PinnedDigest.merged(pinned)
        // Content-MD5 is of the body as sent (compressed, when it is): checked like a pin, not recorded as one.
        let checked = try PinnedDigest.merged(pinned + (expectedMD5.map { [try PinnedDigest(algorithm: .md5, hex: $0)] } ?? []))
        try checkDeclared(declaredSize)
        let store = try storeId.map { try self.store(named: $0) } ?? blobs
        let image = try await images.beginUpload(id: id, to: .saving, by: p)
        let key = BlobKey.image(image.id)
        do {
            let quota = try await quotaRoom(.imageSizeTotal, owner: image.owner, declared: declaredSize)
            var virtualSize: Int64?
            // Checksum and format decisions come before the commit: refused data is never published.
            let result = try await ingest(into: key, store: store, declaredSize: declaredSize, quota: quota, pinned: checked,
                                          convert: conversion(for: store), from: body) { result in
                virtualSize = try decideFormat(image, result)
            }
            do {
                let record = recordStores([store.id]), recordPins = Self.recordPinned(pinned)
                let done = try await images.finishData(id: image.id, from: .saving, facts: facts(result, virtualSize)) {
                    record(&$0)
                    recordPins(&$0)
                }
                logger.info("image data uploaded", metadata: ["image": .string(image.id), "size": "\(result.size)", "store": .string(store.id)])
                return done
            } catch {
                try? await store.delete(key: key)
                throw error
            }
        } catch {
            await requeueAfterFailedWrite(id: image.id, from: .saving)
            // Glance's failed upload: image.upload at error priority, the reason as payload.
            images.emit("image.upload", .string("Failed to upload image data for image \(image.id): \((error as? ImageError)?.message ?? "\(error)")"),
                        priority: .error)
            logger.info("upload failed, image queued again", metadata: ["image": .string(image.id), "error": "\(error)"])
            throw error
        }
    }

    /// Stores the bytes for a later `glance-direct` import: queued → uploading, size recorded.
    /// Every `pinned` digest must match the staged bytes, or nothing is staged (400).
    public func stage(id: String, declaredSize: Int64?, pinned: [PinnedDigest] = [], body: some AsyncSequence<ByteBuffer, any Error>,
                      by p: Principal) async throws {
        let pinned = try PinnedDigest.merged(pinned)
        guard config.importMethods.contains("glance-direct") else {
            throw ImageError.notFound("'glance-direct' method is not available at this site.")
        }
        try checkDeclared(declaredSize)
        let image = try await images.beginUpload(id: id, to: .uploading, by: p)
        let key = BlobKey.staging(image.id)
        do {
            let quota = try await quotaRoom(.imageStageTotal, owner: image.owner, declared: declaredSize)
            // Staged bytes stay as sent: the import that takes them decompresses them.
            let result = try await ingest(into: key, declaredSize: declaredSize, quota: quota, pinned: pinned, decompress: false, from: body)
            do {
                try await images.finishStage(id: image.id, size: result.size)
            } catch {
                try? await blobs.delete(key: key)
                throw error
            }
        } catch {
            await requeueAfterFailedWrite(id: image.id, from: .uploading)
            throw error
        }
    }

    /// Puts an image whose upload or staging failed back to `queued` (when it is still this node's
    /// write in `status`). The failure is often the catalog's own outage, and then this write fails
    /// too: it is tried again in the background until the catalog takes it. This node is alive and
    /// beating, so no other node's reaper would requeue the image, and left in `saving` it could
    /// never be uploaded again (the chaos test found one after a PostgreSQL restart).
    func requeueAfterFailedWrite(id: String, from status: ImageStatus) async {
        let images = self.images, logger = self.logger
        let requeue: @Sendable () async throws -> Void = { _ = try await images.returnToQueued(id: id, from: [status]) }
        await uncancelled {
            do { try await requeue() } catch {
                logger.warning("could not queue the image again; retrying in the background",
                               metadata: ["image": .string(id), "error": "\(error)"])
                Task.detached {
                    let attempts = await retryUntilDone(requeue)
                    logger.notice("image queued again after its failed write", metadata: ["image": .string(id), "attempts": "\(attempts)"])
                }
            }
        }
    }

    func checkDeclared(_ size: Int64?) throws {
        if let size, size > config.imageSizeCap {
            throw ImageError.tooLarge("Image size \(size) exceeds the storage limit of \(config.imageSizeCap) bytes.")
        }
    }

    /// What the owner may still store in `resource`: refuses a declared size that does not fit
    /// (413 before any byte is written); the stream is then bounded by the room, and the catalog
    /// write that records the data re-checks the quota exactly.
    func quotaRoom(_ resource: QuotaResource, owner: String?, declared: Int64?) async throws -> QuotaRoom? {
        guard let owner, let room = try await images.room(in: resource, for: owner) else { return nil }
        let message = "Quota exceeded for project \(owner): \(resource.rawValue) leaves room for \(room) more bytes."
        if let declared, declared > room { throw ImageError.tooLarge(message) }
        return QuotaRoom(bytes: room, message: message)
    }

    /// Writes a stream into `key` and commits it; the blob is gone again when anything fails.
    func ingest(into key: String, store: (any BlobStore)? = nil, declaredSize: Int64?, quota: QuotaRoom? = nil,
                pinned: [PinnedDigest] = [], decompress: Bool = true, convert: ConversionTarget? = nil,
                from body: some AsyncSequence<ByteBuffer, any Error>,
                verify: (IngestResult) throws -> Void = { _ in }) async throws -> IngestResult {
        try await ingest(into: key, store: store, declaredSize: declaredSize, quota: quota, pinned: pinned, decompress: decompress,
                         convert: convert, verify: verify) { sink in
            for try await buffer in body { try await sink(buffer) }
        }
    }

    /// Writes what `feed` pushes into `key`; once digests, size and inspection are known, `verify`
    /// may refuse them, else the blob is committed. On any failure the writer is cancelled, so
    /// nothing of it remains. Compressed data is decompressed first (`decompress` and the site's
    /// `--decompress`): digests, size and format are then the image's, pins and `declaredSize` the sent bytes'.
    /// With `convert`, an image in another disk format is converted (qemu-img, sandboxed) after `verify`
    /// accepted it as sent, and the converted bytes are stored: size and digests are then theirs.
    func ingest(into key: String, store: (any BlobStore)? = nil, declaredSize: Int64?, quota: QuotaRoom? = nil,
                pinned: [PinnedDigest] = [], decompress: Bool = true, convert: ConversionTarget? = nil,
                verify: (IngestResult) throws -> Void = { _ in },
                _ feed: ((ByteBuffer) async throws -> Void) async throws -> Void) async throws -> IngestResult {
        try await DataMetrics.upload {
            try await ingestCounted(into: key, store: store, declaredSize: declaredSize, quota: quota, pinned: pinned,
                                    decompress: decompress && config.decompress, convert: convert, verify: verify, feed)
        }
    }

    /// What an image records of the digests its sender pinned (nothing when none was).
    static func recordPinned(_ pinned: [PinnedDigest]) -> @Sendable (inout Image) -> Void {
        let value = pinned.map(\.description).joined(separator: ",")
        return { image in if !value.isEmpty { image.properties[PinnedDigest.propertyKey] = value } }
    }

    private func ingestCounted(into key: String, store: (any BlobStore)?, declaredSize: Int64?, quota: QuotaRoom?,
                               pinned: [PinnedDigest], decompress: Bool, convert: ConversionTarget?,
                               verify: (IngestResult) throws -> Void,
                               _ feed: ((ByteBuffer) async throws -> Void) async throws -> Void) async throws -> IngestResult {
        let target = store ?? blobs
        let converting: ConvertingWriter?
        let writer: any BlobWriter
        if let convert {
            guard let converter else {
                throw ImageError.badRequest("Image conversion is not available on this node.")
            }
            let c = ConvertingWriter(target: convert, store: { try await target.makeWriter(key: key) },
                                     scratch: { try converter.scratchWriter() })
            converting = c
            writer = c
        } else {
            converting = nil
            writer = try await target.makeWriter(key: key)
        }
        let ingest: DecompressingIngest
        do {
            var limits = limits(expected: declaredSize)
            limits.quota = quota
            limits.pinned = pinned
            ingest = try DecompressingIngest(writer: writer, algorithm: config.hashAlgorithm, limits: limits, decompress: decompress)
        } catch {
            await writer.cancel()
            throw error
        }
        do {
            try await feed { buffer in
                DataMetrics.bytesIn(buffer.readableBytes)
                try await ingest.append(buffer)
            }
            let result = try await ingest.finish()
            try verify(result)
            try await writer.commit()
            if let converting, let scratch = converting.scratch {
                return try await storeConverted(scratch.path, result, to: converting.target, into: key, store: target, quota: quota)
            }
            return result
        } catch {
            if !(error is ImageError), !(error is CancellationError) { DataMetrics.storeError("write") }
            await uncancelled {
                await ingest.abort()
                await writer.cancel()
            }
            throw Self.clientError(error)
        }
    }

    /// Converts the verified scratch copy of an image and ingests the result into `store` (digests,
    /// size cap and quota of the stored bytes); both scratch files are gone afterwards.
    private func storeConverted(_ source: String, _ sent: IngestResult, to target: ConversionTarget, into key: String,
                                store: any BlobStore, quota: QuotaRoom?) async throws -> IngestResult {
        defer { try? FileManager.default.removeItem(atPath: source) }
        guard let converter else { throw ImageError(.internal, "Image conversion is not available on this node.") }
        let format = sent.inspection.detected
        // The output is about the virtual size (raw) or less: refused before it is made when that cannot fit.
        if let virtual = sent.inspection.virtualSize {
            if virtual > config.imageSizeCap {
                throw ImageError.tooLarge("Image exceeds the storage limit: converted to \(target.rawValue) it would be \(virtual) bytes, more than \(config.imageSizeCap).")
            }
            if target == .raw, let quota, virtual > quota.bytes { throw ImageError.tooLarge(quota.message) }
        }
        // The head looked convertible; the whole stream may still say otherwise (then it is stored as sent).
        let converts = target.converts(format)
        let output = converts ? try await converter.convert(source: source, format: format, to: target,
                                                            maxOutputBytes: config.imageSizeCap + (64 << 20)) : source
        defer { try? FileManager.default.removeItem(atPath: output) }
        let writer = try await store.makeWriter(key: key)
        var limits = limits(expected: nil)
        limits.quota = quota
        let ingest: ImageIngest
        do {
            ingest = try ImageIngest(writer: writer, algorithm: config.hashAlgorithm, limits: limits)
        } catch {
            await writer.cancel()
            throw error
        }
        do {
            try await ScratchFile.read(output) { try await ingest.append($0) }
            var result = try await ingest.finish()
            try await writer.commit()
            if !converts { return sent }  // the same bytes, digested again
            result.sourceCompression = sent.sourceCompression
            result.sourceFormat = format
            result.storedFormat = target.rawValue
            return result
        } catch {
            await uncancelled {
                await ingest.abort()
                await writer.cancel()
            }
            throw error
        }
    }

    func limits(expected: Int64?) -> IngestLimits {
        IngestLimits(sizeCap: config.imageSizeCap, expectedSize: expected, maxVirtualSize: config.maxVirtualSize)
    }

    /// Store failures are ours (500/503); everything else a client caused keeps its kind.
    static func clientError(_ error: any Error) -> any Error {
        if error is ImageError { return error }
        if error is CancellationError { return ImageError.badRequest("Upload cancelled.") }
        return storeError(error)
    }

    /// A store that is down or full is a condition the caller can wait out (503 with Retry-After,
    /// 507), not a bug of ours (500): the core's kinds, which every front-end renders.
    public static func storeError(_ error: any Error) -> any Error {
        guard let e = error as? BlobStoreError else { return error }
        switch e.kind {
        case .unavailable: return ImageError(.unavailable, "The image store is unavailable: \(e.message)")
        case .noSpace: return ImageError(.insufficientStorage, "The image store is full: \(e.message)")
        default: return error
        }
    }

    /// Glance's format rules (reference §11.1): the virtual size to record, or 415 naming the rule.
    func decideFormat(_ image: Image, _ result: IngestResult) throws -> Int64? {
        do {
            return try checkDiskFormat(declared: image.diskFormat ?? "raw", containerFormat: image.containerFormat ?? "bare",
                                       inspection: result.inspection)
        } catch {
            let isSafety = result.inspection.safetyFailure != nil || result.inspection.isPolyglot
            if !config.requireFormatMatch && !isSafety {
                logger.warning("disk format mismatch accepted", metadata: ["image": .string(image.id), "why": .string(error.message)])
                return nil
            }
            throw ImageError(.unsupportedMediaType, error.message)
        }
    }

    func facts(_ r: IngestResult, _ virtualSize: Int64?) -> ImageService.DataFacts {
        var facts = ImageService.DataFacts(size: r.size, checksum: r.md5, hashAlgorithm: r.hashAlgorithm.rawValue,
                                           hashValue: r.hashValue, virtualSize: virtualSize)
        facts.sourceCompression = r.sourceCompression?.rawValue
        facts.sourceFormat = r.sourceFormat
        facts.convertedTo = r.storedFormat
        return facts
    }

    // MARK: Download

    public enum Download: Sendable {
        /// The image has no data (queued, uploading, importing…): 204.
        case noData
        /// Bytes `range` of `total`; `partial` when the caller asked for a range.
        case bytes(image: Image, range: Range<Int64>, total: Int64, partial: Bool)
    }

    /// Decides what a download returns. `range` is the parsed single range, if any; unsatisfiable → 416.
    public func prepareDownload(id: String, range: ByteRangeRequest?, by p: Principal) async throws -> Download {
        let image = try await images.imageForDownload(id: id, by: p)
        guard image.status == .active || image.status == .deactivated, let size = image.size else { return .noData }
        guard let range else { return .bytes(image: image, range: 0..<size, total: size, partial: false) }
        guard let r = range.resolve(size: size) else {
            throw ImageError(.rangeNotSatisfiable, "Requested range \(range) not satisfiable for an image of \(size) bytes.")
        }
        return .bytes(image: image, range: r, total: size, partial: true)
    }

    /// The store a download reads from: the first recorded one that is configured; 503 when none is.
    public func storeHolding(_ image: Image) throws -> any BlobStore {
        guard let store = stores.holding(image).first else {
            throw ImageError(.unavailable, "The data of image \(image.id) is in stores not configured here (\(stores.ids(of: image).joined(separator: ","))).")
        }
        return store
    }

    /// Streams the bytes of a prepared download into `sink`.
    public func read(_ image: Image, range: Range<Int64>, receiver: Principal? = nil, into sink: (ByteBuffer) async throws -> Void) async throws {
        if let location = image.locations.first { return try await readLocation(image, location, range: range, into: sink) }
        let store = try storeHolding(image)
        var delivering = false
        var sent: Int64 = 0
        do {
            try await readBytes(image, from: store, range: range) { buffer in
                delivering = true
                try await sink(buffer)
                delivering = false
                sent += Int64(buffer.readableBytes)
                DataMetrics.bytesOut(buffer.readableBytes)
            }
            images.emitSend(image, bytesSent: sent, to: receiver)
        } catch {
            // A client that went away is not the store's fault.
            if !delivering, !(error is ImageError), !(error is CancellationError) { DataMetrics.storeError("read") }
            throw delivering ? error : Self.storeError(error)
        }
    }
}

/// Runs clean-up work to completion even when the calling task was cancelled (a client that went
/// away): a cancelled task would make the catalog or the thread pool refuse the work and leave an
/// image in `saving` until the next restart.
public func uncancelled(_ work: @escaping @Sendable () async -> Void) async {
    await Task { await work() }.value
}

/// Runs `attempt` until it returns without throwing, waiting `first` after the first failure and
/// twice as long after each next one, at most `longest`. Returns the number of attempts. For clean-up
/// that must happen once the catalog or a store is back, for as long as this process lives.
@discardableResult
func retryUntilDone(first: Duration = .milliseconds(500), longest: Duration = .seconds(30),
                    _ attempt: @Sendable () async throws -> Void) async -> Int {
    var wait = first
    var attempts = 0
    while true {
        attempts += 1
        do {
            try await attempt()
            return attempts
        } catch {
            try? await Task.sleep(for: wait)
            wait = min(wait * 2, longest)
        }
    }
}

/// One `Range: bytes=…` specification.
public enum ByteRangeRequest: Sendable, Equatable, CustomStringConvertible {
    case from(Int64, to: Int64?)  // bytes=a-b, bytes=a-
    case suffix(Int64)            // bytes=-n

    /// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges throw 400 (Glance), anything else 416.
    public static func parse(_ header: String) throws -> ByteRangeRequest {
        let h = header.trimmingSpaces
        guard h.lowercased().hasPrefix("bytes=") else {
            throw ImageError(.rangeNotSatisfiable, "Invalid Range header: \(header)")
        }
        let spec = h.dropFirst(6)
        if spec.contains(",") { throw ImageError.badRequest("Multiple ranges are not supported: \(header)") }
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ImageError(.rangeNotSatisfiable, "Invalid Range header: \(header)") }
        let a = parts[0].trimmingSpaces, b = parts[1].trimmingSpaces
        func number(_ s: String) -> Int64? { s.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } && !s.isEmpty ? Int64(s) : nil }
        if a.isEmpty {
            guard let n = number(b), n > 0 else { throw ImageError(.rangeNotSatisfiable, "Invalid Range header: \(header)") }
            return .suffix(n)
        }
        guard let start = number(a) else { throw ImageError(.rangeNotSatisfiable, "Invalid Range header: \(header)") }
        if b.isEmpty { return .from(start, to: nil) }
        guard let end = number(b), end >= start else { throw ImageError(.rangeNotSatisfiable, "Invalid Range header: \(header)") }
        return .from(start, to: end)
    }

    /// Parses the legacy `Content-Range: bytes a-b/*` request header Glance also accepts.
    public static func parseContentRange(_ header: String) throws -> ByteRangeRequest {
        let h = header.trimmingSpaces
        guard h.lowercased().hasPrefix("bytes ") else { throw ImageError(.rangeNotSatisfiable, "Invalid Content-Range: \(header)") }
        let spec = h.dropFirst(6).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        return try parse("bytes=" + spec)
    }

    /// The half-open byte range within an object of `size` bytes; nil when unsatisfiable.
    public func resolve(size: Int64) -> Range<Int64>? {
        switch self {
        case .from(let a, let b):
            guard a < size else { return nil }
            return a..<(min(b ?? (size - 1), size - 1) + 1)
        case .suffix(let n):
            guard size > 0 else { return nil }
            return max(0, size - n)..<size
        }
    }

    public var description: String {
        switch self {
        case .from(let a, let b): "bytes=\(a)-\(b.map(String.init) ?? "")"
        case .suffix(let n): "bytes=-\(n)"
        }
    }
}

extension ImageDataService {
    /// Deletes the image, then its data. An upload or import still running sees the deletion
    /// when it finishes and discards what it wrote (410); a crash in between is cleaned by the scrub.
    public func deleteImage(id: String, by p: Principal) async throws {
        let deleted = try await images.deleteImage(id: id, by: p)
        await removeData(of: id)
        // A resumable upload open on it: its request (if one is writing) is refused at its next checkpoint.
        if let session = deleted.uploadSession, deleted.writerNode == session.writer { await discardBytes(of: session) }
    }

    /// A softly deleted image for good: deleted, then its data removed from every store.
    public func expungeImage(id: String, by p: Principal) async throws {
        _ = try await images.expungeImage(id: id, by: p)
        await removeData(of: id)
    }

    /// Removes the image's copies in some of its stores (at least one stays): recorded first, then
    /// the blobs deleted. `change` records vendor state in the same write.
    public func dropCopies(id: String, stores drop: Set<String>, by p: Principal,
                           _ change: (@Sendable (inout Image) throws -> Void)? = nil) async throws -> Image {
        let image = try await images.forgetStores(id: id, drop, by: p, change)
        for storeId in drop.sorted() {
            guard let store = stores.store(storeId) else { continue }
            do { try await store.delete(key: BlobKey.image(image.id)) } catch {
                DataMetrics.storeError("delete")
                logger.warning("a store's copy was forgotten but could not be removed yet", metadata: ["image": .string(image.id), "store": .string(storeId), "error": "\(error)"])
            }
        }
        return image
    }

    func removeData(of id: String) async {
        let id = id.lowercased()
        await cache?.evict(id, reason: "deleted")
        do {
            for store in stores.all { try await store.delete(key: BlobKey.image(id)) }
            try await blobs.delete(key: BlobKey.staging(id))
        } catch {
            DataMetrics.storeError("delete")
            logger.warning("image deleted but its data could not be removed yet", metadata: ["image": .string(id), "error": "\(error)"])
        }
    }
}
