// IP addresses, CIDR ranges and the default address policy of the URL guard.
//
// Parsing here is strict on purpose: an IPv4 address is exactly four canonical decimal parts
// ("127.0.0.1", never "127.1", "0177.0.0.1" or "0x7f000001"), an IPv6 address is RFC 4291 text
// (with an optional canonical dotted-quad tail) and never carries a zone id.

/// An IPv4 or IPv6 address. IPv4 is kept host-order (`0x7f000001` is 127.0.0.1); IPv6 as two
/// host-order 64-bit halves (`hi` holds the first eight bytes).
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// Strict parse: a canonical dotted quad (exactly four decimal parts 0…255, no leading zeros)
    /// or RFC 4291 IPv6 text (including an embedded dotted-quad tail); no brackets, no zone id.
    public init?(_ text: String) {
        var text = text
        guard let parsed = text.withUTF8({ IPAddress.parse($0, 0..<$0.count) }) else { return nil }
        self = parsed
    }

    /// IPv4 from its four octets, `IPAddress(127, 0, 0, 1)`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self = .v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    /// IPv6 from 16 bytes in network order (as in `in6_addr`). Returns nil unless exactly 16 bytes.
    public init?(ipv6Bytes bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if i < 8 { hi = hi << 8 | UInt64(byte) } else { lo = lo << 8 | UInt64(byte) }
        }
        self = .v6(hi, lo)
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .v4(let v): return Self.dottedQuad(v)
        case .v6(let hi, let lo): return Self.ipv6Text(hi, lo)
        }
    }

    /// The form used inside a URL authority: IPv6 in brackets.
    public var uriHost: String {
        switch self {
        case .v4: return description
        case .v6: return "[" + description + "]"
        }
    }

    // MARK: formatting

    static func dottedQuad(_ v: UInt32) -> String {
        "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)"
    }

    /// RFC 5952 canonical text: lower-case, no leading zeros, the longest run (≥ 2) of zero groups
    /// compressed (the first on a tie); IPv4-mapped addresses as `::ffff:a.b.c.d`.
    static func ipv6Text(_ hi: UInt64, _ lo: UInt64) -> String {
        if hi == 0 && lo >> 32 == 0xffff { return "::ffff:" + dottedQuad(UInt32(truncatingIfNeeded: lo)) }
        var groups = SIMD8<UInt16>()
        for i in 0..<4 {
            groups[i] = UInt16(truncatingIfNeeded: hi >> (48 - 16 * UInt64(i)))
            groups[i + 4] = UInt16(truncatingIfNeeded: lo >> (48 - 16 * UInt64(i)))
        }
        var bestStart = -1, bestLen = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLen { bestStart = runStart; bestLen = i - runStart }
                runStart = -1
            }
        }
        if bestLen < 2 { bestStart = -1 }
        var out = ""
        out.reserveCapacity(39)
        var i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
            out += String(groups[i], radix: 16)
            i += 1
        }
        return out
    }

    // MARK: strict parsing over UTF-8 bytes

    static func parse(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> IPAddress? {
        if let v4 = parseIPv4(b, r) { return .v4(v4) }
        if let (hi, lo) = parseIPv6(b, r) { return .v6(hi, lo) }
        return nil
    }

    /// Exactly four decimal parts, each 0…255, without leading zeros.
    static func parseIPv4(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> UInt32? {
        var value: UInt32 = 0, parts = 0, i = r.lowerBound
        while true {
            let start = i
            var part: UInt32 = 0
            while i < r.upperBound, b[i] >= 0x30, b[i] <= 0x39 {
                if i - start == 3 { return nil }
                part = part * 10 + UInt32(b[i] - 0x30)
                i += 1
            }
            let len = i - start
            if len == 0 || (len > 1 && b[start] == 0x30) || part > 255 { return nil }
            value = value << 8 | part
            parts += 1
            if i == r.upperBound { break }
            if b[i] != 0x2e || parts == 4 { return nil }
            i += 1
        }
        return parts == 4 ? value : nil
    }

    /// RFC 4291 §2.2 text: eight groups of 1–4 hex digits, at most one `::`, optionally ending in a
    /// canonical dotted quad that stands for the last two groups.
    static func parseIPv6(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> (UInt64, UInt64)? {
        let hiIdx = r.upperBound
        var i = r.lowerBound
        guard i < hiIdx else { return nil }
        var groups = SIMD8<UInt16>()
        var n = 0, gap = -1
        if b[i] == 0x3a {  // ':' may only start "::"
            guard i + 1 < hiIdx, b[i + 1] == 0x3a else { return nil }
            gap = 0
            i += 2
            if i == hiIdx { return (0, 0) }
        }
        while i < hiIdx {
            // The token runs to the next ':' (or the end).
            var j = i, sawDot = false
            while j < hiIdx, b[j] != 0x3a {
                if b[j] == 0x2e { sawDot = true }
                j += 1
            }
            if sawDot {
                guard j == hiIdx, n + 2 <= 8, let v4 = parseIPv4(b, i..<j) else { return nil }
                groups[n] = UInt16(truncatingIfNeeded: v4 >> 16)
                groups[n + 1] = UInt16(truncatingIfNeeded: v4)
                n += 2
                i = j
                break
            }
            let len = j - i
            guard len >= 1, len <= 4, n < 8 else { return nil }
            var v: UInt16 = 0
            for k in i..<j {
                guard let d = hexValue(b[k]) else { return nil }
                v = v << 4 | UInt16(d)
            }
            groups[n] = v
            n += 1
            i = j
            if i == hiIdx { break }
            i += 1  // past ':'
            if i < hiIdx, b[i] == 0x3a {
                guard gap < 0 else { return nil }
                gap = n
                i += 1
                if i == hiIdx { break }
            } else if i == hiIdx {
                return nil  // a single trailing ':'
            }
        }
        var full = SIMD8<UInt16>()
        if gap >= 0 {
            guard n <= 7 else { return nil }  // "::" stands for at least one group
            for k in 0..<gap { full[k] = groups[k] }
            let tail = n - gap
            for k in 0..<tail { full[8 - tail + k] = groups[gap + k] }
        } else {
            guard n == 8 else { return nil }
            full = groups
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for k in 0..<4 {
            hi = hi << 16 | UInt64(full[k])
            lo = lo << 16 | UInt64(full[k + 4])
        }
        return (hi, lo)
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}

/// An address range: `10.0.0.0/8`, `fd00::/8`, or a single address (`127.0.0.1` = /32, `::1` = /128).
///
/// Host bits must be zero: `10.0.0.1/8` is refused (not silently masked to `10.0.0.0/8`), because a
/// range written that way is usually a typo for something else. ``init(validating:)`` says why.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var text: String
        public var reason: String
        public var description: String { "invalid CIDR '\(text)': \(reason)" }
    }

    public init?(_ text: String) {
        guard let cidr = try? CIDR(validating: text) else { return nil }
        self = cidr
    }

    /// Like ``init(_:)`` but says what is wrong (for configuration errors).
    public init(validating text: String) throws(ParseError) {
        let addressText: Substring, prefixText: Substring?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            prefixText = text[text.index(after: slash)...]
        } else {
            addressText = Substring(text)
            prefixText = nil
        }
        guard let address = IPAddress(String(addressText)) else {
            throw ParseError(text: text, reason: "'\(addressText)' is not a canonical IPv4 or IPv6 address")
        }
        let maxBits = address.isIPv4 ? 32 : 128
        var prefix = maxBits
        if let prefixText {
            guard !prefixText.isEmpty, prefixText.utf8.count <= 3,
                  prefixText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  prefixText == "0" || !prefixText.hasPrefix("0"),
                  let p = Int(prefixText)
            else { throw ParseError(text: text, reason: "prefix length '\(prefixText)' is not a decimal number") }
            guard p <= maxBits else {
                throw ParseError(text: text, reason: "prefix length \(p) exceeds \(maxBits)")
            }
            prefix = p
        }
        let masked = CIDR.mask(address, prefix)
        guard masked == address else {
            throw ParseError(text: text, reason: "host bits are set (did you mean \(masked)/\(prefix)?)")
        }
        self.address = address
        self.prefixLength = prefix
    }

    /// For building the built-in tables; the caller guarantees the host bits are zero.
    init(uncheckedAddress address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// Whether `address` lies in this range. An IPv4 range never contains an IPv6 address (and
    /// vice versa); the guard itself looks through IPv4-mapped and other embedding forms.
    @inline(__always)
    public func contains(_ other: IPAddress) -> Bool {
        switch (address, other) {
        case (.v4(let net), .v4(let a)):
            let m: UInt32 = prefixLength == 0 ? 0 : ~0 << UInt32(32 - prefixLength)
            return a & m == net
        case (.v6(let nh, let nl), .v6(let ah, let al)):
            let (mh, ml) = CIDR.v6Mask(prefixLength)
            return ah & mh == nh && al & ml == nl
        default:
            return false
        }
    }

    static func v6Mask(_ prefix: Int) -> (UInt64, UInt64) {
        if prefix == 0 { return (0, 0) }
        if prefix <= 64 { return (~0 << UInt64(64 - prefix), 0) }
        if prefix == 128 { return (~0, ~0) }
        return (~0, ~0 << UInt64(128 - prefix))
    }

    static func mask(_ address: IPAddress, _ prefix: Int) -> IPAddress {
        switch address {
        case .v4(let a):
            return .v4(prefix == 0 ? 0 : a & (~0 << UInt32(32 - prefix)))
        case .v6(let h, let l):
            let (mh, ml) = v6Mask(prefix)
            return .v6(h & mh, l & ml)
        }
    }
}

// MARK: - The default address policy

/// Why an address is refused by default, and the range that refuses it.
struct URLGuardForbiddenRange: Sendable {
    let range: CIDR
    let label: String
    /// A private range (RFC 1918, CGNAT, unique-local): where private clouds keep their image servers,
    /// so the `--import-private` policy may open it to admins or to everyone. The others (loopback,
    /// link-local, metadata, reserved…) stay closed to everyone unless `--import-allow-cidr` opens them.
    var isPrivate = false
}

/// Why an address was refused, for a refusal that names the option that would open it.
struct URLGuardAddressRefusal: Sendable, Equatable {
    var reason: String
    /// The rule without the address (`private (10.0.0.0/8)`): what a non-admin is told about a
    /// name that resolved there, so refusals do not map internal names to addresses.
    var rule: String
    /// A private range the `--import-private` policy could open.
    var isPrivate: Bool
}

enum URLGuardAddressPolicy {
    static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ prefix: Int, _ label: String,
                   isPrivate: Bool = false) -> URLGuardForbiddenRange {
        URLGuardForbiddenRange(range: CIDR(uncheckedAddress: IPAddress(a, b, c, d), prefixLength: prefix), label: label,
                               isPrivate: isPrivate)
    }
    static func v6(_ hi: UInt64, _ lo: UInt64, _ prefix: Int, _ label: String, isPrivate: Bool = false) -> URLGuardForbiddenRange {
        URLGuardForbiddenRange(range: CIDR(uncheckedAddress: .v6(hi, lo), prefixLength: prefix), label: label, isPrivate: isPrivate)
    }

    /// IPv4 ranges refused by default (most specific first, so the message names the best label).
    static let ipv4: [URLGuardForbiddenRange] = [
        v4(255, 255, 255, 255, 32, "broadcast"),
        v4(168, 63, 129, 16, 32, "cloud metadata (Azure wireserver)"),
        v4(100, 100, 100, 200, 32, "cloud metadata (Alibaba)"),
        v4(0, 0, 0, 0, 8, "unspecified/this-network"),
        v4(10, 0, 0, 0, 8, "private", isPrivate: true),
        v4(100, 64, 0, 0, 10, "shared address space (CGNAT)", isPrivate: true),
        v4(127, 0, 0, 0, 8, "loopback"),
        v4(169, 254, 0, 0, 16, "link-local/metadata"),
        v4(172, 16, 0, 0, 12, "private", isPrivate: true),
        v4(192, 0, 0, 0, 24, "IETF protocol assignments (reserved)"),
        v4(192, 0, 2, 0, 24, "documentation (reserved)"),
        v4(192, 168, 0, 0, 16, "private", isPrivate: true),
        v4(198, 18, 0, 0, 15, "benchmarking (reserved)"),
        v4(198, 51, 100, 0, 24, "documentation (reserved)"),
        v4(203, 0, 113, 0, 24, "documentation (reserved)"),
        v4(224, 0, 0, 0, 4, "multicast"),
        v4(240, 0, 0, 0, 4, "reserved"),
    ]

    /// IPv6 ranges refused outright. The embedding prefixes (v4-mapped, v4-compatible, NAT64, 6to4)
    /// are not here: their embedded IPv4 address is judged instead.
    static let ipv6: [URLGuardForbiddenRange] = [
        v6(0, 0, 128, "unspecified"),
        v6(0, 1, 128, "loopback"),
        v6(0xfd00_0ec2_0000_0000, 0x254, 128, "cloud metadata (AWS IPv6)"),
        v6(0x0064_ff9b_0001_0000, 0, 48, "local-use NAT64 (reserved)"),
        v6(0x0100_0000_0000_0000, 0, 64, "discard-only (reserved)"),
        v6(0x2001_0000_0000_0000, 0, 32, "Teredo tunnel (reserved)"),
        v6(0x2001_0db8_0000_0000, 0, 32, "documentation (reserved)"),
        v6(0x3fff_0000_0000_0000, 0, 20, "documentation (reserved)"),
        v6(0xfc00_0000_0000_0000, 0, 7, "unique-local (private)", isPrivate: true),
        v6(0xfe80_0000_0000_0000, 0, 10, "link-local"),
        v6(0xfec0_0000_0000_0000, 0, 10, "site-local (deprecated)"),
        v6(0xff00_0000_0000_0000, 0, 8, "multicast"),
    ]

    /// Everything real on the IPv6 internet is in 2000::/3; the rest is unassigned or special.
    static let globalUnicast = CIDR(uncheckedAddress: .v6(0x2000_0000_0000_0000, 0), prefixLength: 3)

    /// The IPv4 address an IPv6 address stands for, if it is one of the embedding forms.
    static func embeddedIPv4(_ hi: UInt64, _ lo: UInt64) -> (UInt32, String)? {
        if hi == 0 && lo >> 32 == 0xffff { return (UInt32(truncatingIfNeeded: lo), "IPv4-mapped") }
        if hi == 0 && lo >> 32 == 0 { return (UInt32(truncatingIfNeeded: lo), "IPv4-compatible") }
        if hi == 0x0064_ff9b_0000_0000 && lo >> 32 == 0 { return (UInt32(truncatingIfNeeded: lo), "NAT64") }
        if hi >> 48 == 0x2002 { return (UInt32(truncatingIfNeeded: hi >> 16), "6to4") }
        return nil
    }

    /// nil if the address may be contacted; otherwise why not. `openPrivate`: the private ranges are
    /// open (the `--import-private` policy grants it to this requester).
    static func refusal(for address: IPAddress, allow: [CIDR], openPrivate: Bool = false) -> URLGuardAddressRefusal? {
        for cidr in allow where cidr.contains(address) { return nil }
        switch address {
        case .v4:
            for r in ipv4 where r.range.contains(address) {
                if r.isPrivate && openPrivate { return nil }
                return URLGuardAddressRefusal(reason: "address \(address) is \(r.label) (\(r.range))", rule: "\(r.label) (\(r.range))",
                                              isPrivate: r.isPrivate)
            }
            return nil
        case .v6(let hi, let lo):
            // ::/128 and ::1/128 sit inside the v4-compatible ::/96, so they are checked first.
            if hi == 0 && lo <= 1 {
                let label = lo == 0 ? "unspecified" : "loopback"
                return URLGuardAddressRefusal(reason: "address \(address) is \(label)", rule: label, isPrivate: false)
            }
            if let (v4, form) = embeddedIPv4(hi, lo) {
                let inner = IPAddress.v4(v4)
                guard var why = refusal(for: inner, allow: allow, openPrivate: openPrivate) else { return nil }
                why.reason = "address \(address) embeds IPv4 \(inner) (\(form)); " + why.reason
                return why
            }
            for r in ipv6 where r.range.contains(address) {
                if r.isPrivate && openPrivate { return nil }
                return URLGuardAddressRefusal(reason: "address \(address) is \(r.label) (\(r.range))", rule: "\(r.label) (\(r.range))",
                                              isPrivate: r.isPrivate)
            }
            if !globalUnicast.contains(address) {
                return URLGuardAddressRefusal(reason: "address \(address) is reserved (outside global unicast 2000::/3)",
                                              rule: "reserved (outside global unicast 2000::/3)", isPrivate: false)
            }
            return nil
        }
    }
}
