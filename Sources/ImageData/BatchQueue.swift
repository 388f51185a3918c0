import NIOCore
import Synchronization

/// A bounded queue of batches between one producer and one consumer task, with back-pressure:
/// `send` waits while `capacity` batches are queued, `next` waits while none is. Closing ends the
/// consumer's loop; failing makes the producer's next `send` throw the consumer's error.
final class BatchQueue: Sendable {
    private struct State {
        var items: [ByteBuffer] = []
        var closed = false
        var failure: (any Error)?
        var waitingConsumer: CheckedContinuation<ByteBuffer?, Never>?
        var waitingProducer: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Queues a batch; waits while the queue is full. Throws the consumer's failure, if any.
    func send(_ batch: ByteBuffer) async throws {
        while true {
            let outcome: Result<Bool, any Error> = state.withLock { s in
                if let f = s.failure { return .failure(f) }
                if let consumer = s.waitingConsumer {
                    s.waitingConsumer = nil
                    consumer.resume(returning: batch)
                    return .success(true)
                }
                if s.items.count < capacity {
                    s.items.append(batch)
                    return .success(true)
                }
                return .success(false)
            }
            if try outcome.get() { return }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.items.count < capacity || s.failure != nil { return true }
                    s.waitingProducer = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
    }

    /// The next batch, or nil once the queue is closed and drained.
    func next() async -> ByteBuffer? {
        let immediate: ByteBuffer?? = state.withLock { s in
            if !s.items.isEmpty {
                let item = s.items.removeFirst()
                s.waitingProducer.take()?.resume()
                return .some(item)
            }
            return s.closed ? .some(nil) : nil
        }
        if let immediate { return immediate }
        return await withCheckedContinuation { (c: CheckedContinuation<ByteBuffer?, Never>) in
            let now: ByteBuffer?? = state.withLock { s in
                if !s.items.isEmpty {
                    let item = s.items.removeFirst()
                    s.waitingProducer.take()?.resume()
                    return .some(item)
                }
                if s.closed { return .some(nil) }
                s.waitingConsumer = c
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// Whether the consumer failed the queue (`next` then says nil as for a closed one).
    var hasFailed: Bool { state.withLock { $0.failure != nil } }

    /// Without waiting: `.some(batch)` when one is queued, `.some(nil)` once closed and drained, nil otherwise.
    func poll() -> ByteBuffer?? {
        state.withLock { s in
            if !s.items.isEmpty {
                let item = s.items.removeFirst()
                s.waitingProducer.take()?.resume()
                return .some(item)
            }
            return s.closed ? .some(nil) : nil
        }
    }

    /// No more batches: the consumer drains what is queued, then sees nil.
    func close() {
        state.withLock { s in
            s.closed = true
            s.waitingConsumer.take()?.resume(returning: nil)
        }
    }

    /// The consumer gave up: queued batches are dropped, the producer's sends throw `error`.
    func fail(_ error: any Error) {
        state.withLock { s in
            if s.failure == nil { s.failure = error }
            s.items.removeAll()
            s.closed = true
            s.waitingProducer.take()?.resume()
            s.waitingConsumer.take()?.resume(returning: nil)
        }
    }
}
