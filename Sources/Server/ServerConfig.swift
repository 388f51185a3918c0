import BlobStoreS3
import CatalogSQLite
import Foundation
import Identity
import ImageCore
import ImageData
import Logging
import Notifications
import Outbound

/// Everything `imaged serve` can be told. The defaults are the embedded single-node setup.
public struct ServerConfig: Sendable {
    public enum Auth: Sendable, Equatable {
        /// Every request is an admin of project `local` (local use only).
        case none
        /// Static tokens from a JSON file; nil means `<data-dir>/tokens.json`, created with one admin token if missing.
        case tokenFile(String?)
    }

    public var dataDirectory = "./imaged-data"
    public var host = "127.0.0.1"
    public var port = 9292
    public var auth = Auth.tokenFile(nil)
    public enum Blobs: Sendable {
        /// Files under this directory (nil: `<data-dir>/blobs`); `sparse`: zero blocks become holes;
        /// `direct`: new blobs written past the page cache (O_DIRECT) where the file system allows.
        case file(String?, sparse: Bool = true, direct: Bool = true)
        case s3(S3Config)
    }
    public var blobs = Blobs.file(nil)
    /// Named stores (`--store NAME=SPEC`, Glance's multiple backends); when empty, `blobs` is the one store.
    public var stores: [(id: String, blobs: Blobs)] = []
    /// The store uploads and imports use unless told otherwise (default: the first named).
    public var defaultStore: String?
    /// The embedded SQLite file by default; a PostgreSQL URL for several nodes.
    public var catalog = CatalogLocation.sqlite(nil)
    /// Validate tokens against Keystone (with `auth == .tokenFile(nil)` no static token file is used).
    public var keystone: KeystoneConfig?
    /// Keystone's public URL for `WWW-Authenticate` (default: the validation URL).
    public var keystonePublicURL: String?
    /// Default per-project limits; `imaged quota set` overrides them per project.
    public var quota = QuotaLimits.unlimited
    public var durability = SQLiteCatalog.Durability.full
    public var publicEndpoint: String?
    /// Glance's `show_image_direct_url` / `show_multiple_locations`: `direct_url` / `locations` in OpenStack image views.
    public var showImageDirectURL = false
    public var showMultipleLocations = false
    public var logLevel = Logger.Level.info
    /// `os_hash_algo`: sha512 (Glance's default) or sha256.
    public var hashAlgorithm = HashAlgorithm.sha512
    /// Bytes per image at most (Glance's `image_size_cap`, 1 TiB).
    public var imageSizeCap: Int64 = 1 << 40
    /// Header virtual sizes above this are refused as absurd.
    public var maxVirtualSize: Int64 = 16 << 40
    /// gzip/xz/zstd/bzip2 image data is decompressed on ingest (`--decompress on|off`).
    public var decompress = true
    /// Stores whose images are converted on ingest (`?convert=raw|qcow2` on a store spec), by store id ("" = the unnamed store).
    public var storeConversions: [String: ConversionTarget] = [:]
    /// The qemu-img that conversions run (`--qemu-img`), and their time limit (`--convert-timeout`).
    public var qemuImg = "qemu-img"
    public var convertTimeoutSeconds = 3600
    /// Address ranges imports may reach although they are loopback/private/link-local (`--import-allow-cidr`).
    public var importAllowCIDRs: [String] = []
    /// Ports an import URL may name explicitly; empty means any (`--import-allow-port`).
    public var importAllowedPorts: Set<Int> = [80, 443]
    /// Events to RabbitMQ and webhooks (`--notify-url`, `--notify-webhook`, `--notify-queue`, `--notify-exchange`); off by default.
    public var notify = NotificationOptions()
    /// Who may import from private ranges and any port (`--import-private`).
    public var importPrivate: PrivateImportPolicy = .admin
    /// Parallel ranged GETs of one web-download (`--import-connections`); 1 is one plain GET.
    public var importConnections = 4
    /// Seconds a resumable upload session lives after its last write (`--upload-session-ttl`).
    public var uploadSessionTTL: Int64 = 86_400
    /// Origins whose pages may call the APIs (`--cors-origin`, `*` for any); empty: no CORS.
    public var corsOrigins: [String] = []
    /// Seconds a task lease lasts without renewal (a dead node's task is resumed after this).
    public var taskLeaseSeconds: Int64 = 30
    /// The login back-off shared by every password check (`--login-lock-after` …).
    public var loginThrottle = LoginThrottle.Policy()
    /// Password checks (PBKDF2) at once, and how many may wait; more are refused at once (`--login-concurrency`, `--login-queue`).
    public var loginConcurrency = ProcessInfo.processInfo.activeProcessorCount
    /// Threads that do the network I/O and HTTP parsing (`--event-loop-threads`). Half the cores: the
    /// request handlers run on Swift's task pool, which has a thread per core, so a loop per core
    /// as well made twice as many busy threads as cores. On 2 cores one loop gave GET one 16%
    /// and list 25 11% more requests per second than two, at a lower median (bench/README). With
    /// 1,000 connections, two loops keep more of the throughput (a median 0.89 of 16 connections'
    /// against 0.79), at the cost of list latency; no one default wins both (bench/README).
    public var eventLoopThreads = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
    public var loginQueue: Int?
    /// Of those places, how many one client address may hold (`--login-per-client`; nil: half the slots).
    public var loginPerClient: Int?
    /// Lifetime of a ZStack login session (`--zstack-session-seconds`).
    public var zstackSessionSeconds: Int64 = 7200
    /// Lifetime of a ZStack export URL (`--zstack-export-seconds`).
    public var zstackExportSeconds: Int64 = 86_400
    /// Most unexpired ZStack api jobs per project (`--zstack-max-jobs`); 0: unbounded.
    public var zstackMaxJobs: Int = 1000
    /// The key that seals secrets the servers must use again (Scalr's HMAC keys); nil: `<data-dir>/secret.key`.
    public var secretKeyFile: String?
    /// Scalr's OS catalogue: a JSON file adding OSes to (or withdrawing them from) the seeded ones (`--scalr-os-file`).
    public var scalrOSFile: String?
    /// Seconds requests in flight may take to finish after SIGTERM before they are cancelled.
    public var shutdownGraceSeconds: Int64 = 30
    /// The listener's certificate chain and key, PEM (`--tls-cert`, `--tls-key`); nil: plain HTTP.
    public var tls: (certificate: String, key: String)?
    /// Header, idle and upload-rate deadlines and connection caps (`--header-timeout` …).
    public var connectionLimits = ConnectionLimits()
    /// A PEM bundle outbound TLS trusts besides the system's roots: Keystone, S3, imports (`--ca-file`).
    public var caFile: String?
    /// Danube: login token lifetime, snapshot source template, IMGAPI repositories (name, URL).
    public var danubeTokenSeconds: Int64 = 3600
    /// Where Danube's API is mounted (`--danube-prefix`).
    public var danubePrefix = "/api"
    public var danubeSnapshotURL: String?
    /// Where a VM's existence is asked (`--danube-vm-url`, `{vm}`, `{dc}`).
    public var danubeVMURL: String?
    public var danubeImagestores: [(String, String)] = []
    /// Danube's virtual datacenters (`--danube-dc`); the first is the default DC.
    public var danubeDatacenters = ["main"]
    /// Seconds a softly deleted image (ZStack's Deleted) is kept before it is expunged; 0 keeps it
    /// until expunged by hand (`--expunge-after-seconds`, ZStack's `image.expungePeriod`).
    public var expungeAfterSeconds: Int64 = 259_200
    /// Seconds between this node's heartbeats; a node silent for 3 is dead and its uploads requeued.
    public var nodeHeartbeatSeconds: Int64 = 5
    /// Unfinished S3 multipart uploads older than this are a dead node's and are aborted (`--s3-multipart-max-age`).
    public var s3MultipartMaxAge: Int64 = 86_400
    /// This node's image cache (`--cache-dir`, nil: `<data-dir>/cache`) and its size in bytes (`--cache-size`, 0: no cache).
    public var cacheDirectory: String?
    public var cacheSize: Int64 = 10 << 30
    /// Memory for the catalog records of the images this node reads (`--catalog-cache-size`).
    public var catalogCacheSize = SQLiteCatalog.defaultCacheBytes
    /// The front-ends this node answers (`--frontend`); the others' paths answer 404. Every one by default.
    public var frontends: Set<Frontend> = Set(Frontend.allCases)
    /// Background tasks (imports, copies, vendor jobs) one node runs at once (`--task-workers`).
    public var taskWorkers = 2
    /// Where audit lines go (`--audit-log`): a file, "-" (stdout) or "none"; nil: `<data-dir>/audit.log`.
    public var auditLog: String?

    public init() {}

    /// `host:port`, `[v6]:port`, or `:port`.
    public mutating func setListen(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigError("--listen expects host:port, got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "127.0.0.1" : host
        self.port = port
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

extension ServerConfig {
    public static func durability(named name: String) -> SQLiteCatalog.Durability? { SQLiteCatalog.Durability(rawValue: name) }
}

extension ServerConfig {
    /// The audit file (nil: off; "-": stdout).
    public var auditLogPath: String? {
        switch auditLog {
        case nil, "": dataDirectory + "/audit.log"
        case "none": nil
        case let path?: path
        }
    }

    /// The effective configuration for `imaged config check`, one line per setting, secrets masked
    /// (catalog passwords, S3 secret keys, Keystone passwords never appear).
    public var summary: [(String, String)] {
        func blobs(_ b: Blobs) -> String {
            switch b {
            case .file(let dir, let sparse, let direct):
                return "file " + (dir ?? dataDirectory + "/blobs") + (sparse ? "" : " (not sparse)") + (direct ? "" : " (page cache writes)")
            case .s3(let s3):
                return "s3 \(s3.endpoint) bucket \(s3.bucket) region \(s3.region)" + (s3.keyPrefix.isEmpty ? "" : " prefix \(s3.keyPrefix)")
                    + " \(s3.pathStyle ? "path-style" : "virtual-host") parts \(s3.partSize >> 20) MiB access key \(s3.accessKey.isEmpty ? "(none)" : "set") secret key \(s3.secretKey.isEmpty ? "(none)" : "***")"
            }
        }
        func limit(_ v: Int64?) -> String { v.map(String.init) ?? "unlimited" }
        var out: [(String, String)] = [
            ("listen", "\(host.contains(":") ? "[\(host)]" : host):\(port)"),
            ("data-dir", dataDirectory),
            ("catalog", catalog.description),
            ("durability", durability == .full ? "full" : "normal"),
        ]
        if stores.isEmpty {
            out.append(("blob-store", blobs(self.blobs)))
        } else {
            for (id, b) in stores { out.append(("store \(id)", blobs(b))) }
            out.append(("default-store", defaultStore ?? stores[0].id))
        }
        switch auth {
        case .none: out.append(("auth", "none (every request is an admin of project 'local')"))
        case .tokenFile(let file): out.append(("auth", "static tokens " + (file ?? (keystone == nil ? dataDirectory + "/tokens.json" : "(none)"))))
        }
        if let k = keystone {
            out.append(("keystone", "\(k.baseURL) user \(k.username) project \(k.projectName) password *** cache \(Int(k.cacheSeconds)) s"))
        }
        out += [
            ("public-endpoint", publicEndpoint ?? "(from each request's Host)"),
            ("show-image-direct-url", String(showImageDirectURL)),
            ("show-multiple-locations", String(showMultipleLocations)),
            ("log-level", logLevel.rawValue),
            ("hash-algorithm", hashAlgorithm.rawValue),
            ("image-size-cap", String(imageSizeCap)),
            ("max-virtual-size", String(maxVirtualSize)),
            ("decompress", decompress ? "on" : "off"),
            ("convert", (storeConversions.isEmpty ? "per import (convert_to)"
                         : storeConversions.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "store" : $0.key)→\($0.value.rawValue)" }.joined(separator: ", "))
                + " with \(qemuImg), at most \(convertTimeoutSeconds) s"),
            ("import-allow-cidr", importAllowCIDRs.isEmpty ? "(none)" : importAllowCIDRs.joined(separator: ", ")),
            ("import-allow-port", importAllowedPorts.isEmpty ? "any" : importAllowedPorts.sorted().map(String.init).joined(separator: ", ")),
            ("import-private", importPrivate.rawValue),
            ("import-connections", String(importConnections)),
            ("upload-session-ttl", "\(uploadSessionTTL) s"),
            ("cors-origin", corsOrigins.isEmpty ? "(none)" : corsOrigins.joined(separator: ", ")),
            ("task-lease-seconds", String(taskLeaseSeconds)),
            ("shutdown-grace-seconds", String(shutdownGraceSeconds)),
            ("tls", tls.map { "certificate \($0.certificate) key \($0.key) (reloaded on SIGHUP)" } ?? "off (plain HTTP)"),
            ("connections", "header \(connectionLimits.headerTimeoutSeconds) s, idle \(connectionLimits.idleTimeoutSeconds) s, upload at least \(connectionLimits.minUploadBytesPerSecond) B/s over \(connectionLimits.uploadStallSeconds) s, at most \(connectionLimits.maxConnections) per node and \(connectionLimits.maxConnectionsPerClient) per client address, listen backlog \(connectionLimits.listenBacklog)"),
            ("ca-file", caFile ?? "(none: the system's trust roots)"),
            ("quota", "images \(limit(quota.imageCountTotal)), bytes \(limit(quota.imageSizeTotal)), staged \(limit(quota.imageStageTotal)), uploading \(limit(quota.imageCountUploading))"),
            ("secret-key-file", secretKeyFile ?? dataDirectory + "/secret.key"),
            ("scalr-os-file", scalrOSFile ?? "(none: the seeded OSes)"),
            ("logins", "locked after \(loginThrottle.accountThreshold) failures of an account from an address, \(loginThrottle.addressThreshold) from an address (1 s doubling to \(loginThrottle.maxDelayMs / 1000) s); \(loginConcurrency) password checks at once, \(loginQueue ?? loginConcurrency) waiting, \(loginPerClient ?? max(1, loginConcurrency / 2)) per client address"),
            ("zstack", "/zstack/v1, sessions \(zstackSessionSeconds) s, expunge after \(expungeAfterSeconds) s"),
            ("danube", "\(danubePrefix), tokens \(danubeTokenSeconds) s, snapshots " + (danubeSnapshotURL ?? "(none)")
                + ", imagestores " + (danubeImagestores.isEmpty ? "(none)" : danubeImagestores.map { "\($0.0)=\($0.1)" }.joined(separator: ", "))),
            ("task-workers", String(taskWorkers)),
            ("event-loop-threads", String(eventLoopThreads)),
            ("cache", cacheSize > 0 ? "\(cacheDirectory ?? dataDirectory + "/cache"), at most \(cacheSize) bytes" : "off"),
            ("catalog-cache", "at most \(catalogCacheSize) bytes of image records"),
            ("audit-log", auditLogPath ?? "none"),
            ("notify", notify.description),
            ("front-ends", Frontend.allCases.filter { frontends.contains($0) }.map { $0.mount(danubePrefix: danubePrefix) }.joined(separator: ", ")),
        ]
        return out
    }
}

/// The APIs one imaged can answer; `--frontend` picks some.
public enum Frontend: String, CaseIterable, Sendable {
    case openstack, avi, zstack, danube, scalr, console

    func mount(danubePrefix: String) -> String {
        switch self {
        case .openstack: return "OpenStack /v2"
        case .avi: return "Avi /login /api/image"
        case .zstack: return "ZStack /zstack/v1"
        case .danube: return "Danube \(danubePrefix) and /imgapi/images"
        case .scalr: return "Scalr /api/v1beta0"
        case .console: return "web console /console/"
        }
    }
}
