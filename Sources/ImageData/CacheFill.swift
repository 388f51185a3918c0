import CDigests
import ImageCore
import NIOCore

/// One cache entry being written from an image's bytes as they stream (a download, or the prefetch
/// of a queued image). Fed by one task in order. Nothing it does fails the stream it copies: a
/// write error only abandons the entry. The entry is committed only when the size and the MD5
/// match the image's, so the cache never holds bytes other than the image's.
final class CacheFill: @unchecked Sendable {
    let cache: ImageCache
    let imageId: String
    let size: Int64
    let md5: String
    let blockSize: Int
    let writer: any BlobWriter
    let digest: StreamDigest
    var sums = CacheBlockSums(blockSize: 1)
    var written: Int64 = 0
    var failure: String?
    var closed = false

    init(cache: ImageCache, imageId: String, size: Int64, md5: String, blockSize: Int, writer: any BlobWriter) throws {
        self.cache = cache; self.imageId = imageId; self.size = size; self.md5 = md5
        self.blockSize = blockSize; self.writer = writer
        digest = try StreamDigest(.md5)
        sums = CacheBlockSums(blockSize: blockSize)
    }

    /// Copies the next bytes of the image into the entry.
    func append(_ buffer: ByteBuffer) async {
        guard failure == nil, !closed else { return }
        written += Int64(buffer.readableBytes)
        guard written <= size else { failure = "longer than the image"; return }
        buffer.withUnsafeReadableBytes { digest.update($0) }
        sums.add(buffer)
        do { try await writer.write(buffer) } catch { failure = "write: \(error)" }
    }

    /// Commits the entry when everything matched; otherwise discards it. Returns whether it was committed.
    @discardableResult
    func finish() async -> Bool {
        guard !closed else { return false }
        closed = true
        if failure == nil, written != size { failure = "\(written) bytes of \(size)" }
        if failure == nil {
            let got = digest.finalizeHex()
            if got != md5 { failure = "MD5 \(got), the image's is \(md5)" }
        }
        if let failure {
            await discard(failure)
            return false
        }
        let record = ImageCache.Record(image: imageId, size: size, md5: md5, block: blockSize, sums: sums.finish())
        do {
            try await cache.commit(record) { [writer] in try await writer.commit() }
            return true
        } catch {
            await discard("commit: \(error)")
            return false
        }
    }

    /// Abandons the entry (the stream failed or the client went away).
    func cancel() async {
        guard !closed else { return }
        closed = true
        await writer.cancel()
        await cache.abandonFill(imageId)
    }

    func discard(_ why: String) async {
        await writer.cancel()
        await cache.abandonFill(imageId)
        CacheMetrics.fillFailed(why.hasPrefix("MD5") ? "digest" : "io")
        cache.logger.warning("cache entry not committed", metadata: ["image": .string(imageId), "why": .string(why)])
    }
}

/// The checksum (`imaged_block_sum`: three CRC-32C lanes) of each `blockSize` bytes of a stream,
/// whatever the sizes of the pieces it comes in (a piece that is not a whole block is copied once).
struct CacheBlockSums {
    let blockSize: Int
    var sums: [UInt32] = []
    var pending = ByteBuffer()

    init(blockSize: Int) { self.blockSize = blockSize }

    mutating func add(_ buffer: ByteBuffer) {
        var buffer = buffer
        while buffer.readableBytes > 0 {
            if pending.readableBytes == 0, buffer.readableBytes >= blockSize {
                sums.append(Self.sum(buffer.readSlice(length: blockSize)!))
                continue
            }
            var piece = buffer.readSlice(length: min(buffer.readableBytes, blockSize - pending.readableBytes))!
            pending.writeBuffer(&piece)
            if pending.readableBytes == blockSize {
                sums.append(Self.sum(pending))
                pending.clear()
            }
        }
    }

    mutating func finish() -> [UInt32] {
        if pending.readableBytes > 0 { sums.append(Self.sum(pending)); pending.clear() }
        return sums
    }

    static func sum(_ buffer: ByteBuffer) -> UInt32 {
        buffer.withUnsafeReadableBytes { imaged_block_sum($0.baseAddress, $0.count) }
    }
}

/// A cache entry's bytes failed their check.
struct CacheCorruption: Error, CustomStringConvertible {
    let description: String
}

/// Checks a cache hit block by block before any of its bytes go out: reads start and end on block
/// boundaries, each whole block is compared with its recorded CRC-32C, and only then is the part of
/// it inside the requested range handed on. A block that fails throws `CacheCorruption` with
/// everything before it already delivered, so the caller can take the rest from the store.
struct CacheBlockVerifier {
    let entry: ImageCache.Entry
    let range: Range<Int64>
    /// The block-aligned span to read from the entry.
    let span: Range<Int64>
    var blockStart: Int64
    var pending = ByteBuffer()

    init(entry: ImageCache.Entry, range: Range<Int64>) {
        self.entry = entry; self.range = range
        let b = Int64(entry.blockSize)
        let start = range.lowerBound / b * b
        span = start..<min(entry.size, (range.upperBound + b - 1) / b * b)
        blockStart = start
    }

    /// Takes the next bytes read from the entry; returns the verified bytes of the range they complete.
    mutating func take(_ buffer: ByteBuffer) throws -> [ByteBuffer] {
        try Self.verify(plan(buffer))
    }

    /// A whole block read from the entry, with what it must sum to and the part of it in the range.
    struct Block: Sendable {
        let bytes: ByteBuffer
        let index: Int
        let expected: UInt32?
        let start: Int64
        let inRange: Range<Int>
    }

    /// The bookkeeping half of `take`: cuts the bytes into whole blocks (copying only a block that
    /// straddles two reads) and pairs each with its recorded sum; checks nothing yet.
    mutating func plan(_ buffer: ByteBuffer) throws -> [Block] {
        var out: [Block] = []
        var buffer = buffer
        while buffer.readableBytes > 0 {
            guard blockStart < span.upperBound else { throw CacheCorruption(description: "more bytes than the entry holds") }
            let blockLength = Int(min(Int64(entry.blockSize), entry.size - blockStart))
            let block: ByteBuffer
            if pending.readableBytes == 0, buffer.readableBytes >= blockLength {
                block = buffer.readSlice(length: blockLength)!  // the usual case: reads are whole blocks
            } else {
                var piece = buffer.readSlice(length: min(buffer.readableBytes, blockLength - pending.readableBytes))!
                pending.writeBuffer(&piece)
                guard pending.readableBytes == blockLength else { continue }
                block = pending
                pending = ByteBuffer()
            }
            let index = Int(blockStart / Int64(entry.blockSize))
            let lo = max(range.lowerBound, blockStart) - blockStart
            let hi = min(range.upperBound, blockStart + Int64(blockLength)) - blockStart
            out.append(Block(bytes: block, index: index, expected: index < entry.sums.count ? entry.sums[index] : nil,
                             start: blockStart, inRange: Int(lo)..<Int(max(lo, hi))))
            blockStart += Int64(blockLength)
        }
        return out
    }

    /// The checking half: each block's sum against its record, then the parts inside the range.
    static func verify(_ blocks: [Block]) throws -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        for block in blocks {
            guard let expected = block.expected, CacheBlockSums.sum(block.bytes) == expected else {
                throw CacheCorruption(description: "block \(block.index) (bytes \(block.start)..<\(block.start + Int64(block.bytes.readableBytes))) does not match its checksum")
            }
            if !block.inRange.isEmpty {
                out.append(block.bytes.getSlice(at: block.bytes.readerIndex + block.inRange.lowerBound, length: block.inRange.count)!)
            }
        }
        return out
    }

    /// Reads the entry's span from `storage` and hands on its verified bytes, in order. Block N is
    /// summed on another thread while block N-1 is being sent (and the store reads N+1 ahead), so the
    /// check adds little to a download's time; nothing is sent before its block passed.
    mutating func read(from storage: any BlobStore, key: String, into sink: (ByteBuffer) async throws -> Void) async throws {
        var checking: Task<[ByteBuffer], any Error>?
        defer { checking?.cancel() }
        try await storage.read(key: key, range: span, chunkSize: entry.blockSize) { buffer in
            let blocks = try plan(buffer)
            let previous = checking
            checking = Task.detached { try Self.verify(blocks) }
            if let previous {
                for piece in try await previous.value { try await sink(piece) }
            }
        }
        if let last = checking {
            checking = nil
            for piece in try await last.value { try await sink(piece) }
        }
        try finish()
    }

    /// Throws when the entry ended before the span did.
    func finish() throws {
        guard blockStart == span.upperBound, pending.readableBytes == 0 else {
            throw CacheCorruption(description: "the entry ends at \(blockStart + Int64(pending.readableBytes)), before \(span.upperBound)")
        }
    }
}
