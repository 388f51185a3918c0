import BlobStoreFile
import CFileShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ImageCore
import NIOCore
import Testing

/// The file store's direct writes: a new blob's whole blocks go to the disk past the page cache
/// (O_DIRECT), its last partial block through it, and the bytes and holes are the same either way.
@Suite struct DirectFileBlobStoreTests {
    typealias C = BlobStoreConformance

    /// tmpfs is the page cache itself: there a direct write still leaves its pages resident.
    /// (The file system of the longest mount point above the temporary directory, from /proc/mounts.)
    static var temporaryDirectoryIsOnADisk: Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        let path = FileManager.default.temporaryDirectory.resolvingSymlinksInPath().path
        var best = (point: "", type: "")
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 2 else { continue }
            let point = fields[1]
            if (path == point || path.hasPrefix(point == "/" ? "/" : point + "/")) && point.count >= best.point.count {
                best = (point, fields[2])
            }
        }
        return !["tmpfs", "ramfs", ""].contains(best.type)
    }

    /// How many of the file's pages are in the page cache, and how many it has.
    static func residentPages(_ path: String) throws -> (resident: Int, pages: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0, "open \(path): errno \(errno)")
        defer { close(fd) }
        var st = stat()
        try #require(fstat(fd, &st) == 0)
        let size = Int(st.st_size), page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (size + page - 1) / page
        let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        try #require(map != MAP_FAILED)
        defer { munmap(map, size) }
        var vector = [UInt8](repeating: 0, count: pages)
        try #require(mincore(map, size, &vector) == 0, "mincore: errno \(errno)")
        return (vector.filter { $0 & 1 != 0 }.count, pages)
    }

    /// 8 MiB and 1000 bytes in odd pieces: through the page cache, every page stays cached after the
    /// commit; written direct, at most the last (partial) page is. Read back, both give every byte.
    @Test(.enabled(if: temporaryDirectoryIsOnADisk, "direct writes on tmpfs are cached like any other"),
          arguments: [true, false])
    func wholeBlocksBypassThePageCache(sparse: Bool) async throws {
        let data = C.bytes((8 << 20) + 1000, seed: 11)
        let dir = FileBlobStoreTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let direct = try FileBlobStore(root: dir + "/direct", sparse: sparse)
        let cached = try FileBlobStore(root: dir + "/cached", sparse: sparse, direct: false)
        #expect(direct.direct && !cached.direct)
        try await SparseFileBlobStoreTests.store(direct, "images/a", data, piece: 65_537)
        try await SparseFileBlobStoreTests.store(cached, "images/a", data, piece: 65_537)

        let past = try Self.residentPages(dir + "/direct/images/a")
        let through = try Self.residentPages(dir + "/cached/images/a")
        #expect(past.pages == 2049 && through.pages == 2049)
        #expect(past.resident <= 1, "direct: \(past.resident) of \(past.pages) pages cached")
        #expect(through.resident >= 2000, "page cache: \(through.resident) of \(through.pages) pages cached")
        #expect(try await C.readAll(direct, "images/a") == data)
        #expect(try await C.readAll(cached, "images/a") == data)
    }

    /// Holes made while writing direct: zero blocks are skipped on either path, a lone byte lands
    /// in its block, and the size counts a trailing run of zeros.
    @Test func holesAndBytesAreTheSameWrittenDirect() async throws {
        var data = C.bytes(300_000, seed: 12) + [UInt8](repeating: 0, count: 4 << 20) + C.bytes(70_001, seed: 13)
        data[200_000..<(200_000 + 3 * 4096)] = ArraySlice(repeating: 0, count: 3 * 4096)
        data += [UInt8](repeating: 0, count: (1 << 20) + 5)
        data[data.count - (1 << 19)] = 0x77
        let dir = FileBlobStoreTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        try await SparseFileBlobStoreTests.store(store, "images/h", data, piece: 1 << 20)
        let space = try #require(try await store.blobSpace(key: "images/h"))
        #expect(space.logical == Int64(data.count))
        // 300,000 + 70,001 data bytes, plus at most a partial block at each edge and the lone byte's block.
        #expect(space.physical <= 400 << 10, "physical \(space.physical)")
        #expect(space.physical >= 360 << 10, "physical \(space.physical)")
        #expect(try await C.readAll(store, "images/h") == data)
    }

    /// The C writer's fallback: a direct write the file system refuses (here an offset no disk
    /// takes direct) goes through the page cache, lands at its place, and says so (1); an aligned
    /// one goes direct (0).
    @Test func aRefusedDirectWriteGoesThroughThePageCache() throws {
        let dir = FileBlobStoreTests.tempDir()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/f"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        try #require(fd >= 0)
        defer { close(fd) }
        let directFd = imaged_open_direct(path)
        try #require(directFd >= 0, "this file system has no O_DIRECT: errno \(errno)")
        defer { close(directFd) }
        let first = C.bytes(8192, seed: 14), second = C.bytes(8192, seed: 15)
        let refused = first.withUnsafeBytes { imaged_write_blocks_direct(directFd, fd, $0.baseAddress, 8192, 100, 4096, 0) }
        #expect(refused == 1)
        let aligned = second.withUnsafeBytes { imaged_write_blocks_direct(directFd, fd, $0.baseAddress, 8192, 16384, 4096, 1) }
        #expect(aligned == 0)
        let content = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(content.count == 16384 + 8192)
        #expect(Array(content[0..<100]) == [UInt8](repeating: 0, count: 100))
        #expect(Array(content[100..<8292]) == first)
        #expect(Array(content[16384...]) == second)
    }
}
