import Crypto
import ImageCore
import NIOCore

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
}

/// Limits and expectations for one stream of image bytes.
public struct IngestLimits: Sendable {
    /// Bytes allowed at most (`image_size_cap`); crossing it fails at once with 413.
    public var sizeCap: Int64
    /// Size announced by the client (`x-openstack-image-size`, Content-Length) or the remote server;
    /// more or fewer bytes fail with 400.
    public var expectedSize: Int64?
    public var maxVirtualSize: Int64

    public init(sizeCap: Int64, expectedSize: Int64? = nil, maxVirtualSize: Int64 = 16 << 40) {
        self.sizeCap = sizeCap; self.expectedSize = expectedSize; self.maxVirtualSize = maxVirtualSize
    }
}

/// Moves one stream of image bytes into a blob writer while computing MD5, the multihash and the
/// format inspection, without ever holding more than two batches in memory.
///
/// Bytes are gathered into batches of `batchSize`. Each full batch is processed in three
/// concurrent lanes (MD5; the multihash; inspection + blob write), so the slowest lane sets the
/// pace, and the next batch is gathered from the network while the previous one is processed.
/// Not for concurrent use: one task appends, then finishes or aborts.
public final class ImageIngest: @unchecked Sendable {
    // Lanes are touched by at most one batch job at a time: each job awaits the previous one first.
    final class Lanes: @unchecked Sendable {
        var md5 = Insecure.MD5()
        var sha256: SHA256? = nil
        var sha512: SHA512? = nil
        var inspector: FormatInspector
        init(_ algorithm: HashAlgorithm, maxVirtualSize: Int64) {
            switch algorithm {
            case .sha256: sha256 = SHA256()
            case .sha512: sha512 = SHA512()
            }
            inspector = FormatInspector(maxVirtualSize: maxVirtualSize)
        }
    }

    let writer: any BlobWriter
    let algorithm: HashAlgorithm
    let limits: IngestLimits
    let batchSize: Int
    let lanes: Lanes
    private var batch: ByteBuffer
    private var pending: Task<Void, any Error>?
    public private(set) var received: Int64 = 0
    private var finished = false

    public init(writer: any BlobWriter, algorithm: HashAlgorithm, limits: IngestLimits, batchSize: Int = 1 << 20) {
        self.writer = writer
        self.algorithm = algorithm
        self.limits = limits
        self.batchSize = batchSize
        self.lanes = Lanes(algorithm, maxVirtualSize: limits.maxVirtualSize)
        self.batch = ByteBufferAllocator().buffer(capacity: batchSize)
    }

    /// Takes the next bytes of the stream.
    public func append(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        received += Int64(buffer.readableBytes)
        if received > limits.sizeCap {
            throw ImageError.tooLarge("Image exceeds the storage limit: more than \(limits.sizeCap) bytes.")
        }
        if let expected = limits.expectedSize, received > expected {
            throw ImageError.badRequest("Image data is larger than the declared size of \(expected) bytes.")
        }
        while buffer.readableBytes > 0 {
            let take = min(buffer.readableBytes, batchSize - batch.readableBytes)
            if take == buffer.readableBytes && batch.readableBytes == 0 && take == batchSize {
                // A whole batch arrived at once: no copy.
                try await submit(buffer)
                return
            }
            var slice = buffer.readSlice(length: take)!
            batch.writeBuffer(&slice)
            if batch.readableBytes == batchSize {
                let full = batch
                batch = ByteBufferAllocator().buffer(capacity: batchSize)
                try await submit(full)
            }
        }
    }

    /// Processes `buffer` once the previous batch is done, without waiting for this one.
    private func submit(_ buffer: ByteBuffer) async throws {
        if let previous = pending {
            pending = nil
            try await previous.value
        }
        let lanes = self.lanes, writer = self.writer
        pending = Task { try await Self.process(buffer, lanes: lanes, writer: writer) }
    }

    static func process(_ buffer: ByteBuffer, lanes: Lanes, writer: any BlobWriter) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                buffer.withUnsafeReadableBytes { lanes.md5.update(bufferPointer: $0) }
            }
            group.addTask {
                buffer.withUnsafeReadableBytes { bytes in
                    lanes.sha512?.update(bufferPointer: bytes)
                    lanes.sha256?.update(bufferPointer: bytes)
                }
            }
            buffer.withUnsafeReadableBytes { lanes.inspector.feed($0) }
            try await writer.write(buffer)
            try await group.waitForAll()
        }
    }

    /// Ends the stream: processes what is left and returns the digests and the inspection.
    /// The blob is not committed: the caller decides, after checking the result.
    public func finish() async throws -> IngestResult {
        precondition(!finished, "ImageIngest finished twice")
        finished = true
        if batch.readableBytes > 0 {
            let last = batch
            batch = ByteBuffer()
            try await submit(last)
        }
        if let previous = pending {
            pending = nil
            try await previous.value
        }
        if let expected = limits.expectedSize, received != expected {
            throw ImageError.badRequest("Image data is \(received) bytes, but \(expected) bytes were declared.")
        }
        let hashValue: String
        if let h = lanes.sha512 { hashValue = Self.hex(h.finalize()) } else { hashValue = Self.hex(lanes.sha256!.finalize()) }
        return IngestResult(size: received, md5: Self.hex(lanes.md5.finalize()), hashAlgorithm: algorithm,
                            hashValue: hashValue, inspection: lanes.inspector.finish())
    }

    /// Stops after a failure: waits for the batch in flight so nothing writes after the caller
    /// cancels the blob. Never throws.
    public func abort() async {
        finished = true
        if let previous = pending {
            pending = nil
            _ = try? await previous.value
        }
    }

    static func hex(_ digest: some Digest) -> String {
        let table: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(128)
        digest.withUnsafeBytes { bytes in
            for b in bytes {
                out.append(table[Int(b >> 4)])
                out.append(table[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
