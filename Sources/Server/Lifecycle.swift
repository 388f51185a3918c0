import CatalogPostgres
import Foundation
import NIOCore
import Hummingbird
import ImageData
import Logging
import ServiceLifecycle
import Synchronization

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

/// Keeps the node's heartbeat and reaps what dead nodes left, for the life of the server.
struct UploadReaperService: Service {
    let reaper: UploadReaper
    func run() async throws {
        await cancelWhenGracefulShutdown { await reaper.run() }
    }
}

/// Runs the server until SIGTERM/SIGINT: it then stops accepting, lets requests in flight (uploads)
/// finish for up to `shutdownGraceSeconds`, then cancels them (an upload cancelled this way returns its
/// image to queued); background tasks release their leases at once. On PostgreSQL the connection pool
/// is the group's first service: it starts before the server and is shut down after the server has
/// finished, so the writes of that clean-up still reach the catalog.
public func runImaged(_ config: ServerConfig) async throws {
    EventLoopThreads.use(config.eventLoopThreads)
    var logger = Logger(label: "imaged")
    logger.logLevel = config.logLevel
    let postgres = try config.catalog.pooled(logger: logger, caFile: config.caFile, cacheBytes: config.catalogCacheSize)
    let server = ServerService(config: config, postgres: postgres)
    let services: [ServiceGroupConfiguration.ServiceConfiguration] = (postgres.map { [.init(service: $0.service)] } ?? [])
        + [.init(service: server)]
    var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    // A backstop only: the server ends its own grace (below), then the pool shuts down.
    group.maximumGracefulShutdownDuration = .seconds(config.shutdownGraceSeconds + 30)
    try await ServiceGroup(configuration: group).run()
}

/// Builds the server (once the catalog's pool runs beside it) and serves until shutdown. The grace
/// period is kept here rather than by the group: when it ends only the server's requests are
/// cancelled, not the pool their clean-up writes through.
struct ServerService: Service {
    let config: ServerConfig
    let postgres: PostgresCatalog?

    struct GraceExpired: Error {}

    func run() async throws {
        let app = try await buildApplication(config, postgres: postgres)
        let grace = config.shutdownGraceSeconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            group.addTask {
                try await gracefulShutdown()
                try await Task.sleep(for: .seconds(grace))
                throw GraceExpired()
            }
            do {
                try await group.next()   // the server finished its requests, or the grace ran out
            } catch is GraceExpired {
            }
            group.cancelAll()
            while let _ = try? await group.next() {}
        }
    }
}

public func buildApplication(_ config: ServerConfig, postgres: PostgresCatalog? = nil) async throws -> some ApplicationProtocol {
    var configured = Logger(label: "imaged")
    configured.logLevel = config.logLevel
    let logger = configured
    let imaged = try await buildImaged(config, logger: logger, postgres: postgres)
    let tls = try config.tls.map { try TLSCertificateStore(certificateFile: $0.certificate, keyFile: $0.key) }
    let listenLine = "imaged listening on \(tls == nil ? "http" : "https")://\(config.host.contains(":") ? "[\(config.host)]" : config.host):\(config.port), data in \(imaged.dataDirectory) (\(imaged.catalogDescription), \(imaged.blobsDescription)), auth: \(imaged.authDescription)"
    var app = Application(
        responder: imaged.responder,
        server: guardedServer(limits: config.connectionLimits, tls: tls),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil, backlog: config.connectionLimits.listenBacklog),
        onServerRunning: { channel in
            await ListeningSocket.tune(channel)
            logger.notice("\(listenLine)")
        },
        logger: logger)
    app.addServices(TaskRunnerService(runner: imaged.runner))
    if let tls { app.addServices(CertificateReloadService(store: tls, logger: logger)) }
    if let reaper = imaged.reaper { app.addServices(SoftDeleteReaperService(reaper: reaper)) }
    app.addServices(UploadReaperService(reaper: imaged.uploadReaper))
    return app
}

/// Sizes NIO's shared event loop group, which the HTTP server, the PostgreSQL pool and outbound
/// HTTP all use. NIO reads the size once, when the group is first used, and a second setting
/// crashes: so once per process, before anything starts, and never over an operator's
/// `NIO_SINGLETON_GROUP_LOOP_COUNT`.
enum EventLoopThreads {
    private static let done = Mutex(false)

    static func use(_ threads: Int) {
        done.withLock { done in
            guard !done else { return }
            done = true
            if ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil {
                NIOSingletons.groupLoopCountSuggestion = threads
            }
        }
    }
}
