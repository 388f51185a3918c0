import BlobStoreFile
import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

func pseudoRandom(_ count: Int, seed: UInt64 = 42) -> [UInt8] {
    var x = seed | 1
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        out[i] = UInt8(truncatingIfNeeded: x)
    }
    return out
}

func hex(_ d: some Sequence<UInt8>) -> String { d.map { String(format: "%02x", $0) }.joined() }

func temporaryDirectory(_ tag: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)").path
}

@Suite struct IngestTests {
    /// Feeds `data` in pieces of the given sizes (cycled) and returns the result and the committed bytes.
    func ingest(_ data: [UInt8], pieces: [Int], algorithm: HashAlgorithm = .sha512, batch: Int = 1 << 16,
                limits: IngestLimits = .init(sizeCap: 1 << 40)) async throws -> (IngestResult, [UInt8]) {
        let dir = temporaryDirectory("ingest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        let writer = try await store.makeWriter(key: "images/x")
        let ingest = try ImageIngest(writer: writer, algorithm: algorithm, limits: limits, batchSize: batch)
        var i = 0, k = 0
        do {
            while i < data.count {
                let n = min(pieces[k % pieces.count], data.count - i)
                try await ingest.append(ByteBuffer(bytes: data[i..<i + n]))
                i += n; k += 1
            }
            let result = try await ingest.finish()
            try await writer.commit()
            var stored: [UInt8] = []
            try await store.read(key: "images/x", range: nil, chunkSize: 1 << 20) { stored += Array($0.readableBytesView) }
            return (result, stored)
        } catch {
            await ingest.abort()
            await writer.cancel()
            #expect(try await store.removeLeftovers() == 0)
            #expect(try await store.size(key: "images/x") == nil)
            throw error
        }
    }

    /// SHA-1 only when pinned (an IMGAPI manifest's files[0].sha1), in its own lane, equal to a
    /// one-shot hash however the bytes arrive.
    @Test(arguments: [[1 << 16], [7, 65_537, 300]])
    func sha1OnlyWhenPinned(pieces: [Int]) async throws {
        let data = pseudoRandom(333_333, seed: 9)
        var limits = IngestLimits(sizeCap: 1 << 40)
        let (plain, _) = try await ingest(data, pieces: pieces, limits: limits)
        #expect(plain.digests[.sha1] == nil)
        limits.pinned = [try PinnedDigest(algorithm: .sha1, hex: hex(Insecure.SHA1.hash(data: data)))]
        let (r, stored) = try await ingest(data, pieces: pieces, limits: limits)
        #expect(stored == data)
        #expect(r.digests[.sha1] == hex(Insecure.SHA1.hash(data: data)))
        #expect(r.md5 == hex(Insecure.MD5.hash(data: data)) && r.hashValue == plain.hashValue)
    }

    @Test(arguments: [[1 << 16], [1], [7, 65_537, 300], [1 << 20], [100_000, 1]])
    func digestsMatchOneShotHashes(pieces: [Int]) async throws {
        let data = pseudoRandom(pieces == [1] ? 70_001 : 1_000_003)
        let (r, stored) = try await ingest(data, pieces: pieces)
        #expect(stored == data)
        #expect(r.size == Int64(data.count))
        #expect(r.md5 == hex(Insecure.MD5.hash(data: data)))
        #expect(r.hashAlgorithm == .sha512)
        #expect(r.hashValue == hex(SHA512.hash(data: data)))
    }

    @Test func sha256WhenConfigured() async throws {
        let data = pseudoRandom(200_000, seed: 9)
        let (r, _) = try await ingest(data, pieces: [4096], algorithm: .sha256)
        #expect(r.hashValue == hex(SHA256.hash(data: data)))
        #expect(r.md5 == hex(Insecure.MD5.hash(data: data)))
    }

    @Test func emptyStream() async throws {
        let (r, stored) = try await ingest([], pieces: [1])
        #expect(stored.isEmpty && r.size == 0)
        #expect(r.md5 == "d41d8cd98f00b204e9800998ecf8427e")
    }

    @Test func sizeCapFailsAsSoonAsCrossedWith413() async throws {
        await #expect { _ = try await ingest(pseudoRandom(5000), pieces: [1000], limits: .init(sizeCap: 4096)) } throws: { e in
            (e as? ImageError)?.kind == .payloadTooLarge
        }
    }

    @Test func declaredSizeMismatchIs400() async throws {
        for (declared, actual) in [(Int64(1000), 999), (1000, 1001)] {
            await #expect { _ = try await ingest(pseudoRandom(actual), pieces: [300], limits: .init(sizeCap: 1 << 30, expectedSize: declared)) } throws: { e in
                (e as? ImageError)?.kind == .badRequest && "\(e)".contains("declared")
            }
        }
    }

    @Test func writerFailureSurfacesAndNothingIsKept() async throws {
        struct Boom: Error {}
        final class FailingWriter: BlobWriter, @unchecked Sendable {
            var writes = 0
            func write(_ buffer: ByteBuffer) async throws { writes += 1; if writes == 2 { throw Boom() } }
            func commit() async throws {}
            func cancel() async {}
        }
        let ingest = try ImageIngest(writer: FailingWriter(), algorithm: .sha512, limits: .init(sizeCap: 1 << 30), batchSize: 1000)
        await #expect(throws: Boom.self) {
            for _ in 0..<10 { try await ingest.append(ByteBuffer(bytes: pseudoRandom(1000))) }
            _ = try await ingest.finish()
        }
        await ingest.abort()
    }
}

@Suite struct RangeTests {
    @Test func parsesAndResolvesGlanceRanges() throws {
        let size: Int64 = 1000
        let cases: [(String, Range<Int64>?)] = [
            ("bytes=0-99", 0..<100), ("bytes=100-", 100..<1000), ("bytes=-10", 990..<1000),
            ("bytes=990-5000", 990..<1000), ("bytes=-5000", 0..<1000), ("bytes=999-999", 999..<1000),
            ("bytes=1000-", nil), ("bytes=5000-6000", nil),
        ]
        for (header, expected) in cases {
            #expect(try ByteRangeRequest.parse(header).resolve(size: size) == expected, "\(header)")
        }
        #expect(try ByteRangeRequest.parseContentRange("bytes 10-19/*").resolve(size: size) == 10..<20)
    }

    @Test func malformedRangesAre416AndMultipleAre400() {
        for header in ["bytes=a-b", "bytes=5-2", "items=0-1", "bytes=-0", "bytes=", "bytes=--1", "bytes= 1 - x"] {
            #expect(throws: ImageError.self, "\(header)") { _ = try ByteRangeRequest.parse(header) }
            #expect((try? ByteRangeRequest.parse(header)) == nil)
            do { _ = try ByteRangeRequest.parse(header) } catch { #expect((error as? ImageError)?.kind == .rangeNotSatisfiable, "\(header)") }
        }
        do { _ = try ByteRangeRequest.parse("bytes=0-1,5-6"); Issue.record("accepted") } catch {
            #expect((error as? ImageError)?.kind == .badRequest)
        }
    }
}

@Suite struct IngestMemoryTests {
    /// Full batches and queues while the node's budget lasts; past it, queues of one batch and
    /// halved batches, never below the floor: an upload is never refused or stalled for memory.
    @Test func sharesShrinkAsTheBudgetRunsOut() {
        typealias Share = IngestMemory.Share
        let mib = 1 << 20, floor = IngestMemory.minimumBatch
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: 128 * mib) == Share(batchSize: mib, lanesAhead: 3))
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: 5 * mib) == Share(batchSize: mib, lanesAhead: 3))
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: 5 * mib - 1) == Share(batchSize: mib, lanesAhead: 1))
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: 2 * mib) == Share(batchSize: mib / 2, lanesAhead: 1))
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: 0) == Share(batchSize: floor, lanesAhead: 1))
        #expect(IngestMemory.share(preferred: mib, lanesAhead: 3, free: -50 * mib) == Share(batchSize: floor, lanesAhead: 1))
        #expect(IngestMemory.share(preferred: 4096, lanesAhead: 3, free: 0) == Share(batchSize: 4096, lanesAhead: 1))
        #expect(Share(batchSize: mib, lanesAhead: 1).reserved == 3 * mib)
        #expect(Share(batchSize: mib, lanesAhead: 3).reserved == 5 * mib)
    }

    /// 100 uploads starting one after another: the first dozen get the full share, the rest three
    /// batches each, none smaller than the floor.
    @Test func aHundredUploadsShareTheBudget() {
        let mib = 1 << 20
        var free = IngestMemory.budget
        var shares: [IngestMemory.Share] = []
        for _ in 0..<100 {
            let share = IngestMemory.share(preferred: mib, lanesAhead: 3, free: free)
            free -= share.reserved
            shares.append(share)
        }
        #expect(shares.prefix(12).allSatisfy { $0 == .init(batchSize: mib, lanesAhead: 3) })
        #expect(shares.dropFirst(12).allSatisfy { $0.lanesAhead == 1 && $0.batchSize >= IngestMemory.minimumBatch })
        let held = shares.reduce(0) { $0 + $1.reserved }
        #expect(held <= IngestMemory.budget + 88 * 3 * IngestMemory.minimumBatch, "\(held >> 20) MiB")
    }

    /// An ingest gives its share back when it finishes, aborts or is dropped.
    @Test func anIngestReturnsItsShare() async throws {
        let dir = temporaryDirectory("ingest-memory")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        for ending in 0..<3 {
            let writer = try await store.makeWriter(key: "images/k\(ending)")
            var ingest: ImageIngest? = try ImageIngest(writer: writer, algorithm: .sha512, limits: .init(sizeCap: 1 << 30))
            #expect(ingest!.reserved >= 3 * IngestMemory.minimumBatch)
            try await ingest!.append(ByteBuffer(repeating: 7, count: 3 << 20))
            switch ending {
            case 0: _ = try await ingest!.finish(); #expect(ingest!.reserved == 0)
            case 1: await ingest!.abort(); #expect(ingest!.reserved == 0)
            default:
                // Dropped: its lanes end and deinit gives the share back.
                weak let dropped = ingest
                ingest = nil
                for _ in 0..<200 where dropped != nil { try await Task.sleep(for: .milliseconds(10)) }
                #expect(dropped == nil)
            }
            await writer.cancel()
        }
    }
}
