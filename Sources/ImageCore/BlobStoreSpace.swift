/// Bytes of a store's blobs as stored (`logical`: their sizes, what quotas count) and as they take
/// space (`physical`: a sparse file's allocated blocks; S3 has no holes, so there it is the size).
public struct BlobSpace: Sendable, Equatable {
    public var logical: Int64
    public var physical: Int64
    public init(logical: Int64 = 0, physical: Int64 = 0) { self.logical = logical; self.physical = physical }

    public static func + (a: BlobSpace, b: BlobSpace) -> BlobSpace {
        BlobSpace(logical: a.logical + b.logical, physical: a.physical + b.physical)
    }
}

/// Stores whose blobs may take less space than their size (files with holes), measured locally:
/// each blob's space, and the sum over all of them (the `imaged_store_bytes` gauges). S3 is not one:
/// an object takes its size, and summing a bucket would be a listing on every `/metrics` read.
public protocol BlobStoreSpaceReporting: Sendable {
    /// The committed blob's logical and physical bytes, nil when absent.
    func blobSpace(key: String) async throws -> BlobSpace?
    /// The sum over every committed blob.
    func totalSpace() async throws -> BlobSpace
}

extension BlobStore {
    /// The blob's space; a store that cannot tell physical bytes reports its size for both.
    public func space(key: String) async throws -> BlobSpace? {
        if let named = self as? NamedBlobStore { return try await named.base.space(key: key) }
        if let reporting = self as? any BlobStoreSpaceReporting { return try await reporting.blobSpace(key: key) }
        return try await size(key: key).map { BlobSpace(logical: $0, physical: $0) }
    }

    /// The space of a blob known to be `size` bytes: asked of a store with holes, else the size itself
    /// (no request: an S3 object takes what its size says).
    public func space(key: String, size: Int64) async throws -> BlobSpace? {
        if let named = self as? NamedBlobStore { return try await named.base.space(key: key, size: size) }
        if let reporting = self as? any BlobStoreSpaceReporting { return try await reporting.blobSpace(key: key) }
        return BlobSpace(logical: size, physical: size)
    }

    /// Every committed blob's space (nil: the store cannot list sizes).
    public func spaceOfAllBlobs() async throws -> BlobSpace? {
        if let named = self as? NamedBlobStore { return try await named.base.spaceOfAllBlobs() }
        return try await (self as? any BlobStoreSpaceReporting)?.totalSpace()
    }
}
