@testable import CatalogPostgres
import Testing

/// The watchdog cancels a wait that outlasts its timeout, and leaves alone one that ends in time.
@Suite struct AcquireWatchdogTests {
    @Test func aLongWaitIsCancelledAndAShortOneIsNot() async throws {
        let watchdog = AcquireWatchdog(timeout: .milliseconds(150), tick: .milliseconds(20))
        let clock = ContinuousClock()
        let started = clock.now
        let long = Task { () -> (cancelled: Bool, timedOut: Bool) in
            let ticket = watchdog.waiting()
            let cancelled: Bool
            do {
                try await Task.sleep(for: .seconds(600))  // a pool that never hands a connection over
                cancelled = false
            } catch {
                cancelled = error is CancellationError
            }
            return (cancelled, watchdog.acquired(ticket))
        }
        let short = Task { () -> (cancelled: Bool, timedOut: Bool) in
            let ticket = watchdog.waiting()
            try? await Task.sleep(for: .milliseconds(10))
            let timedOut = watchdog.acquired(ticket)
            try? await Task.sleep(for: .milliseconds(300))  // past the timeout, after the wait ended
            return (Task.isCancelled, timedOut)
        }
        let (longResult, shortResult) = (await long.value, await short.value)
        #expect(longResult.cancelled && longResult.timedOut)
        // Cancelled, not slept out (the bound is loose: the full suite can starve the loop for seconds).
        #expect(clock.now - started < .seconds(120))
        #expect(!shortResult.cancelled && !shortResult.timedOut)
        // A ticket is reported once: asking again is not a second timeout.
        #expect(!watchdog.acquired(1) && !watchdog.acquired(2))
    }
}
