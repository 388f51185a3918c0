import BlobStoreFile
import BlobStoreS3
import Foundation
import ImageCore
import NIOCore
import Testing

/// Helpers of the conformance suite (`BlobStoreConformanceTests`) and the drivers' own suites.
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

    /// Expects `body` to fail with a store error of `kind`.
    static func expectFailure(_ kind: BlobStoreError.Kind, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                              _ body: () async throws -> Void) async {
        let error = await #expect(throws: BlobStoreError.self, comment, sourceLocation: sourceLocation) { try await body() }
        if let error { #expect(error.kind == kind, "\(comment.map { "\($0): " } ?? "")\(error)", sourceLocation: sourceLocation) }
    }
}

/// A driver the conformance suite runs against: files always, S3 when `IMAGED_TEST_S3_ENV` names a server.
struct BlobStoreDriver: Sendable, CustomTestStringConvertible {
    let name: String
    /// A fresh, empty store, and what removes everything it holds.
    let make: @Sendable () throws -> (store: any BlobStore, cleanUp: @Sendable () async -> Void)

    var testDescription: String { name }

    static let files = BlobStoreDriver(name: "files") {
        let dir = FileBlobStoreTests.tempDir()
        return (try FileBlobStore(root: dir), { try? FileManager.default.removeItem(atPath: dir) })
    }

    /// Every byte written, zero blocks too (`sparse=false`).
    static let filesNotSparse = BlobStoreDriver(name: "files (not sparse)") {
        let dir = FileBlobStoreTests.tempDir()
        return (try FileBlobStore(root: dir, sparse: false), { try? FileManager.default.removeItem(atPath: dir) })
    }

    /// Through the page cache, as before direct writes (`direct=false`).
    static let filesPageCache = BlobStoreDriver(name: "files (page cache)") {
        let dir = FileBlobStoreTests.tempDir()
        return (try FileBlobStore(root: dir, direct: false), { try? FileManager.default.removeItem(atPath: dir) })
    }

    /// Confined to a key prefix of its own, so tests never see each other's objects.
    static let s3 = BlobStoreDriver(name: "s3") {
        let store = try S3BlobStoreTests.store()
        return (store, {
            _ = try? await store.removeLeftovers()
            for key in (try? await store.keys(prefix: "")) ?? [] { try? await store.delete(key: key) }
        })
    }

    static var available: [BlobStoreDriver] {
        [.files, .filesNotSparse, .filesPageCache] + (S3TestEnvironment.values == nil ? [] : [.s3])
    }

    /// Runs `body` with a fresh store and removes what it left, whatever happened.
    func withStore(_ body: (any BlobStore) async throws -> Void) async throws {
        let (store, cleanUp) = try make()
        do { try await body(store) } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }
}

/// What every BlobStore driver must do: one test per behaviour, each run against every driver available.
@Suite struct BlobStoreConformanceTests {
    typealias C = BlobStoreConformance

    @Test(arguments: BlobStoreDriver.available)
    func uncommittedBytesAreInvisible(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let w = try await C.write(store, "images/a", C.bytes(300_000))
            #expect(try await store.size(key: "images/a") == nil, "uncommitted data must be invisible")
            #expect(try await store.keys(prefix: "images/").isEmpty)
            await C.expectFailure(.notFound) { _ = try await C.readAll(store, "images/a") }
            await w.cancel()
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func commitPublishesTheBlobUnderItsKey(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let data = C.bytes(300_000)
            try await C.write(store, "images/a", data).commit()
            #expect(try await store.size(key: "images/a") == Int64(data.count))
            #expect(try await store.keys(prefix: "images/") == ["images/a"])
            #expect(try await store.keys(prefix: "staging/").isEmpty)
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func aReadReturnsTheWholeBlobWhateverTheChunkSize(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let data = C.bytes(300_000)
            try await C.write(store, "images/a", data).commit()
            #expect(try await C.readAll(store, "images/a") == data)
            #expect(try await C.readAll(store, "images/a", chunk: 4097) == data)
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func rangesReturnTheirSlice(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let data = C.bytes(100_000, seed: 3)
            try await C.write(store, "images/r", data).commit()
            for r in [0..<1, 10..<20, 99_999..<100_000, 0..<100_000, 4096..<70_000] as [Range<Int64>] {
                let got = try await C.readAll(store, "images/r", range: r, chunk: 1000)
                #expect(got == Array(data[Int(r.lowerBound)..<Int(r.upperBound)]), "range \(r)")
            }
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func aRangeStartingPastTheEndIsRefused(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await C.write(store, "images/r", C.bytes(1000, seed: 4)).commit()
            for r in [1000..<1001, 1000..<2000, 5000..<6000] as [Range<Int64>] {
                await C.expectFailure(.invalidRange, "range \(r)") { _ = try await C.readAll(store, "images/r", range: r) }
            }
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func anEmptyBlobIsABlob(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await store.makeWriter(key: "images/empty").commit()
            #expect(try await store.size(key: "images/empty") == 0)
            #expect(try await C.readAll(store, "images/empty") == [])
            #expect(try await store.keys(prefix: "images/") == ["images/empty"])
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func cancelLeavesNothing(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let w = try await C.write(store, "images/c", C.bytes(50_000))
            await w.cancel()
            #expect(try await store.size(key: "images/c") == nil)
            #expect(try await store.keys(prefix: "").isEmpty)
            #expect(try await store.removeLeftovers() == 0, "cancel must not leave a temporary behind")
        }
    }

    /// A second cancel does nothing, not even to a writer opened after the first.
    @Test(arguments: BlobStoreDriver.available)
    func cancellingTwiceIsHarmless(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let first = try await C.write(store, "images/c", C.bytes(50_000))
            await first.cancel()
            let data = C.bytes(40_000, seed: 9)
            let second = try await C.write(store, "images/c", data)
            await first.cancel()
            try await second.commit()
            #expect(try await C.readAll(store, "images/c") == data)
        }
    }

    enum Finish: String, Sendable, CaseIterable { case committed, cancelled }

    @Test(arguments: BlobStoreDriver.available, Finish.allCases)
    func aFinishedWriterRefusesWritesAndCommits(_ driver: BlobStoreDriver, _ finish: Finish) async throws {
        try await driver.withStore { store in
            let w = try await C.write(store, "images/f", C.bytes(2000))
            switch finish {
            case .committed: try await w.commit()
            case .cancelled: await w.cancel()
            }
            await C.expectFailure(.writerClosed, "write") { try await w.write(ByteBuffer(bytes: [1])) }
            await C.expectFailure(.writerClosed, "commit") { try await w.commit() }
            #expect(try await store.size(key: "images/f") == (finish == .committed ? 2000 : nil))
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func commitReplacesTheBlobUnderTheKey(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await C.write(store, "images/x", C.bytes(1000, seed: 1)).commit()
            let second = C.bytes(700, seed: 2)
            try await C.write(store, "images/x", second).commit()
            #expect(try await C.readAll(store, "images/x") == second)
            #expect(try await store.size(key: "images/x") == 700)
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func deleteRemovesTheBlob(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await C.write(store, "images/x", C.bytes(1000, seed: 1)).commit()
            try await store.delete(key: "images/x")
            #expect(try await store.size(key: "images/x") == nil)
            #expect(try await store.keys(prefix: "images/").isEmpty)
            await C.expectFailure(.notFound) { _ = try await C.readAll(store, "images/x") }
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func deletingAnAbsentBlobIsNoError(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await store.delete(key: "images/never")
            try await C.write(store, "images/x", C.bytes(10)).commit()
            try await store.delete(key: "images/x")
            try await store.delete(key: "images/x")  // twice
            #expect(try await store.size(key: "images/x") == nil)
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func anAbsentBlobHasNoSizeAndIsNotFound(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            let size = try await store.size(key: "images/never")
            #expect(size == nil)
            await C.expectFailure(.notFound) { _ = try await C.readAll(store, "images/never") }
            await C.expectFailure(.notFound) { _ = try await C.readAll(store, "images/never", range: 0..<10) }
        }
    }

    @Test(arguments: BlobStoreDriver.available)
    func concurrentWritersToDifferentKeysDoNotMix(_ driver: BlobStoreDriver) async throws {
        try await driver.withStore { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        let data = C.bytes(20_000 + i, seed: UInt8(i))
                        try await C.write(store, "images/k\(i)", data, pieces: 5).commit()
                        #expect(try await C.readAll(store, "images/k\(i)") == data)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.keys(prefix: "images/k").count == 8)
        }
    }

    static let hostileKeys = ["../escape", "images/../../etc/passwd", "/abs", "images//x", "", ".tmp/x", "images/.hidden", "a b"]

    /// Every operation on a key refuses one that could escape the store or name its temporaries.
    @Test(arguments: BlobStoreDriver.available, hostileKeys)
    func hostileKeysAreRefused(_ driver: BlobStoreDriver, _ key: String) async throws {
        try await driver.withStore { store in
            await C.expectFailure(.invalidKey, "makeWriter") { _ = try await store.makeWriter(key: key) }
            await C.expectFailure(.invalidKey, "size") { _ = try await store.size(key: key) }
            await C.expectFailure(.invalidKey, "read") { _ = try await C.readAll(store, key) }
            await C.expectFailure(.invalidKey, "delete") { try await store.delete(key: key) }
        }
    }
}

@Suite struct FileBlobStoreTests {
    static func tempDir() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blobs-\(UUID().uuidString)").path
        return dir
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
