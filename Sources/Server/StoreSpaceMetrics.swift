import ImageCore
import Metrics

/// `imaged_store_bytes{store, kind="logical"|"physical"}`: every committed blob of each file store
/// (images, staged data), measured when `/metrics` is read, so the gauges are never stale. S3 stores
/// have none (no request to S3 per scrape); a store that fails to answer keeps its last values.
enum StoreSpaceMetrics {
    static func publish(_ stores: [any BlobStore]) async {
        for store in stores {
            guard let space = try? await store.spaceOfAllBlobs() else { continue }
            Gauge(label: "imaged_store_bytes", dimensions: [("store", store.id), ("kind", "logical")]).record(space.logical)
            Gauge(label: "imaged_store_bytes", dimensions: [("store", store.id), ("kind", "physical")]).record(space.physical)
        }
    }
}
