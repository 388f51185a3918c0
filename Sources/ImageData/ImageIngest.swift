import Foundation
import ImageCore
import NIOCore
import NIOPosix

/// The multihash algorithm recorded as `os_hash_algo` (Glance's `hashing_algorithm`).
public enum HashAlgorithm: String, Sendable, CaseIterable {
    case sha256, sha512
}

/// What the bytes of one upload or import turned out to be.
public struct IngestResult: Sendable, Equatable {
    public var size: Int64
    public var md5: String
    public var hashAlgorithm: HashAlgorithm
    public var hashValue: String
    public var inspection: FormatInspection
    /// Every digest computed (MD5, the multihash, and those the pins asked for), lower-case hex.
    public var digests: [PinnedDigest.Algorithm: String] = [:]
    /// How the sent bytes were compressed (they were decompressed on the way in), nil when they were not.
    public var sourceCompression: SourceCompression? = nil
    /// The format the bytes came in when the ingest converted them (`storedFormat` is what was stored).
    public var sourceFormat: String? = nil
    public var storedFormat: String? = nil
}

/// Limits and expectations for one stream of image bytes.
public struct IngestLimits: Sendable {
    /// Bytes allowed at most (`image_size_cap`); crossing it fails at once with 413.
    public var sizeCap: Int64
    /// Size announced by the client (`x-openstack-image-size`, Content-Length) or the remote server;
    /// more or fewer bytes fail with 400.
    public var expectedSize: Int64?
    public var maxVirtualSize: Int64
    /// The owner's remaining quota for these bytes; crossing it fails at once with 413 and `message`.
    public var quota: QuotaRoom?
    /// Digests the sender pinned: `finish` fails with 400 unless the bytes have every one of them, so
    /// the blob is never committed. An algorithm not computed anyway gets a lane of its own.
    public var pinned: [PinnedDigest] = []

    public init(sizeCap: Int64, expectedSize: Int64? = nil, maxVirtualSize: Int64 = 16 << 40, quota: QuotaRoom? = nil) {
        self.sizeCap = sizeCap; self.expectedSize = expectedSize; self.maxVirtualSize = maxVirtualSize; self.quota = quota
    }
}

/// Where a suspended ingest stopped: bytes seen, the running digests (OpenSSL's saved contexts, keyed
/// by algorithm name) and the format inspector. Encoded (JSON) into the catalog by resumable uploads.
public struct IngestState: Sendable, Codable, Equatable {
    public var received: Int64
    var digests: [String: Data]
    var inspector: FormatInspector

    public static func == (a: IngestState, b: IngestState) -> Bool {
        a.received == b.received && a.digests == b.digests
    }

    /// A state that cannot be continued here (another build's, or missing a digest).
    public struct Refused: Error, CustomStringConvertible {
        public var reason: String
        public var description: String { "the saved upload state cannot be continued: \(reason)" }
    }

    /// What the bytes so far are: the digests finalised from copies of the states, and the inspection.
    public func result(algorithm: HashAlgorithm) throws -> IngestResult {
        var digests: [PinnedDigest.Algorithm: String] = [:]
        for (name, saved) in self.digests {
            guard let a = PinnedDigest.Algorithm(rawValue: name) else { continue }
            digests[a] = try StreamDigest(StreamDigest.Algorithm(a), state: Array(saved)).finalizeHex()
        }
        let multihash: PinnedDigest.Algorithm = algorithm == .sha512 ? .sha512 : .sha256
        guard let md5 = digests[.md5], let hashValue = digests[multihash] else {
            throw Refused(reason: "it has no md5 or \(multihash.rawValue) digest")
        }
        var result = IngestResult(size: received, md5: md5, hashAlgorithm: algorithm, hashValue: hashValue,
                                  inspection: inspector.finish())
        result.digests = digests
        return result
    }
}

public struct QuotaRoom: Sendable {
    public var bytes: Int64
    public var message: String
    public init(bytes: Int64, message: String) { self.bytes = bytes; self.message = message }
}

/// Moves one stream of image bytes into a blob writer while computing MD5, the multihash and the
/// format inspection, in bounded memory.
///
/// Bytes are gathered into batches of `batchSize` and handed to three lanes that run concurrently,
/// each at its own pace: MD5; the multihash; inspection + blob write. Each lane has a short queue
/// (`lanesAhead` batches), so a lane that is momentarily slower does not stall the others and the
/// slowest lane sets the pace; a full queue makes `append` wait, which slows the sender (the HTTP
/// body's back-pressure). Batches are shared between lanes, not copied.
/// Not for concurrent use: one task appends, then finishes or aborts.
public final class ImageIngest: @unchecked Sendable {
    let writer: any BlobWriter
    let algorithm: HashAlgorithm
    let limits: IngestLimits
    let batchSize: Int
    private let queues: [BatchQueue]
    private let md5Lane: Task<StreamDigest, Never>
    private let hashLane: Task<StreamDigest, Never>
    private let writeLane: Task<FormatInspector, any Error>
    /// Digests beyond MD5 and the multihash (SHA-1, pinned algorithms), one lane each.
    private let extraLanes: [(PinnedDigest.Algorithm, Task<StreamDigest, Never>)]
    private var batch: ByteBuffer
    public private(set) var received: Int64 = 0
    private var finished = false
    /// This ingest's share of IngestMemory, given back once the lanes are done.
    private(set) var reserved: Int

    /// `resume`: continue the stream another ingest saved with `suspend()` (its digests, inspection
    /// and byte count), as if this one had seen those bytes.
    public init(writer: any BlobWriter, algorithm: HashAlgorithm, limits: IngestLimits,
                batchSize: Int = 1 << 20, lanesAhead: Int = 3, resume: IngestState? = nil) throws {
        func digest(_ a: PinnedDigest.Algorithm) throws -> StreamDigest {
            guard let resume else { return try StreamDigest(StreamDigest.Algorithm(a)) }
            guard let saved = resume.digests[a.rawValue] else { throw IngestState.Refused(reason: "it has no \(a.rawValue) digest") }
            return try StreamDigest(StreamDigest.Algorithm(a), state: Array(saved))
        }
        let md5 = try digest(.md5)
        let multihash = try digest(algorithm == .sha512 ? .sha512 : .sha256)
        self.writer = writer
        self.algorithm = algorithm
        self.limits = limits
        var extras = Set(limits.pinned.map(\.algorithm))
        extras.remove(.md5)
        extras.remove(algorithm == .sha512 ? .sha512 : .sha256)
        let extraDigests = try extras.sorted().map { ($0, try digest($0)) }
        // Reserved after the last `try`: from here on, deinit gives it back whatever happens.
        let share = IngestMemory.reserve(preferred: batchSize, lanesAhead: lanesAhead)
        self.batchSize = share.batchSize
        self.reserved = share.reserved
        self.batch = ByteBufferAllocator().buffer(capacity: share.batchSize)
        let queues = (0..<(3 + extraDigests.count)).map { _ in BatchQueue(capacity: share.lanesAhead) }
        self.queues = queues
        md5Lane = Task { await Self.hashLane(queues[0], md5) }
        hashLane = Task { await Self.hashLane(queues[1], multihash) }
        extraLanes = extraDigests.enumerated().map { i, pair in
            let queue = queues[3 + i], digest = pair.1
            return (pair.0, Task { await Self.hashLane(queue, digest) })
        }
        let maxVirtualSize = limits.maxVirtualSize
        let startInspector = resume?.inspector ?? FormatInspector(maxVirtualSize: maxVirtualSize)
        writeLane = Task {
            var inspector = startInspector
            do {
                while let b = await queues[2].next() {
                    b.withUnsafeReadableBytes { inspector.feed($0) }
                    try await writer.write(b)
                }
            } catch {
                queues[2].fail(error)
                throw error
            }
            return inspector
        }
        received = resume?.received ?? 0
    }

    /// Threads that only hash. Hashing on the cooperative pool (one thread per core) starved the task
    /// that receives the body: with both threads hashing, reading stopped, the lanes ran dry, and a
    /// 2-core machine sat about a third idle during uploads (perf: 71 % of the server's CPU in
    /// libcrypto, yet well under 2 cores busy).
    static let digestThreads: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: max(4, 2 * System.coreCount))
        pool.start()
        return pool
    }()

    static func hashLane(_ queue: BatchQueue, _ digest: StreamDigest) async -> StreamDigest {
        while let b = await queue.next() {
            do {
                try await digestThreads.runIfActive { b.withUnsafeReadableBytes { digest.update($0) } }
            } catch {
                // The pool only refuses work once shut down, which never happens; hash here then.
                b.withUnsafeReadableBytes { digest.update($0) }
            }
        }
        return digest
    }

    deinit {
        // Dropped without finish or abort (a bug elsewhere): let the lanes end instead of waiting forever.
        struct Dropped: Error {}
        for q in queues { q.fail(Dropped()) }
        releaseMemory()
    }

    private func releaseMemory() {
        IngestMemory.release(reserved)
        reserved = 0
    }

    /// Takes the next bytes of the stream.
    public func append(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        received += Int64(buffer.readableBytes)
        if received > limits.sizeCap {
            throw ImageError.tooLarge("Image exceeds the storage limit: more than \(limits.sizeCap) bytes.")
        }
        if let quota = limits.quota, received > quota.bytes { throw ImageError.tooLarge(quota.message) }
        if let expected = limits.expectedSize, received > expected {
            throw ImageError.badRequest("Image data is larger than the declared size of \(expected) bytes.")
        }
        while buffer.readableBytes > 0 {
            if batch.readableBytes == 0 && buffer.readableBytes >= batchSize {
                // Whole batches of what arrived go on as slices of it: no copy.
                try await submit(buffer.readSlice(length: batchSize)!)
                continue
            }
            let take = min(buffer.readableBytes, batchSize - batch.readableBytes)
            var slice = buffer.readSlice(length: take)!
            batch.writeBuffer(&slice)
            if batch.readableBytes == batchSize {
                let full = batch
                batch = ByteBufferAllocator().buffer(capacity: batchSize)
                try await submit(full)
            }
        }
    }

    private func submit(_ buffer: ByteBuffer) async throws {
        for q in queues { try await q.send(buffer) }
    }

    /// Lets the lanes drain what was appended; returns the inspector and the running digests.
    private func drain() async throws -> (FormatInspector, [PinnedDigest.Algorithm: StreamDigest]) {
        precondition(!finished, "ImageIngest finished twice")
        finished = true
        if batch.readableBytes > 0 {
            let last = batch
            batch = ByteBuffer()
            try await submit(last)
        }
        for q in queues { q.close() }
        let inspector = try await writeLane.value
        var digests: [PinnedDigest.Algorithm: StreamDigest] = [.md5: await md5Lane.value,
                                                                algorithm == .sha512 ? .sha512 : .sha256: await hashLane.value]
        for (name, lane) in extraLanes { digests[name] = await lane.value }
        releaseMemory()
        return (inspector, digests)
    }

    /// Stops here without ending the stream: every byte appended has been handed to the writer, and
    /// the state returned continues the digests and the inspection in a later ingest (`resume`).
    /// The writer is neither committed nor cancelled.
    public func suspend() async throws -> IngestState {
        let (inspector, digests) = try await drain()
        return IngestState(received: received, digests: Dictionary(uniqueKeysWithValues: digests.map { ($0.key.rawValue, Data($0.value.saveState())) }),
                           inspector: inspector)
    }

    /// Ends the stream: lets the lanes drain and returns the digests and the inspection.
    /// The blob is not committed: the caller decides, after checking the result.
    public func finish() async throws -> IngestResult {
        let (inspector, running) = try await drain()
        let digests = running.mapValues { $0.finalizeHex() }
        let md5 = digests[.md5]!, hashValue = digests[algorithm == .sha512 ? .sha512 : .sha256]!
        if let expected = limits.expectedSize, received != expected {
            throw ImageError.badRequest("Image data is \(received) bytes, but \(expected) bytes were declared.")
        }
        if let mismatch = PinnedDigest.mismatch(limits.pinned, computed: digests) {
            throw ImageError.badRequest("Checksum verification failed: \(mismatch).")
        }
        var result = IngestResult(size: received, md5: md5, hashAlgorithm: algorithm,
                                  hashValue: hashValue, inspection: inspector.finish())
        result.digests = digests
        return result
    }

    /// Stops after a failure: drops queued batches and waits for the lanes, so nothing writes after
    /// the caller cancels the blob. Never throws.
    public func abort() async {
        finished = true
        struct Aborted: Error {}
        for q in queues { q.fail(Aborted()) }
        _ = await md5Lane.value
        _ = await hashLane.value
        for (_, lane) in extraLanes { _ = await lane.value }
        _ = try? await writeLane.value
        releaseMemory()
    }
}
