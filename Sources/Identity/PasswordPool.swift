import NIOCore
import NIOPosix

/// Where password derivations (PBKDF2, 0.25–0.5 s of CPU each) run: at most `concurrency` at once
/// on threads of their own (so they never starve the file I/O of the shared NIO pool), at most
/// `queueLength` waiting; beyond that a login is refused at once (`LoginRefused.busy`) rather than
/// queued without bound, so a flood of bogus logins cannot push a valid one to seconds. One client
/// address may hold at most `perClient` of those places (running or waiting), so a single flooding
/// address leaves the rest to everyone else.
public final class PasswordPool: Sendable {
    public let concurrency: Int
    public let queueLength: Int
    public let perClient: Int
    let admission: Admission
    private let threads: NIOThreadPool

    /// `perClient` defaults to half the slots (at least one).
    public init(concurrency: Int = System.coreCount, queueLength: Int? = nil, perClient: Int? = nil) {
        self.concurrency = max(1, concurrency)
        self.queueLength = max(0, queueLength ?? self.concurrency)
        self.perClient = max(1, perClient ?? self.concurrency / 2)
        admission = Admission(slots: self.concurrency, queue: self.queueLength, perClient: self.perClient)
        threads = NIOThreadPool(numberOfThreads: self.concurrency)
        threads.start()
    }

    deinit { threads.shutdownGracefully { _ in } }

    /// One pool per process unless the server configures its own.
    public static let shared = PasswordPool()

    /// Runs `work` when a slot is free (waiting in the short queue), or throws `LoginRefused.busy`.
    /// `client`: the caller's address (nil: not capped per client).
    public func run<T: Sendable>(client: String? = nil, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard await admission.enter(client: client) else { throw LoginRefused(.busy, retryAfter: 1) }
        do {
            let result = try await threads.runIfActive(work)
            await admission.leave(client: client)
            return result
        } catch {
            await admission.leave(client: client)
            throw error
        }
    }

    /// Slots and a FIFO of waiters; a leaving task hands its slot to the first waiter. Places held
    /// per client are counted from admission (running or waiting) to leaving.
    actor Admission {
        let slots: Int
        let queue: Int
        let perClient: Int
        private(set) var running = 0
        private var waiters: [CheckedContinuation<Void, Never>] = []
        private var held: [String: Int] = [:]
        var waiting: Int { waiters.count }

        init(slots: Int, queue: Int, perClient: Int) { self.slots = slots; self.queue = queue; self.perClient = perClient }

        func enter(client: String?) async -> Bool {
            if let client, held[client, default: 0] >= perClient { return false }
            if running < slots {
                running += 1
            } else {
                guard waiters.count < queue else { return false }
                if let client { held[client, default: 0] += 1 }
                await withCheckedContinuation { waiters.append($0) }
                return true
            }
            if let client { held[client, default: 0] += 1 }
            return true
        }

        func leave(client: String?) {
            if let client {
                let left = held[client, default: 1] - 1
                held[client] = left > 0 ? left : nil
            }
            if waiters.isEmpty { running -= 1 } else { waiters.removeFirst().resume() }
        }
    }
}
