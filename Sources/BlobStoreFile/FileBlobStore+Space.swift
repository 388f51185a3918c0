#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ImageCore

/// A blob file's size is its logical bytes; its allocated blocks (`st_blocks`, 512-byte units
/// whatever the file system's block) are its physical bytes, less than the size when it has holes.
extension FileBlobStore: BlobStoreSpaceReporting {
    public func blobSpace(key: String) async throws -> BlobSpace? {
        try await status(key).map(Self.space)
    }

    public func totalSpace() async throws -> BlobSpace {
        let root = self.root
        return try await pool.runIfActive {
            var total = BlobSpace()
            for key in try Self.walk(root, "", prefix: "") {
                var st = stat()
                // A blob deleted since the walk counts for nothing.
                if stat(root + "/" + key, &st) == 0 { total = total + Self.space(st) }
            }
            return total
        }
    }

    static func space(_ st: stat) -> BlobSpace {
        BlobSpace(logical: Int64(st.st_size), physical: Int64(st.st_blocks) * 512)
    }
}
