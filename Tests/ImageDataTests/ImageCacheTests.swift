import BlobStoreFile
import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// The node-local cache on a real file store in a scratch directory: fills verified by MD5, block
/// checks that stop a flipped byte before it is sent, LRU eviction, and the index rebuilt at start.
struct ImageCacheTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-cache-\(UUID().uuidString)").path

    func image(_ bytes: [UInt8], md5: String? = nil) -> Image {
        let digest = md5 ?? Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        return Image(id: UUID().uuidString.lowercased(), status: .active, size: Int64(bytes.count), checksum: digest,
                     createdAt: 0, updatedAt: 0)
    }

    func bytes(_ n: Int, seed: UInt8 = 1) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    func cache(max: Int64 = 1 << 30, block: Int = 1000) throws -> ImageCache {
        var options = ImageCache.Options()
        options.maxBytes = max
        options.blockSize = block
        return ImageCache(storage: try FileBlobStore(root: root), options: options)
    }

    /// Feeds `data` to a fill in pieces of `piece` bytes and finishes it.
    @discardableResult
    func fill(_ cache: ImageCache, _ image: Image, _ data: [UInt8], piece: Int = 333) async throws -> Bool {
        let fill = try #require(await cache.beginFill(image))
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + piece)
            await fill.append(ByteBuffer(bytes: data[offset..<end]))
            offset = end
        }
        return await fill.finish()
    }

    /// What a hit delivers for `range`, read back through the verifier in reads of `chunk` bytes.
    func verifiedRead(_ cache: ImageCache, _ entry: ImageCache.Entry, _ range: Range<Int64>, chunk: Int) async throws -> [UInt8] {
        var verifier = CacheBlockVerifier(entry: entry, range: range)
        var out: [UInt8] = []
        try await cache.storage.read(key: ImageCache.dataKey(entry.imageId), range: verifier.span, chunkSize: chunk) { buffer in
            for piece in try verifier.take(buffer) { out += piece.readableBytesView }
        }
        try verifier.finish()
        return out
    }

    @Test func aVerifiedFillIsServedWholeAndInRanges() async throws {
        let cache = try cache()
        let data = bytes(10_500)
        let img = image(data)
        #expect(try await fill(cache, img, data))
        let entry = try #require(await cache.entry(for: img))
        #expect(entry.size == 10_500 && entry.sums.count == 11)
        for chunk in [1000, 7, 4096] {
            #expect(try await verifiedRead(cache, entry, 0..<10_500, chunk: chunk) == data)
            #expect(try await verifiedRead(cache, entry, 999..<1001, chunk: chunk) == Array(data[999..<1001]))
            #expect(try await verifiedRead(cache, entry, 10_499..<10_500, chunk: chunk) == [data[10_499]])
        }
    }

    @Test func aFillWhoseBytesAreNotTheImagesIsNeverCommitted() async throws {
        let cache = try cache()
        let data = bytes(5000)
        let wrongDigest = image(data, md5: String(repeating: "0", count: 32))
        #expect(try await fill(cache, wrongDigest, data) == false)
        #expect(await cache.entry(for: wrongDigest) == nil)
        let short = image(data)
        #expect(try await fill(cache, short, Array(data.prefix(4000))) == false)
        #expect(await cache.entry(for: short) == nil)
        #expect(try await cache.storage.keys(prefix: "").isEmpty)
        // Nothing reserved is left behind: the next fill of the same image works.
        #expect(try await fill(cache, short, data))
    }

    @Test func aFlippedByteStopsTheReadAtItsBlockWithEverythingBeforeItDelivered() async throws {
        let cache = try cache()
        let data = bytes(5000)
        let img = image(data)
        try await fill(cache, img, data)
        let entry = try #require(await cache.entry(for: img))
        // Flip one byte of block 2 (bytes 2000..<3000) in the file.
        let path = root + "/" + ImageCache.dataKey(img.id)
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        file[2345] ^= 0x01
        try file.write(to: URL(fileURLWithPath: path))
        var delivered: [UInt8] = []
        var verifier = CacheBlockVerifier(entry: entry, range: 0..<5000)
        await #expect(throws: CacheCorruption.self) {
            try await cache.storage.read(key: ImageCache.dataKey(img.id), range: verifier.span, chunkSize: 1000) { buffer in
                for piece in try verifier.take(buffer) { delivered += piece.readableBytesView }
            }
        }
        #expect(delivered == Array(data[0..<2000]))
    }

    /// The pipelined read (block N summed while N-1 is sent) delivers the same bytes, in order, and
    /// stops before a damaged block with everything before it delivered.
    @Test func thePipelinedReadDeliversInOrderAndStopsAtADamagedBlock() async throws {
        let cache = try cache()
        let data = bytes(10_500)
        let img = image(data)
        #expect(try await fill(cache, img, data))
        let entry = try #require(await cache.entry(for: img))
        for range: Range<Int64> in [0..<10_500, 999..<1001, 2500..<9000, 10_499..<10_500] {
            var verifier = CacheBlockVerifier(entry: entry, range: range)
            var out: [UInt8] = []
            try await verifier.read(from: cache.storage, key: ImageCache.dataKey(img.id)) { out += $0.readableBytesView }
            #expect(out == Array(data[Int(range.lowerBound)..<Int(range.upperBound)]))
        }
        let path = root + "/" + ImageCache.dataKey(img.id)
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        file[7345] ^= 0x01  // block 7
        try file.write(to: URL(fileURLWithPath: path))
        var delivered: [UInt8] = []
        var verifier = CacheBlockVerifier(entry: entry, range: 0..<10_500)
        await #expect(throws: CacheCorruption.self) {
            try await verifier.read(from: cache.storage, key: ImageCache.dataKey(img.id)) { delivered += $0.readableBytesView }
        }
        #expect(delivered == Array(data[0..<7000]))
    }

    @Test func leastRecentlyUsedEntriesAreEvictedToTheSize() async throws {
        let cache = try cache(max: 25_000)
        let a = bytes(10_000, seed: 1), b = bytes(10_000, seed: 2), c = bytes(10_000, seed: 3)
        let ia = image(a), ib = image(b), ic = image(c)
        try await fill(cache, ia, a)
        try await Task.sleep(for: .milliseconds(5))
        try await fill(cache, ib, b)
        try await Task.sleep(for: .milliseconds(5))
        await cache.recordHit(ia.id)  // a is now more recent than b
        try await fill(cache, ic, c)
        #expect(await cache.entry(for: ia) != nil)
        #expect(await cache.entry(for: ib) == nil)
        #expect(await cache.entry(for: ic) != nil)
        #expect(try await cache.storage.size(key: ImageCache.dataKey(ib.id)) == nil)
        // Larger than the whole cache: not cached, nothing evicted for it.
        let big = bytes(30_000)
        #expect(await cache.beginFill(image(big)) == nil)
        #expect(await cache.cachedEntries().map(\.imageId).sorted() == [ia.id, ic.id].sorted())
    }

    @Test func theIndexIsRebuiltAtStartWithoutDamagedEntries() async throws {
        let first = try cache()
        let a = bytes(3000, seed: 4), b = bytes(3000, seed: 5)
        let ia = image(a), ib = image(b)
        try await fill(first, ia, a)
        try await fill(first, ib, b)
        // A crash between the two parts of b: its bytes are gone.
        try FileManager.default.removeItem(atPath: root + "/" + ImageCache.dataKey(ib.id))
        let second = try cache()
        #expect(try await second.load() == 1)
        #expect(await second.entry(for: ia)?.checksum == ia.checksum)
        #expect(await second.entry(for: ib) == nil)
        #expect(try await second.storage.keys(prefix: "sums/") == [ImageCache.sumsKey(ia.id)])
        // An entry for other bytes than the image now has (another checksum) is dropped, not served.
        var changed = ia
        changed.checksum = String(repeating: "f", count: 32)
        #expect(await second.entry(for: changed) == nil)
        #expect(await second.cachedEntries().isEmpty)
    }

    @Test func theClearTargetHeaderTakesGlancesValues() throws {
        #expect(try CacheClearTarget(header: nil) == .both)
        #expect(try CacheClearTarget(header: "") == .both)
        #expect(try CacheClearTarget(header: "Cache") == .cache)
        #expect(try CacheClearTarget(header: "queue") == .queue)
        #expect(throws: ImageError.self) { try CacheClearTarget(header: "invalid") }
    }
}

/// The download path through the cache (`ImageDataService.read`): a whole download fills the entry, the next
/// is served from it, a flipped byte is caught and the rest comes from the store, deleting evicts.
@Suite struct CachedDownloadTests {
    @Test func downloadsFillHitAndSurviveAFlippedByte() async throws {
        let node = try Node()
        defer { node.remove() }
        var data = ImageDataService(images: node.service, blobs: node.blobs)
        var options = ImageCache.Options()
        options.blockSize = 4096
        options.fillingStores = [node.blobs.id]
        let cache = ImageCache(storage: try FileBlobStore(root: node.dir + "/cache"), options: options)
        data.cache = cache
        let bytes = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let now = Timestamp.now()
        let image = Image(id: ImageID.generate(), status: .active, owner: "p", containerFormat: "bare", diskFormat: "raw",
                          size: Int64(bytes.count), checksum: Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined(),
                          createdAt: now, updatedAt: now)
        try await node.catalog.insertImage(image)
        try await node.put(BlobKey.image(image.id), bytes)
        func read(_ range: Range<Int64>) async throws -> [UInt8] {
            var out: [UInt8] = []
            try await data.read(image, range: range) { out += $0.readableBytesView }
            return out
        }
        #expect(await cache.entry(for: image) == nil)
        #expect(try await read(0..<50_000) == bytes)           // from the store, filling the entry
        let entry = try #require(await cache.entry(for: image))
        #expect(entry.sums.count == 13)
        // The store's copy changed behind our back: a hit must not read it.
        try await node.put(BlobKey.image(image.id), bytes.map { $0 ^ 0xff })
        #expect(try await read(0..<50_000) == bytes)
        #expect(try await read(4000..<9000) == Array(bytes[4000..<9000]))
        #expect(await cache.entry(for: image)?.hits == 2)
        try await node.put(BlobKey.image(image.id), bytes)
        // One byte flipped in block 5 of the entry: blocks 0-4 come from it, the rest from the store.
        let path = node.dir + "/cache/" + ImageCache.dataKey(image.id)
        var file = try Data(contentsOf: URL(fileURLWithPath: path))
        file[5 * 4096 + 17] ^= 0x20
        try file.write(to: URL(fileURLWithPath: path))
        #expect(try await read(0..<50_000) == bytes)
        #expect(await cache.entry(for: image) == nil)
        #expect(!FileManager.default.fileExists(atPath: path))
        // Filled again by the next download; deleting the image evicts it.
        #expect(try await read(0..<50_000) == bytes)
        #expect(await cache.entry(for: image) != nil)
        try await data.deleteImage(id: image.id, by: node.admin)
        #expect(await cache.cachedEntries().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
