import BlobStoreFile
import BlobStoreS3
import Foundation
import ImageCore
import NIOCore
import Testing

/// What every resumable store must do (files always, S3 when a server is configured): bytes written
/// over several writers, each continuing from the previous one's checkpoint token, commit whole and
/// in order; bytes past a checkpoint are dropped; nothing is visible before the commit; discarding
/// and the leftover sweep remove exactly what they should.
@Suite struct ResumableBlobStoreConformanceTests {
    typealias C = BlobStoreConformance

    static func write(_ w: any ResumableBlobWriter, _ data: ArraySlice<UInt8>, pieces: Int = 3) async throws {
        let step = max(1, data.count / pieces)
        var i = data.startIndex
        while i < data.endIndex {
            try await w.write(ByteBuffer(bytes: data[i..<min(data.endIndex, i + step)]))
            i += step
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func writesOverSeveralWritersCommitWholeAndInOrder(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { base in
            let store = try #require(base.resumable)
            // Across S3's 5 MiB parts: a checkpoint inside a part (a tail object), one on a boundary.
            let data = C.bytes((12 << 20) + 4321, seed: 9)
            let cut1 = (7 << 20) + 1234, cut2 = 10 << 20
            let token0 = try await store.beginResumable(key: "images/r", session: "aa-01")
            let w1 = try await store.resumeWriter(key: "images/r", token: token0, offset: 0)
            try await Self.write(w1, data[..<cut1])
            let token1 = try await w1.checkpoint()
            try await Self.write(w1, C.bytes(300_000, seed: 1)[...])  // never checkpointed: dropped
            await w1.suspend()
            #expect(try await base.size(key: "images/r") == nil, "nothing is visible before the commit")
            let w2 = try await store.resumeWriter(key: "images/r", token: token1, offset: Int64(cut1))
            try await Self.write(w2, data[cut1..<cut2], pieces: 5)
            let token2 = try await w2.checkpoint()
            await w2.suspend()
            let w3 = try await store.resumeWriter(key: "images/r", token: token2, offset: Int64(cut2))
            try await Self.write(w3, data[cut2...], pieces: 1)
            try await w3.commit()
            #expect(try await base.size(key: "images/r") == Int64(data.count))
            #expect(try await C.readAll(base, "images/r", chunk: 1 << 20) == data)
            #expect(try await base.keys(prefix: "uploads/").isEmpty, "the tails of the checkpoints are gone")
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func aResumeBeyondTheDurableBytesIsRefused(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { base in
            let store = try #require(base.resumable)
            let token0 = try await store.beginResumable(key: "images/r", session: "aa-02")
            let w = try await store.resumeWriter(key: "images/r", token: token0, offset: 0)
            try await Self.write(w, C.bytes(100_000)[...])
            let token = try await w.checkpoint()
            await w.suspend()
            await C.expectFailure(.io) { _ = try await store.resumeWriter(key: "images/r", token: token, offset: 100_001) }
            await store.discardResumable(token: token)
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func discardAndCancelLeaveNothing(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { base in
            let store = try #require(base.resumable)
            let t = try await store.beginResumable(key: "images/d", session: "aa-03")
            let w = try await store.resumeWriter(key: "images/d", token: t, offset: 0)
            try await Self.write(w, C.bytes(6 << 20, seed: 2)[...])
            let token = try await w.checkpoint()
            await w.suspend()
            await store.discardResumable(token: token)
            let refused = await #expect(throws: BlobStoreError.self) {
                let again = try await store.resumeWriter(key: "images/d", token: token, offset: 6 << 20)
                try await again.write(ByteBuffer(bytes: [1, 2, 3]))
                try await again.commit()
            }
            #expect(refused != nil, "a discarded blob cannot be continued")
            #expect(try await base.size(key: "images/d") == nil)
            #expect(try await base.keys(prefix: "uploads/").isEmpty)
            // cancel() of a resumable writer discards the whole blob, checkpointed bytes included.
            let t2 = try await store.beginResumable(key: "images/e", session: "aa-04")
            let w2 = try await store.resumeWriter(key: "images/e", token: t2, offset: 0)
            try await Self.write(w2, C.bytes(1000)[...])
            let token2 = try await w2.checkpoint()
            await w2.cancel()
            await C.expectFailure(.notFound) { _ = try await store.resumeWriter(key: "images/e", token: token2, offset: 1000).commit() }
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func theLeftoverSweepSparesTheOpenSessions(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { base in
            let store = try #require(base.resumable)
            var tokens: [String] = []
            for (i, session) in ["bb-01", "bb-02"].enumerated() {
                let t = try await store.beginResumable(key: "images/k\(i)", session: session)
                let w = try await store.resumeWriter(key: "images/k\(i)", token: t, offset: 0)
                try await Self.write(w, C.bytes(2000, seed: UInt8(i))[...])
                tokens.append(try await w.checkpoint())
                await w.suspend()
            }
            #expect(try await store.removeLeftovers(keeping: [tokens[0]]) >= 1)
            let kept = try await store.resumeWriter(key: "images/k0", token: tokens[0], offset: 2000)
            try await kept.commit()
            #expect(try await C.readAll(base, "images/k0") == C.bytes(2000, seed: 0))
            await #expect(throws: BlobStoreError.self) {
                try await store.resumeWriter(key: "images/k1", token: tokens[1], offset: 2000).commit()
            }
        }
    }
}
