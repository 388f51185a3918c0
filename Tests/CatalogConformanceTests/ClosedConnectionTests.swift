@testable import CatalogPostgres
import ImageCore
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// A statement on a connection that has closed under it answers `.unavailable` at once. postgres-nio
/// drops a statement written to a closed channel without answering it, and a GET that waited on it
/// held the shared revision check, so a node answered no GET again after PostgreSQL restarted.
@Suite(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
struct ClosedConnectionTests {
    static func isUnavailable(_ error: any Error) -> Bool {
        (error as? ImageError)?.kind == .unavailable
    }

    /// `work`'s outcome, or nil when it has none after `seconds`. A statement that never answers cannot
    /// be cancelled: it is left waiting, so that the test fails instead of hanging.
    static func within(seconds: Double, _ work: @escaping @Sendable () async throws -> Void) async -> Result<Void, any Error>? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, any Error>?, Never>) in
            let first = FirstAnswer(continuation)
            Task {
                do { try await work(); first.answer(.success(())) } catch { first.answer(.failure(error)) }
            }
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                first.answer(nil)
            }
        }
    }

    final class FirstAnswer: Sendable {
        let continuation: CheckedContinuation<Result<Void, any Error>?, Never>
        let answered = Mutex(false)
        init(_ continuation: CheckedContinuation<Result<Void, any Error>?, Never>) { self.continuation = continuation }
        func answer(_ outcome: Result<Void, any Error>?) {
            if answered.withLock({ done in defer { done = true }; return !done }) { continuation.resume(returning: outcome) }
        }
    }

    /// Each kind of statement the catalog runs, on a pooled connection closed (handlers dropped) before
    /// the statement starts: one-off, prepared list, the catalog's own prepared reads, a transaction's.
    @Test func everyStatementOnAClosedConnectionIsUnavailableInsteadOfHanging() async throws {
        try await TestCatalog.with(.postgres) { anyCatalog in
            let catalog = try #require(anyCatalog as? PostgresCatalog)
            let kept = makeImage(1, name: "kept")
            try await catalog.insertImage(kept)
            let kinds: [(String, @Sendable (PostgresCatalog, PostgresConnection) async throws -> Void)] = [
                ("one-off", { c, conn in _ = try await c.rows("SELECT 1", on: conn) }),
                ("by id", { c, conn in _ = try await c.executePrepared(.imageByID, [PostgresData(string: "x")], on: conn) }),
                ("revision", { c, conn in _ = try await c.executePrepared(.revision, [], on: conn) }),
                ("begin", { c, conn in try await PostgresCatalog.run("BEGIN", on: conn, logger: c.logger) }),
            ]
            for (name, statement) in kinds {
                let outcome: Result<Void, any Error>? = try await catalog.pooled { conn in
                    try await conn.close()
                    // The channel drops its handlers a loop tick after it closes: a write from then on is lost.
                    try await conn.closeFuture.get()
                    return await Self.within(seconds: 10) { try await statement(catalog, conn) }
                }
                guard let outcome else {
                    Issue.record("\(name): a statement on a closed connection did not answer in 10 s")
                    continue
                }
                guard case .failure(let error) = outcome else {
                    Issue.record("\(name): a statement on a closed connection succeeded")
                    continue
                }
                #expect(Self.isUnavailable(error), "\(name): \(error)")
            }
            // The pool replaces the closed connections: the catalog answers again.
            #expect(try await catalog.image(id: kept.id)?.name == "kept")
        }
    }

    /// The older postgres-nio API (prepared statements) reports a lost database in its own errors:
    /// they are unavailability as the newer API's are, and a statement's own failure is not.
    @Test func olderAPIFailuresOfALostDatabaseAreUnavailable() async throws {
        #expect(PostgresCatalog.unavailable(PostgresError.connectionClosed)?.kind == .unavailable)
        #expect(PostgresCatalog.unavailable(PostgresError.protocol("Unexpected connection close"))?.kind == .unavailable)
        #expect(PostgresCatalog.unavailable(PostgresError.protocol("Unexpected message")) == nil)
        #expect(PostgresCatalog.unavailable(IOError(errnoCode: 104, reason: "read"))?.kind == .unavailable)
        #expect(PostgresCatalog.unavailable(ChannelError.ioOnClosedChannel)?.kind == .unavailable)
        for state in ["57P01", "57P03", "08006", "53300"] { #expect(PostgresCatalog.isUnavailable(sqlState: state), "\(state)") }
        for state in ["23505", "42P01", "22012"] { #expect(!PostgresCatalog.isUnavailable(sqlState: state), "\(state)") }
        try await TestCatalog.with(.postgres) { anyCatalog in
            let catalog = try #require(anyCatalog as? PostgresCatalog)
            // A statement's own failure passes through as the server's error (division by zero, 22012).
            let failed = await #expect(throws: PostgresError.self) {
                _ = try await catalog.preparedRows("SELECT 1/0", [])
            }
            if case .server(let e)? = failed { #expect(e.fields[.sqlState] == "22012") } else { Issue.record("\(String(describing: failed))") }
            // A statement whose backend is terminated under it (what a PostgreSQL shutdown does) is unavailability.
            let error = await #expect(throws: ImageError.self) {
                _ = try await catalog.preparedRows("SELECT pg_terminate_backend(pg_backend_pid())", [])
            }
            #expect(error?.kind == .unavailable, "\(String(describing: error))")
        }
    }
}
