import ImageCore
import NIOCore

/// An `ImageIngest` that first looks at the stream's first bytes: gzip, xz, zstd or bzip2 data is
/// decompressed on the way in, so the inspector, the digests, the size and the blob are those of the
/// image itself, while the limits on what was *sent* stay with the sent bytes: the declared size
/// (`expectedSize`) and every pinned digest are checked against the compressed stream. Anything
/// else passes through unchanged. The size cap and quota bound the decompressed bytes, so a
/// decompression bomb stops at the same 413 as an oversized upload.
///
/// Compressed bytes are gathered into 1 MiB batches; a decoder lane decompresses them on the digest
/// threads (never on the cooperative pool) into 1 MiB chunks, each appended to the inner ingest before
/// the next is made, so memory stays bounded whatever the ratio. Pinned digests of the sent bytes
/// run in lanes of their own. Not for concurrent use: one task appends, then finishes or aborts.
final class DecompressingIngest: @unchecked Sendable {
    private let writer: any BlobWriter
    private let algorithm: HashAlgorithm
    private let limits: IngestLimits
    private let batchSize: Int
    private var head = ByteBuffer()
    private var plain: ImageIngest?
    private var compressed: Compressed?
    private var finished = false

    /// `decompress` false: a plain `ImageIngest`, whatever the bytes are.
    init(writer: any BlobWriter, algorithm: HashAlgorithm, limits: IngestLimits, decompress: Bool = true,
         batchSize: Int = 1 << 20) throws {
        self.writer = writer; self.algorithm = algorithm; self.limits = limits; self.batchSize = batchSize
        if !decompress { plain = try ImageIngest(writer: writer, algorithm: algorithm, limits: limits, batchSize: batchSize) }
    }

    func append(_ buffer: ByteBuffer) async throws {
        if let plain { return try await plain.append(buffer) }
        if let compressed { return try await compressed.append(buffer) }
        var buffer = buffer
        head.writeBuffer(&buffer)
        if head.readableBytes >= SourceCompression.magicLength { try await start() }
    }

    /// Decides from the first bytes (or all of them, when fewer) and sends them on.
    private func start() async throws {
        let first = head
        head = ByteBuffer()
        if let kind = SourceCompression.detect(first.readableBytesView) {
            let c = try Compressed(kind, writer: writer, algorithm: algorithm, limits: limits, batchSize: batchSize)
            compressed = c
            try await c.append(first)
        } else {
            let p = try ImageIngest(writer: writer, algorithm: algorithm, limits: limits, batchSize: batchSize)
            plain = p
            try await p.append(first)
        }
    }

    func finish() async throws -> IngestResult {
        precondition(!finished, "DecompressingIngest finished twice")
        finished = true
        if plain == nil && compressed == nil { try await start() }
        if let compressed { return try await compressed.finish() }
        return try await plain!.finish()
    }

    func abort() async {
        finished = true
        await plain?.abort()
        await compressed?.abort()
    }

    /// The path of a compressed stream.
    private final class Compressed: @unchecked Sendable {
        let kind: SourceCompression
        let limits: IngestLimits
        let batchSize: Int
        let inner: ImageIngest
        let decoder: StreamDecoder
        let decodeQueue: BatchQueue
        let decodeLane: Task<Void, any Error>
        let pinQueues: [BatchQueue]
        let pinLanes: [(PinnedDigest.Algorithm, Task<String, Never>)]
        var batch: ByteBuffer
        var received: Int64 = 0

        init(_ kind: SourceCompression, writer: any BlobWriter, algorithm: HashAlgorithm, limits: IngestLimits,
             batchSize: Int) throws {
            self.kind = kind
            self.limits = limits
            self.batchSize = batchSize
            // The stored (decompressed) bytes: same cap, quota and virtual-size rule; the declared size
            // and the pins are the sent bytes' and are checked here.
            var innerLimits = limits
            innerLimits.expectedSize = nil
            innerLimits.pinned = []
            let inner = try ImageIngest(writer: writer, algorithm: algorithm, limits: innerLimits, batchSize: batchSize)
            self.inner = inner
            let decoder = try StreamDecoder(kind, chunkSize: batchSize)
            self.decoder = decoder
            batch = ByteBufferAllocator().buffer(capacity: batchSize)
            let pins = try Set(limits.pinned.map(\.algorithm)).sorted().map { ($0, try StreamDigest(StreamDigest.Algorithm($0))) }
            let queues = pins.map { _ in BatchQueue(capacity: 3) }
            pinQueues = queues
            pinLanes = zip(pins, queues).map { pin, queue in
                let digest = pin.1
                return (pin.0, Task { await ImageIngest.hashLane(queue, digest).finalizeHex() })
            }
            let queue = BatchQueue(capacity: 2)
            decodeQueue = queue
            decodeLane = Task {
                do {
                    // The next chunk is decoded while the last one is handed on: decoding (one core) and the
                    // hand-off to the digest and write lanes overlap instead of taking turns.
                    @Sendable func decodeNext() -> Task<ByteBuffer?, any Error> {
                        Task { try await ImageIngest.digestThreads.runIfActive { try decoder.drain() } }
                    }
                    while let b = await queue.next() {
                        decoder.feed(b)
                        var next = decodeNext()
                        while let out = try await next.value {
                            try Task.checkCancellation()  // aborted: a bomb's next gigabytes are not worth making
                            next = decodeNext()
                            do {
                                try await inner.append(out)
                            } catch {
                                _ = try? await next.value  // the decoder is not left in use
                                throw error
                            }
                        }
                    }
                } catch {
                    queue.fail(error)
                    throw error
                }
            }
        }

        func append(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            received += Int64(buffer.readableBytes)
            // Sent bytes are bounded too: a stream of empty members would otherwise never end.
            if received > limits.sizeCap {
                throw ImageError.tooLarge("Image exceeds the storage limit: more than \(limits.sizeCap) bytes.")
            }
            if let expected = limits.expectedSize, received > expected {
                throw ImageError.badRequest("Image data is larger than the declared size of \(expected) bytes.")
            }
            batch.writeBuffer(&buffer)
            if batch.readableBytes >= batchSize { try await submit() }
        }

        private func submit() async throws {
            let full = batch
            batch = ByteBufferAllocator().buffer(capacity: batchSize)
            for q in pinQueues { try await q.send(full) }
            try await decodeQueue.send(full)
        }

        func finish() async throws -> IngestResult {
            if batch.readableBytes > 0 { try await submit() }
            for q in pinQueues { q.close() }
            decodeQueue.close()
            try await decodeLane.value
            let decoder = self.decoder
            while let out = try await ImageIngest.digestThreads.runIfActive({ try decoder.finishChunk() }) {
                try await inner.append(out)
            }
            var result = try await inner.finish()
            var sent: [PinnedDigest.Algorithm: String] = [:]
            for (name, lane) in pinLanes { sent[name] = await lane.value }
            if let expected = limits.expectedSize, received != expected {
                throw ImageError.badRequest("Image data is \(received) bytes, but \(expected) bytes were declared.")
            }
            if let mismatch = PinnedDigest.mismatch(limits.pinned, computed: sent) {
                throw ImageError.badRequest("Checksum verification failed: \(mismatch) (of the \(kind.rawValue) data as sent).")
            }
            result.sourceCompression = kind
            return result
        }

        func abort() async {
            struct Aborted: Error {}
            decodeQueue.fail(Aborted())
            decodeLane.cancel()
            for q in pinQueues { q.fail(Aborted()) }
            _ = try? await decodeLane.value
            for (_, lane) in pinLanes { _ = await lane.value }
            await inner.abort()
        }
    }
}
