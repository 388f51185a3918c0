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
}
