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

    @Test func keepAliveQueriesRunWhenAskedFor() throws {
        let every45 = try PostgresLocation(url: base + "&keepalive=45").configuration.options.keepAliveBehavior
        #expect(every45?.frequency == .seconds(45))
        #expect(try PostgresLocation(url: base + "&keepalive=0").configuration.options.keepAliveBehavior == nil)
        for bad in ["-1", "3601", "often", ""] {
            #expect(throws: ImageError.self, "keepalive=\(bad)") { try PostgresLocation(url: base + "&keepalive=\(bad)") }
        }
    }
}
