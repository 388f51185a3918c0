/// Stores that keep a time per blob which can be renewed (files: their modification time). The
/// node-local image cache keeps its entries in such a store and records each hit there, so its
/// least-recently-used order survives a restart.
public protocol BlobStoreTimes: Sendable {
    /// When the blob was last modified or touched, in seconds since the epoch; nil when absent.
    func modified(key: String) async throws -> Double?
    /// Sets the blob's time to now; absent is not an error.
    func touch(key: String) async throws
}
