import FrontEndSupport
import HTTPTypes
import AviAPI
import DanubeAPI
import ScalrAPI
import ZStackAPI
import BlobStoreFile
import BlobStoreS3
import CatalogSQLite
import Foundation
import Hummingbird
import Identity
import ImageCore
import ImageData
import Logging
import OpenStackAPI
import Outbound
import ServiceLifecycle

/// The request context every front-end sees.
public struct ImagedRequestContext: OpenStackRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// The composition root's pieces, so tests can reach the service behind the HTTP surface.
public struct Imaged: Sendable {
    public let service: ImageService
    /// The catalog behind the service, for the composition root, tools and tests (front-ends never get it).
    public let catalog: any Catalog
    public let data: ImageDataService
    public let runner: TaskRunner
    public let scrub: StartupScrub.Report
    /// Expunges softly deleted images after their period (nil: never).
    public let reaper: SoftDeleteReaper?
    public let responder: ImagedResponder
    public let authDescription: String
    public let blobsDescription: String
    public let catalogDescription: String
    public let dataDirectory: String
    /// Held for the life of the server: one process per data directory.
    let lock: DataDirectoryLock
}

/// Builds stores, service and front-ends from the configuration.
public func buildImaged(_ config: ServerConfig, logger: Logger) async throws -> Imaged {
    let dataDir = URL(fileURLWithPath: config.dataDirectory).standardizedFileURL.path
    try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])
    let lock = try DataDirectoryLock(directory: dataDir)
    let catalog = try await config.catalog.open(dataDir: dataDir, durability: config.durability, logger: logger)
    var serviceConfig = ImageServiceConfig()
    serviceConfig.quota = config.quota
    let service = ImageService(catalog: catalog, config: serviceConfig, logger: logger)
    let stores: BlobStores
    let blobsDescription: String
    if config.stores.isEmpty {
        let (blobs, description) = try makeBlobStore(config.blobs, dataDir: dataDir, logger: logger)
        stores = BlobStores(single: blobs)
        blobsDescription = description
    } else {
        var named: [any BlobStore] = []
        for (id, choice) in config.stores {
            let (store, description) = try makeBlobStore(choice, dataDir: dataDir, storeId: id, logger: logger)
            named.append(NamedBlobStore(store, id: id, description: description))
        }
        do { stores = try BlobStores(named, defaultId: config.defaultStore) } catch { throw ConfigError("\(error)") }
        blobsDescription = "stores " + named.map { "\($0.id) (\($0.description))" }.joined(separator: ", ") + ", default \(stores.defaultStore.id)"
    }
    // Before serving: no half-written blob, no image stuck in a state only a dead upload could leave.
    // Only a node that owns its catalog may do this: on a shared catalog another node's upload in
    // flight would look abandoned. Shared catalogs rely on task leases instead.
    var scrub = StartupScrub.Report()
    if !config.catalog.isShared {
        for store in stores.all {
            let report = try await StartupScrub(catalog: catalog, blobs: store, checkImages: store.id == stores.defaultStore.id,
                                                logger: logger).run()
            scrub.temporariesRemoved += report.temporariesRemoved
            scrub.blobsRemoved += report.blobsRemoved
            scrub.imagesRequeued += report.imagesRequeued
            scrub.tasksResumed += report.tasksResumed
        }
    }

    var dataConfig = ImageDataConfig()
    dataConfig.hashAlgorithm = config.hashAlgorithm
    dataConfig.imageSizeCap = config.imageSizeCap
    dataConfig.maxVirtualSize = config.maxVirtualSize
    let data = ImageDataService(images: service, stores: stores, config: dataConfig, logger: logger)

    var policy = URLGuardPolicy()
    policy.allowedPorts = config.importAllowedPorts
    policy.allowCIDRs = try config.importAllowCIDRs.map { text in
        guard let cidr = CIDR(text) else { throw ConfigError("--import-allow-cidr: '\(text)' is not an address range") }
        return cidr
    }
    let fetcher = HTTPFetcher(urlGuard: URLGuard(policy: policy))
    var runnerOptions = TaskRunner.Options()
    runnerOptions.leaseSeconds = config.taskLeaseSeconds
    runnerOptions.concurrency = config.taskWorkers
    let runner = TaskRunner(catalog: catalog, options: runnerOptions, logger: logger)
    runner.attach(data: data, fetcher: fetcher)
    let imports = ImageImports(data: data, fetcher: fetcher, runner: runner)

    let (authenticator, authDescription) = try makeAuthenticator(config, catalog: catalog, dataDir: dataDir, logger: logger)
    let openstack = OpenStackImageAPI<ImagedRequestContext>(
        imports: imports, authenticator: authenticator,
        options: .init(publicEndpoint: config.publicEndpoint,
                       identityURI: config.keystone.map { config.keystonePublicURL ?? $0.baseURL + "/v3" }))
    let avi = AviImageAPI<ImagedRequestContext>(
        imports: imports, sessions: LoginSessions(accounts: LocalAccounts(catalog: catalog)),
        options: .init(publicEndpoint: config.publicEndpoint))
    var zstackOptions = ZStackAPIOptions(publicEndpoint: config.publicEndpoint)
    zstackOptions.sessionLifetime = config.zstackSessionSeconds
    let zstack = ZStackImageAPI<ImagedRequestContext>(imports: imports, accounts: LocalAccounts(catalog: catalog), options: zstackOptions)
    let reaper = config.expungeAfterSeconds > 0 ? SoftDeleteReaper(data: data, catalog: catalog, after: config.expungeAfterSeconds, logger: logger) : nil
    var danubeOptions = DanubeAPIOptions(publicEndpoint: config.publicEndpoint)
    danubeOptions.tokenLifetime = config.danubeTokenSeconds
    danubeOptions.prefix = config.danubePrefix
    danubeOptions.snapshotURLTemplate = config.danubeSnapshotURL
    danubeOptions.imagestores = config.danubeImagestores.map { (name: $0.0, url: $0.1) }
    let danube = DanubeImageAPI<ImagedRequestContext>(imports: imports, accounts: LocalAccounts(catalog: catalog), options: danubeOptions)
    let sealer: SecretSealer
    do {
        sealer = try SecretSealer.load(path: config.secretKeyFile ?? dataDir + "/secret.key", create: config.secretKeyFile == nil)
    } catch { throw ConfigError("--secret-key-file: \(error)") }
    let scalr = ScalrImageAPI<ImagedRequestContext>(data: data, accounts: LocalAccounts(catalog: catalog), options: .init(sealer: sealer))
    Observability.bootstrap()
    let readiness = Readiness(catalog: catalog, stores: stores.all)
    return Imaged(service: service, catalog: catalog, data: data, runner: runner, scrub: scrub, reaper: reaper,
                  responder: ImagedResponder(openstack: openstack, avi: avi, zstack: zstack, danube: danube, scalr: scalr,
                                                   enabled: config.frontends, readiness: readiness),
                  authDescription: authDescription,
                  blobsDescription: blobsDescription, catalogDescription: config.catalog.description,
                  dataDirectory: dataDir, lock: lock)
}

/// The blob store a configuration names, and a description for the logs.
/// A named store without a directory of its own gets `<data-dir>/stores/<id>`.
public func makeBlobStore(_ choice: ServerConfig.Blobs, dataDir: String, storeId: String? = nil,
                          logger: Logger) throws -> (any BlobStore, String) {
    switch choice {
    case .file(let dir):
        let root = dir ?? (storeId.map { dataDir + "/stores/" + $0 } ?? dataDir + "/blobs")
        return (try FileBlobStore(root: root), storeId == nil ? "file blobs" : "files in \(root)")
    case .s3(let s3):
        return (try S3BlobStore(config: s3, logger: logger),
                "S3 blobs in \(s3.endpoint) bucket \(s3.bucket)" + (s3.keyPrefix.isEmpty ? "" : " under \(s3.keyPrefix)"))
    }
}

/// The identity providers the configuration asks for, cheapest first: static tokens, local API
/// keys (`imk_…:secret`), then Keystone.
func makeAuthenticator(_ config: ServerConfig, catalog: any AccountCatalog, dataDir: String,
                       logger: Logger) throws -> (any TokenAuthenticator, String) {
    if case .none = config.auth {
        guard config.keystone == nil else { throw ConfigError("--no-auth and --keystone-url exclude each other") }
        return (NoAuthAuthenticator(), "NONE (--no-auth: every request is an admin of project 'local')")
    }
    var chain: [any TokenAuthenticator] = []
    var described: [String] = []
    if case .tokenFile(let path) = config.auth, path != nil || config.keystone == nil {
        let file = path ?? dataDir + "/tokens.json"
        if path == nil, !FileManager.default.fileExists(atPath: file) {
            try TokenFile.createDefault(at: file)
        }
        chain.append(try StaticTokenAuthenticator(contentsOf: file))
        described.append("static tokens from \(file)")
    }
    chain.append(APIKeyAuthenticator(accounts: LocalAccounts(catalog: catalog)))
    described.append("local API keys")
    if let keystone = config.keystone {
        chain.append(KeystoneAuthenticator(config: keystone, logger: logger))
        described.append("Keystone at \(keystone.baseURL) (cache \(Int(keystone.cacheSeconds)) s)")
    }
    return (ChainedAuthenticator(chain), described.joined(separator: ", "))
}

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

/// The front door: health check, the Avi paths (`/login`, `/logout`, `/api/image…` without a trailing slash), ZStack's
/// `/zstack/v1`, Scalr's `/api/v1beta0/…`, Danube's `/api/…` and its IMGAPI `/imgapi/images…`, then the OpenStack API.
public struct ImagedResponder: HTTPResponder {
    public typealias Context = ImagedRequestContext
    let openstack: OpenStackImageAPI<ImagedRequestContext>
    let avi: AviImageAPI<ImagedRequestContext>
    let zstack: ZStackImageAPI<ImagedRequestContext>
    let danube: DanubeImageAPI<ImagedRequestContext>
    let scalr: ScalrImageAPI<ImagedRequestContext>
    /// The front-ends `--frontend` left on; a request for another one's paths goes on down the list.
    let enabled: Set<Frontend>
    let readiness: Readiness

    static let requestIdHeader = HTTPField.Name("x-request-id")!
    static let openstackRequestId = HTTPField.Name("x-openstack-request-id")!

    public func respond(to request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let path = request.uri.path
        switch path {
        case "/healthz":
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
        case "/readyz":
            let (ready, body) = await readiness.check()
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: body.serialized)))
        case "/metrics":
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: Observability.exposition())))
        default:
            if OpenAPIDocuments.claims(path) { return OpenAPIDocuments.respond(path: path, method: request.method) }
        }
        // One request id per request, in every front-end's logs and answer (`X-Request-Id`; OpenStack's
        // own `x-openstack-request-id` carries the same value).
        let requestId = Self.requestId(request)
        var context = context
        context.logger[metadataKey: "request_id"] = .string(requestId)
        let frontend: String
        var response: Response
        if enabled.contains(.avi), AviImageAPI<Context>.claims(request) {
            frontend = "avi"
            response = try await avi.respond(to: request, context: context)
        } else if enabled.contains(.zstack), ZStackImageAPI<Context>.claims(request) {
            frontend = "zstack"
            response = try await zstack.respond(to: request, context: context)
        } else if enabled.contains(.scalr), ScalrImageAPI<Context>.claims(request) {
            frontend = "scalr"
            response = try await scalr.respond(to: request, context: context)
        } else if enabled.contains(.danube), danube.claims(request) {
            frontend = path.hasPrefix("/imgapi") ? "imgapi" : "danube"
            response = try await danube.respond(to: request, context: context)
        } else if enabled.contains(.openstack) {
            // OpenStack keeps Glance's own id (`x-openstack-request-id`, taken from the caller's when sent).
            frontend = "openstack"
            response = try await openstack.respond(to: request, context: context)
        } else {
            frontend = "none"
            response = Response(status: .notFound, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"error":"not found: no front-end of this node serves this path"}"#)))
        }
        let id = response.headers[Self.openstackRequestId] ?? requestId
        response.headers[Self.requestIdHeader] = id
        Observability.record(frontend: frontend, route: Observability.route(path), method: request.method.rawValue, status: Int(response.status.code), since: start)
        if context.logger.logLevel <= .info {
            context.logger.info("\(request.method) \(path) \(response.status.code)", metadata: ["request_id": .string(id), "frontend": .string(frontend)])
        }
        return response
    }

    /// The caller's `X-Request-Id` when it is a sane token, else a new `req-<uuid>` (Glance's form).
    static func requestId(_ request: Request) -> String {
        RequestReading.requestId(request.headers[requestIdHeader] ?? request.headers[openstackRequestId]) ?? RequestReading.newRequestId()
    }
}

/// `/readyz`: the catalog answers and every store answers a lookup (a missing probe key is fine;
/// an error is not), each within a few seconds.
public struct Readiness: Sendable {
    let catalog: any Catalog
    let stores: [any BlobStore]

    public func check() async -> (Bool, JSONValue) {
        var checks: [(String, JSONValue)] = []
        var ready = true
        func probe(_ name: String, _ work: @escaping @Sendable () async throws -> Void) async {
            let outcome: String? = await withTaskGroup(of: String?.self) { group in
                group.addTask {
                    do { try await work(); return nil } catch { return "\(error)" }
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(5))
                    return "no answer within 5 s"
                }
                let first = await group.next()!
                group.cancelAll()
                return first
            }
            if let outcome { ready = false; checks.append((name, .string(outcome))) } else { checks.append((name, .string("ok"))) }
        }
        let catalog = self.catalog
        await probe("catalog") { _ = try await catalog.image(id: "00000000-0000-0000-0000-000000000000") }
        for store in stores {
            await probe("store:\(store.id)") { _ = try await store.size(key: "images/readyz-probe") }
        }
        return (ready, .object([("status", .string(ready ? "ready" : "not ready")), ("checks", .object(checks))]))
    }
}

enum TokenFile {
    /// A first start without configuration gets one random admin token, readable by the owner only.
    static func createDefault(at path: String) throws {
        var bytes = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let doc = """
            {"tokens": [
              {"token": "\(token)", "user_id": "admin", "project_id": "admin", "roles": ["admin"]}
            ]}

            """
        guard FileManager.default.createFile(atPath: path, contents: Data(doc.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigError("cannot create token file \(path)")
        }
    }
}

/// An exclusive `flock` on `<data-dir>/lock`. The kernel drops it when the process dies, even by SIGKILL.
public final class DataDirectoryLock: Sendable {
    let fd: Int32

    public init(directory: String) throws {
        let path = directory + "/lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigError("another imaged process is using \(directory) (\(path) is locked)")
        }
    }

    deinit { close(fd) }
}
