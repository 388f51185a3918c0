import Foundation
import ImageCore
import Testing

/// The login throttle's counts (`login_throttle`): atomic increments, forgetting, clearing, pruning.
@Suite struct LoginThrottleConformance {
    @Test(arguments: Backend.available)
    func failuresCountPerKeyForgetQuietKeysClearAndPrune(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            let none = try await catalog.loginFailures(keys: ["p:x", "a:1.2.3.4"])
            #expect(none.isEmpty)
            let first = try await catalog.recordLoginFailure(keys: ["p:x", "a:1.2.3.4"], at: 1000, forgetBefore: 0)
            #expect(first == [LoginFailures(key: "p:x", failures: 1, lastFailure: 1000),
                              LoginFailures(key: "a:1.2.3.4", failures: 1, lastFailure: 1000)])
            _ = try await catalog.recordLoginFailure(keys: ["p:x", "a:1.2.3.4"], at: 2000, forgetBefore: 0)
            let third = try await catalog.recordLoginFailure(keys: ["p:y", "a:1.2.3.4"], at: 3000, forgetBefore: 0)
            #expect(third == [LoginFailures(key: "p:y", failures: 1, lastFailure: 3000),
                              LoginFailures(key: "a:1.2.3.4", failures: 3, lastFailure: 3000)])
            // An older time (another node's clock behind) counts but does not move the last failure back.
            let late = try await catalog.recordLoginFailure(keys: ["p:x"], at: 1500, forgetBefore: 0)
            #expect(late == [LoginFailures(key: "p:x", failures: 3, lastFailure: 2000)])
            // A key whose last failure is before `forgetBefore` starts again at one.
            let fresh = try await catalog.recordLoginFailure(keys: ["p:x"], at: 10_000, forgetBefore: 2500)
            #expect(fresh == [LoginFailures(key: "p:x", failures: 1, lastFailure: 10_000)])

            let read = try await catalog.loginFailures(keys: ["a:1.2.3.4", "p:x", "p:none"])
            #expect(read == [LoginFailures(key: "a:1.2.3.4", failures: 3, lastFailure: 3000),
                             LoginFailures(key: "p:x", failures: 1, lastFailure: 10_000)])
            try await catalog.clearLoginFailures(key: "p:x")
            try await catalog.clearLoginFailures(key: "p:never")
            let cleared = try await catalog.loginFailures(keys: ["p:x"])
            #expect(cleared.isEmpty)
            let pruned = try await catalog.deleteLoginFailures(before: 3000)
            let left = try await catalog.loginFailures(keys: ["a:1.2.3.4", "p:y"])
            #expect(pruned == 0 && left.count == 2)
            let prunedAll = try await catalog.deleteLoginFailures(before: 3001)
            #expect(prunedAll == 2)
        }
    }

    /// Concurrent failures under one key (as from two nodes) all count.
    @Test(arguments: Backend.available)
    func concurrentFailuresAllCount(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    group.addTask { _ = try await catalog.recordLoginFailure(keys: ["p:k", "a:addr"], at: 1000 + Int64(i), forgetBefore: 0) }
                }
                try await group.waitForAll()
            }
            let counts = try await catalog.loginFailures(keys: ["p:k", "a:addr"])
            #expect(counts.map(\.failures) == [40, 40] && counts.allSatisfy { $0.lastFailure == 1039 })
        }
    }
}
