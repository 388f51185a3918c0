import CatalogSQLite
import Foundation
import ImageCore
import Synchronization
import Testing
@testable import Identity

/// A clock the test moves by hand (milliseconds).
final class ManualClock: Sendable {
    let ms = Mutex<Int64>(1_800_000_000_000)
    var now: Int64 { ms.withLock { $0 } }
    func advance(_ by: Int64) { ms.withLock { $0 += by } }
}

@Suite struct LoginThrottleTests {
    static func catalog() throws -> (SQLiteCatalog, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaged-throttle-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try SQLiteCatalog(path: dir + "/catalog.sqlite"), dir)
    }

    @Test func delayDoublesFromTheThresholdUpToTheCap() {
        let p = LoginThrottle.Policy()
        #expect((0...4).map { p.delay(failures: $0, threshold: 5) } == [0, 0, 0, 0, 0])
        #expect((5...9).map { p.delay(failures: $0, threshold: 5) } == [1000, 2000, 4000, 8000, 16_000])
        #expect(p.delay(failures: 14, threshold: 5) == 512_000)
        #expect(p.delay(failures: 15, threshold: 5) == 900_000)          // 1024 s capped at 15 min
        #expect(p.delay(failures: 1_000_000, threshold: 5) == 900_000)   // no overflow
        #expect(p.delay(failures: 29, threshold: 30) == 0 && p.delay(failures: 31, threshold: 30) == 2000)
    }

    /// "check": a password check that answers `ok` and counts how often it ran.
    final class Checks: Sendable {
        let runs = Mutex(0)
        func check(_ ok: Bool) -> Bool? { runs.withLock { $0 += 1 }; return ok ? true : nil }
        var count: Int { runs.withLock { $0 } }
    }

    @Test func locksAPairAfterFiveFailuresDoublingAndASuccessResetsIt() async throws {
        let (catalog, dir) = try Self.catalog()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let throttle = LoginThrottle(catalog: catalog, now: { clock.now })
        let checks = Checks()
        for _ in 0..<5 {
            let r = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(false) }
            #expect(r == nil)
            clock.advance(10)
        }
        // Locked 1 s from the 5th failure (10 ms ago): refused without checking.
        await #expect(throws: LoginRefused(.throttled, retryAfter: 1)) {
            _ = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(true) }
        }
        #expect(checks.count == 5)
        // Another address, and another account at the same address, are not locked.
        let elsewhere = try await throttle.attempt(name: "alice", client: "10.0.0.2") { checks.check(true) }
        let otherUser = try await throttle.attempt(name: "bob", client: "10.0.0.1") { checks.check(true) }
        #expect(elsewhere == true && otherUser == true)

        clock.advance(990)
        let sixth = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(false) }
        #expect(sixth == nil)
        // Now 2 s: still locked after 1.5 s, with Retry-After rounded up.
        clock.advance(1500)
        await #expect(throws: LoginRefused(.throttled, retryAfter: 1)) {
            _ = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(true) }
        }
        clock.advance(500)
        let ok = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(true) }
        #expect(ok == true)
        let pair = LoginThrottle.keys(name: "alice", client: "10.0.0.1").pair
        let left = try await catalog.loginFailures(keys: [pair, "a:10.0.0.1"])
        // The success forgot the pair, not the address's count.
        #expect(left.map(\.key) == ["a:10.0.0.1"] && left.first?.failures == 6)
        // So the next failure starts the pair again from one (no lock).
        _ = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(false) }
        let again = try await throttle.attempt(name: "alice", client: "10.0.0.1") { checks.check(true) }
        #expect(again == true)
    }

    @Test func anAddressTryingManyNamesIsLockedForEveryNameKnownOrNot() async throws {
        let (catalog, dir) = try Self.catalog()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        var policy = LoginThrottle.Policy()
        policy.addressThreshold = 8
        let throttle = LoginThrottle(catalog: catalog, policy: policy, now: { clock.now })
        let checks = Checks()
        for i in 0..<8 {
            _ = try await throttle.attempt(name: "guess-\(i)", client: "192.0.2.7") { checks.check(false) }
        }
        await #expect(throws: LoginRefused(.throttled, retryAfter: 1)) {
            _ = try await throttle.attempt(name: "alice", client: "192.0.2.7") { checks.check(true) }
        }
        let fromElsewhere = try await throttle.attempt(name: "alice", client: "192.0.2.8") { checks.check(true) }
        #expect(fromElsewhere == true && checks.count == 9)
        // The catalog keeps no typed name: pair keys are hashes.
        let pairs = try await catalog.loginFailures(keys: (0..<8).map { LoginThrottle.keys(name: "guess-\($0)", client: "192.0.2.7").pair })
        #expect(pairs.count == 8 && pairs.allSatisfy { !$0.key.contains("guess") && $0.failures == 1 })
    }

    @Test func aQuietKeyIsForgotten() async throws {
        let (catalog, dir) = try Self.catalog()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = ManualClock()
        let throttle = LoginThrottle(catalog: catalog, now: { clock.now })
        let checks = Checks()
        for _ in 0..<7 { _ = try await throttle.attempt(name: "carol", client: "10.1.1.1") { checks.check(false) } ; clock.advance(100_000) }
        clock.advance(3_600_001)
        // Past the forget period the lock is gone and the next failure counts from one.
        _ = try await throttle.attempt(name: "carol", client: "10.1.1.1") { checks.check(false) }
        let pair = LoginThrottle.keys(name: "carol", client: "10.1.1.1").pair
        let counted = try await catalog.loginFailures(keys: [pair])
        #expect(counted.first?.failures == 1 && checks.count == 8)
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

@Suite struct PasswordPoolTests {
    /// One slot, a queue of one: the second call waits its turn, the third is refused at once.
    @Test func admitsUpToTheSlotsAndTheQueueThenRefusesFast() async throws {
        let pool = PasswordPool(concurrency: 1, queueLength: 1)
        let open = Flag()
        let first = Task { try await pool.run { while !open.isSet { usleep(1000) }; return 1 } }
        while await pool.admission.running < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let second = Task { try await pool.run { 2 } }
        while await pool.admission.waiting < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let start = ContinuousClock.now
        await #expect(throws: LoginRefused(.busy, retryAfter: 1)) { _ = try await pool.run { 3 } }
        // A refusal that waited would wait for ever (the first call holds its slot until `open`); the
        // bound only has to tell "at once" from that, with room for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(5))
        open.set()
        let results = [try await first.value, try await second.value]
        #expect(results == [1, 2])
        // Both slots free again: a call runs at once.
        let after = try await pool.run { 4 }
        #expect(after == 4)
        let idle = await pool.admission.running
        #expect(idle == 0)
    }

    /// One address holds at most `perClient` places: its second call is refused at once although the
    /// queue has room, while another address still gets in.
    @Test func oneAddressCannotTakeEveryPlace() async throws {
        let pool = PasswordPool(concurrency: 2, queueLength: 2, perClient: 1)
        let open = Flag()
        let first = Task { try await pool.run(client: "a") { while !open.isSet { usleep(1000) }; return 1 } }
        while await pool.admission.running < 1 { try await Task.sleep(for: .milliseconds(5)) }
        await #expect(throws: LoginRefused(.busy, retryAfter: 1)) { _ = try await pool.run(client: "a") { 2 } }
        let other = try await pool.run(client: "b") { 3 }
        open.set()
        let firstResult = try await first.value
        #expect(other == 3 && firstResult == 1)
        // Its place given back, the address gets in again.
        let again = try await pool.run(client: "a") { 4 }
        #expect(again == 4)
    }
}
