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
            // Deeper lanes than a plain upload's: decoded bytes come in bursts (4 MiB outputs, whole xz blocks).
            let inner = try ImageIngest(writer: writer, algorithm: algorithm, limits: innerLimits, batchSize: batchSize,
                                        lanesAhead: 8)
            self.inner = inner
            // 4 MiB outputs: fewer hops to the decoding thread.
            let decoder = try StreamDecoder(kind, chunkSize: 4 * batchSize)
            self.decoder = decoder
            batch = ByteBufferAllocator().buffer(capacity: batchSize)
            let pins = try Set(limits.pinned.map(\.algorithm)).sorted().map { ($0, try StreamDigest(StreamDigest.Algorithm($0))) }
            let queues = pins.map { _ in BatchQueue(capacity: 3) }
            pinQueues = queues
            pinLanes = zip(pins, queues).map { pin, queue in
                let digest = pin.1
                return (pin.0, Task { await ImageIngest.hashLane(queue, digest).finalizeHex() })
            }
            let queue = BatchQueue(capacity: 4)
            decodeQueue = queue
            // Two stages. The pump gives the decoder all the input there is and queues its output; the
            // hand-off passes that output to the digest and write lanes. The pump never waits on a hand-off:
            // liblzma's threaded decoder gives its workers new blocks only inside a decode call, so a decode
            // loop that paused for every hand-off left them idle (about a third of the time on 2 cores).
            let outputs = BatchQueue(capacity: 4)
            decodeLane = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            try await Self.pump(decoder, from: queue, to: outputs)
                            outputs.close()
                        } catch {
                            outputs.fail(error)
                            queue.fail(error)
                            throw error
                        }
                    }
                    group.addTask {
                        do {
                            while let out = await outputs.next() {
                                try Task.checkCancellation()  // aborted: a bomb's next gigabytes are not worth making
                                try await inner.append(out)
                            }
                        } catch {
                            outputs.fail(error)
                            queue.fail(error)
                            throw error
                        }
                    }
                    // The first error that is not a stage stopping because the other one failed.
                    var failure: (any Error)?
                    while true {
                        do {
                            guard try await group.next() != nil else { break }
                        } catch {
                            if failure == nil || failure is CancellationError { failure = error }
                        }
                    }
                    if let failure { throw failure }
                }
            }
        }

        /// Feeds `decoder` from `input` and queues what it makes on `output`, to the end of the stream.
        static func pump(_ decoder: StreamDecoder, from input: BatchQueue, to output: BatchQueue) async throws {
            var inputEnded = false
            while true {
                if !inputEnded {
                    // All that is queued now, up to what the decoder should hold; wait only when it has none.
                    if decoder.pendingInput == 0 {
                        if let b = await input.next() { decoder.feed(b) } else { inputEnded = true }
                    }
                    while !inputEnded, decoder.pendingInput < StreamDecoder.inputAhead, let item = input.poll() {
                        if let b = item { decoder.feed(b) } else { inputEnded = true }
                    }
                    // A failed queue is no end of the stream: the other stage stopped.
                    if inputEnded && input.hasFailed { throw CancellationError() }
                }
                let ended = inputEnded
                let out = try await ImageIngest.digestThreads.runIfActive { ended ? try decoder.finishChunk() : try decoder.drain() }
                if let out {
                    try await output.send(out)
                } else if ended {
                    return
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
            try await decodeLane.value  // the pump ends the stream (`finishChunk`) once the input is closed
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
