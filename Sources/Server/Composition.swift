import CatalogPostgres
import Console
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
import Notifications
import NIOCore
import OpenStackAPI
import Outbound
import ServiceLifecycle

/// The request context every front-end sees.
public struct ImagedRequestContext: OpenStackRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var principal: Principal?
    public var requestId: String?
    /// The peer of the connection (the audit line's client, per-address limits).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
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
    /// Beats this node's heartbeat; requeues dead nodes' uploads and aborts orphan multipart uploads.
    public let uploadReaper: UploadReaper
    public let responder: ImagedResponder
    public let authDescription: String
    public let blobsDescription: String
    public let catalogDescription: String
    public let dataDirectory: String
    /// Held for the life of the server: one process per data directory.
    let lock: DataDirectoryLock
}

/// Builds stores, service and front-ends from the configuration.
/// `postgres`: the PostgreSQL catalog whose pool the caller runs (`imaged serve`); it is migrated
/// here. Without it the catalog is opened as tools open it.
public func buildImaged(_ config: ServerConfig, logger: Logger, postgres: PostgresCatalog? = nil) async throws -> Imaged {
    let dataDir = URL(fileURLWithPath: config.dataDirectory).standardizedFileURL.path
    try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])
    let lock = try DataDirectoryLock(directory: dataDir)
    let catalog: any Catalog
    if let postgres {
        try await postgres.migrate()
        catalog = postgres
    } else {
        catalog = try await config.catalog.open(dataDir: dataDir, durability: config.durability,
                                                cacheBytes: config.catalogCacheSize, logger: logger)
    }
    var serviceConfig = ImageServiceConfig()
    serviceConfig.quota = config.quota
    let notifications = try Notifications(config.notify, logger: logger)
    if let notifications { serviceConfig.events = notifications }
    let service = ImageService(catalog: catalog, config: serviceConfig, logger: logger)
    // The shipped metadata definitions, once per catalog (an operator's deletions are not undone).
    if try await service.metadefs.loadShippedOnce() { logger.info("loaded the shipped metadata definitions") }
    let stores: BlobStores
    let blobsDescription: String
    if config.stores.isEmpty {
        let (blobs, description) = try makeBlobStore(config.blobs, dataDir: dataDir, caFile: config.caFile, logger: logger)
        stores = BlobStores(single: blobs)
        blobsDescription = description
    } else {
        var named: [any BlobStore] = []
        for (id, choice) in config.stores {
            let (store, description) = try makeBlobStore(choice, dataDir: dataDir, storeId: id, caFile: config.caFile, logger: logger)
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
    dataConfig.decompress = config.decompress
    dataConfig.storeConversions = config.storeConversions
    // glance-download reads the caller's Keystone catalog: offered only in Keystone mode.
    if config.keystone != nil { dataConfig.importMethods.append("glance-download") }
    var data = ImageDataService(images: service, stores: stores, config: dataConfig, logger: logger)

    var policy = URLGuardPolicy()
    policy.allowedPorts = config.importAllowedPorts
    policy.privateImports = config.importPrivate
    policy.allowCIDRs = try config.importAllowCIDRs.map { text in
        guard let cidr = CIDR(text) else { throw ConfigError("--import-allow-cidr: '\(text)' is not an address range") }
        return cidr
    }
    var fetchOptions = HTTPFetcher.Options()
    fetchOptions.caFile = config.caFile
    fetchOptions.connections = config.importConnections
    let fetcher = HTTPFetcher(urlGuard: URLGuard(policy: policy), options: fetchOptions)
    data.locationReader = fetcher  // images whose data is at an http(s) location (v2.17 locations API)
    data.cache = try await makeImageCache(config, dataDir: dataDir, logger: logger)
    data.converter = try makeConverter(config, dataDir: dataDir, logger: logger)
    var runnerOptions = TaskRunner.Options()
    runnerOptions.leaseSeconds = config.taskLeaseSeconds
    runnerOptions.nodeId = serviceConfig.nodeId
    runnerOptions.concurrency = config.taskWorkers
    let runner = TaskRunner(catalog: catalog, options: runnerOptions, logger: logger)
    runner.attach(data: data, fetcher: fetcher)
    // One Keystone client for the API's tokens, glance-download's regions and the console's sign-ins,
    // so they share the validation cache (a console logout forgets its token for the API too).
    let keystone = try config.keystone.map { KeystoneAuthenticator(config: $0, client: try OutboundTLS.client(caFile: config.caFile), logger: logger) }
    runner.regions = keystone
    let imports = ImageImports(data: data, fetcher: fetcher, runner: runner, callbacks: fetcher)

    let (authenticator, authDescription) = try makeAuthenticator(config, catalog: catalog, dataDir: dataDir, keystone: keystone)
    var openstackOptions = OpenStackAPIOptions(publicEndpoint: config.publicEndpoint,
                                               identityURI: config.keystone.map { config.keystonePublicURL ?? $0.baseURL + "/v3" })
    openstackOptions.showImageDirectURL = config.showImageDirectURL
    openstackOptions.showMultipleLocations = config.showMultipleLocations
    openstackOptions.uploadSessions.ttl = config.uploadSessionTTL
    let openstack = OpenStackImageAPI<ImagedRequestContext>(
        imports: imports, authenticator: authenticator,
        options: openstackOptions)
    // One set of accounts for every front-end: one login throttle and one bounded password pool.
    let accounts = LocalAccounts(catalog: catalog, throttle: config.loginThrottle,
                                 passwords: PasswordPool(concurrency: config.loginConcurrency, queueLength: config.loginQueue,
                                                         perClient: config.loginPerClient))
    let avi = AviImageAPI<ImagedRequestContext>(
        imports: imports, sessions: LoginSessions(accounts: accounts, scope: .avi),
        options: .init(publicEndpoint: config.publicEndpoint))
    let sealer: SecretSealer
    do {
        sealer = try SecretSealer.load(path: config.secretKeyFile ?? dataDir + "/secret.key", create: config.secretKeyFile == nil)
    } catch { throw ConfigError("--secret-key-file: \(error)") }
    var zstackOptions = ZStackAPIOptions(publicEndpoint: config.publicEndpoint)
    zstackOptions.sessionLifetime = config.zstackSessionSeconds
    zstackOptions.exportLifetime = config.zstackExportSeconds
    zstackOptions.maxLiveJobs = config.zstackMaxJobs
    zstackOptions.sealer = sealer
    let zstack = ZStackImageAPI<ImagedRequestContext>(imports: imports, accounts: accounts, options: zstackOptions)
    var uploadReaperOptions = UploadReaper.Options()
    uploadReaperOptions.heartbeatSeconds = config.nodeHeartbeatSeconds
    uploadReaperOptions.multipartMaxAge = config.s3MultipartMaxAge
    let uploadReaper = UploadReaper(data: data, catalog: catalog, options: uploadReaperOptions, logger: logger)
    let reaper = config.expungeAfterSeconds > 0 ? SoftDeleteReaper(data: data, catalog: catalog, after: config.expungeAfterSeconds, logger: logger) : nil
    var danubeOptions = DanubeAPIOptions(publicEndpoint: config.publicEndpoint)
    danubeOptions.tokenLifetime = config.danubeTokenSeconds
    danubeOptions.prefix = config.danubePrefix
    danubeOptions.snapshotURLTemplate = config.danubeSnapshotURL
    danubeOptions.vmURLTemplate = config.danubeVMURL
    danubeOptions.imagestores = config.danubeImagestores.map { (name: $0.0, url: $0.1) }
    danubeOptions.datacenters = config.danubeDatacenters
    let danube = DanubeImageAPI<ImagedRequestContext>(imports: imports, accounts: accounts, options: danubeOptions)
    let systems: ScalrOSCatalogue
    do { systems = try config.scalrOSFile.map { try ScalrOSCatalogue.load(file: $0) } ?? .seeded } catch { throw ConfigError("\(error)") }
    let scalr = ScalrImageAPI<ImagedRequestContext>(data: data, accounts: accounts, options: .init(sealer: sealer, systems: systems))
    var consoleOptions = ConsoleOptions()
    consoleOptions.secureCookies = config.tls != nil
    consoleOptions.uploadSessions.ttl = config.uploadSessionTTL
    consoleOptions.apiViews = [
        ConsoleAPIView(name: "OpenStack", path: OpenStackImageAPI<ImagedRequestContext>.imagePath,
                       render: OpenStackImageAPI<ImagedRequestContext>.imageDocument),
        ConsoleAPIView(name: "Avi", path: AviImageAPI<ImagedRequestContext>.imagePath, render: { [avi] in avi.imageDocument($0) }),
        ConsoleAPIView(name: "ZStack", path: ZStackImageAPI<ImagedRequestContext>.imagePath, render: { [zstack] in zstack.imageDocument($0) }),
        ConsoleAPIView(name: "Danube", path: { [danube] in danube.imagePath($0) }, render: { [danube] in danube.imageDocument($0) }),
        ConsoleAPIView(name: "Scalr", path: ScalrImageAPI<ImagedRequestContext>.imagePath,
                       render: ScalrImageAPI<ImagedRequestContext>.imageDocument),
    ]
    consoleOptions.keystone = keystone.map { ConsoleKeystone(authenticator: $0, sealer: sealer) }
    consoleOptions.defaultStore = stores.defaultStore.id
    consoleOptions.nodeId = serviceConfig.nodeId
    let consoleReadiness = Readiness(catalog: catalog, stores: stores.all)
    consoleOptions.readiness = { await consoleReadiness.check() }
    let console = WebConsole<ImagedRequestContext>(imports: imports, accounts: accounts, options: consoleOptions)
    Observability.bootstrap()
    notifications?.start(poster: fetcher)  // after the metrics backend is up; webhooks go through the URL guard, as callbacks do
    let readiness = Readiness(catalog: catalog, stores: stores.all)
    return Imaged(service: service, catalog: catalog, data: data, runner: runner, scrub: scrub, reaper: reaper,
                  uploadReaper: uploadReaper,
                  responder: ImagedResponder(openstack: openstack, avi: avi, zstack: zstack, danube: danube, scalr: scalr, console: console,
                                                   enabled: config.frontends, readiness: readiness,
                                                   audit: try config.auditLogPath.map { try AuditLog(path: $0) },
                                                   cors: config.corsOrigins.isEmpty ? nil : CORSPolicy(origins: config.corsOrigins)),
                  authDescription: authDescription,
                  blobsDescription: blobsDescription, catalogDescription: config.catalog.description,
                  dataDirectory: dataDir, lock: lock)
}
