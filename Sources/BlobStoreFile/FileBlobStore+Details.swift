import ImageCore

/// Glance's file store shows its directory in `/v2/info/stores/detail`.
extension FileBlobStore: BlobStoreDetails {
    public var storeType: String { "file" }
    public var storeProperties: [(String, JSONValue)] {
        [("data_dir", .string(root)), ("chunk_size", .int(65536)), ("thin_provisioning", .bool(sparse))]
    }
    public func locationURL(key: String) -> String { "file://" + root + "/" + key }
}
