@testable import CatalogPostgres
import Synchronization
import Testing

/// The batcher answers each read with its own key's value, runs a lone read at once, gathers the
/// reads that arrive while its lanes are busy, never runs more queries at once than it has lanes, and
/// gives a failed query's error to every read of that batch.
@Suite struct ReadBatcherTests {
    /// Records every query the batcher runs, and how many ran at once at most.
    final class Database: Sendable {
        struct Log { var batches: [[Int]] = []; var running = 0; var mostAtOnce = 0 }
        let log = Mutex(Log())
        let delay: Duration
        let failing: Set<Int>
        /// A query waits while this holds for its keys (and its caller is not cancelled): the tests
        /// decide when a batch ends, not the clock.
        let hold: @Sendable ([Int]) -> Bool

        init(delay: Duration = .zero, failing: Set<Int> = [], hold: @escaping @Sendable ([Int]) -> Bool = { _ in false }) {
            self.delay = delay
            self.failing = failing
            self.hold = hold
        }

        func fetch(_ keys: [Int]) async throws -> [Int: String] {
            log.withLock {
                $0.batches.append(keys)
                $0.running += 1
                $0.mostAtOnce = max($0.mostAtOnce, $0.running)
            }
            try? await Task.sleep(for: delay)
            while hold(keys) && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
            log.withLock { $0.running -= 1 }
            try Task.checkCancellation()  // as the connection pool does for a cancelled caller
            if !failing.isDisjoint(with: keys) { throw Refused() }
            // Odd keys do not exist.
            return Dictionary(uniqueKeysWithValues: keys.filter { $0 % 2 == 0 }.map { ($0, "value-\($0)") })
        }
    }

    struct Refused: Error {}

    @Test func aLoneReadRunsAtOnceWithItsKeyOnly() async throws {
        let database = Database(delay: .zero)
        let batcher = ReadBatcher<Int, String>(lanes: 2, maxBatch: 8)
        #expect(try await batcher.read(4) { try await database.fetch($0) } == "value-4")
        #expect(try await batcher.read(5) { try await database.fetch($0) } == nil)
        #expect(database.log.withLock { $0.batches } == [[4], [5]])
    }

    @Test func concurrentReadsAreGatheredAndEachGetsItsOwnValue() async throws {
        let batcher = ReadBatcher<Int, String>(lanes: 2, maxBatch: 16)
        let reads = 200
        // The first queries last until every other read waits.
        let everyoneWaited = Mutex(false)
        let database = Database { _ in
            everyoneWaited.withLock { waited in
                if !waited { waited = batcher.state.withLock { $0.waiting.count } == reads - 2 }
                return !waited
            }
        }
        let answers = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for key in 0..<reads {
                group.addTask { (key, try await batcher.read(key % 150) { try await database.fetch($0) }) }
            }
            var out: [Int: String?] = [:]
            for try await (key, value) in group { out[key] = value }
            return out
        }
        #expect(answers.count == reads)
        for (key, value) in answers {
            #expect(value == (key % 150 % 2 == 0 ? "value-\(key % 150)" : nil))
        }
        let log = database.log.withLock { $0 }
        #expect(log.mostAtOnce <= 2)
        #expect(log.batches.allSatisfy { $0.count <= 16 && Set($0).count == $0.count })
        // Two lone reads, then 198 in batches of up to 16 (fewer keys when a key repeats within one).
        #expect(log.batches.count >= 2 + 198 / 16 && log.batches.count <= 2 + 198 / 15 + 1)
        #expect(Set(log.batches.joined()) == Set(0..<150))
        // Every lane is free again: a lone read runs at once.
        #expect(try await batcher.read(8) { try await database.fetch($0) } == "value-8")
        #expect(database.log.withLock { $0.batches.last } == [8])
    }

    @Test func aFailedQueryFailsEveryReadOfItsBatchAndNoOther() async throws {
        let database = Database(delay: .milliseconds(20), failing: [13])
        let batcher = ReadBatcher<Int, String>(lanes: 1, maxBatch: 64)
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for key in 0..<40 {
                group.addTask {
                    do {
                        _ = try await batcher.read(key) { try await database.fetch($0) }
                        return (key, true)
                    } catch {
                        return (key, false)
                    }
                }
            }
            var out: [Int: Bool] = [:]
            for await (key, ok) in group { out[key] = ok }
            return out
        }
        let failedBatch = Set(database.log.withLock { $0.batches }.first { $0.contains(13) } ?? [])
        #expect(!failedBatch.isEmpty)
        for (key, ok) in outcomes { #expect(ok == !failedBatch.contains(key), "key \(key)") }
        // The lane was handed on after the failure: a new read still runs.
        #expect(try await batcher.read(2) { try await database.fetch($0) } == "value-2")
    }

    /// A cancelled read that was running a batch fails alone: the reads riding on it read again.
    @Test func aCancelledLeaderDoesNotFailItsRiders() async throws {
        let firstMayEnd = Mutex(false)
        // The query with key 0 lasts until the test lets it end; the one with key 2 until it is cancelled.
        let database = Database { keys in keys.contains(2) || (keys.contains(0) && !firstMayEnd.withLock { $0 }) }
        let batcher = ReadBatcher<Int, String>(lanes: 1, maxBatch: 64)
        func waiting() -> Int { batcher.state.withLock { $0.waiting.count } }
        func batches() -> Int { database.log.withLock { $0.batches.count } }
        let first = Task { try await batcher.read(0) { try await database.fetch($0) } }
        while batches() < 1 { try await Task.sleep(for: .milliseconds(1)) }
        // The lane is busy: the next read waits, and leads the next batch, with the reads behind it riding.
        let leader = Task { try await batcher.read(2) { try await database.fetch($0) } }
        while waiting() < 1 { try await Task.sleep(for: .milliseconds(1)) }
        let riders = (2...11).map { key in Task { try await batcher.read(key * 2) { try await database.fetch($0) } } }
        while waiting() < 11 { try await Task.sleep(for: .milliseconds(1)) }
        firstMayEnd.withLock { $0 = true }
        #expect(try await first.value == "value-0")
        while batches() < 2 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(database.log.withLock { $0.batches[1].count } == 11)
        leader.cancel()
        await #expect(throws: CancellationError.self) { try await leader.value }
        for (i, rider) in riders.enumerated() {
            #expect(try await rider.value == "value-\((i + 2) * 2)")
        }
        // They read again, without the cancelled one's key.
        #expect(Set(database.log.withLock { $0.batches.dropFirst(2).joined() }) == Set((2...11).map { $0 * 2 }))
    }
}
