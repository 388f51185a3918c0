@testable import CatalogPostgres
import CatalogSQL
import ImageCore
import Testing

/// PostgreSQL has an index for every sort key in the order ListSQL asks for (NULLs first ascending,
/// last descending, then created_at and id). The planner prefers a sort on a small table, so the test
/// forbids sorting and looks for a plan without one; a missing or mis-ordered index leaves a Sort node.
@Suite struct PostgresListPlanTests {
    @Test(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
    func everySortKeyWalksAnIndex() async throws {
        let t = try await Backend.postgres.make()
        let catalog = try #require(t.catalog as? PostgresCatalog)
        try await catalog.insertImage(makeImage(1))
        let principals = [Principal(userId: "u1", projectId: "p1", roles: ["admin"]),
                          Principal(userId: "u1", projectId: "p1", roles: ["member"])]
        var failures: [String] = []
        try await catalog.pooled { c in
            _ = try await catalog.rows("SET enable_sort = off", on: c)
            for principal in principals {
                for key in ImageListQuery.SortKey.allCases {
                    for direction in [SortDirection.asc, .desc] {
                        var request = ImageListRequest()
                        request.sort = [.init(key, direction)]
                        let query = try ImageService.listQuery(request, config: ImageServiceConfig(), by: principal)
                        let statement = ListSQL.build(query, .postgres)
                        let plan = try await catalog.rows("EXPLAIN " + statement.sql, statement.values, on: c)
                            .map { try $0.decode(String.self) }
                        if plan.contains(where: { $0.contains("Sort") }) {
                            failures.append("\(key) \(direction) admin=\(principal.isAdmin): \(plan.joined(separator: " | "))")
                        }
                    }
                }
            }
            _ = try await catalog.rows("RESET enable_sort", on: c)
        }
        await t.cleanup()
        #expect(failures.isEmpty, "\(failures)")
    }

    /// The catalog's connections plan prepared statements once (`plan_cache_mode`, set at connect),
    /// and that one generic plan, made without the values, still walks an index for every sort key
    /// with a marker (the page a client asks for when it pages on).
    @Test(.enabled(if: Backend.postgresURL != nil, "IMAGED_TEST_POSTGRES_URL is not set"))
    func genericPlansWalkAnIndexAfterAMarker() async throws {
        let t = try await Backend.postgres.make()
        let catalog = try #require(t.catalog as? PostgresCatalog)
        let marker = makeImage(1)
        try await catalog.insertImage(marker)
        let principal = Principal(userId: "u1", projectId: "p1", roles: ["member"])
        var failures: [String] = []
        var mode = ""
        try await catalog.pooled { c in
            mode = try await catalog.rows("SHOW plan_cache_mode", on: c).first?.decode(String.self) ?? ""
            _ = try await catalog.rows("SET enable_sort = off", on: c)
            for key in ImageListQuery.SortKey.allCases {
                for direction in [SortDirection.asc, .desc] {
                    var request = ImageListRequest()
                    request.sort = [.init(key, direction)]
                    var query = try ImageService.listQuery(request, config: ImageServiceConfig(), by: principal)
                    query.marker = marker
                    let statement = ListSQL.build(query, .postgres)
                    _ = try await catalog.rows("PREPARE imaged_plan_test AS " + statement.sql, on: c)
                    // EXPLAIN takes no parameters: the test's own values, as literals.
                    let arguments = statement.values.map { value -> String in
                        switch value {
                        case .null: "NULL"
                        case .text(let s): "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
                        case .int(let n): String(n)
                        case .bool(let b): b ? "true" : "false"
                        }
                    }.joined(separator: ", ")
                    let plan = try await catalog.rows("EXPLAIN EXECUTE imaged_plan_test(\(arguments))", on: c)
                        .map { try $0.decode(String.self) }
                    _ = try await catalog.rows("DEALLOCATE imaged_plan_test", on: c)
                    // A generic plan shows the parameters themselves where a custom one shows values.
                    if plan.contains(where: { $0.contains("Sort") }) || !plan.contains(where: { $0.contains("$1") }) {
                        failures.append("\(key) \(direction): \(plan.joined(separator: " | "))")
                    }
                }
            }
            _ = try await catalog.rows("RESET enable_sort", on: c)
        }
        await t.cleanup()
        #expect(mode == "force_generic_plan")
        #expect(failures.isEmpty, "\(failures)")
    }
}
