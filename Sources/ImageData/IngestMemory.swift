import Synchronization

/// The bytes every ingest of this process may hold in batches at once. An ingest keeps up to
/// `lanesAhead + 2` batches alive (one filling, the lanes' queues, one being hashed or written); at
/// 1 MiB each, 100 concurrent uploads held ~870 MiB (bench/clients.sh). Each ingest reserves its
/// working set when it starts: full-size batches and queues while the budget lasts; past it, queues of
/// one batch and smaller batches, down to `minimumBatch` — never a wait, so an upload is never refused
/// or stalled for memory, and the total stays within the budget plus three `minimumBatch` batches for
/// each upload beyond it.
enum IngestMemory {
    /// A dozen uploads at full speed; more than that share the disk anyway.
    static let budget = 64 << 20
    /// Each batch costs three thread hops (one per lane) and a write, whatever its size: at the old
    /// floor, 64 KiB, 100 concurrent uploads took 5.0–5.3 s of server CPU per GB; at 128 KiB with
    /// queues of one, 4.0–4.1 s, for 6 MiB more of batches (bench/README).
    static let minimumBatch = 128 << 10
    private static let available = Mutex(budget)

    /// What an ingest may hold: batches of `batchSize`, `lanesAhead` of them queued per lane.
    struct Share: Equatable {
        var batchSize: Int
        var lanesAhead: Int
        var reserved: Int { batchSize * (lanesAhead + 2) }
    }

    /// The share granted for batches of `preferred` bytes and `lanesAhead` queued per lane.
    static func reserve(preferred: Int, lanesAhead: Int) -> Share {
        available.withLock { free in
            let share = share(preferred: preferred, lanesAhead: lanesAhead, free: free)
            free -= share.reserved
            return share
        }
    }

    /// The full share when it fits in `free`. Otherwise queues of one batch (past the budget, many
    /// uploads run at once and keep the cores busy without deep queues) and `preferred` halved until
    /// they fit, but not below `minimumBatch` (nor above `preferred`).
    static func share(preferred: Int, lanesAhead: Int, free: Int) -> Share {
        let preferred = max(preferred, 1)
        if preferred * (lanesAhead + 2) <= free { return Share(batchSize: preferred, lanesAhead: lanesAhead) }
        let ahead = min(lanesAhead, 1)
        var size = preferred
        while size > minimumBatch, size * (ahead + 2) > free { size /= 2 }
        return Share(batchSize: max(size, min(preferred, minimumBatch)), lanesAhead: ahead)
    }

    static func release(_ bytes: Int) {
        available.withLock { $0 += bytes }
    }

    /// What is not reserved now (tests).
    static var unreserved: Int { available.withLock { $0 } }
}
