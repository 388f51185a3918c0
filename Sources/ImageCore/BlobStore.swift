import NIOCore

/// Where image bytes live: files under the data directory, or an S3 bucket.
///
/// Keys are short relative names made by the service (`images/<uuid>`, `staging/<uuid>`), never
/// caller input. A blob is visible under its key only once its writer commits, so a reader never
/// sees half-written data.
public protocol BlobStore: Sendable {
    /// A short name for logs and `/v2/info/stores`.
    var id: String { get }
    /// Starts a blob. Its bytes stay invisible until `commit()`; `cancel()` discards them.
    /// Committing replaces any blob already under `key`.
    func makeWriter(key: String) async throws -> any BlobWriter
    /// Size of the committed blob, nil when absent.
    func size(key: String) async throws -> Int64?
    /// Pushes the bytes of `range` (the whole blob when nil) to `sink` in order, awaiting each
    /// call, so a slow consumer slows the read instead of buffering it.
    func read(key: String, range: Range<Int64>?, chunkSize: Int,
              into sink: (ByteBuffer) async throws -> Void) async throws
    /// Removes a committed blob; absent is not an error.
    func delete(key: String) async throws
    /// Committed keys starting with `prefix` (for the start-up scrub).
    func keys(prefix: String) async throws -> [String]
    /// Removes what writers left behind without committing or cancelling (a crash).
    /// Returns how many leftovers were removed. Call only when no writer of this process is open.
    func removeLeftovers() async throws -> Int
}

/// One blob being written. Not for concurrent use: one task writes, then commits or cancels.
public protocol BlobWriter: Sendable {
    /// Appends bytes. Throws when the store fails (disk full, network…).
    func write(_ buffer: ByteBuffer) async throws
    /// Makes the bytes durable and visible under the key, all at once.
    func commit() async throws
    /// Discards everything written; never throws, safe to call after a failed write or twice.
    func cancel() async
}

/// Where the service keeps each kind of blob.
public enum BlobKey {
    public static func image(_ id: String) -> String { "images/\(id)" }
    public static func staging(_ id: String) -> String { "staging/\(id)" }

    /// What every store accepts as a key: `/`-separated names of printable ASCII, none empty or
    /// starting with `.` (so no `..`, no hidden or temporary names, no absolute paths), no `\\`.
    public static func isValid(_ key: String) -> Bool {
        guard !key.isEmpty, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\") }) else { return false }
        return !key.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0.hasPrefix(".") }
    }
}
