import CatalogPostgres
import Hummingbird
import ImageData
import Logging
import ServiceLifecycle

/// Runs the task runner for the life of the server.
struct TaskRunnerService: Service {
    let runner: TaskRunner
    func run() async throws {
        await cancelWhenGracefulShutdown { await runner.run() }
    }
}

/// Sweeps softly deleted images for the life of the server.
struct SoftDeleteReaperService: Service {
    let reaper: SoftDeleteReaper
    func run() async throws {
        await cancelWhenGracefulShutdown { await reaper.run() }
    }
}

/// Runs the server until SIGTERM/SIGINT: it then stops accepting, lets requests in flight (uploads)
/// finish for up to `shutdownGraceSeconds`, then cancels them (an upload cancelled this way returns its
/// image to queued); background tasks release their leases at once. On PostgreSQL the connection pool
/// is the group's first service: it starts before the server and closes after it.
public func runImaged(_ config: ServerConfig) async throws {
    var logger = Logger(label: "imaged")
    logger.logLevel = config.logLevel
    let postgres = try config.catalog.pooled(logger: logger)
    let server = ServerService(config: config, postgres: postgres)
    let services: [ServiceGroupConfiguration.ServiceConfiguration] = (postgres.map { [.init(service: $0.service)] } ?? [])
        + [.init(service: server)]
    var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    group.maximumGracefulShutdownDuration = .seconds(config.shutdownGraceSeconds)
    try await ServiceGroup(configuration: group).run()
}

/// Builds the server (once the catalog's pool runs beside it) and serves until shutdown.
struct ServerService: Service {
    let config: ServerConfig
    let postgres: PostgresCatalog?

    func run() async throws {
        try await buildApplication(config, postgres: postgres).run()
    }
}

public func buildApplication(_ config: ServerConfig, postgres: PostgresCatalog? = nil) async throws -> some ApplicationProtocol {
    var configured = Logger(label: "imaged")
    configured.logLevel = config.logLevel
    let logger = configured
    let imaged = try await buildImaged(config, logger: logger, postgres: postgres)
    let listenLine = "imaged listening on http://\(config.host.contains(":") ? "[\(config.host)]" : config.host):\(config.port), data in \(imaged.dataDirectory) (\(imaged.catalogDescription), \(imaged.blobsDescription)), auth: \(imaged.authDescription)"
    var app = Application(
        responder: imaged.responder,
        server: .http1(configuration: .init(idleTimeout: .seconds(300))),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
        onServerRunning: { _ in logger.notice("\(listenLine)") },
        logger: logger)
    app.addServices(TaskRunnerService(runner: imaged.runner))
    if let reaper = imaged.reaper { app.addServices(SoftDeleteReaperService(reaper: reaper)) }
    return app
}
