import Synchronization

/// Decides whether a list is read keys first (`PostgresCatalog.listByKeys`), from the share of rows
/// that recent keys-first lists found cached. Keys first spares the full rows the cache holds but
/// costs a second statement for the rows it does not: worth it while most rows are cached (a warm
/// node), not while the cache is cold or far smaller than what lists walk.
final class KeysFirstGauge: Sendable {
    struct State {
        var rows = 0
        var hits = 0
        var skipped = 0
    }

    let state = Mutex(State())

    /// Below this share of cached rows, lists are read in full.
    static let minimumHitShare = 0.9
    /// While lists are read in full, one in this many is still read keys first, so the gauge sees the
    /// cache fill (the full reads fill it).
    static let sampleEvery = 16
    /// The gauge weighs about the last this many rows (a few dozen pages), so it follows a cache that
    /// warms or a load that moves to rows it does not hold.
    static let memory = 1_024

    func worthTrying() -> Bool {
        state.withLock { s in
            if s.rows < 64 || Double(s.hits) >= Self.minimumHitShare * Double(s.rows) { return true }
            s.skipped += 1
            return s.skipped % Self.sampleEvery == 0
        }
    }

    func record(rows: Int, hits: Int) {
        state.withLock { s in
            s.rows += rows
            s.hits += hits
            if s.rows > Self.memory {
                s.rows /= 2
                s.hits /= 2
            }
        }
    }
}
