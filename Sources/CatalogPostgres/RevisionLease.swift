import Synchronization

/// How long the answer of a revision check may stand in for a new check (`PostgresCatalog.isCurrent`):
/// a cached GET or list page is answered without waiting for the database when a check that
/// *started* at most `length` ago found the revision it was read at.
///
/// Why a client still reads its own writes, from any node: every imaged write of images or members
/// returns to its caller only `commitWait` (≥ `length`) after its COMMIT returned. A read asked after
/// that return is asked at least `length` after the commit became visible, so a check that started
/// within `length` of the read started after the commit, and its snapshot holds it (the commit-wait of
/// Spanner, on one database). Only durations are compared, each on one node's monotonic clock, so the
/// nodes' clocks need not agree; `commitWait` adds 1/8 for clocks that run at different rates.
///
/// Writes made outside imaged (plain SQL) do not wait: a node sees them once its lease has run out,
/// at most `length` later. Every node of a cluster must use the same `length` (the catalog URL's
/// `read_lease_ms`); `length` zero checks on every read and makes writers wait for nothing.
final class RevisionLease: Sendable {
    let length: Duration
    /// The latest check that completed: when it started, and the revision it found.
    let latest = Mutex<(started: ContinuousClock.Instant, revision: Int64)?>(nil)
    /// A check started ahead of need is running (`claimRefresh`): at most one at a time.
    let refreshing = Atomic<Bool>(false)

    init(length: Duration) {
        precondition(length >= .zero)
        self.length = length
    }

    var commitWait: Duration { length == .zero ? .zero : length + length / 8 }

    /// A check that started at `started` found `revision`. Kept unless a later-started one is known.
    func record(_ revision: Int64, startedAt started: ContinuousClock.Instant) {
        latest.withLock { latest in
            if let l = latest, l.started >= started { return }
            latest = (started, revision)
        }
    }

    enum Answer: Equatable {
        /// The revision is still `revision`; `refresh`: past half the lease, so a check should start
        /// now, for the reads to come (`claimRefresh`), before the lease runs out under them.
        case current(refresh: Bool)
        /// No check recent enough says so: the read checks (and waits).
        case unknown
    }

    func answer(for revision: Int64, now: ContinuousClock.Instant = .now) -> Answer {
        guard length > .zero, let l = latest.withLock({ $0 }), l.revision == revision else { return .unknown }
        let age = l.started.duration(to: now)
        guard age <= length else { return .unknown }
        return .current(refresh: age > length / 2)
    }

    /// True for the one caller that should start the check ahead of need; it calls `refreshEnded`.
    func claimRefresh() -> Bool {
        refreshing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }

    func refreshEnded() { refreshing.store(false, ordering: .releasing) }
}
