import CatalogSQL
import ImageCore
import Synchronization

/// List pages read before, each with the catalog revision it was read at. A page is answered again
/// only after the database says the revision has not moved since (`PostgresCatalog.listImages`):
/// every commit that writes `images` or `image_members`, from any node or from plain SQL, moves it
/// (the `image_revisions` triggers), so a page served from here is the page a query would read now.
/// What it spares is the database parsing, planning and running the list, and this node decoding
/// the rows; the check itself is one trivial statement that concurrent lists share (`ReadBatcher`).
final class ListPageCache: Sendable {
    /// A list statement and its values. Its hash is computed once: a list that misses looks it up, offers
    /// it to the doorkeeper and inserts it, and each of those hashes only this Int.
    struct Key: Hashable, Sendable {
        let sql: String
        let values: [SQLValue]
        let hash: Int

        init(sql: String, values: [SQLValue]) {
            self.sql = sql
            self.values = values
            var hasher = Hasher()
            hasher.combine(sql)
            hasher.combine(values)
            hash = hasher.finalize()
        }

        static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.sql == b.sql && a.values == b.values }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    struct Page: Sendable {
        let revision: Int64
        let images: [Image]
    }

    /// Two generations, as `ImageCache`: new pages go to `young`; when it holds half the capacity (in
    /// pages, or in images across pages) `old` is dropped whole and `young` becomes old; a hit in `old`
    /// moves to `young`, so the pages read again survive a stream of pages read once (random markers).
    private struct State {
        var young: [Key: Page] = [:]
        var old: [Key: Page] = [:]
        var youngImages = 0
        /// The doorkeeper: hashes of pages offered once. A page is kept on its second offer, so a
        /// stream of pages read once (random markers, a walk) costs a hash each, not an entry each.
        var offered = Set<Int>()

        mutating func insert(_ key: Key, _ page: Page, capacity: Int, imageCapacity: Int) {
            if let replaced = young.updateValue(page, forKey: key) { youngImages -= replaced.images.count }
            youngImages += page.images.count
            if young.count >= capacity / 2 || youngImages >= imageCapacity / 2 {
                old = young
                young = [:]
                youngImages = 0
            }
        }
    }

    let capacity: Int
    let imageCapacity: Int
    private let state = Mutex(State())
    /// Pages answered from here, for tests and the bench's explanation.
    let hits = Atomic<Int>(0)

    init(capacity: Int, imageCapacity: Int) {
        precondition(capacity >= 2 && imageCapacity >= 2)
        self.capacity = capacity
        self.imageCapacity = imageCapacity
    }

    func page(_ key: Key) -> Page? {
        state.withLock { s -> Page? in
            if let page = s.young[key] { return page }
            guard let page = s.old.removeValue(forKey: key) else { return nil }
            s.insert(key, page, capacity: capacity, imageCapacity: imageCapacity)
            return page
        }
    }

    /// Keeps `page` when `key` was offered before, unless a page of a later revision is already kept.
    func keep(_ key: Key, _ page: Page) {
        state.withLock { s in
            if s.offered.insert(key.hash).inserted {
                if s.offered.count > Self.offeredLimit { s.offered = [key.hash] }
                return
            }
            if let kept = s.young[key] ?? s.old[key], kept.revision > page.revision { return }
            s.old[key] = nil
            s.insert(key, page, capacity: capacity, imageCapacity: imageCapacity)
        }
    }

    /// Hashes the doorkeeper remembers before it starts again.
    static let offeredLimit = 8_192

    func countHit() { hits.add(1, ordering: .relaxed) }
}
