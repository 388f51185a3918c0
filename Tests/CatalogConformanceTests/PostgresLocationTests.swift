import CatalogPostgres
import ImageCore
import Testing

/// The pool settings a PostgreSQL URL gives (no database needed).
@Suite struct PostgresLocationTests {
    let base = "postgres://imaged:pw@db.example.net:5432/images?sslmode=disable"

    /// By default no keep-alive query runs (postgres-nio's pool otherwise starts and cancels a timer
    /// around every query); connections are opened on demand, up to `pool`.
    @Test func noKeepAliveTimersByDefault() throws {
        let options = try PostgresLocation(url: base).configuration.options
        #expect(options.maximumConnections == 20)
        #expect(options.minimumConnections == 0)
        #expect(options.keepAliveBehavior == nil)
        #expect(try PostgresLocation(url: base + "&pool=4").configuration.options.maximumConnections == 4)
    }

    /// Prepared statements are planned once per connection unless the URL gives PostgreSQL's choice back.
    @Test func planCacheModeIsSetAtConnect() throws {
        func mode(_ url: String) throws -> [String] {
            try PostgresLocation(url: url).configuration.options.additionalStartupParameters.filter { $0.0 == "plan_cache_mode" }.map(\.1)
        }
        #expect(try mode(base) == ["force_generic_plan"])
        #expect(try mode(base + "&plan_cache_mode=auto") == ["auto"])
        let withSchema = try PostgresLocation(url: base + "&schema=imaged").configuration.options.additionalStartupParameters
        #expect(withSchema.map(\.0) == ["search_path", "plan_cache_mode"])
        #expect(throws: ImageError.self) { try PostgresLocation(url: base + "&plan_cache_mode=fast") }
    }

    @Test func keepAliveQueriesRunWhenAskedFor() throws {
        let every45 = try PostgresLocation(url: base + "&keepalive=45").configuration.options.keepAliveBehavior
        #expect(every45?.frequency == .seconds(45))
        #expect(try PostgresLocation(url: base + "&keepalive=0").configuration.options.keepAliveBehavior == nil)
        for bad in ["-1", "3601", "often", ""] {
            #expect(throws: ImageError.self, "keepalive=\(bad)") { try PostgresLocation(url: base + "&keepalive=\(bad)") }
        }
    }

    /// The read lease every node of a cluster shares: 5 ms unless the URL says, 0 (a check on every
    /// read) to 1 s.
    @Test func readLeaseComesFromTheURL() throws {
        #expect(try PostgresLocation(url: base).readLease == .milliseconds(5))
        #expect(try PostgresLocation(url: base + "&read_lease_ms=0").readLease == .zero)
        #expect(try PostgresLocation(url: base + "&read_lease_ms=1000").readLease == .seconds(1))
        for bad in ["-1", "1001", "soon", ""] {
            #expect(throws: ImageError.self, "read_lease_ms=\(bad)") { try PostgresLocation(url: base + "&read_lease_ms=\(bad)") }
        }
    }
}
