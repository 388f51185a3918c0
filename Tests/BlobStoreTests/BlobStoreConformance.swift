import BlobStoreFile
import Foundation
import ImageCore
import NIOCore
import Testing

/// What every BlobStore driver must do. Each driver's suite calls `conformance(store)` with a fresh store.
enum BlobStoreConformance {
    static func bytes(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
        var state = UInt32(seed) &* 2_654_435_761
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    static func readAll(_ store: any BlobStore, _ key: String, range: Range<Int64>? = nil, chunk: Int = 1 << 16) async throws -> [UInt8] {
        var out: [UInt8] = []
        try await store.read(key: key, range: range, chunkSize: chunk) { out += Array($0.readableBytesView) }
        return out
    }

    static func write(_ store: any BlobStore, _ key: String, _ data: [UInt8], pieces: Int = 3) async throws -> any BlobWriter {
        let w = try await store.makeWriter(key: key)
        let step = max(1, data.count / pieces)
        var i = 0
        while i < data.count {
            try await w.write(ByteBuffer(bytes: data[i..<min(data.count, i + step)]))
            i += step
        }
        return w
    }

    static func commitMakesBytesVisibleWhole(_ store: any BlobStore) async throws {
        let data = bytes(300_000)
        let w = try await write(store, "images/a", data)
        #expect(try await store.size(key: "images/a") == nil, "uncommitted data must be invisible")
        #expect(try await store.keys(prefix: "images/").isEmpty)
        try await w.commit()
        #expect(try await store.size(key: "images/a") == Int64(data.count))
        #expect(try await readAll(store, "images/a") == data)
        #expect(try await readAll(store, "images/a", chunk: 4097) == data)
        #expect(try await store.keys(prefix: "images/") == ["images/a"])
        #expect(try await store.keys(prefix: "staging/").isEmpty)
    }

    static func rangesReturnTheirSlice(_ store: any BlobStore) async throws {
        let data = bytes(100_000, seed: 3)
        try await write(store, "images/r", data).commit()
        for r in [0..<1, 10..<20, 99_999..<100_000, 0..<100_000, 4096..<70_000] as [Range<Int64>] {
            let got = try await readAll(store, "images/r", range: r, chunk: 1000)
            #expect(got == Array(data[Int(r.lowerBound)..<Int(r.upperBound)]), "range \(r)")
        }
    }

    static func cancelLeavesNothing(_ store: any BlobStore) async throws {
        let w = try await write(store, "images/c", bytes(50_000))
        await w.cancel()
        await w.cancel()  // twice is harmless
        #expect(try await store.size(key: "images/c") == nil)
        await #expect(throws: (any Error).self) { try await w.commit() }
        #expect(try await store.removeLeftovers() == 0, "cancel must not leave a temporary behind")
    }

    static func commitReplacesAndDeleteRemoves(_ store: any BlobStore) async throws {
        try await write(store, "images/x", bytes(1000, seed: 1)).commit()
        let second = bytes(700, seed: 2)
        try await write(store, "images/x", second).commit()
        #expect(try await readAll(store, "images/x") == second)
        try await store.delete(key: "images/x")
        try await store.delete(key: "images/x")  // absent is fine
        #expect(try await store.size(key: "images/x") == nil)
        await #expect(throws: (any Error).self) { _ = try await readAll(store, "images/x") }
    }

    static func emptyBlob(_ store: any BlobStore) async throws {
        try await store.makeWriter(key: "images/empty").commit()
        #expect(try await store.size(key: "images/empty") == 0)
        #expect(try await readAll(store, "images/empty") == [])
    }

    static func concurrentWritersToDifferentKeys(_ store: any BlobStore) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let data = bytes(20_000 + i, seed: UInt8(i))
                    try await write(store, "images/k\(i)", data, pieces: 5).commit()
                    #expect(try await readAll(store, "images/k\(i)") == data)
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.keys(prefix: "images/k").count == 8)
    }

    static func hostileKeysAreRefused(_ store: any BlobStore) async throws {
        for key in ["../escape", "images/../../etc/passwd", "/abs", "images//x", "", ".tmp/x", "images/.hidden", "a b"] {
            await #expect(throws: (any Error).self, "key \(key)") { _ = try await store.makeWriter(key: key) }
        }
    }

    static func all(_ makeStore: () throws -> any BlobStore) async throws {
        try await commitMakesBytesVisibleWhole(makeStore())
        try await rangesReturnTheirSlice(makeStore())
        try await cancelLeavesNothing(makeStore())
        try await commitReplacesAndDeleteRemoves(makeStore())
        try await emptyBlob(makeStore())
        try await concurrentWritersToDifferentKeys(makeStore())
        try await hostileKeysAreRefused(makeStore())
    }
}

@Suite struct FileBlobStoreTests {
    static func tempDir() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blobs-\(UUID().uuidString)").path
        return dir
    }

    @Test func conformance() async throws {
        var dirs: [String] = []
        defer { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }
        try await BlobStoreConformance.all {
            let d = Self.tempDir()
            dirs.append(d)
            return try FileBlobStore(root: d)
        }
    }

    /// A crash leaves `.part` files; the start-up scrub's call removes them and nothing else.
    @Test func leftoversOfACrashAreRemoved() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        try await BlobStoreConformance.write(store, "images/kept", [1, 2, 3]).commit()
        FileManager.default.createFile(atPath: dir + "/.tmp/dead1.part", contents: Data(repeating: 1, count: 10))
        FileManager.default.createFile(atPath: dir + "/.tmp/dead2.part", contents: Data())
        #expect(try await store.removeLeftovers() == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/.tmp").isEmpty)
        #expect(try await store.size(key: "images/kept") == 3)
    }

    /// The temporary lives in the store's own directory (same filesystem), so commit is a rename.
    @Test func writerUsesTemporaryUntilCommit() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        let w = try await BlobStoreConformance.write(store, "images/t", [9, 9, 9])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/.tmp").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/images/t"))
        try await w.commit()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/.tmp").isEmpty)
        #expect(FileManager.default.contents(atPath: dir + "/images/t") == Data([9, 9, 9]))
    }
}
