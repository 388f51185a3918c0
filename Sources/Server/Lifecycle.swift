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
/// image to queued); background tasks release their leases at once.
public func runImaged(_ config: ServerConfig) async throws {
    let app = try await buildApplication(config)
    var logger = Logger(label: "imaged")
    logger.logLevel = config.logLevel
    var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    group.maximumGracefulShutdownDuration = .seconds(config.shutdownGraceSeconds)
    try await ServiceGroup(configuration: group).run()
}

public func buildApplication(_ config: ServerConfig) async throws -> some ApplicationProtocol {
    var configured = Logger(label: "imaged")
    configured.logLevel = config.logLevel
    let logger = configured
    let imaged = try await buildImaged(config, logger: logger)
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
