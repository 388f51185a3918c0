import Synchronization

/// Bounds how long a query waits for a pooled connection, with one timer for all waiters.
///
/// While PostgreSQL is down the pool keeps trying to connect, and a request would wait up to its
/// circuit breaker (60 s). A sleeping task per query to bound that was a tenth of a GET's CPU (a
/// dispatch timer armed and cancelled every time). Instead each waiter registers its task here, and
/// one loop, running only while someone waits, cancels the tasks that waited past `timeout`.
final class AcquireWatchdog: Sendable {
    /// A task the loop may cancel; only touched under the lock, while its owner is registered.
    private struct Waiter: @unchecked Sendable {
        let task: UnsafeCurrentTask
        let deadline: ContinuousClock.Instant
    }

    private struct State {
        var next = 0
        var waiting: [Int: Waiter] = [:]
        var expired: Set<Int> = []
        var loopRunning = false
    }

    let timeout: Duration
    let tick: Duration
    private let state = Mutex(State())

    init(timeout: Duration, tick: Duration = .milliseconds(250)) {
        self.timeout = timeout
        self.tick = tick
    }

    /// Registers the current task; the returned ticket goes to `acquired` once the wait is over.
    func waiting() -> Int {
        withUnsafeCurrentTask { task -> Int in
            let deadline = ContinuousClock.now + timeout
            let (ticket, startLoop) = state.withLock { s -> (Int, Bool) in
                s.next &+= 1
                if let task { s.waiting[s.next] = Waiter(task: task, deadline: deadline) }
                let start = !s.loopRunning
                s.loopRunning = true
                return (s.next, start)
            }
            if startLoop { Task { await self.loop() } }
            return ticket
        }
    }

    /// Ends the wait; true when the watchdog had already cancelled it (the wait timed out).
    func acquired(_ ticket: Int) -> Bool {
        state.withLock { s in
            s.waiting[ticket] = nil
            return s.expired.remove(ticket) != nil
        }
    }

    private func loop() async {
        while true {
            try? await Task.sleep(for: tick)
            let now = ContinuousClock.now
            let stop = state.withLock { s -> Bool in
                for (ticket, waiter) in s.waiting where waiter.deadline <= now {
                    waiter.task.cancel()
                    s.waiting[ticket] = nil
                    s.expired.insert(ticket)
                }
                if s.waiting.isEmpty { s.loopRunning = false }
                return !s.loopRunning
            }
            if stop { return }
        }
    }
}
