import ArgumentParser
import Hummingbird
import Logging
import Server

@main
struct ImagedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imaged",
        abstract: "A fast and safe image service: one catalog behind the OpenStack Image API v2 and vendor APIs.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the image service.")

    @Option(help: "Directory holding the catalog and image data.")
    var dataDir = "./imaged-data"

    @Option(help: "Address to listen on, host:port.")
    var listen = "127.0.0.1:9292"

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

    func run() async throws {
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
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown --log-level \(logLevel)") }
        config.logLevel = level
        let app = try buildApplication(config)
        try await app.runService()
    }
}
