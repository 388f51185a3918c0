// The SSRF guard for outbound imports: every URL imaged fetches (OpenStack web-download, later the
// vendor APIs) is checked here before any connection, and again for every redirect target.
//
// Modelled on Glance's [import_filtering_opts] (allowed schemes, ports and hosts) but deny-by-default
// for loopback, link-local, private, shared, multicast, reserved, unspecified and cloud-metadata
// addresses, with the known Glance bypasses closed: non-canonical IPv4 spellings, IPv6 forms that
// embed a forbidden IPv4 address, names that resolve to forbidden addresses, userinfo, backslashes,
// percent-encoded hosts, zone ids and control characters.

/// What the operator configures. Host lists compare case-insensitively and ignore a trailing dot;
/// IP literals in them compare by address (`[::1]`, `::1` and `0:0::1` are one entry).
public struct URLGuardPolicy: Sendable {
    /// Lower-case scheme names. Only `http` and `https` have a default port; any other scheme
    /// allowed here needs an explicit port in the URL.
    public var allowedSchemes: Set<String> = ["http", "https"]
    /// A port stated in the URL must be in this set; URLs without a port pass (they use 80/443).
    /// Empty = any port 1…65535.
    public var allowedPorts: Set<Int> = [80, 443]
    /// Non-empty: the host must be one of these.
    public var allowedHosts: Set<String> = []
    public var disallowedHosts: Set<String> = []
    /// Ranges the operator opened (`--import-allow-cidr`); they override the default address deny
    /// (also for the IPv4 address embedded in an IPv4-mapped/NAT64/6to4 IPv6 address), never the
    /// scheme, port or host rules.
    public var allowCIDRs: [CIDR] = []
    /// Who may reach private ranges and any port (`--import-private`).
    public var privateImports: PrivateImportPolicy = .admin

    public init() {}

    public init(allowedSchemes: Set<String> = ["http", "https"], allowedPorts: Set<Int> = [80, 443],
                allowedHosts: Set<String> = [], disallowedHosts: Set<String> = [], allowCIDRs: [CIDR] = []) {
        self.allowedSchemes = allowedSchemes
        self.allowedPorts = allowedPorts
        self.allowedHosts = allowedHosts
        self.disallowedHosts = disallowedHosts
        self.allowCIDRs = allowCIDRs
    }

    /// Whether a request made by an admin (or not) gets private ranges and any port.
    public func opensPrivate(asAdmin: Bool) -> Bool {
        switch privateImports {
        case .all: return true
        case .admin: return asAdmin
        case .none: return false
        }
    }
}

/// `--import-private`: private clouds keep their images on internal web servers (private addresses,
/// ports like 8080), so the operator's path must work, while tenants stay behind the SSRF guard.
/// Loopback, link-local and metadata addresses are never opened by this policy, only by `--import-allow-cidr`.
public enum PrivateImportPolicy: String, Sendable, CaseIterable {
    /// Principals with the admin role may import from private ranges and from any port (the default).
    case admin
    /// Every principal may.
    case all
    /// Nobody may (only the ranges and ports the operator lists).
    case none
}

/// A URL that passed every rule, with the addresses it resolved to (all of them allowed), so the
/// caller can pin the connection to them instead of resolving again.
public struct VettedURL: Sendable, Equatable, CustomStringConvertible {
    /// Normalised, re-serialised URL: lower-case scheme and host, no userinfo, no fragment, no
    /// default port, canonical IP literals, dot segments removed, unsafe path bytes percent-encoded.
    public var url: String
    /// `http` or `https` (or another allowed scheme), lower-case.
    public var scheme: String
    /// The host: a lower-case name (a trailing dot kept, it is part of the name that was resolved),
    /// a canonical dotted quad, or a canonical IPv6 address WITHOUT brackets (`url` and
    /// ``hostHeader`` bracket it).
    public var host: String
    /// The effective port (the scheme's default when the URL states none).
    public var port: Int
    /// Request target for the HTTP request line: path (at least `/`) plus `?query` if present.
    public var pathAndQuery: String
    /// Every address the host resolved to (the literal itself for an IP host), deduplicated, in
    /// resolver order. All of them passed the address rules.
    public var addresses: [IPAddress]

    public init(url: String, scheme: String, host: String, port: Int, pathAndQuery: String, addresses: [IPAddress]) {
        self.url = url
        self.scheme = scheme
        self.host = host
        self.port = port
        self.pathAndQuery = pathAndQuery
        self.addresses = addresses
    }

    public var description: String { url }

    /// True when the host is an IP literal (no DNS was involved).
    public var isIPLiteral: Bool { IPAddress(host) != nil }

    /// The host as written in a URL authority: IPv6 in brackets.
    public var uriHost: String { host.utf8.contains(0x3a) ? "[" + host + "]" : host }

    /// Value for the `Host` header: ``uriHost`` plus `:port` when the port is not the scheme's default.
    public var hostHeader: String {
        URLGuardParser.defaultPort(for: scheme) == port ? uriHost : "\(uriHost):\(port)"
    }

    /// Name for TLS SNI and certificate verification: the host without a trailing dot; nil for IP literals.
    public var serverName: String? {
        if isIPLiteral { return nil }
        return host.hasSuffix(".") ? String(host.dropLast()) : host
    }
}

/// Why a URL was refused. `reason` names the rule; `description` is the message for the user.
public struct URLRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which rule refused the URL, for callers that map refusals to status codes or metrics.
    public enum Rule: String, Sendable, Equatable {
        case malformed           // not a parsable absolute http(s) URL, control characters, backslash…
        case scheme              // scheme not allowed
        case credentials         // userinfo in the authority
        case host                // empty, non-ASCII, percent-encoded or otherwise invalid host; zone id
        case nonCanonicalAddress // decimal/hex/octal/short-form IPv4 spelling
        case port                // not numeric, out of range or not allowed
        case hostList            // disallowed host, or not in the allowed hosts list
        case resolution          // name does not resolve
        case forbiddenAddress    // literal or resolved address in a denied range
    }

    /// The URL as given (for a redirect: the resolved target).
    public var url: String
    public var reason: String
    public var rule: Rule

    public init(url: String, reason: String, rule: Rule = .malformed) {
        self.url = url
        self.reason = reason
        self.rule = rule
    }

    public var description: String {
        "URI for web-download does not pass filtering: \(URLRefusal.printable(url)) (\(reason))"
    }

    /// The URL made safe for a log line or an error body: control characters escaped, length capped.
    static func printable(_ text: String) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == 2048 { out += "…"; break }
            count += 1
            if scalar != " " && URLGuardParser.isInvisible(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// The guard. Cheap to copy; create once from the configuration and share.
public struct URLGuard: Sendable {
    public let policy: URLGuardPolicy
    public let resolver: any HostResolver
    private let schemes: Set<String>
    private let allowedHostKeys: Set<String>
    private let disallowedHostKeys: Set<String>

    public init(policy: URLGuardPolicy, resolver: any HostResolver = SystemResolver()) {
        self.policy = policy
        self.resolver = resolver
        self.schemes = Set(policy.allowedSchemes.map { $0.lowercased() })
        self.allowedHostKeys = Set(policy.allowedHosts.map(URLGuard.hostKey))
        self.disallowedHostKeys = Set(policy.disallowedHosts.map(URLGuard.hostKey))
    }

    /// Parses, normalises and checks the URL; resolves the host and checks every resolved address.
    /// Throws ``URLRefusal`` naming the rule (or `CancellationError` if the task was cancelled
    /// while resolving).
    /// `asAdmin`: the request is made for a principal with the admin role (the `--import-private`
    /// policy decides what that opens).
    public func check(_ url: String, asAdmin: Bool = false) async throws -> VettedURL {
        let parsed = try URLGuardParser.parse(url, allowedSchemes: schemes)
        func refuse(_ rule: URLRefusal.Rule, _ reason: String) -> URLRefusal {
            URLRefusal(url: url, reason: reason, rule: rule)
        }
        let openPrivate = policy.opensPrivate(asAdmin: asAdmin)
        if parsed.explicitPort, !openPrivate, !policy.allowedPorts.isEmpty, !policy.allowedPorts.contains(parsed.port) {
            throw refuse(.port, portRefusal(parsed.port))
        }
        if disallowedHostKeys.contains(parsed.hostKey) {
            throw refuse(.hostList, "host '\(parsed.hostKey)' is disallowed")
        }
        if !allowedHostKeys.isEmpty, !allowedHostKeys.contains(parsed.hostKey) {
            throw refuse(.hostList, "host '\(parsed.hostKey)' is not in the allowed hosts list")
        }

        var addresses: [IPAddress]
        if let literal = parsed.literal {
            if let why = URLGuardAddressPolicy.refusal(for: literal, allow: policy.allowCIDRs, openPrivate: openPrivate) {
                throw refuse(.forbiddenAddress, addressRefusal(literal, why))
            }
            addresses = [literal]
        } else {
            let resolved: [IPAddress]
            do {
                resolved = try await resolver.resolve(host: parsed.host, port: parsed.port)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw refuse(.resolution, "host '\(parsed.host)' could not be resolved: \(error)")
            }
            if resolved.isEmpty {
                throw refuse(.resolution, "host '\(parsed.host)' does not resolve to any address")
            }
            addresses = []
            addresses.reserveCapacity(resolved.count)
            for address in resolved where !addresses.contains(address) {
                if let why = URLGuardAddressPolicy.refusal(for: address, allow: policy.allowCIDRs, openPrivate: openPrivate) {
                    // Admins (operators) see the address; others only the rule, never what an internal name resolves to.
                    throw refuse(.forbiddenAddress, "host '\(parsed.host)' resolves to a forbidden address: "
                                 + (asAdmin ? addressRefusal(address, why) : ruleRefusal(why)))
                }
                addresses.append(address)
            }
        }
        return VettedURL(url: parsed.serialised, scheme: parsed.scheme, host: parsed.host, port: parsed.port,
                         pathAndQuery: parsed.pathAndQuery, addresses: addresses)
    }

    /// For a redirect: resolves `location` (absolute, scheme-relative, absolute-path, relative-path
    /// or query-only, per RFC 3986 §5.2) against the current vetted URL, drops any fragment, then
    /// ``check(_:)``s the result. A refusal names the resolved target URL.
    public func checkRedirect(from base: VettedURL, location: String, asAdmin: Bool = false) async throws -> VettedURL {
        try await check(URLGuardParser.resolveReference(location, against: base), asAdmin: asAdmin)
    }

    /// The address rules alone: nil if `address` may be contacted under this policy, otherwise
    /// the reason. For a fetcher that wants to re-check the peer it actually connected to.
    public func refusalReason(for address: IPAddress, asAdmin: Bool = false) -> String? {
        URLGuardAddressPolicy.refusal(for: address, allow: policy.allowCIDRs, openPrivate: policy.opensPrivate(asAdmin: asAdmin))
            .map { addressRefusal(address, $0) }
    }

    /// A refused port, naming the options that would open it.
    func portRefusal(_ port: Int) -> String {
        let allowed = policy.allowedPorts.sorted().map(String.init).joined(separator: ", ")
        let head = "port \(port) is not allowed (allowed ports: \(allowed))"
        switch policy.privateImports {
        case .admin:
            return head + "; admins may import from any port (--import-private admin), "
                + "--import-allow-port \(port) opens it to every user"
        case .none, .all:
            return head + "; --import-allow-port \(port) opens it"
        }
    }

    /// A refused address, naming the rule and the options that would open it.
    func addressRefusal(_ address: IPAddress, _ why: URLGuardAddressRefusal) -> String {
        let host = "--import-allow-cidr \(address)/\(address.isIPv4 ? 32 : 128)"
        guard why.isPrivate else {
            return why.reason + ", refused for every user; an operator opens it with " + host
        }
        switch policy.privateImports {
        case .admin:
            return why.reason + ": only admins may import from private addresses (--import-private admin); "
                + "--import-private all opens them to every user, " + host + " opens this address"
        case .none:
            return why.reason + ": imports from private addresses are off (--import-private none); "
                + "--import-private admin opens them to admins, " + host + " opens this address"
        case .all:
            return why.reason  // not reached: `all` opens private ranges to everyone
        }
    }

    /// A refused resolved address as a non-admin sees it: the rule and what would open it, no address.
    func ruleRefusal(_ why: URLGuardAddressRefusal) -> String {
        let cidr = "--import-allow-cidr opens an address"
        guard why.isPrivate else {
            return "it is " + why.rule + ", refused for every user; an operator opens it with --import-allow-cidr"
        }
        switch policy.privateImports {
        case .admin:
            return "it is " + why.rule + ": only admins may import from private addresses (--import-private admin); "
                + "--import-private all opens them to every user, " + cidr
        case .none:
            return "it is " + why.rule + ": imports from private addresses are off (--import-private none); "
                + "--import-private admin opens them to admins, " + cidr
        case .all: return "it is " + why.rule
        }
    }

    /// Host-list key: lower-case, no trailing dot, no brackets, IP literals canonical.
    static func hostKey(_ entry: String) -> String {
        var key = entry.lowercased()
        if key.hasPrefix("[") && key.hasSuffix("]") && key.count >= 2 { key = String(key.dropFirst().dropLast()) }
        if key.hasSuffix(".") { key.removeLast() }
        if let address = IPAddress(key) { return address.description }
        return key
    }
}
