import BlobStoreFile
import Foundation
import ImageCore
import NIOCore
import Testing

/// The file store's holes: whole aligned 4 KiB blocks of zeros are not written, the file keeps its
/// logical size, and reading gives back every byte.
@Suite struct SparseFileBlobStoreTests {
    typealias C = BlobStoreConformance
    static let block = 4096

    /// Writes `data` in pieces of `piece` bytes (odd sizes: blocks straddle the writes) and commits.
    static func store(_ store: FileBlobStore, _ key: String, _ data: [UInt8], piece: Int) async throws {
        let w = try await store.makeWriter(key: key)
        var i = 0
        while i < data.count {
            try await w.write(ByteBuffer(bytes: data[i..<min(data.count, i + piece)]))
            i += piece
        }
        try await w.commit()
    }

    static func withStore(sparse: Bool = true, _ body: (FileBlobStore, String) async throws -> Void) async throws {
        let dir = FileBlobStoreTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await body(try FileBlobStore(root: dir, sparse: sparse), dir)
    }

    /// data, 16 MiB of zeros, data: the zeros take no blocks, whatever the write sizes.
    @Test(arguments: [65_537, 4096, 1000, 1 << 20])
    func zeroRunsBecomeHoles(piece: Int) async throws {
        let data = C.bytes(100_000, seed: 1) + [UInt8](repeating: 0, count: 16 << 20) + C.bytes(50_001, seed: 2)
        try await Self.withStore { store, _ in
            try await Self.store(store, "images/a", data, piece: piece)
            let space = try #require(try await store.blobSpace(key: "images/a"))
            #expect(space.logical == Int64(data.count))
            // Only the blocks holding data (plus the two they share with the zeros) are allocated.
            #expect(space.physical <= 160 << 10, "physical \(space.physical)")
            #expect(try await C.readAll(store, "images/a") == data)
        }
    }

    /// A blob ending in zeros keeps its size (the trailing hole counts), down to an odd last byte.
    @Test func trailingZerosKeepTheSize() async throws {
        let data = C.bytes(5000, seed: 3) + [UInt8](repeating: 0, count: (8 << 20) + 123)
        try await Self.withStore { store, _ in
            try await Self.store(store, "images/t", data, piece: 70_000)
            #expect(try await store.size(key: "images/t") == Int64(data.count))
            let space = try #require(try await store.blobSpace(key: "images/t"))
            #expect(space.physical <= 16 << 10, "physical \(space.physical)")
            #expect(try await C.readAll(store, "images/t") == data)
        }
    }

    /// Only zeros: no block at all, the size still exact.
    @Test func allZerosTakeNoBlocks() async throws {
        let data = [UInt8](repeating: 0, count: (3 << 20) + 7)
        try await Self.withStore { store, _ in
            try await Self.store(store, "images/z", data, piece: 33_333)
            #expect(try await store.blobSpace(key: "images/z") == BlobSpace(logical: Int64(data.count), physical: 0))
            #expect(try await C.readAll(store, "images/z") == data)
        }
    }

    /// A single non-zero byte after a hole, in a block otherwise zero, and at the last byte of a
    /// block: each lands at its place; the blocks around stay holes.
    @Test func dataAfterAHoleLandsInPlace() async throws {
        var data = [UInt8](repeating: 0, count: 64 * Self.block)
        data[10 * Self.block + 17] = 0x5a
        data[20 * Self.block - 1] = 0xa5
        data[63 * Self.block] = 1
        try await Self.withStore { store, _ in
            try await Self.store(store, "images/d", data, piece: 5000)
            let space = try #require(try await store.blobSpace(key: "images/d"))
            #expect(space.logical == Int64(data.count))
            #expect(space.physical <= Int64(3 * Self.block), "physical \(space.physical)")
            #expect(try await C.readAll(store, "images/d") == data)
            #expect(try await C.readAll(store, "images/d", range: Int64(20 * Self.block - 2)..<Int64(20 * Self.block + 1)) == [0, 0xa5, 0])
        }
    }

    /// `sparse: false` writes every byte: the zeros take their blocks.
    @Test func notSparseWritesTheZeros() async throws {
        let data = C.bytes(4096, seed: 4) + [UInt8](repeating: 0, count: 4 << 20)
        try await Self.withStore(sparse: false) { store, _ in
            try await Self.store(store, "images/n", data, piece: 65_536)
            let space = try #require(try await store.blobSpace(key: "images/n"))
            #expect(space.logical == Int64(data.count))
            #expect(space.physical >= Int64(data.count), "physical \(space.physical)")
            #expect(try await C.readAll(store, "images/n") == data)
            let details = store.storeProperties.first { $0.0 == "thin_provisioning" }?.1
            #expect(details == .bool(false))
        }
    }

    /// A cancelled sparse writer leaves nothing, its pending partial block included.
    @Test func cancelLeavesNothing() async throws {
        try await Self.withStore { store, dir in
            let w = try await store.makeWriter(key: "images/c")
            try await w.write(ByteBuffer(bytes: [UInt8](repeating: 0, count: 10_000) + [1, 2, 3]))
            await w.cancel()
            #expect(try await store.size(key: "images/c") == nil)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/.tmp").isEmpty)
        }
    }

    /// Per blob and per store, through the store's name too (`NamedBlobStore`): logical and physical.
    @Test func spaceIsReportedPerBlobAndForTheStore() async throws {
        try await Self.withStore { store, _ in
            let named = NamedBlobStore(store, id: "fast", description: "files")
            try await Self.store(store, "images/x", C.bytes(8192, seed: 5) + [UInt8](repeating: 0, count: 1 << 20), piece: 9999)
            try await Self.store(store, "staging/y", C.bytes(100, seed: 6), piece: 100)
            let x = try #require(try await named.space(key: "images/x"))
            #expect(x.logical == 8192 + (1 << 20))
            #expect(x.physical == 8192)
            #expect(try await named.space(key: "images/missing") == nil)
            let total = try #require(try await named.spaceOfAllBlobs())
            #expect(total.logical == 8192 + (1 << 20) + 100)
            #expect(total.physical == 8192 + 4096)
        }
    }
}
