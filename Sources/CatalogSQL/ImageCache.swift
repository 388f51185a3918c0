import ImageCore
import Synchronization

/// Recently read or written images by id. An entry is replaced only by a newer version, so a
/// reader that fetched a row before a concurrent write commits cannot put the older row back.
///
/// Bounded by memory (`bytes`, an estimate per entry: `footprint`) and by a number of entries
/// (`capacity`, for tests). A catalog of 100,000 images fits in the default budget: reading one
/// then costs no SQLite read (the SQLite catalog answers GET by id from here) and no row decoding.
package final class ImageCache: Sendable {
    package let capacity: Int
    package let bytes: Int
    private let state: Mutex<State>
    /// Generations dropped so far (see `ReadTicket`).
    private let flips = Atomic<UInt64>(0)

    /// An id with its hash, computed once: a lookup probes two generations and the doorkeeper, and
    /// an insert probes both again; hashing the 36-character id each time was most of a lookup (a
    /// marker walk over a million images spent 6 % of its CPU in them).
    struct Key: Hashable {
        let id: String
        let hash: Int

        init(_ id: String) {
            self.id = id
            hash = id.hashValue
        }

        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
        static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.id == b.id }
    }

    /// Two generations. New entries go to `young`; when it holds half the capacity, `old` is dropped
    /// whole and `young` becomes old. A hit in `old` is copied to `young`, so a hot entry survives.
    /// Lists offer every row they read, so the cache churns at a large catalog: forgetting in bulk
    /// costs nothing per entry, where removing the oldest one per insert was a tenth of a marker walk.
    private struct State {
        var young: [Key: Entry] = [:]
        var old: [Key: Entry] = [:]
        /// The estimated memory of `young`'s entries; `old`'s was at most half the budget when it flipped.
        var youngBytes = 0
        /// The doorkeeper: ids a read has offered once, as bits of their hash. A row read for the
        /// first time is only remembered here; its second read puts it in the cache. Reads spread
        /// over a catalog far larger than the cache (a marker walk over a million images) then stop
        /// filling it with rows nobody reads again, and stop paying to insert and free them, while
        /// a set that is read again still gets in on its second read (TinyLFU's admission filter).
        var seen = [UInt64](repeating: 0, count: ImageCache.seenBits / 64)
        var seenSet = 0
        /// Read lookups and hits in the current window of `ImageCache.window` lookups.
        var lookups = 0
        var hits = 0
        /// The last window's hits were under half its lookups, and the cache has been full (a
        /// generation was dropped): the rows read again are more than the cache holds (a walk over 100,000 images, five times
        /// the cache, passes the doorkeeper nearly every time), and admitting each one only makes
        /// the cache drop what it holds sooner. Then one row a list read in `ImageCache.thinning` is
        /// admitted: the churn falls eightfold, and a set that is read often still gets in within a
        /// few reads. A row read by id passes both the doorkeeper and thinning (`lookup`'s `byID`).
        var thinning = false
        var skipped = 0
        var filled = false

        /// A hit in `old` is copied to `young`.
        mutating func hit(_ key: Key) -> Entry? {
            if let entry = young[key] { return entry }
            guard let entry = old[key] else { return nil }
            young[key] = entry
            youngBytes += entry.bytes
            return entry
        }

        /// Whether a read saw `id` before (since the doorkeeper last started again); records this one.
        mutating func sawBefore(_ key: Key) -> Bool {
            let bit = Int(truncatingIfNeeded: UInt(bitPattern: key.hash) % UInt(ImageCache.seenBits))
            let mask: UInt64 = 1 << UInt64(bit % 64)
            if seen[bit / 64] & mask != 0 { return true }
            seen[bit / 64] |= mask
            seenSet += 1
            if seenSet >= ImageCache.seenBits / 8 {
                for k in seen.indices { seen[k] = 0 }
                seenSet = 0
            }
            return false
        }
    }

    /// 128 KiB of bits, cleared after an eighth of them were set: a row read once is then wrongly
    /// admitted one time in 16 on average, and the bits cover the last ~130,000 first reads.
    package static let seenBits = 1 << 20
    static let window = 4096
    package static let thinning = 8

    /// When a read began: an offer from a read during which two generations were dropped is
    /// refused. A newer version written meanwhile may have been dropped with them, and the older
    /// row would then take its place (the SQLite catalog answers GET from the cache).
    package struct ReadTicket: Sendable {
        fileprivate let flips: UInt64
    }

    /// An image with its estimated memory, computed once when it enters the cache, and the latest
    /// catalog revision a read found this version at (PostgreSQL: `PostgresCatalog.image(id:)`).
    struct Entry {
        let image: Image
        let bytes: Int
        var revision: Int64?
    }

    /// 256 MiB: about 230,000 images like the benchmarks' (two tags, two short properties; 1.1 KiB
    /// each, measured and estimated), so a catalog of 100,000 is read from memory. Memory is taken
    /// only as images are read.
    package static let defaultBytes = 256 << 20

    package init(capacity: Int = .max, bytes: Int = ImageCache.defaultBytes) {
        self.capacity = max(2, capacity)
        self.bytes = max(2, bytes)
        state = Mutex(State())
    }

    /// What keeping `image` costs, approximately: the dictionary slot (its key and the inline
    /// `Image`, at the dictionary's usual load) and every heap allocation the image holds. Strings of
    /// up to 15 UTF-8 bytes are stored inline; longer ones are a heap object (32-byte header, the
    /// bytes and a NUL, rounded to 16 by malloc, plus its 16-byte header).
    package static func footprint(_ image: Image) -> Int {
        func heap(_ s: String?) -> Int {
            guard let n = s?.utf8.count, n > 15 else { return 0 }
            return (32 + n + 1 + 15) & ~15 + 16
        }
        var n = slotBytes
        n += heap(image.id) + heap(image.name) + heap(image.owner) + heap(image.containerFormat) + heap(image.diskFormat)
            + heap(image.checksum) + heap(image.osHashAlgo) + heap(image.osHashValue) + heap(image.writerNode)
        if !image.tags.isEmpty {
            n += 48 + 16 * image.tags.count
            for tag in image.tags { n += heap(tag) }
        }
        if !image.properties.isEmpty {
            // Buckets of two Strings, a power of two at most 3/4 full: about 2.0 slots per entry on average.
            n += 64 + 2 * 32 * image.properties.count
            for (key, value) in image.properties { n += heap(key) + heap(value) }
        }
        if !image.extensions.isEmpty { n += 64 + 128 * image.extensions.count }
        return n
    }

    /// A slot of `[Key: Entry]` (about 1.5 slots per entry at the dictionary's load), and the slot
    /// the doorkeeper or the other generation may hold for it.
    static let slotBytes = 3 * (MemoryLayout<Key>.stride + MemoryLayout<Entry>.stride) / 2

    /// Take before the read whose rows are offered with `offerRead`.
    package func ticket() -> ReadTicket { ReadTicket(flips: flips.load(ordering: .acquiring)) }

    package func get(_ id: String) -> Image? {
        let key = Key(id)
        return state.withLock { s in s.hit(key)?.image }
    }

    /// The cached image of `id` with the latest catalog revision a read found that version at; nil
    /// when it is not cached or no read has said at which revision.
    package func withRevision(_ id: String) -> (image: Image, revision: Int64)? {
        let key = Key(id)
        return state.withLock { s in
            guard let entry = s.hit(key), let revision = entry.revision else { return nil }
            return (entry.image, revision)
        }
    }

    /// What a read finds for a row it is about to decode.
    package enum Lookup {
        /// The cached image: the caller can skip decoding the row.
        case hit(Image)
        /// Decode the row; offer it (`offerRead`) only when `admit` says the cache would take it.
        case miss(admit: Bool)
    }

    /// The cached image when it is exactly the row a query has just read (same version and
    /// `updated_at`; any version when those are nil: a catalog whose cache holds every write it
    /// made). On a miss it records the read in the doorkeeper: one lock and one pass for both.
    /// `revision`: the catalog revision the query read the row at; a hit then records it.
    /// `byID`: the row was asked for by id (a GET), not met by a list. It is admitted on its first
    /// read, past the doorkeeper and thinning: both are there for lists walking a catalog larger than
    /// the cache, and a walk's first reads clear the doorkeeper every ~130,000 rows, so a set of images
    /// clients GET again and again, but less often than that, would otherwise never get in (growth.sh
    /// at 1M: bench/README "Seventh pass"). A GET that misses costs a read and a decode, far more than
    /// admitting what it read; a GET of an image nobody reads again costs one insert.
    package func lookup(_ id: String, version: Int64? = nil, updatedAt: Int64? = nil, revision: Int64? = nil,
                        byID: Bool = false) -> Lookup {
        let key = Key(id)  // hashed outside the lock
        return state.withLock { s in
            s.lookups += 1
            if s.lookups == Self.window {
                s.thinning = s.filled && s.hits * 2 < s.lookups
                s.lookups = 0
                s.hits = 0
            }
            if let entry = s.hit(key) {
                let cached = entry.image
                if (version ?? cached.version) == cached.version, (updatedAt ?? cached.updatedAt) == cached.updatedAt {
                    s.hits += 1
                    if let revision, (entry.revision ?? .min) < revision { s.young[key]?.revision = revision }
                    return .hit(cached)
                }
                return .miss(admit: true)  // a newer version replaces it
            }
            if byID { return .miss(admit: true) }
            guard s.sawBefore(key) else { return .miss(admit: false) }
            guard s.thinning else { return .miss(admit: true) }
            s.skipped += 1
            return .miss(admit: s.skipped % Self.thinning == 0)
        }
    }

    /// Distinct entries (tests).
    package var count: Int { state.withLock { s in s.young.count + s.old.keys.count { s.young[$0] == nil } } }

    /// The estimated memory of both generations (tests; an image in both counts twice).
    package var heldBytes: Int { state.withLock { s in s.young.values.reduce(0) { $0 + $1.bytes } + s.old.values.reduce(0) { $0 + $1.bytes } } }

    package func removeAll() {
        let dropped = state.withLock { s in
            defer { s = State() }
            return s
        }
        _ = dropped  // freed here, outside the lock
    }

    /// An image a write has just committed: always cached (replacing any older version).
    package func offer(_ image: Image) {
        insert(image, since: nil)
    }

    /// An image a read has decoded after `lookup` said to offer it: cached unless generations were
    /// dropped since the read began. `revision`: the catalog revision the read found it at.
    package func offerRead(_ image: Image, since ticket: ReadTicket, revision: Int64? = nil) {
        insert(image, since: ticket, revision: revision)
    }

    private func insert(_ image: Image, since ticket: ReadTicket?, revision: Int64? = nil) {
        let key = Key(image.id)
        let entry = Entry(image: image, bytes: Self.footprint(image), revision: revision)  // measured outside the lock
        let dropped: [Key: Entry]? = state.withLock { s in
            // `flips` only changes under this lock.
            if let ticket, flips.load(ordering: .relaxed) &- ticket.flips >= 2 { return nil }
            if let current = s.young[key] ?? s.old[key] {
                if current.image.version >= image.version {
                    if current.image.version == image.version {
                        // The same version, read again: kept, with the later revision it was found at.
                        var kept = current
                        if let revision, (kept.revision ?? .min) < revision { kept.revision = revision }
                        if s.young.updateValue(kept, forKey: key) == nil { s.youngBytes += kept.bytes }
                    }
                    return nil
                }
            }
            if let replaced = s.young.updateValue(entry, forKey: key) { s.youngBytes -= replaced.bytes }
            s.youngBytes += entry.bytes
            // Each generation holds at most half the entries and half the bytes.
            guard s.young.count >= capacity / 2 || s.youngBytes >= bytes / 2 else { return nil }
            flips.add(1, ordering: .releasing)
            s.filled = true
            defer {
                s.old = s.young
                s.young = Dictionary(minimumCapacity: s.old.count)
                s.youngBytes = 0
            }
            return s.old
        }
        // Freeing 10,000 images takes milliseconds: not on the request that happened to fill the cache.
        if let dropped { Task.detached(priority: .background) { withExtendedLifetime(dropped) {} } }
    }
}
