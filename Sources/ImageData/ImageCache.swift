import CoreMetrics
import Foundation
import ImageCore
import Logging
import NIOCore

/// The node-local image cache (Glance's image cache): whole images on this node's disk, in front of
/// the stores. An entry is written while the image streams from its store and committed only when
/// its MD5 matches the image's `checksum`; a checksum of every block (CRC-32C lanes) is recorded beside it, and a hit
/// checks each block before sending it (`CacheBlockVerifier`), so a damaged entry is found before
/// any of its wrong bytes leave. Entries are evicted least recently used to `maxBytes`; the order
/// survives restarts in the entries' file times.
///
/// Layout in `storage` (a file store under `--cache-dir`): `data/<id>` the bytes, `sums/<id>` the
/// entry's record (size, MD5, block CRCs). An entry exists only when both do and agree.
public actor ImageCache {
    public struct Options: Sendable {
        /// The most bytes the entries may take (`--cache-size`).
        public var maxBytes: Int64 = 10 << 30
        /// Bytes per checksummed block; also the read size of a hit.
        public var blockSize = 1 << 20
        /// Stores whose whole-image downloads fill the cache by themselves: the remote ones (S3). A
        /// file store is as fast as the cache, so its images are cached only when queued.
        public var fillingStores: Set<String> = []
        public init() {}
    }

    /// One committed entry, in the terms of Glance's `GET /v2/cache`.
    public struct Entry: Sendable, Equatable {
        public let imageId: String
        public let size: Int64
        /// The MD5 (hex) the bytes were verified against when the entry was filled.
        public let checksum: String
        public let blockSize: Int
        let sums: [UInt32]
        /// Seconds since the epoch.
        public var lastAccessed: Double
        public var lastModified: Double
        /// Hits since this node started (Glance keeps them in its cache database).
        public var hits: Int
    }

    /// What `sums/<id>` holds.
    struct Record: Codable {
        /// 2: block checksums are `imaged_block_sum` (three CRC-32C lanes).
        var version = 2
        var image: String
        var size: Int64
        var md5: String
        var block: Int
        var sums: [UInt32]
    }

    let storage: any BlobStore
    public let options: Options
    let logger: Logger
    var entries: [String: Entry] = [:]
    /// Bytes reserved by fills in progress, by image.
    var filling: [String: Int64] = [:]
    /// Images queued for pre-caching, in queue order, with who queued them (the prefetch reads as them).
    var queue: [(id: String, by: Principal)] = []
    var prefetching = false

    public init(storage: any BlobStore, options: Options = .init(), logger: Logger = Logger(label: "imaged.cache")) {
        self.storage = storage; self.options = options; self.logger = logger
    }

    static func dataKey(_ id: String) -> String { "data/\(id)" }
    static func sumsKey(_ id: String) -> String { "sums/\(id)" }

    var usedBytes: Int64 { entries.values.reduce(0) { $0 + $1.size } + filling.values.reduce(0, +) }

    // MARK: Start

    /// Rebuilds the index from the storage: drops what a crash left half-written and entries whose
    /// parts disagree, then evicts down to the size (it may have been lowered). Returns the entry count.
    @discardableResult
    public func load() async throws -> Int {
        _ = try await storage.removeLeftovers()
        let times = storage as? any BlobStoreTimes
        var seen = Set<String>()
        for key in try await storage.keys(prefix: "sums/") {
            let id = String(key.dropFirst("sums/".count))
            seen.insert(id)
            guard let record = try? await readRecord(key), record.image == id, record.version == 2,
                  record.sums.count == Self.blockCount(size: record.size, blockSize: record.block),
                  let size = try await storage.size(key: Self.dataKey(id)), size == record.size else {
                logger.warning("cache entry incomplete or damaged at start; removed", metadata: ["image": .string(id)])
                try? await storage.delete(key: Self.dataKey(id))
                try? await storage.delete(key: key)
                continue
            }
            let accessed = (try? await times?.modified(key: Self.dataKey(id))) ?? nil
            let modified = (try? await times?.modified(key: key)) ?? nil
            let now = Date().timeIntervalSince1970
            entries[id] = Entry(imageId: id, size: size, checksum: record.md5, blockSize: record.block, sums: record.sums,
                                lastAccessed: accessed ?? now, lastModified: modified ?? now, hits: 0)
        }
        for key in try await storage.keys(prefix: "data/") where !seen.contains(String(key.dropFirst("data/".count))) {
            try? await storage.delete(key: key)  // bytes whose record never got written
        }
        _ = await evict(toFit: 0)
        publishGauges()
        return entries.count
    }

    func readRecord(_ key: String) async throws -> Record {
        var bytes = ByteBuffer()
        try await storage.read(key: key, range: nil, chunkSize: 1 << 16) { var b = $0; bytes.writeBuffer(&b) }
        return try JSONDecoder().decode(Record.self, from: Data(bytes.readableBytesView))
    }

    static func blockCount(size: Int64, blockSize: Int) -> Int {
        blockSize > 0 ? Int((size + Int64(blockSize) - 1) / Int64(blockSize)) : -1
    }

    // MARK: Lookups

    /// The entry holding `image`'s current data; an entry for other bytes (another checksum or size) is dropped.
    public func entry(for image: Image) async -> Entry? {
        guard let e = entries[image.id] else { return nil }
        guard e.size == image.size, e.checksum == image.checksum else {
            await evict(image.id, reason: "stale")
            return nil
        }
        return e
    }

    /// Counts a hit: the entry becomes the most recently used, here and in its file time.
    func recordHit(_ id: String) async {
        guard entries[id] != nil else { return }
        entries[id]?.hits += 1
        entries[id]?.lastAccessed = Date().timeIntervalSince1970
        CacheMetrics.hit()
        try? await (storage as? any BlobStoreTimes)?.touch(key: Self.dataKey(id))
    }

    /// Committed entries, by image id (Glance's order).
    public func cachedEntries() -> [Entry] { entries.values.sorted { $0.imageId < $1.imageId } }

    public func queuedIds() -> [String] { queue.map(\.id) }

    public func holds(_ id: String) -> Bool { entries[id] != nil || queue.contains { $0.id == id } }

    // MARK: Filling

    /// Starts an entry for `image` unless it is cached, being filled, has no MD5 or cannot fit;
    /// evicts least recently used entries to make room. The caller feeds it the image's bytes in order.
    func beginFill(_ image: Image) async -> CacheFill? {
        guard let size = image.size, let md5 = image.checksum, entries[image.id] == nil, filling[image.id] == nil,
              size <= options.maxBytes else { return nil }
        filling[image.id] = size
        _ = await evict(toFit: 0)
        do {
            let writer = try await storage.makeWriter(key: Self.dataKey(image.id))
            return try CacheFill(cache: self, imageId: image.id, size: size, md5: md5, blockSize: options.blockSize, writer: writer)
        } catch {
            filling[image.id] = nil
            logger.warning("cannot start a cache entry", metadata: ["image": .string(image.id), "error": "\(error)"])
            return nil
        }
    }

    /// Records a verified fill: its record is written, then its bytes committed (`commitData`).
    func commit(_ record: Record, commitData: @Sendable () async throws -> Void) async throws {
        defer { filling[record.image] = nil }
        let encoded = try JSONEncoder().encode(record)
        let writer = try await storage.makeWriter(key: Self.sumsKey(record.image))
        do {
            try await writer.write(ByteBuffer(bytes: encoded))
            try await writer.commit()
            try await commitData()
        } catch {
            await writer.cancel()
            try? await storage.delete(key: Self.sumsKey(record.image))
            throw error
        }
        let now = Date().timeIntervalSince1970
        entries[record.image] = Entry(imageId: record.image, size: record.size, checksum: record.md5, blockSize: record.block,
                                      sums: record.sums, lastAccessed: now, lastModified: now, hits: 0)
        // A queued image filled by a download needs no prefetch any more.
        queue.removeAll { $0.id == record.image }
        publishGauges()
        logger.info("image cached", metadata: ["image": .string(record.image), "size": "\(record.size)"])
    }

    func abandonFill(_ id: String) { filling[id] = nil }

    // MARK: Eviction

    /// Removes an entry (`reason` labels the eviction counter: lru, corrupt, deleted, api, stale).
    public func evict(_ id: String, reason: String) async {
        guard entries.removeValue(forKey: id) != nil else { return }
        try? await storage.delete(key: Self.dataKey(id))
        try? await storage.delete(key: Self.sumsKey(id))
        CacheMetrics.evicted(reason)
        publishGauges()
        logger.info("cache entry evicted", metadata: ["image": .string(id), "reason": .string(reason)])
    }

    /// Evicts least recently used entries until `extra` more bytes fit; returns how many and their bytes.
    func evict(toFit extra: Int64) async -> (files: Int, bytes: Int64) {
        var files = 0, bytes: Int64 = 0
        while usedBytes + extra > options.maxBytes,
              let oldest = entries.values.min(by: { $0.lastAccessed < $1.lastAccessed }) {
            await evict(oldest.imageId, reason: "lru")
            files += 1; bytes += oldest.size
        }
        return (files, bytes)
    }

    /// Glance's prune: down to the size (normally already there, the cache evicts as it fills).
    public func prune() async -> (files: Int, bytes: Int64) { await evict(toFit: 0) }

    /// Glance's clean: removes what failed fills left behind (only when no fill is running).
    public func clean() async throws -> Int {
        guard filling.isEmpty else { return 0 }
        return try await storage.removeLeftovers()
    }

    /// Empties the cache; returns how many entries went.
    public func clearCached() async -> Int {
        let ids = Array(entries.keys)
        for id in ids { await evict(id, reason: "api") }
        return ids.count
    }

    // MARK: The pre-caching queue

    /// Queues an image (Glance: false when it is already queued or cached).
    @discardableResult
    public func enqueue(_ id: String, by p: Principal) -> Bool {
        guard !holds(id) else { return false }
        queue.append((id, p))
        return true
    }

    public func dequeue(_ id: String) -> Bool {
        let before = queue.count
        queue.removeAll { $0.id == id }
        return queue.count != before
    }

    public func clearQueue() -> Int {
        defer { queue.removeAll() }
        return queue.count
    }

    /// Becomes the one prefetch worker, or false when one is running.
    func startPrefetching() -> Bool {
        guard !prefetching else { return false }
        prefetching = true
        return true
    }

    /// The next queued image for the worker (it stays listed until done); nil ends the worker.
    func nextQueued() -> (id: String, by: Principal)? {
        guard let first = queue.first else { prefetching = false; return nil }
        return first
    }

    func publishGauges() {
        Gauge(label: "imaged_cache_bytes").record(entries.values.reduce(0) { $0 + $1.size })
        Gauge(label: "imaged_cache_entries").record(entries.count)
    }
}

/// The cache's Prometheus series.
enum CacheMetrics {
    static func hit() { Counter(label: "imaged_cache_hits_total").increment() }
    static func miss() { Counter(label: "imaged_cache_misses_total").increment() }
    static func evicted(_ reason: String) {
        Counter(label: "imaged_cache_evictions_total", dimensions: [("reason", reason)]).increment()
    }
    static func fillFailed(_ why: String) {
        Counter(label: "imaged_cache_fill_failures_total", dimensions: [("reason", why)]).increment()
    }
}
