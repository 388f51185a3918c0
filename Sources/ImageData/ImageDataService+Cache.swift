import ImageCore
import Logging
import NIOCore

/// Downloads through the node-local cache: a hit is served from local disk, checked block by block
/// (a damaged entry is evicted and the rest of the download comes from the store, so the client
/// never receives wrong bytes); a whole-image download from a remote store fills the cache as it
/// streams. Range downloads are served from an entry too, but never fill one.
extension ImageDataService {
    /// The bytes of `range` of the image's blob in `store`, from the cache when it holds them.
    func readBytes(_ image: Image, from store: any BlobStore, range: Range<Int64>,
                   into sink: (ByteBuffer) async throws -> Void) async throws {
        let key = BlobKey.image(image.id)
        guard let cache else {
            return try await store.read(key: key, range: range, chunkSize: config.readChunkSize, into: sink)
        }
        if let entry = await cache.entry(for: image) {
            await cache.recordHit(entry.imageId)
            var delivered = range.lowerBound
            var clientFailed = false
            do {
                var verifier = CacheBlockVerifier(entry: entry, range: range)
                try await verifier.read(from: cache.storage, key: ImageCache.dataKey(entry.imageId)) { piece in
                    do { try await sink(piece) } catch { clientFailed = true; throw error }
                    delivered += Int64(piece.readableBytes)
                }
                return
            } catch {
                if clientFailed || error is CancellationError { throw error }
                logger.warning("cache entry failed its check: evicted, the rest of the download comes from the store",
                               metadata: ["image": .string(image.id), "from": "\(delivered)", "error": "\(error)"])
                await cache.evict(entry.imageId, reason: error is CacheCorruption ? "corrupt" : "error")
            }
            if delivered < range.upperBound {
                try await store.read(key: key, range: delivered..<range.upperBound, chunkSize: config.readChunkSize, into: sink)
            }
            return
        }
        CacheMetrics.miss()
        guard range.lowerBound == 0, range.upperBound == image.size, cache.options.fillingStores.contains(store.id),
              let fill = await cache.beginFill(image) else {
            return try await store.read(key: key, range: range, chunkSize: config.readChunkSize, into: sink)
        }
        do {
            try await store.read(key: key, range: range, chunkSize: config.readChunkSize) { buffer in
                try await sink(buffer)
                await fill.append(buffer)
            }
        } catch {
            await uncancelled { await fill.cancel() }
            throw error
        }
        await uncancelled { await fill.finish() }
    }

    /// The size of the image's bytes as this node would serve them: the cache entry's when it
    /// holds them (no store request), else the store's.
    public func storedSize(_ image: Image) async throws -> Int64? {
        if let cache, let entry = await cache.entry(for: image) { return entry.size }
        do { return try await storeHolding(image).size(key: BlobKey.image(image.id)) } catch {
            throw Self.storeError(error)  // a store that is down: 503, not 500
        }
    }

    /// Drains the pre-caching queue, one image at a time; a second call while one runs returns at once.
    public func prefetchQueued() async {
        guard let cache, await cache.startPrefetching() else { return }
        while let (id, p) = await cache.nextQueued() {
            do {
                let image = try await images.imageForDownload(id: id, by: p)
                if image.status == .active, await cache.entry(for: image) == nil, let fill = await cache.beginFill(image) {
                    do {
                        try await storeHolding(image).read(key: BlobKey.image(id), range: nil, chunkSize: config.readChunkSize) {
                            await fill.append($0)
                        }
                    } catch {
                        await fill.cancel()
                        throw error
                    }
                    await fill.finish()
                }
            } catch {
                logger.warning("queued image could not be cached", metadata: ["image": .string(id), "error": "\(error)"])
            }
            _ = await cache.dequeue(id)
        }
    }
}

// MARK: The cache API (Glance v2.14: `/v2/cache`), its rules written once here.

/// What `DELETE /v2/cache` empties (Glance's `x-image-cache-clear-target`).
public enum CacheClearTarget: String, Sendable {
    case cache, queue, both

    /// Glance's values: absent or empty is both; "both" is accepted too (the clients' name for it).
    public init(header: String?) throws {
        let value = (header ?? "").trimmingSpaces.lowercased()
        guard let target = value.isEmpty ? .both : CacheClearTarget(rawValue: value) else {
            throw ImageError.badRequest("If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.")
        }
        self = target
    }
}

public struct CacheState: Sendable {
    public var cached: [ImageCache.Entry]
    public var queued: [String]
}

extension ImageDataService {
    /// Glance's cache policies (admin by default), then 404 when this node has no cache.
    func cacheFor(_ action: PolicyAction, _ p: Principal, _ image: Image? = nil) throws -> ImageCache {
        guard Policy.allows(action, p, image.map { PolicyTarget($0) } ?? .none) else {
            throw ImageError.forbidden("You are not authorized to manage the image cache.")
        }
        guard let cache else { throw ImageError.notFound("Caching via API is not supported at this site.") }
        return cache
    }

    /// Entries of images another node deleted (or whose data changed) are evicted as they are listed, so
    /// every node's list holds only images it could serve (the caller is an admin: it sees every image).
    public func cacheState(by p: Principal) async throws -> CacheState {
        let cache = try cacheFor(.cacheList, p)
        var cached: [ImageCache.Entry] = []
        for entry in await cache.cachedEntries() {
            let found: Image?
            do { found = try await images.visibleImageIfAny(id: entry.imageId, by: p) } catch {
                cached.append(entry)  // a catalog that cannot answer keeps the entry listed
                continue
            }
            guard let image = found, image.status == .active || image.status == .deactivated else {
                await cache.evict(entry.imageId, reason: "deleted")
                continue
            }
            if await cache.entry(for: image) != nil { cached.append(entry) }  // else evicted as stale
        }
        return CacheState(cached: cached, queued: await cache.queuedIds())
    }

    /// `PUT /v2/cache/{id}`: 404 for an image the caller cannot see, 403 without the policy, 400
    /// unless active; then queued and prefetched in the background.
    public func queueForCache(id: String, by p: Principal) async throws {
        AuditTrail.note("cache.queue", imageId: id, by: p)
        guard let image = try await images.visibleImageIfAny(id: id, by: p) else {
            throw ImageError.notFound("Image \(id) not found.")
        }
        let cache = try cacheFor(.cacheImage, p, image)
        guard image.status == .active else {
            throw ImageError.badRequest("Only images with status active can be targeted for queueing")
        }
        guard await cache.entry(for: image) == nil else { return }  // already cached
        await cache.enqueue(image.id, by: p)
        let data = self
        Task { await data.prefetchQueued() }
    }

    /// `DELETE /v2/cache/{id}`: out of the cache and the queue; 404 only when neither the catalog
    /// (for the caller) nor the cache knows the id.
    public func removeFromCache(id: String, by p: Principal) async throws {
        AuditTrail.note("cache.delete", imageId: id, by: p)
        let image = try await images.visibleImageIfAny(id: id, by: p)
        if image == nil, !(await cache?.holds(id) ?? false) {
            throw ImageError.notFound("Image \(id) not found.")
        }
        let cache = try cacheFor(.cacheDelete, p, image)
        await cache.evict(id, reason: "api")
        _ = await cache.dequeue(id)
    }

    /// `DELETE /v2/cache`: how many entries and queued ids went (nil for a target not cleared).
    public func clearCache(_ target: CacheClearTarget, by p: Principal) async throws -> (cache: Int?, queue: Int?) {
        AuditTrail.note("cache.clear", by: p)
        let cache = try cacheFor(.cacheDelete, p)
        let cached = target == .queue ? nil : await cache.clearCached()
        let queued = target == .cache ? nil : await cache.clearQueue()
        return (cached, queued)
    }

    /// `GET /v2/cache/nodes/{id}` (v2.18): the nodes caching an image need Glance's centralized cache
    /// database; each imaged node keeps its own index, so this answers as Glance's per-node drivers do (409).
    public func cachedNodes(id: String, by p: Principal) async throws -> [String] {
        _ = try cacheFor(.listCachedNodes, p)
        throw ImageError.conflict("Centralized caching is not enabled")
    }

    /// `POST /v2/cache/clean`: removes what failed fills left.
    public func cleanCache(by p: Principal) async throws {
        AuditTrail.note("cache.clean", by: p)
        let cache = try cacheFor(.cacheClean, p)
        _ = try await cache.clean()
    }

    /// `POST /v2/cache/prune`: evicts down to the configured size.
    public func pruneCache(by p: Principal) async throws -> (files: Int, bytes: Int64) {
        AuditTrail.note("cache.prune", by: p)
        return try await cacheFor(.cachePrune, p).prune()
    }
}
