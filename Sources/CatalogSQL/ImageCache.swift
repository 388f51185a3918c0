import ImageCore
import Synchronization

/// Recently read or written images by id. An entry is replaced only by a newer version, so a
/// reader that fetched a row before a concurrent write commits cannot put the older row back.
package final class ImageCache: Sendable {
    package let capacity: Int
    /// Two generations. New entries go to `young`; when it holds half the capacity, `old` is dropped
    /// whole and `young` becomes old. A hit in `old` is copied to `young`, so a hot entry survives.
    /// Lists offer every row they read, so the cache churns at a large catalog: forgetting in bulk
    /// costs nothing per entry, where removing the oldest one per insert was a tenth of a marker walk.
    private let state: Mutex<(young: [String: Image], old: [String: Image])>

    package init(capacity: Int) {
        self.capacity = max(2, capacity)
        state = Mutex(([:], [:]))
    }

    package func get(_ id: String) -> Image? {
        state.withLock { s in
            if let image = s.young[id] { return image }
            guard let image = s.old[id] else { return nil }
            s.young[id] = image
            return image
        }
    }

    /// The cached image when it is exactly the row a query has just read (same version and
    /// `updated_at`): the caller can skip decoding that row.
    package func current(_ id: String, version: Int64, updatedAt: Int64) -> Image? {
        guard let cached = get(id), cached.version == version, cached.updatedAt == updatedAt else { return nil }
        return cached
    }

    /// Distinct entries (tests).
    package var count: Int { state.withLock { s in s.young.count + s.old.keys.count { s.young[$0] == nil } } }

    package func removeAll() {
        let dropped = state.withLock { s in
            defer { s = ([:], [:]) }
            return s
        }
        _ = dropped  // freed here, outside the lock
    }

    package func offer(_ image: Image) {
        let dropped: [String: Image]? = state.withLock { s in
            if let current = s.young[image.id] ?? s.old[image.id], current.version >= image.version {
                if current.version == image.version, s.young[image.id] == nil { s.young[image.id] = current }
                return nil
            }
            s.young[image.id] = image
            guard s.young.count >= capacity / 2 else { return nil }
            defer {
                s.old = s.young
                s.young = Dictionary(minimumCapacity: capacity / 2)
            }
            return s.old
        }
        // Freeing 10,000 images takes milliseconds: not on the request that happened to fill the cache.
        if let dropped { Task.detached(priority: .background) { withExtendedLifetime(dropped) {} } }
    }
}
