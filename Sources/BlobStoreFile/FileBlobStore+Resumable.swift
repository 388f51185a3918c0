#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ImageCore
import NIOCore
import NIOPosix

/// Resumable blobs as files `.sessions/<session>.part` under the root: appended to by one request
/// after another, fsynced at each checkpoint, renamed to their key by `commit()` like any blob.
/// The token is the session's name. Out of `.tmp`, so a restart's leftover sweep keeps them.
extension FileBlobStore: ResumableBlobStore, BlobStoreOrphanReaping {
    static let sessionDirectory = ".sessions"

    public var checkpointAlignment: Int64 { 1 }

    func sessionPath(_ token: String) throws -> String {
        guard !token.isEmpty, token.utf8.count <= 64,
              token.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || $0 == UInt8(ascii: "-") }) else {
            throw BlobStoreError(.invalidKey, "invalid resumable blob token '\(token)'")
        }
        return root + "/" + Self.sessionDirectory + "/" + token + ".part"
    }

    public func beginResumable(key: String, session: String) async throws -> String {
        _ = try path(key)
        let file = try sessionPath(session), directory = root + "/" + Self.sessionDirectory
        try await pool.runIfActive {
            try Self.makeDirectories(directory)
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw BlobStoreError.syscall("open \(file)", errno) }
            defer { close(fd) }
            guard fsync(fd) == 0 else { throw BlobStoreError.syscall("fsync \(file)", errno) }
            let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { fsync(dfd); close(dfd) }
        }
        return session
    }

    public func resumeWriter(key: String, token: String, offset: Int64) async throws -> any ResumableBlobWriter {
        let final = try path(key), file = try sessionPath(token)
        let directory = String(final[..<final.lastIndex(of: "/")!])
        let fd = try await pool.runIfActive {
            try Self.makeDirectories(directory)
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw errno == ENOENT ? BlobStoreError(.notFound, "resumable blob '\(token)' does not exist")
                    : BlobStoreError.syscall("open \(file)", errno)
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else { let e = errno; close(fd); throw BlobStoreError.syscall("fstat \(file)", e) }
            guard Int64(st.st_size) >= offset else {
                close(fd)
                throw BlobStoreError(.io, "resumable blob '\(token)' holds \(st.st_size) bytes, fewer than its checkpoint's \(offset)")
            }
            // Bytes written after the last checkpoint are not the session's: drop them.
            guard ftruncate(fd, off_t(offset)) == 0 else { let e = errno; close(fd); throw BlobStoreError.syscall("ftruncate \(file)", e) }
            return fd
        }
        return FileBlobWriter(fd: fd, temporary: file, final: final, directory: directory, pool: pool,
                              sparse: sparse, offset: offset, token: token)
    }

    public func discardResumable(token: String) async {
        guard let file = try? sessionPath(token) else { return }
        _ = try? await pool.runIfActive { unlink(file) }
    }

    public func removeLeftovers(keeping: [String]) async throws -> Int {
        try await removeLeftovers() + removeSessions(olderThan: nil, now: 0, keeping: keeping)
    }

    /// Resumable blobs no open session names and untouched for `maxAge` seconds (a session that
    /// ended while its node was down).
    public func abortStaleUploads(maxAge: Int64, now: Int64, keeping: [String]) async throws -> Int {
        try await removeSessions(olderThan: maxAge, now: now, keeping: keeping)
    }

    /// `olderThan` nil: every one not kept.
    func removeSessions(olderThan maxAge: Int64?, now: Int64, keeping: [String]) async throws -> Int {
        let directory = root + "/" + Self.sessionDirectory, kept = Set(keeping.map { $0 + ".part" })
        return try await pool.runIfActive {
            var removed = 0
            for name in try Self.walk(directory, "", prefix: "") where !kept.contains(name) {
                var st = stat()
                let file = directory + "/" + name
                guard stat(file, &st) == 0 else { continue }
                if let maxAge, now - Int64(st.st_mtim.tv_sec) <= maxAge { continue }
                if unlink(file) == 0 { removed += 1 }
            }
            return removed
        }
    }
}
