import NIOCore
import NIOPosix

/// Where password derivations (PBKDF2, 0.25–0.5 s of CPU each) run: at most `concurrency` at once
/// on threads of their own (so they never starve the file I/O of the shared NIO pool), at most
/// `queueLength` waiting; beyond that a login is refused at once (`LoginRefused.busy`) rather than
/// queued without bound, so a flood of bogus logins cannot push a valid one to seconds.
public final class PasswordPool: Sendable {
    public let concurrency: Int
    public let queueLength: Int
    let admission: Admission
    private let threads: NIOThreadPool

    public init(concurrency: Int = System.coreCount, queueLength: Int? = nil) {
        self.concurrency = max(1, concurrency)
        self.queueLength = max(0, queueLength ?? self.concurrency)
        admission = Admission(slots: self.concurrency, queue: self.queueLength)
        threads = NIOThreadPool(numberOfThreads: self.concurrency)
        threads.start()
    }

    deinit { threads.shutdownGracefully { _ in } }

    /// One pool per process unless the server configures its own.
    public static let shared = PasswordPool()

    /// Runs `work` when a slot is free (waiting in the short queue), or throws `LoginRefused.busy`.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard await admission.enter() else { throw LoginRefused(.busy, retryAfter: 1) }
        do {
            let result = try await threads.runIfActive(work)
            await admission.leave()
            return result
        } catch {
            await admission.leave()
            throw error
        }
    }

    /// Slots and a FIFO of waiters; a leaving task hands its slot to the first waiter.
    actor Admission {
        let slots: Int
        let queue: Int
        private(set) var running = 0
        private var waiters: [CheckedContinuation<Void, Never>] = []
        var waiting: Int { waiters.count }

        init(slots: Int, queue: Int) { self.slots = slots; self.queue = queue }

        func enter() async -> Bool {
            if running < slots { running += 1; return true }
            guard waiters.count < queue else { return false }
            await withCheckedContinuation { waiters.append($0) }
            return true
        }

        func leave() {
            if waiters.isEmpty { running -= 1 } else { waiters.removeFirst().resume() }
        }
    }
}
