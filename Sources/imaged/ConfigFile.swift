import ArgumentParser
import Foundation
import Yams

/// `imaged serve --config FILE`: a YAML file whose keys are serve's long option names, values a
/// string, number, boolean (flags) or list (repeatable options). The environment (`IMAGED_<NAME>`,
/// lists comma-separated) overrides the file and the command line overrides both, per option.
/// Everything becomes command-line tokens, so one parser validates every source the same way.
enum ConfigFile {
    /// serve's options, by long name (a unit of `imaged config check` keeps it true: every name parses).
    static let options = ["data-dir", "listen", "no-auth", "token-file", "durability", "public-endpoint", "log-level", "hash-algorithm",
                          "image-size-cap", "max-virtual-size", "decompress", "qemu-img", "convert-timeout", "import-allow-cidr", "import-allow-port", "import-private", "import-connections", "task-lease-seconds",
                          "login-lock-after", "login-address-lock-after", "login-lock-max-seconds", "login-concurrency", "event-loop-threads", "login-queue", "login-per-client",
                          "zstack-session-seconds", "zstack-export-seconds", "secret-key-file", "scalr-os-file", "shutdown-grace-seconds", "tls-cert", "tls-key",
                          "header-timeout", "idle-timeout", "min-upload-rate", "upload-stall-seconds", "max-connections", "max-connections-per-client", "listen-backlog", "ca-file", "danube-prefix", "danube-token-seconds",
                          "danube-snapshot-url", "danube-vm-url", "danube-imagestore", "danube-dc", "expunge-after-seconds", "keystone-url", "keystone-user",
                          "keystone-password-file", "keystone-project", "keystone-domain", "keystone-cache-seconds", "keystone-public-url",
                          "catalog", "blob-store", "store", "default-store", "s3-endpoint", "s3-region", "s3-key-prefix", "s3-virtual-host",
                          "s3-part-mib", "quota-image-count", "quota-image-size", "quota-stage-size", "quota-uploading",
                          "frontend", "task-workers", "cache-dir", "cache-size", "catalog-cache-size",
                          "notify-url", "notify-webhook", "notify-queue", "notify-exchange",
                          "show-image-direct-url", "show-multiple-locations", "upload-session-ttl", "cors-origin", "zstack-max-jobs",
                          "audit-log", "node-heartbeat-seconds", "s3-multipart-max-age"]
    static let flags: Set<String> = ["no-auth", "s3-virtual-host", "show-image-direct-url", "show-multiple-locations"]
    static let repeatable: Set<String> = ["import-allow-cidr", "import-allow-port", "store", "danube-imagestore", "danube-dc", "frontend", "notify-webhook",
                                          "cors-origin"]

    struct Invalid: Error, CustomStringConvertible { let description: String }

    /// The arguments with the file's and the environment's options added, for `serve` (also the
    /// default subcommand) and `config check`; other subcommands pass through unchanged.
    static func expand(_ arguments: [String], environment: [String: String]) throws -> [String] {
        let head: [String]
        if arguments.first == "serve" {
            head = ["serve"]
        } else if arguments.count >= 2, arguments[0] == "config", arguments[1] == "check" {
            head = ["config", "check"]
        } else if arguments.first.map({ $0.hasPrefix("-") && $0 != "-h" && $0 != "--help" }) ?? true {
            head = []
        } else {
            return arguments
        }
        let rest = Array(arguments.dropFirst(head.count))
        var path = environment["IMAGED_CONFIG"]
        var given = Set<String>()
        for (i, token) in rest.enumerated() where token.hasPrefix("--") {
            let name = String(token.dropFirst(2).prefix { $0 != "=" })
            given.insert(name)
            if name == "config" {
                if let eq = token.firstIndex(of: "=") { path = String(token[token.index(after: eq)...]) }
                else if i + 1 < rest.count { path = rest[i + 1] }
            }
        }
        let file = try path.map(load) ?? [:]
        let env = fromEnvironment(environment)
        var injected: [String] = []
        for name in options where !given.contains(name) {
            guard let values = env[name] ?? file[name] else { continue }
            if flags.contains(name) {
                if values.first.flatMap(boolean) == true { injected.append("--\(name)") }
            } else {
                for value in values { injected += ["--\(name)", value] }
            }
        }
        return head + injected + rest
    }

    static func boolean(_ s: String) -> Bool? {
        switch s.lowercased() { case "true", "yes", "on", "1": true; case "false", "no", "off", "0", "": false; default: nil }
    }

    /// Option name → values, from the YAML file at `path`.
    static func load(_ path: String) throws -> [String: [String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Invalid(description: "cannot read the configuration file \(path)") }
        let parsed: Any?
        do { parsed = try Yams.load(yaml: text) } catch { throw Invalid(description: "\(path) is not valid YAML: \(error)") }
        guard let parsed else { return [:] }
        guard let top = parsed as? [String: Any] else { throw Invalid(description: "\(path) must be a mapping of option names to values") }
        var out: [String: [String]] = [:]
        for (key, value) in top {
            guard options.contains(key) else {
                throw Invalid(description: "unknown option '\(key)' in \(path); options are: \(options.joined(separator: ", "))")
            }
            let values: [Any] = (value as? [Any]) ?? [value]
            guard values.count == 1 || repeatable.contains(key) else { throw Invalid(description: "'\(key)' in \(path) takes one value, not a list") }
            out[key] = try values.map { item in
                switch item {
                case let s as String: return s
                case let b as Bool: return b ? "true" : "false"
                case let n as Int: return String(n)
                case let d as Double: return String(d)
                default: throw Invalid(description: "'\(key)' in \(path) must be a string, number or boolean")
                }
            }
            if flags.contains(key), boolean(out[key]![0]) == nil { throw Invalid(description: "'\(key)' in \(path) must be true or false") }
        }
        return out
    }

    /// `IMAGED_DATA_DIR=…`, `IMAGED_STORE=a=file,b=s3:bkt`, `IMAGED_NO_AUTH=true`.
    static func fromEnvironment(_ environment: [String: String]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for name in options {
            guard let value = environment["IMAGED_" + name.uppercased().replacingOccurrences(of: "-", with: "_")] else { continue }
            out[name] = repeatable.contains(name) ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : [value]
        }
        return out
    }
}
