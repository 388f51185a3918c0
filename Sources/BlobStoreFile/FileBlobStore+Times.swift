#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ImageCore

/// A file's mtime is its blob time (the image cache's last access).
extension FileBlobStore: BlobStoreTimes {
    public func modified(key: String) async throws -> Double? {
        guard let st = try await status(key) else { return nil }
        #if canImport(Darwin)
        return Double(st.st_mtimespec.tv_sec) + Double(st.st_mtimespec.tv_nsec) / 1e9
        #else
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        #endif
    }

    public func touch(key: String) async throws {
        let p = try path(key)
        try await pool.runIfActive {
            // NULL times: now (UTIME_NOW for both).
            if utimensat(AT_FDCWD, p, nil, 0) != 0 && errno != ENOENT { throw BlobStoreError.syscall("utimensat \(p)", errno) }
        }
    }
}
