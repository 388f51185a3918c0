#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFileShims
import ImageCore
import NIOCore
import NIOPosix

/// Blobs as files under one directory. A writer fills `.tmp/<random>.part`, then `commit()` fsyncs
/// it, renames it over the final name and fsyncs the directory, so a blob appears whole or not at all,
/// even across a power loss. Blocking syscalls run on a thread pool of its own (`ioThreads`).
/// When `sparse`, aligned blocks of zeros are not written but left as holes; when `direct`, new
/// blobs are written past the page cache (see `FileBlobWriter`).
public struct FileBlobStore: BlobStore {
    public let id = "file"
    public let root: String
    /// Whole zero blocks become holes (default); off: every byte is written.
    public let sparse: Bool
    /// New blobs written with O_DIRECT where the file system takes it (default); off: through the page cache.
    public let direct: Bool
    let pool: NIOThreadPool
    /// The unit a hole is made of and direct writes are aligned to: the page, the usual file system
    /// block, and a multiple of disks' logical blocks (512 or 4096 bytes).
    static let block = 4096

    static let temporaryDirectory = ".tmp"

    /// Blocking file calls of every file store. NIO's shared pool has one thread per core, so a few
    /// fsyncs of finishing uploads would stall every other upload and download; these threads only
    /// wait on the disk, so there can be many.
    public static let ioThreads: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    /// Creates `root` (and its temporary directory) when missing.
    public init(root: String, sparse: Bool = true, direct: Bool = true, threadPool: NIOThreadPool = FileBlobStore.ioThreads) throws {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        self.sparse = sparse
        self.direct = direct
        self.pool = threadPool
        try Self.makeDirectories(self.root + "/" + Self.temporaryDirectory)
    }

    static func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o750) != 0 && errno != EEXIST { throw BlobStoreError.syscall("mkdir \(current)", errno) }
        }
    }

    /// Keys are made by the service, but a key must never climb out of the root whatever happens.
    func path(_ key: String) throws -> String {
        guard BlobKey.isValid(key) else { throw BlobStoreError(.invalidKey, "invalid blob key '\(key)'") }
        return root + "/" + key
    }

    public func makeWriter(key: String) async throws -> any BlobWriter {
        let final = try path(key)
        let directory = String(final[..<final.lastIndex(of: "/")!])
        let temporary = root + "/" + Self.temporaryDirectory + "/" + randomName() + ".part"
        let direct = self.direct
        let (fd, directFd) = try await pool.runIfActive {
            try Self.makeDirectories(directory)
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw BlobStoreError.syscall("open \(temporary)", errno) }
            // A file system without direct I/O refuses the open: the page cache then, silently.
            return (fd, direct ? imaged_open_direct(temporary) : -1)
        }
        return FileBlobWriter(fd: fd, directFd: directFd, temporary: temporary, final: final, directory: directory,
                              pool: pool, sparse: sparse)
    }

    public func size(key: String) async throws -> Int64? {
        try await status(key).map { Int64($0.st_size) }
    }

    /// The blob file's `stat`, nil when there is none (run on the store's pool).
    func status(_ key: String) async throws -> stat? {
        let p = try path(key)
        return try await pool.runIfActive {
            var st = stat()
            if stat(p, &st) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw BlobStoreError.syscall("stat \(p)", errno)
            }
            return st
        }
    }

    public func read(key: String, range: Range<Int64>?, chunkSize: Int,
                     into sink: (ByteBuffer) async throws -> Void) async throws {
        let p = try path(key)
        let fd = try await pool.runIfActive {
            let fd = open(p, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw errno == ENOENT || errno == ENOTDIR ? BlobStoreError(.notFound, "blob '\(key)' does not exist")
                    : BlobStoreError.syscall("open \(p)", errno)
            }
            return fd
        }
        let start = range?.lowerBound ?? 0
        let end = range?.upperBound ?? Int64.max
        let pool = self.pool
        /// One pread on the thread pool; an empty buffer means end of file.
        @Sendable func chunk(at offset: Int64) async throws -> ByteBuffer {
            let want = Int(min(Int64(chunkSize), end - offset))
            return try await pool.runIfActive {
                var buffer = ByteBufferAllocator().buffer(capacity: want)
                _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { ptr in
                    let n = pread(fd, ptr.baseAddress, want, off_t(offset))
                    guard n >= 0 else { throw BlobStoreError.syscall("pread \(p)", errno) }
                    return n
                }
                return buffer
            }
        }
        // Read one chunk ahead, so the disk (or page cache) and the consumer work at the same time.
        var offset = start
        var next: Task<ByteBuffer, any Error>? = start < end ? Task { try await chunk(at: start) } : nil
        do {
            while let pending = next {
                let current = try await pending.value
                next = nil
                if current.readableBytes == 0 {
                    if range != nil {
                        throw BlobStoreError(.invalidRange, offset == start
                            ? "range \(start)..<\(end) starts past the end of blob '\(key)'"
                            : "blob '\(key)' ends at \(offset), before the range \(start)..<\(end) does")
                    }
                    break
                }
                offset += Int64(current.readableBytes)
                if offset < end {
                    let at = offset
                    next = Task { try await chunk(at: at) }
                }
                try await sink(current)
            }
        } catch {
            // The read ahead must finish before its descriptor is closed (and its number reused).
            _ = try? await next?.value
            close(fd)
            throw error
        }
        close(fd)
    }

    public func delete(key: String) async throws {
        let p = try path(key)
        try await pool.runIfActive {
            if unlink(p) != 0 && errno != ENOENT { throw BlobStoreError.syscall("unlink \(p)", errno) }
        }
    }

    public func keys(prefix: String) async throws -> [String] {
        let root = self.root
        return try await pool.runIfActive { try Self.walk(root, "", prefix: prefix) }
    }

    static func walk(_ root: String, _ relative: String, prefix: String) throws -> [String] {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return [] }
            throw BlobStoreError.syscall("opendir \(directory)", errno)
        }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }  // ".", "..", and the temporary directory
            let key = relative.isEmpty ? name : relative + "/" + name
            // Only descend where the prefix can still match.
            guard key.hasPrefix(prefix) || prefix.hasPrefix(key) else { continue }
            if entry.pointee.d_type == UInt8(DT_DIR) {
                out += try walk(root, key, prefix: prefix)
            } else if key.hasPrefix(prefix) {
                out.append(key)
            }
        }
        return out
    }

    public func removeLeftovers() async throws -> Int {
        let temporaryRoot = root + "/" + Self.temporaryDirectory
        return try await pool.runIfActive {
            var removed = 0
            for name in try Self.walk(temporaryRoot, "", prefix: "") {
                if unlink(temporaryRoot + "/" + name) == 0 { removed += 1 }
            }
            return removed
        }
    }

    func randomName() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(g.next() as UInt64, radix: 16) }.joined(separator: "-")
    }
}

extension BlobStoreError {
    /// A failed system call, with what it was about and its errno.
    static func syscall(_ what: String, _ code: Int32) -> BlobStoreError {
        BlobStoreError(code == ENOSPC || code == EDQUOT ? .noSpace : .io, "\(what): \(String(cString: strerror(code)))")
    }

    static let writerFinished = BlobStoreError(.writerClosed, "blob writer already committed or cancelled")
}

/// Used by one task at a time (the upload that owns it); the lock only makes that checkable.
///
/// Blocks (`block` > 0, when sparse or direct): the file is written in whole blocks at
/// block-aligned offsets. Bytes short of a block boundary wait in `carry` for the next write
/// (request bodies arrive in chunks of any size); commit writes the last partial block and
/// truncates the file to its logical size, so a trailing hole counts.
///
/// Sparse (`skipZeros`): a block of zeros is skipped, so it stays a hole of the new file. Readers
/// see zeros in the holes: the bytes, and the digests computed upstream, are unchanged.
///
/// Direct (`directFd` ≥ 0): whole blocks go to the disk with O_DIRECT, past the page cache. The
/// kernel's copy of each byte into the cache was most of an upload's CPU besides the digests (perf,
/// bench/README), and a multi-GiB image no longer evicts what the cache holds. The last partial
/// block goes through the page cache, and commit's fsync covers both.
final class FileBlobWriter: ResumableBlobWriter, @unchecked Sendable {
    let temporary: String
    let final: String
    let directory: String
    let pool: NIOThreadPool
    /// The unit whole writes are made of (0: bytes go on as they come).
    let block: Int
    let skipZeros: Bool
    private var fd: Int32
    /// The same file opened with O_DIRECT, or -1: none, or the file system refused it.
    private var directFd: Int32
    /// Bytes handed to the file so far (block-aligned when `block` > 0).
    private var offset: Int64 = 0
    /// With blocks only: the bytes after `offset`, fewer than a block.
    private var carry = ByteBuffer()
    /// Where writeback was last started: the disk works while the stream goes on, so the fsync at
    /// commit has little left to do (otherwise a multi-GiB upload waits seconds after its last byte).
    private var flushedTo: Int64 = 0
    static let writebackStep: Int64 = 32 << 20

    /// A resumable blob's writer: its file outlives the writer (`suspend`, or dropped), named by `token`.
    let token: String?

    /// `offset`: bytes already in the file (a resumed blob), all of them durable.
    /// `directFd`: the file opened with O_DIRECT (then `offset` must be block-aligned), or -1.
    init(fd: Int32, directFd: Int32 = -1, temporary: String, final: String, directory: String, pool: NIOThreadPool,
         sparse: Bool, offset: Int64 = 0, token: String? = nil) {
        self.fd = fd; self.directFd = directFd
        self.temporary = temporary; self.final = final; self.directory = directory; self.pool = pool
        self.skipZeros = sparse
        self.block = sparse || directFd >= 0 ? FileBlobStore.block : 0
        self.offset = offset; self.flushedTo = offset; self.token = token
    }

    deinit {
        // A writer dropped without commit or cancel must not leak its descriptor or its bytes (a
        // resumable blob's bytes are the session's: they stay until it ends).
        if directFd >= 0 { close(directFd) }
        if fd >= 0 { close(fd); if token == nil { unlink(temporary) } }
    }

    func checkpoint() async throws -> String {
        let (token, durable) = try await beginCheckpoint()
        try await durable()
        return token
    }

    /// The bytes so far made part of the file: the carry written out (the next writes continue
    /// from an unaligned offset, which only costs alignment) and the size set; their fsync runs on a
    /// duplicate descriptor, so it may overlap later writes and outlive this writer's descriptor.
    func beginCheckpoint() async throws -> (token: String, durable: @Sendable () async throws -> Void) {
        guard fd >= 0, let token else { throw BlobStoreError.writerFinished }
        let fd = self.fd, path = temporary
        // An unaligned offset next: whole blocks can no longer go direct.
        closeDirect()
        try await writeCarry()
        // A trailing hole must count: the file's size is the bytes received.
        let size = offset
        let copy = try await pool.runIfActive {
            guard ftruncate(fd, off_t(size)) == 0 else { throw BlobStoreError.syscall("ftruncate \(path)", errno) }
            let copy = dup(fd)
            guard copy >= 0 else { throw BlobStoreError.syscall("dup \(path)", errno) }
            return copy
        }
        let pool = self.pool
        return (token, {
            try await pool.runIfActive {
                defer { close(copy) }
                guard fsync(copy) == 0 else { throw BlobStoreError.syscall("fsync \(path)", errno) }
            }
        })
    }

    /// The bytes waiting in `carry` written through the page cache (zeros skipped when sparse).
    private func writeCarry() async throws {
        guard carry.readableBytes > 0 else { return }
        let pending = carry, at = offset, fd = self.fd, path = temporary, skipZeros = self.skipZeros
        try await pool.runIfActive {
            try pending.withUnsafeReadableBytes { bytes in
                if Self.writeBuffered(fd, bytes, at: at, block: bytes.count, skipZeros: skipZeros) != 0 {
                    throw BlobStoreError.syscall("write \(path)", errno)
                }
            }
        }
        offset += Int64(pending.readableBytes)
        carry = ByteBuffer()
    }

    /// Through the page cache: every byte, or all but the whole zero pieces of `block` bytes when
    /// sparse. 0, or -1 with errno.
    private static func writeBuffered(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at: Int64, block: Int, skipZeros: Bool) -> Int32 {
        skipZeros ? imaged_write_skipping_zero_blocks(fd, bytes.baseAddress, bytes.count, at, block)
            : imaged_write_all(fd, bytes.baseAddress, bytes.count, at)
    }

    private func closeDirect() {
        if directFd >= 0 { close(directFd); directFd = -1 }
    }

    func suspend() async {
        guard fd >= 0 else { return }
        closeDirect()
        let fd = self.fd
        self.fd = -1
        _ = try? await pool.runIfActive { close(fd) }
    }

    func write(_ buffer: ByteBuffer) async throws {
        guard fd >= 0 else { throw BlobStoreError.writerFinished }
        if block > 0 { return try await writeBlocks(buffer) }
        let fd = self.fd, at = offset, path = temporary
        try await pool.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                if imaged_write_all(fd, bytes.baseAddress, bytes.count, at) != 0 {
                    throw BlobStoreError.syscall("write \(path)", errno)
                }
            }
        }
        offset += Int64(buffer.readableBytes)
        startWriteback()
    }

    private func startWriteback() {
        if offset - flushedTo >= Self.writebackStep {
            let from = flushedTo, length = offset - flushedTo
            flushedTo = offset
            // Starts writeback of the range and returns; no waiting here.
            _ = imaged_start_writeback(fd, from, length)
        }
    }

    /// Whole blocks go to the file now, the rest waits in `carry`.
    private func writeBlocks(_ buffer: ByteBuffer) async throws {
        var input = buffer
        var pieces: [ByteBuffer] = []
        if carry.readableBytes > 0 {
            let take = min(block - carry.readableBytes, input.readableBytes)
            carry.writeImmutableBuffer(input.readSlice(length: take)!)
            guard carry.readableBytes == block else { return }
            pieces.append(carry)
            carry = ByteBuffer()
        }
        let whole = input.readableBytes - input.readableBytes % block
        if whole > 0 { pieces.append(input.readSlice(length: whole)!) }
        if input.readableBytes > 0 {
            carry = ByteBufferAllocator().buffer(capacity: block)
            carry.writeImmutableBuffer(input)
        }
        guard !pieces.isEmpty else { return }
        let length = pieces.reduce(0) { $0 + Int64($1.readableBytes) }
        try await writeWhole(pieces, at: offset)
        offset += length
        // Direct writes leave nothing dirty to start writeback of.
        if directFd < 0 { startWriteback() }
    }

    /// Whole blocks at a block-aligned offset: direct when it can, zero blocks skipped when sparse.
    private func writeWhole(_ pieces: [ByteBuffer], at start: Int64) async throws {
        let fd = self.fd, directFd = self.directFd, path = temporary, block = self.block, skipZeros = self.skipZeros
        let refused = try await pool.runIfActive {
            var at = start, refused = false
            for piece in pieces {
                try piece.withUnsafeReadableBytes { bytes in
                    let result: Int32
                    if directFd >= 0 && !refused {
                        result = imaged_write_blocks_direct(directFd, fd, bytes.baseAddress, bytes.count, at, block, skipZeros ? 1 : 0)
                        if result == 1 { refused = true }
                    } else {
                        result = Self.writeBuffered(fd, bytes, at: at, block: block, skipZeros: skipZeros)
                    }
                    if result < 0 { throw BlobStoreError.syscall("write \(path)", errno) }
                }
                at += Int64(piece.readableBytes)
            }
            return refused
        }
        // The file system wants another alignment (or no direct I/O): the page cache from here on.
        if refused { closeDirect() }
    }

    func commit() async throws {
        guard fd >= 0 else { throw BlobStoreError.writerFinished }
        if block > 0 {
            // The last partial block (skipped when sparse and zero), then the file's size made the logical size.
            let size = offset + Int64(carry.readableBytes)
            do {
                try await writeCarry()
                let fd = self.fd, path = temporary
                try await pool.runIfActive {
                    guard ftruncate(fd, off_t(size)) == 0 else { throw BlobStoreError.syscall("ftruncate \(path)", errno) }
                }
            } catch {
                await cancel()
                throw error
            }
        }
        closeDirect()
        let fd = self.fd, temporary = self.temporary, final = self.final, directory = self.directory
        self.fd = -1
        try await pool.runIfActive {
            defer { close(fd) }
            do {
                guard fsync(fd) == 0 else { throw BlobStoreError.syscall("fsync \(temporary)", errno) }
                guard rename(temporary, final) == 0 else { throw BlobStoreError.syscall("rename \(final)", errno) }
            } catch {
                unlink(temporary)
                throw error
            }
            // The rename itself is durable only once the directory is synced.
            let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { fsync(dfd); close(dfd) }
        }
    }

    func cancel() async {
        guard fd >= 0 else { return }
        closeDirect()
        let fd = self.fd, temporary = self.temporary
        self.fd = -1
        _ = try? await pool.runIfActive {
            close(fd)
            unlink(temporary)
        }
    }
}

extension FileBlobStore: BlobStoreCapacityReporting {
    /// The file system's size and the space an unprivileged writer may still use.
    public func capacity() async -> BlobStoreCapacity? {
        var fs = statvfs()
        guard statvfs(root, &fs) == 0 else { return nil }
        let unit = Int64(fs.f_frsize)
        return BlobStoreCapacity(total: Int64(fs.f_blocks) * unit, available: Int64(fs.f_bavail) * unit)
    }
}
