import Synchronization

/// Point reads that arrive while others are in flight are answered together, by one query for all
/// their keys: under load, N reads by id cost one pooled connection, one round trip and one statement
/// execution on the database instead of N (a PostgreSQL GET was ~2.6× the CPU of a SQLite one, most
/// of it per query, not per row).
///
/// At most `lanes` queries run at once. A read that finds a lane free runs at once, with whatever
/// waits, so an idle server answers as before; the others wait for the next batch. When a batch ends,
/// its lane passes to the oldest waiter, which runs the next batch itself: no task is spawned.
///
/// Each read brings the query (`fetch`), so the batcher holds no reference to its owner; the read that
/// runs a batch runs its own.
///
/// Every read's query starts after the read was asked for, so it sees every write committed before
/// (a client reads its own writes, from any node).
final class ReadBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    typealias Fetch = ([Key]) async throws -> [Key: Value]

    /// What a waiting read is woken with: its answer, the lane to run the next batch with, or a request
    /// to read again (the read that ran its batch was cancelled: that is not an answer for the others).
    enum Wake: Sendable {
        case answered(Result<Value?, any Error>)
        case lead
        case again
    }

    struct Waiter {
        let key: Key
        let continuation: CheckedContinuation<Wake, Never>
    }

    struct State {
        var running = 0
        var waiting: [Waiter] = []
    }

    let lanes: Int
    let maxBatch: Int
    let state = Mutex(State())

    init(lanes: Int, maxBatch: Int) {
        precondition(lanes > 0 && maxBatch > 0)
        self.lanes = lanes
        self.maxBatch = maxBatch
    }

    func read(_ key: Key, fetch: Fetch) async throws -> Value? {
        let leads = state.withLock { s in
            guard s.running < lanes else { return false }
            s.running += 1
            return true
        }
        if leads { return try await runBatch(first: key, fetch: fetch) }
        let wake = await withCheckedContinuation { (c: CheckedContinuation<Wake, Never>) in
            let leadsNow = state.withLock { s in
                // A lane may have been freed since the check above: take it rather than wait for nobody.
                guard s.running < lanes else {
                    s.waiting.append(Waiter(key: key, continuation: c))
                    return false
                }
                s.running += 1
                return true
            }
            if leadsNow { c.resume(returning: .lead) }
        }
        switch wake {
        case .answered(let result): return try result.get()
        case .lead: return try await runBatch(first: key, fetch: fetch)
        case .again: return try await read(key, fetch: fetch)
        }
    }

    /// Runs one batch on a lane this read holds: its own key and the oldest waiters', then passes the
    /// lane on (or frees it).
    private func runBatch(first key: Key, fetch: Fetch) async throws -> Value? {
        let riders: [Waiter] = state.withLock { s in
            let n = min(s.waiting.count, maxBatch - 1)
            let taken = Array(s.waiting.prefix(n))
            s.waiting.removeFirst(n)
            return taken
        }
        var keys = [key]
        keys.reserveCapacity(riders.count + 1)
        for r in riders where !keys.contains(r.key) { keys.append(r.key) }
        let result: Result<[Key: Value], any Error>
        do { result = .success(try await fetch(keys)) } catch { result = .failure(error) }
        let leaderCancelled = Task.isCancelled
        for r in riders {
            if case .failure = result, leaderCancelled {
                r.continuation.resume(returning: .again)
            } else {
                r.continuation.resume(returning: .answered(result.map { $0[r.key] }))
            }
        }
        let next: Waiter? = state.withLock { s in
            if s.waiting.isEmpty {
                s.running -= 1
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return try result.get()[key]
    }
}
