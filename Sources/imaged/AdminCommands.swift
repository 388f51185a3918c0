import ArgumentParser
import Foundation
import Identity
import ImageCore
import Server

/// Where the admin commands find the catalog. They touch only accounts, keys and quotas, which
/// the server never caches for long, so they may run while `imaged serve` does.
struct CatalogOptions: ParsableArguments {
    @Option(help: "Data directory (holds the default SQLite catalog).") var dataDir = "./imaged-data"
    @Option(help: "Catalog: sqlite, sqlite:PATH or postgres://USER@HOST:PORT/DB (default: IMAGED_CATALOG or sqlite).")
    var catalog: String?

    func open() async throws -> any Catalog {
        let text = catalog ?? ProcessInfo.processInfo.environment["IMAGED_CATALOG"] ?? "sqlite"
        let location: CatalogLocation
        do { location = try CatalogLocation(parsing: text) } catch { throw ValidationError("\(error)") }
        return try await location.open(dataDir: dataDir)
    }
}

/// `10GiB`, `512M`, `1T`, `4096` (bytes). Units are binary, as Glance's `user_storage_quota`.
func parseSize(_ text: String) throws -> Int64 {
    guard let n = ByteSize.parse(text) else { throw ValidationError("'\(text)' is not a size (examples: 4096, 512MiB, 10GiB, 1T)") }
    return n
}

struct QuotaOptions {
    var imageCount: Int64?
    var imageSize: String?
    var stageSize: String?
    var uploading: Int64?

    func limits() throws -> QuotaLimits {
        for n in [imageCount, uploading].compactMap({ $0 }) where n < 0 { throw ValidationError("quota counts must not be negative") }
        return QuotaLimits(imageCountTotal: imageCount, imageSizeTotal: try imageSize.map(parseSize),
                           imageStageTotal: try stageSize.map(parseSize), imageCountUploading: uploading)
    }
}

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Manage local accounts (vendor API logins) and their API keys.",
        subcommands: [Create.self, List.self, Delete.self, Password.self, Key.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account in a project with roles.")
        @Argument var name: String
        @Option(help: "Project the account belongs to.") var project: String
        @Option(help: "Role (repeatable): admin, member or reader.") var role: [String] = []
        @Flag(help: "Read the password from standard input (first line).") var passwordStdin = false
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            let password = passwordStdin ? try readPassword() : nil
            let accounts = LocalAccounts(catalog: try await store.open())
            let a = try await accounts.create(name: name, project: project, roles: role, password: password)
            print("account \(a.name) created: user id \(a.userId), project \(a.projectId), roles \(a.roles.joined(separator: ","))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts and their API key ids.")
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            let catalog = try await store.open()
            for a in try await catalog.accounts() {
                let keys = try await catalog.apiKeys(accountName: a.name).map(\.keyId)
                print("\(a.name)\tproject=\(a.projectId)\troles=\(a.roles.joined(separator: ","))\tpassword=\(a.passwordHash == nil ? "no" : "yes")\tkeys=\(keys.joined(separator: ","))\tscalr_env=\(ScalrEnvironment.id(ofProject: a.projectId))")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an account and its API keys.")
        @Argument var name: String
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            guard try await store.open().deleteAccount(name: name) else { throw ValidationError("no account named \(name)") }
            print("account \(name) deleted")
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "passwd", abstract: "Set an account's password (read from standard input).")
        @Argument var name: String
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            try await LocalAccounts(catalog: try await store.open()).setPassword(name: name, password: try readPassword())
            print("password of \(name) changed")
        }
    }

    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage API keys.", subcommands: [KeyCreate.self, KeyDelete.self])
    }

    struct KeyCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an API key; its secret is shown once.")
        @Argument var name: String
        @OptionGroup var store: CatalogOptions
        @Flag(help: "A Scalr API key (signs requests; its secret is kept sealed with the servers' secret key).")
        var scalr = false
        @Flag(help: "A ZStack access key (Authorization: ZStack <AccessKeyId>:<signature>; its secret is kept sealed with the servers' secret key).")
        var zstack = false
        @Option(help: "The servers' secret key file (default <data-dir>/secret.key, created when absent). Every node must use the same.")
        var secretKeyFile: String?

        func run() async throws {
            let accounts = LocalAccounts(catalog: try await store.open())
            if scalr && zstack { throw ValidationError("--scalr and --zstack make different keys: choose one") }
            if zstack || scalr {
                // Signing keys are sealed with the server's key, so the server can verify their HMACs.
                try FileManager.default.createDirectory(atPath: store.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                let sealer = try SecretSealer.load(path: secretKeyFile ?? store.dataDir + "/secret.key", create: true)
                let (keyId, secret) = zstack ? try await accounts.createZStackAccessKey(accountName: name, sealer: sealer)
                                             : try await accounts.createSigningKey(accountName: name, sealer: sealer)
                print("key id: \(keyId)")
                print("secret: \(secret)")
                print(zstack ? "ZStack API: Authorization: ZStack \(keyId):<base64 HMAC-SHA1 of METHOD, Date and path with the secret> (shown only now)."
                             : "Scalr API: X-Scalr-Key-Id \(keyId), requests signed with the secret (shown only now).")
                return
            }
            let (keyId, secret) = try await accounts.createKey(accountName: name)
            print("key id: \(keyId)")
            print("secret: \(secret)")
            print("The secret is not stored and cannot be shown again. OpenStack API: X-Auth-Token: \(keyId):<secret>")
        }
    }

    struct KeyDelete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Revoke an API key.")
        @Argument var keyId: String
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            guard try await store.open().deleteAPIKey(id: keyId) else { throw ValidationError("no API key \(keyId)") }
            print("key \(keyId) deleted")
        }
    }
}

/// The first line of standard input, without its line end.
func readPassword() throws -> String {
    guard let line = readLine(strippingNewline: true), !line.isEmpty else {
        throw ValidationError("expected the password on standard input")
    }
    return line
}

struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota", abstract: "Per-project limits overriding the server's --quota-* defaults.",
        subcommands: [Set.self, Show.self, Clear.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a project's limits (unnamed ones keep their value).")
        @Argument var project: String
        @Option(help: "Images (image_count_total).") var imageCount: Int64?
        @Option(help: "Stored bytes, e.g. 100GiB (image_size_total).") var imageSize: String?
        @Option(help: "Staged bytes (image_stage_total).") var stageSize: String?
        @Option(help: "Images receiving data at once (image_count_uploading).") var uploading: Int64?
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            let catalog = try await store.open()
            let given = try QuotaOptions(imageCount: imageCount, imageSize: imageSize, stageSize: stageSize, uploading: uploading).limits()
            let merged = (try await catalog.quotaOverride(project: project) ?? .unlimited).overridden(by: given)
            try await catalog.setQuotaOverride(project: project, merged)
            print(QuotaCommand.describe(project, merged))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a project's limit overrides and usage.")
        @Argument var project: String
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            let catalog = try await store.open()
            print(QuotaCommand.describe(project, try await catalog.quotaOverride(project: project) ?? .unlimited))
            let u = try await catalog.usage(project: project)
            print("usage: images \(u.imageCount), stored \(u.sizeTotal) bytes, staged \(u.stageTotal) bytes, uploading \(u.uploadingCount)")
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a project's overrides (the defaults apply again).")
        @Argument var project: String
        @OptionGroup var store: CatalogOptions

        func run() async throws {
            try await store.open().setQuotaOverride(project: project, nil)
            print("project \(project): overrides removed")
        }
    }

    static func describe(_ project: String, _ l: QuotaLimits) -> String {
        let parts = QuotaResource.allCases.map { r in "\(r.rawValue)=\(l[r].map(String.init) ?? "default")" }
        return "project \(project): " + parts.joined(separator: " ")
    }
}
