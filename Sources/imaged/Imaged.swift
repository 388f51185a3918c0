import ArgumentParser
import BlobStoreS3
import Foundation
import Hummingbird
import Identity
import ImageCore
import ImageData
import Logging
import Notifications
import Outbound
import Server

@main
struct ImagedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imaged",
        abstract: "A fast and safe image service: one catalog behind the OpenStack Image API v2 and vendor APIs.",
        subcommands: [Serve.self, AccountCommand.self, QuotaCommand.self, MigrateCommand.self, ConfigCommand.self, AuditCommand.self,
                      MetadefsCommand.self],
        defaultSubcommand: Serve.self)

    /// Options from a configuration file and the environment join the command line before parsing.
    static func main() async {
        LoggingSystem.bootstrap { LineLogHandler(label: $0) }
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            await Self.main(try ConfigFile.expand(arguments, environment: ProcessInfo.processInfo.environment))
        } catch {
            Self.exit(withError: error)
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Configuration files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a configuration (file, environment and flags together) and print the effective one, secrets masked.")
        @Option(help: "The YAML configuration file (default: IMAGED_CONFIG).")
        var config: String?
        @OptionGroup var options: ServeOptions

        func run() async throws {
            let effective = try options.serverConfig()
            print(effective.summary.map { "\($0.0): \($0.1)" }.joined(separator: "\n"))
            print("configuration OK")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the image service.")

    @Option(help: "A YAML configuration file: every option below by its long name (store: [a=file, b=s3:bkt], no-auth: true). Environment variables IMAGED_<OPTION> override it, flags override both. Default: IMAGED_CONFIG.")
    var config: String?

    @OptionGroup var options: ServeOptions

    func run() async throws {
        try await runImaged(try options.serverConfig())
    }
}

/// Every `imaged serve` option (also read from a configuration file and the environment, see ConfigFile).
struct ServeOptions: ParsableArguments {

    @Option(help: "Directory holding the catalog and image data.")
    var dataDir = "./imaged-data"

    @Option(help: "Address to listen on, host:port.")
    var listen = "127.0.0.1:9292"

    @Flag(help: "OpenStack image views show direct_url (the data's first location) to callers allowed to see locations (Glance's show_image_direct_url).")
    var showImageDirectUrl = false

    @Flag(help: "OpenStack image views show locations (Glance's show_multiple_locations).")
    var showMultipleLocations = false

    @Flag(help: "No authentication: every request is an admin of project 'local'. For local use only.")
    var noAuth = false

    @Option(help: "JSON file of static tokens (default: <data-dir>/tokens.json, created with one admin token).")
    var tokenFile: String?

    @Option(help: "SQLite durability: full (fsync every commit) or normal (survives process crashes, not power loss).")
    var durability = "full"

    @Option(help: "Base URL clients use to reach this server, for Location headers and version links.")
    var publicEndpoint: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Multihash algorithm for os_hash_value: sha512 or sha256.")
    var hashAlgorithm = "sha512"

    @Option(help: "Largest image accepted, in bytes (upload, stage or import).")
    var imageSizeCap: Int64 = 1 << 40

    @Option(help: "Largest virtual size a disk image header may declare, in bytes.")
    var maxVirtualSize: Int64 = 16 << 40

    @Option(help: "Decompress gzip, xz, zstd and bzip2 image data as it arrives (upload and import): on or off.")
    var decompress = "on"

    @Option(help: "The qemu-img that converts images (an import's convert_to, a store's ?convert=); run sandboxed: no network, rlimits, timeout.")
    var qemuImg = "qemu-img"

    @Option(help: "Seconds a conversion may take (wall clock and CPU) before it is killed and the ingest fails.")
    var convertTimeout = 3600

    @Option(help: "Address range imports may fetch from although it is loopback, private or link-local (repeatable), e.g. 10.20.0.0/16.")
    var importAllowCidr: [String] = []

    @Option(help: "Port an import URL may name explicitly (repeatable; default 80 and 443; 'any' allows every port).")
    var importAllowPort: [String] = []

    @Option(help: "Who may import from private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) and from any port: admin (users with the admin role), all, or none. Loopback, link-local and metadata addresses stay closed to everyone unless --import-allow-cidr opens them.")
    var importPrivate: String = "admin"

    @Option(help: "Parallel ranged GETs of one web-download when the origin serves ranges with a validator (ETag or Last-Modified); 1 is one plain GET.")
    var importConnections: Int = 4

    @Option(help: "Seconds a resumable upload session (POST /v2/images/{id}/uploads) lives after its last write; an idle one is dropped and its image queued again.")
    var uploadSessionTtl: Int64 = 86_400

    @Option(help: "Origin whose web pages may call the APIs from a browser (CORS; repeatable or comma-separated; '*' for any). Off by default.")
    var corsOrigin: [String] = []

    @Option(help: "Seconds a background task's lease lasts without renewal.")
    var taskLeaseSeconds: Int64 = 30

    @Option(help: "Failed logins of one account from one client address before it is locked there: 1 s, doubling with each further failure.")
    var loginLockAfter: Int64 = 5

    @Option(help: "Failed logins from one client address, whatever the account, before the address is locked (1 s, doubling).")
    var loginAddressLockAfter: Int64 = 30

    @Option(help: "Longest login lock, in seconds.")
    var loginLockMaxSeconds: Int64 = 900

    @Option(help: "Password checks (PBKDF2) run at once (default: the number of cores).")
    var loginConcurrency: Int?

    @Option(help: "Threads for network I/O and HTTP parsing (default: half the cores, at least 1; request handlers run on a thread per core besides).")
    var eventLoopThreads: Int?

    @Option(help: "Password checks that may wait for one of those; more logins are refused at once with 503 (default: --login-concurrency).")
    var loginQueue: Int?

    @Option(help: "Password checks (running or waiting) one client address may have; more from it are refused at once with 503 (default: half of --login-concurrency, at least 1).")
    var loginPerClient: Int?

    @Option(help: "Seconds a ZStack session lives after its login (ZStack's identity.session.timeout).")
    var zstackSessionSeconds: Int64 = 7200

    @Option(help: "Seconds a ZStack ExportImageFromBackupStorage URL serves the image before it expires.")
    var zstackExportSeconds: Int64 = 86_400

    @Option(help: "Most unexpired ZStack api jobs (and imports) one project may hold; further async calls are refused with ID.1003 (0: unbounded).")
    var zstackMaxJobs: Int = 1000

    @Option(help: "The servers' secret key (seals Scalr key secrets; default <data-dir>/secret.key, created when absent). Every node of a cluster needs the same file.")
    var secretKeyFile: String?

    @Option(help: "Scalr's OS catalogue: a JSON array of Os objects ({\"id\", \"name\", \"family\", \"generation\", \"version\"}) added to the seeded ones; an entry with a seeded id replaces it, \"status\": \"inactive\" withdraws it. Read at start; every node of a cluster needs the same file.")
    var scalrOsFile: String?

    @Option(help: "Seconds uploads in flight may take to finish after SIGTERM; then they are cancelled and their images queued again.")
    var shutdownGraceSeconds: Int64 = 30

    @Option(help: "The listener's certificate chain, PEM (with --tls-key: HTTPS only, TLS 1.2 at least; SIGHUP reloads both files).")
    var tlsCert: String?

    @Option(help: "The private key of --tls-cert, PEM.")
    var tlsKey: String?

    @Option(help: "Seconds a client has to send a complete request head (from connecting, or from the first byte of a later request).")
    var headerTimeout: Int64 = 10

    @Option(help: "Seconds a keep-alive connection may wait for its next request.")
    var idleTimeout: Int64 = 60

    @Option(help: "Bytes/s a request body must average over --upload-stall-seconds while the server waits for it; a slower upload is cut off and its image queued again (0: no minimum).")
    var minUploadRate: Int64 = 1024

    @Option(help: "The window --min-upload-rate is averaged over, in seconds.")
    var uploadStallSeconds: Int64 = 30

    @Option(help: "Open connections this node accepts; more are closed at once.")
    var maxConnections = 4096

    @Option(help: "Open connections one client address may hold; more are closed at once.")
    var maxConnectionsPerClient = 256

    @Option(help: "Connections the kernel may queue before the server accepts them (listen backlog; Linux caps it at net.core.somaxconn).")
    var listenBacklog = 4096

    @Option(help: "A PEM bundle of CA certificates trusted besides the system's for outbound TLS: Keystone, S3, imports.")
    var caFile: String?

    @Option(help: "Path prefix of the Danube Cloud API (its client's api_url path).")
    var danubePrefix = "/api"

    @Option(help: "Seconds a Danube login token lives (Danube's AUTHTOKEN_DURATION).")
    var danubeTokenSeconds: Int64 = 3600

    @Option(help: "A Danube virtual datacenter (repeatable; the first is the default DC; default: main).")
    var danubeDc: [String] = []

    @Option(help: "Where Danube snapshot disks are fetched from, with {vm}, {snap}, {disk_id}, {dc} filled in (e.g. http://snapshots/vm/{vm}/snapshot/{snap}/disk/{disk_id}).")
    var danubeSnapshotUrl: String?

    @Option(help: "Where Danube asks whether a VM exists, with {vm} and {dc} filled in: 404/410 there is 'VM not found' before a snapshot is looked at (default: VMs are not checked apart from their snapshots).")
    var danubeVmUrl: String?

    @Option(help: "A remote IMGAPI repository for Danube's imagestore API, NAME=URL (repeatable).")
    var danubeImagestore: [String] = []

    @Option(help: "A front-end this node answers: openstack, avi, zstack, danube or scalr (repeatable; default: all of them).")
    var frontend: [String] = []

    @Option(help: "Background tasks (imports, copies, vendor jobs) this node runs at once.")
    var taskWorkers = 2

    @Option(help: "Publish Glance's notifications to RabbitMQ: amqp://user:password@host:5672/vhost (default: off).")
    var notifyUrl: String?

    @Option(help: "POST each notification as a CloudEvent (JSON) to URL, through the URL guard (repeatable; default: none).")
    var notifyWebhook: [String] = []

    @Option(help: "Notifications waiting per target (broker, each webhook) before new ones are dropped and counted.")
    var notifyQueue = 1000

    @Option(help: "The AMQP topic exchange notifications go to (oslo.messaging's control_exchange).")
    var notifyExchange = "glance"

    @Option(help: "Audit log: one JSON line per state-changing request, appended to FILE; '-' writes to stdout, 'none' turns it off (default: <data-dir>/audit.log).")
    var auditLog: String?

    @Option(help: "Seconds a softly deleted image (ZStack's Deleted status) is kept, recoverable, before it is expunged; 0 keeps it until expunged by hand (ZStack's image.expungePeriod).")
    var expungeAfterSeconds: Int64 = 259_200

    @Option(help: "Seconds between this node's heartbeats in the catalog; an upload whose node misses 3 is requeued by another node.")
    var nodeHeartbeatSeconds: Int64 = 5

    @Option(help: "Seconds after which an unfinished S3 multipart upload is an orphan (a dead node's) and is aborted; longer than any live upload.")
    var s3MultipartMaxAge: Int64 = 86_400

    @Option(help: "Directory of this node's image cache (default: <data-dir>/cache).")
    var cacheDir: String?

    @Option(help: "Size of this node's image cache (bytes, or 512MiB, 10GiB…; least recently used images are evicted); 0 turns the cache and the cache API off.")
    var cacheSize = "10GiB"

    @Option(help: "Memory for the images' catalog records this node keeps (bytes, or 64MiB, 1GiB…): reads of a kept image skip the SQLite read or the PostgreSQL row decoding. About 1 KiB per image; 0 keeps none.")
    var catalogCacheSize = "256MiB"

    @Option(help: "Validate X-Auth-Token against this Keystone (e.g. http://keystone:5000/v3).")
    var keystoneUrl: String?

    @Option(help: "Keystone service user imaged validates tokens with.")
    var keystoneUser = "imaged"

    @Option(help: "File holding the service user's password (or set IMAGED_KEYSTONE_PASSWORD). Never on the command line.")
    var keystonePasswordFile: String?

    @Option(help: "Project the service user's token is scoped to.")
    var keystoneProject = "service"

    @Option(help: "Domain id of the service user and its project.")
    var keystoneDomain = "default"

    @Option(help: "Seconds a validated (or refused) token is remembered; a revoked token is refused after at most this long.")
    var keystoneCacheSeconds: Double = 300

    @Option(help: "Keystone's public URL, announced in WWW-Authenticate on 401 (default: --keystone-url).")
    var keystonePublicUrl: String?

    @Option(help: "Catalog: sqlite (<data-dir>/catalog.sqlite), sqlite:PATH, or postgres://USER@HOST:PORT/DB[?schema=S&sslmode=require] (password in the URL or PGPASSWORD; default: IMAGED_CATALOG or sqlite). Several nodes may share one PostgreSQL catalog.")
    var catalog: String?

    @Option(help: "Where image bytes go: 'file' (<data-dir>/blobs), 'file:DIR', or 's3:BUCKET' (see --s3-*). A file store leaves zero blocks as holes unless the spec ends with '?sparse=false', and writes past the page cache (O_DIRECT) unless '?direct=false' (URL-style, joined by &, so no comma in lists).")
    var blobStore = "file"

    @Option(help: "A named store (repeatable; Glance's multiple backends): NAME=file, NAME=file:DIR (either may end with ?sparse=false, ?direct=false) or NAME=s3:BUCKET (S3 settings from --s3-*). Replaces --blob-store; /v2/info/stores lists them, uploads may pick one (X-Image-Meta-Store), copy-image copies between them.")
    var store: [String] = []

    @Option(help: "The named store uploads and imports use by default (default: the first --store).")
    var defaultStore: String?

    @Option(help: "S3 endpoint, e.g. https://rgw.example.net (default: AWS_ENDPOINT_URL or S3_ENDPOINT). Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")
    var s3Endpoint: String?

    @Option(help: "S3 signing region (default: AWS_REGION, AWS_DEFAULT_REGION or us-east-1).")
    var s3Region: String?

    @Option(help: "Prefix of every object name in the bucket, e.g. 'imaged/'.")
    var s3KeyPrefix = ""

    @Flag(help: "Virtual-host addressing (https://BUCKET.host/key) instead of path style.")
    var s3VirtualHost = false

    @Option(help: "Multipart part size in MiB (at least 5).")
    var s3PartMib = 16

    @Option(help: "Default limit on images per project (image_count_total).")
    var quotaImageCount: Int64?

    @Option(help: "Default limit on stored bytes per project, e.g. 500GiB (image_size_total).")
    var quotaImageSize: String?

    @Option(help: "Default limit on staged bytes per project, e.g. 50GiB (image_stage_total).")
    var quotaStageSize: String?

    @Option(help: "Default limit on images receiving data at once per project (image_count_uploading).")
    var quotaUploading: Int64?

    func serverConfig() throws -> ServerConfig {
        var config = ServerConfig()
        config.dataDirectory = dataDir
        try config.setListen(listen)
        if noAuth, tokenFile != nil { throw ValidationError("--no-auth and --token-file exclude each other") }
        config.auth = noAuth ? .none : .tokenFile(tokenFile)
        guard let d = ServerConfig.durability(named: durability) else {
            throw ValidationError("--durability must be full or normal")
        }
        config.durability = d
        config.publicEndpoint = publicEndpoint
        config.showImageDirectURL = showImageDirectUrl
        config.showMultipleLocations = showMultipleLocations
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        config.logLevel = level
        guard let algorithm = HashAlgorithm(rawValue: hashAlgorithm) else {
            throw ValidationError("--hash-algorithm must be sha512 or sha256")
        }
        config.hashAlgorithm = algorithm
        guard imageSizeCap > 0, maxVirtualSize > 0, taskLeaseSeconds >= 3 else {
            throw ValidationError("--image-size-cap and --max-virtual-size must be positive, --task-lease-seconds at least 3")
        }
        config.imageSizeCap = imageSizeCap
        config.maxVirtualSize = maxVirtualSize
        guard decompress == "on" || decompress == "off" else { throw ValidationError("--decompress must be on or off") }
        config.decompress = decompress == "on"
        guard convertTimeout >= 1 else { throw ValidationError("--convert-timeout must be at least 1 second") }
        config.qemuImg = qemuImg
        config.convertTimeoutSeconds = convertTimeout
        config.importAllowCIDRs = importAllowCidr
        guard let privateImports = PrivateImportPolicy(rawValue: importPrivate) else {
            throw ValidationError("--import-private: '\(importPrivate)' is not one of admin, all, none")
        }
        config.importPrivate = privateImports
        guard (1...32).contains(importConnections) else { throw ValidationError("--import-connections must be between 1 and 32") }
        config.importConnections = importConnections
        guard uploadSessionTtl >= 1 else { throw ValidationError("--upload-session-ttl must be at least 1 second") }
        config.uploadSessionTTL = uploadSessionTtl
        config.corsOrigins = corsOrigin.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        for origin in config.corsOrigins where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
            throw ValidationError("--cors-origin: '\(origin)' is not an origin (scheme://host[:port]) or '*'")
        }
        if !importAllowPort.isEmpty {
            if importAllowPort == ["any"] {
                config.importAllowedPorts = []
            } else {
                config.importAllowedPorts = Set(try importAllowPort.map { text in
                    guard let p = Int(text), (1...65535).contains(p) else { throw ValidationError("--import-allow-port: bad port '\(text)'") }
                    return p
                })
            }
        }
        config.taskLeaseSeconds = taskLeaseSeconds
        guard (1...64).contains(taskWorkers) else { throw ValidationError("--task-workers must be between 1 and 64") }
        config.taskWorkers = taskWorkers
        config.auditLog = auditLog
        if let notifyUrl, AMQPEndpoint(url: notifyUrl) == nil {
            throw ValidationError("--notify-url: '\(notifyUrl)' is not amqp://user:password@host:port/vhost")
        }
        guard notifyQueue >= 1, !notifyExchange.isEmpty else { throw ValidationError("--notify-queue must be at least 1, --notify-exchange not empty") }
        config.notify.amqpURL = notifyUrl
        config.notify.webhooks = notifyWebhook
        config.notify.queueLimit = notifyQueue
        config.notify.exchange = notifyExchange
        if !frontend.isEmpty {
            config.frontends = Set(try frontend.flatMap { $0.split(separator: ",") }.map { name in
                let trimmed = name.trimmingCharacters(in: .whitespaces)
                guard let known = Frontend(rawValue: trimmed) else {
                    throw ValidationError("--frontend: '\(trimmed)' is not one of \(Frontend.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return known
            })
        }
        guard loginLockAfter >= 1, loginAddressLockAfter >= 1, loginLockMaxSeconds >= 1 else {
            throw ValidationError("--login-lock-after, --login-address-lock-after and --login-lock-max-seconds must be at least 1")
        }
        config.loginThrottle.accountThreshold = loginLockAfter
        config.loginThrottle.addressThreshold = loginAddressLockAfter
        config.loginThrottle.maxDelayMs = loginLockMaxSeconds * 1000
        // A quiet key is forgotten after an hour, or after the longest lock when that is longer.
        config.loginThrottle.forgetAfterMs = max(3_600_000, 2 * loginLockMaxSeconds * 1000)
        if let eventLoopThreads {
            guard (1...256).contains(eventLoopThreads) else { throw ValidationError("--event-loop-threads must be between 1 and 256") }
            config.eventLoopThreads = eventLoopThreads
        }
        if let loginConcurrency {
            guard (1...256).contains(loginConcurrency) else { throw ValidationError("--login-concurrency must be between 1 and 256") }
            config.loginConcurrency = loginConcurrency
        }
        if let loginQueue {
            guard (0...4096).contains(loginQueue) else { throw ValidationError("--login-queue must be between 0 and 4096") }
            config.loginQueue = loginQueue
        }
        if let loginPerClient {
            guard (1...256).contains(loginPerClient) else { throw ValidationError("--login-per-client must be between 1 and 256") }
            config.loginPerClient = loginPerClient
        }
        guard zstackSessionSeconds >= 1 else { throw ValidationError("--zstack-session-seconds must be positive") }
        config.zstackSessionSeconds = zstackSessionSeconds
        guard zstackExportSeconds >= 1 else { throw ValidationError("--zstack-export-seconds must be positive") }
        config.zstackExportSeconds = zstackExportSeconds
        guard zstackMaxJobs >= 0 else { throw ValidationError("--zstack-max-jobs must not be negative") }
        config.zstackMaxJobs = zstackMaxJobs
        guard danubePrefix.hasPrefix("/"), !danubePrefix.hasSuffix("/"), danubePrefix.count > 1, !danubePrefix.hasPrefix("/v2"),
              !danubePrefix.hasPrefix("/zstack"), danubePrefix != "/images" else {
            throw ValidationError("--danube-prefix must be a path like /api or /danube/api, not '\(danubePrefix)'")
        }
        config.danubePrefix = danubePrefix
        config.secretKeyFile = secretKeyFile
        config.scalrOSFile = scalrOsFile
        guard shutdownGraceSeconds >= 0 else { throw ValidationError("--shutdown-grace-seconds must not be negative") }
        config.shutdownGraceSeconds = shutdownGraceSeconds
        switch (tlsCert, tlsKey) {
        case let (cert?, key?):
            // Loaded here too, so `config check` and a start with a bad file fail before anything runs.
            do { _ = try TLSCertificateStore(certificateFile: cert, keyFile: key) } catch {
                throw ValidationError("--tls-cert \(cert) / --tls-key \(key) do not load: \(error)")
            }
            config.tls = (cert, key)
        case (nil, nil): break
        default: throw ValidationError("--tls-cert and --tls-key go together")
        }
        guard headerTimeout >= 1, idleTimeout >= 1, uploadStallSeconds >= 1, minUploadRate >= 0 else {
            throw ValidationError("--header-timeout, --idle-timeout and --upload-stall-seconds must be at least 1, --min-upload-rate not negative")
        }
        guard maxConnections >= 1, maxConnectionsPerClient >= 1, listenBacklog >= 1 else {
            throw ValidationError("--max-connections, --max-connections-per-client and --listen-backlog must be at least 1")
        }
        config.connectionLimits.headerTimeoutSeconds = headerTimeout
        config.connectionLimits.idleTimeoutSeconds = idleTimeout
        config.connectionLimits.minUploadBytesPerSecond = minUploadRate
        config.connectionLimits.uploadStallSeconds = uploadStallSeconds
        config.connectionLimits.maxConnections = maxConnections
        config.connectionLimits.maxConnectionsPerClient = maxConnectionsPerClient
        config.connectionLimits.listenBacklog = listenBacklog
        if let caFile { try OutboundTLS.check(caFile: caFile) }
        config.caFile = caFile
        guard danubeTokenSeconds >= 1 else { throw ValidationError("--danube-token-seconds must be positive") }
        config.danubeTokenSeconds = danubeTokenSeconds
        for dc in danubeDc {
            guard !dc.isEmpty, dc.count <= 16, dc.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 95 || $0 == 45 }) else {
                throw ValidationError("--danube-dc takes a datacenter name (letters, digits, . _ -, at most 16), not '\(dc)'")
            }
        }
        if !danubeDc.isEmpty { config.danubeDatacenters = danubeDc.reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }
        if let template = danubeSnapshotUrl {
            guard template.hasPrefix("http://") || template.hasPrefix("https://") else {
                throw ValidationError("--danube-snapshot-url must be an http(s) URL template")
            }
            config.danubeSnapshotURL = template
        }
        if let template = danubeVmUrl {
            guard template.hasPrefix("http://") || template.hasPrefix("https://"), template.contains("{vm}") else {
                throw ValidationError("--danube-vm-url must be an http(s) URL template with {vm}")
            }
            config.danubeVMURL = template
        }
        config.danubeImagestores = try danubeImagestore.map { spec in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].hasPrefix("http://") || parts[1].hasPrefix("https://") else {
                throw ValidationError("--danube-imagestore takes NAME=http(s)://URL, not '\(spec)'")
            }
            return (parts[0], parts[1])
        }
        guard expungeAfterSeconds >= 0 else { throw ValidationError("--expunge-after-seconds must not be negative") }
        config.expungeAfterSeconds = expungeAfterSeconds
        guard nodeHeartbeatSeconds >= 1, s3MultipartMaxAge >= 1 else {
            throw ValidationError("--node-heartbeat-seconds and --s3-multipart-max-age must be at least 1")
        }
        config.nodeHeartbeatSeconds = nodeHeartbeatSeconds
        config.s3MultipartMaxAge = s3MultipartMaxAge
        config.cacheSize = try parseSize(cacheSize)
        config.catalogCacheSize = Int(try parseSize(catalogCacheSize))
        config.cacheDirectory = cacheDir
        if let url = keystoneUrl {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw ValidationError("--keystone-url must be an http(s) URL") }
            var password = ProcessInfo.processInfo.environment["IMAGED_KEYSTONE_PASSWORD"]
            if let file = keystonePasswordFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("cannot read --keystone-password-file \(file)")
                }
                password = text.trimmingCharacters(in: .newlines)
            }
            guard let password, !password.isEmpty else {
                throw ValidationError("--keystone-url needs the service password: --keystone-password-file or IMAGED_KEYSTONE_PASSWORD")
            }
            guard keystoneCacheSeconds >= 0 else { throw ValidationError("--keystone-cache-seconds must not be negative") }
            var k = KeystoneConfig(authURL: url, username: keystoneUser, password: password, projectName: keystoneProject)
            k.userDomainId = keystoneDomain
            k.projectDomainId = keystoneDomain
            k.cacheSeconds = keystoneCacheSeconds
            config.keystone = k
            config.keystonePublicURL = keystonePublicUrl
        }
        config.blobs = try blobConfig()
        if let target = try storeConversion(blobStore) { config.storeConversions[""] = target }
        if !store.isEmpty {
            guard blobStore == "file" else { throw ValidationError("--store and --blob-store exclude each other") }
            config.stores = try store.map { spec in
                guard let eq = spec.firstIndex(of: "="), case let name = String(spec[..<eq]),
                      name.range(of: "^[a-z0-9][a-z0-9_-]{0,62}$", options: .regularExpression) != nil else {
                    throw ValidationError("--store expects NAME=SPEC with a lowercase name, got '\(spec)'")
                }
                let text = String(spec[spec.index(after: eq)...])
                if let target = try storeConversion(text) { config.storeConversions[name] = target }
                return (name, try blobChoice(text, endpoint: s3Endpoint, region: s3Region,
                                      keyPrefix: s3KeyPrefix, virtualHost: s3VirtualHost, partMib: s3PartMib))
            }
            config.defaultStore = defaultStore
        } else if defaultStore != nil {
            throw ValidationError("--default-store needs --store")
        }
        do {
            config.catalog = try CatalogLocation(parsing: catalog ?? ProcessInfo.processInfo.environment["IMAGED_CATALOG"] ?? "sqlite")
        } catch {
            throw ValidationError("\(error)")
        }
        if config.catalog.isShared, case .file(nil, _, _) = config.blobs {
            // Allowed (one node on PostgreSQL), but other nodes cannot read this node's files.
            FileHandle.standardError.write(Data("note: a PostgreSQL catalog with file blobs under the data directory serves one node only; use --blob-store s3:BUCKET for several\n".utf8))
        }
        config.quota = try QuotaOptions(imageCount: quotaImageCount, imageSize: quotaImageSize,
                                        stageSize: quotaStageSize, uploading: quotaUploading).limits()
        return config
    }

    func blobConfig() throws -> ServerConfig.Blobs {
        try blobChoice(blobStore, endpoint: s3Endpoint, region: s3Region, keyPrefix: s3KeyPrefix,
                       virtualHost: s3VirtualHost, partMib: s3PartMib)
    }
}

/// A store spec's URL-style options (`file:DIR?sparse=false&convert=raw`; no commas, so specs fit in lists).
func storeOptions(_ text: String) throws -> (spec: String, options: [String: String]) {
    guard let q = text.firstIndex(of: "?") else { return (text, [:]) }
    var options: [String: String] = [:]
    for pair in text[text.index(after: q)...].split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, ["sparse", "direct", "convert"].contains(kv[0]), options[kv[0]] == nil else {
            throw badStoreSpec(text)
        }
        options[kv[0]] = kv[1]
    }
    return (String(text[..<q]), options)
}

func badStoreSpec(_ text: String) -> ValidationError {
    ValidationError("a blob store is file, file:DIR (either with ?sparse=false, ?direct=false) or s3:BUCKET, any of them with ?convert=raw|qcow2 (options joined by &), got '\(text)'")
}

/// The disk format a store spec's `?convert=` asks its images to be converted to, if any.
func storeConversion(_ text: String) throws -> ConversionTarget? {
    guard let name = try storeOptions(text).options["convert"] else { return nil }
    guard let target = ConversionTarget(rawValue: name) else {
        throw badStoreSpec(text)
    }
    return target
}

/// `file`, `file:DIR` (either with `?sparse=false`: zero blocks written, not left as holes;
/// `?direct=false`: written through the page cache, not with O_DIRECT) or
/// `s3:BUCKET` with the S3 settings (credentials from the AWS environment variables).
func blobChoice(_ text: String, endpoint: String?, region: String?, keyPrefix: String, virtualHost: Bool,
                partMib: Int) throws -> ServerConfig.Blobs {
    let (spec, options) = try storeOptions(text)
    if spec.hasPrefix("file") {
        func flag(_ name: String) throws -> Bool {
            guard let value = options[name] else { return true }
            guard value == "true" || value == "false" else { throw badStoreSpec(text) }
            return value == "true"
        }
        let sparse = try flag("sparse"), direct = try flag("direct")
        if spec == "file" { return .file(nil, sparse: sparse, direct: direct) }
        if spec.hasPrefix("file:"), spec.count > 5 { return .file(String(spec.dropFirst(5)), sparse: sparse, direct: direct) }
    }
    guard spec.hasPrefix("s3:"), spec.count > 3, options["sparse"] == nil, options["direct"] == nil else {
        throw badStoreSpec(text)
    }
    let env = ProcessInfo.processInfo.environment
    guard let endpoint = endpoint ?? env["AWS_ENDPOINT_URL"] ?? env["S3_ENDPOINT"] else {
        throw ValidationError("an s3: blob store needs --s3-endpoint (or AWS_ENDPOINT_URL)")
    }
    guard let key = env["AWS_ACCESS_KEY_ID"], let secret = env["AWS_SECRET_ACCESS_KEY"], !key.isEmpty, !secret.isEmpty else {
        throw ValidationError("an s3: blob store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
    }
    guard partMib >= 5, partMib <= 1024 else { throw ValidationError("--s3-part-mib must be 5 to 1024") }
    var c = S3Config(endpoint: endpoint, bucket: String(spec.dropFirst(3)), accessKey: key, secretKey: secret)
    c.region = region ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1"
    c.keyPrefix = keyPrefix
    c.pathStyle = !virtualHost
    c.partSize = partMib << 20
    return .s3(c)
}
