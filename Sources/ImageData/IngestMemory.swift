import Synchronization

/// The bytes every ingest of this process may hold in batches at once. An ingest keeps up to
/// `lanesAhead + 2` batches alive (one filling, the lanes' queues, one being hashed or written); at
/// 1 MiB each, 100 concurrent uploads held ~870 MiB (bench/clients.sh). Each ingest reserves its
/// working set when it starts: full-size batches while the budget lasts, then smaller ones, down to
/// `minimumBatch` — never a wait, so an upload is never refused or stalled for memory, and the total
/// stays within the budget plus `minimumBatch`-sized sets for the uploads beyond it.
enum IngestMemory {
    /// A dozen uploads at full speed; more than that share the disk anyway.
    static let budget = 64 << 20
    static let minimumBatch = 64 << 10
    private static let available = Mutex(budget)

    /// The batch size granted for `batches` batches of `preferred` bytes, and the bytes reserved.
    static func reserve(preferred: Int, batches: Int) -> (batchSize: Int, reserved: Int) {
        available.withLock { free in
            let size = batchSize(preferred: preferred, batches: batches, free: free)
            free -= size * batches
            return (size, size * batches)
        }
    }

    /// `preferred` halved until `batches` of it fit in `free`, but not below `minimumBatch`
    /// (nor above `preferred`).
    static func batchSize(preferred: Int, batches: Int, free: Int) -> Int {
        var size = max(preferred, 1)
        while size > minimumBatch, size * batches > free { size /= 2 }
        return max(size, min(preferred, minimumBatch))
    }

    static func release(_ bytes: Int) {
        available.withLock { $0 += bytes }
    }

    /// What is not reserved now (tests).
    static var unreserved: Int { available.withLock { $0 } }
}
