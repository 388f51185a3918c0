import ImageCore

/// Glance's S3 store settings in `/v2/info/stores/detail`, plus where the bucket is (no credentials).
extension S3BlobStore: BlobStoreDetails {
    public var storeType: String { "s3" }
    public var storeProperties: [(String, JSONValue)] {
        [("s3_store_large_object_size", .int(Int64(config.partSize >> 20))),
         ("s3_store_large_object_chunk_size", .int(Int64(config.partSize >> 20))),
         ("s3_store_thread_pools", .int(Int64(config.partsInFlight))),
         ("s3_store_host", .string(config.endpoint)),
         ("s3_store_bucket", .string(config.bucket))]
    }
    public func locationURL(key: String) -> String { "s3://" + config.bucket + "/" + config.keyPrefix + key }
}
