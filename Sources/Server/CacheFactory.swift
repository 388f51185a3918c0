import BlobStoreFile
import ImageCore
import ImageData
import Logging

/// This node's image cache, or nil when `--cache-size` is 0. Its entries are files under
/// `--cache-dir`; downloads from S3 stores fill it by themselves, file stores only through the
/// cache API's queue (their downloads are as fast as the cache's). The index is rebuilt here.
func makeImageCache(_ config: ServerConfig, dataDir: String, logger: Logger) async throws -> ImageCache? {
    guard config.cacheSize > 0 else { return nil }
    let root = config.cacheDirectory ?? dataDir + "/cache"
    var options = ImageCache.Options()
    options.maxBytes = config.cacheSize
    if config.stores.isEmpty {
        if case .s3(let s3) = config.blobs { options.fillingStores = [s3.id] }
    } else {
        options.fillingStores = Set(config.stores.compactMap { id, choice in
            if case .s3 = choice { return id } else { return nil }
        })
    }
    let storage: FileBlobStore
    do { storage = try FileBlobStore(root: root) } catch { throw ConfigError("--cache-dir \(root): \(error)") }
    let cache = ImageCache(storage: storage, options: options, logger: logger)
    let entries = try await cache.load()
    logger.info("image cache ready", metadata: ["dir": .string(root), "entries": "\(entries)", "max_bytes": "\(config.cacheSize)"])
    return cache
}
