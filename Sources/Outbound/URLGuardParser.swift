// The URL guard's own strict URL parser (Foundation's URL is lenient in ways that differ between
// platforms, which is exactly what SSRF bypasses feed on). Accepts only
//     scheme "://" host [ ":" port ] [ path ] [ "?" query ] [ "#" fragment ]
// and works on the UTF-8 bytes without intermediate allocations beyond the output strings.

/// The result of parsing: every part normalised, nothing resolved yet.
struct URLGuardParsedURL: Sendable {
    var scheme: String
    /// Lower-case name (trailing dot kept), dotted quad, or canonical IPv6 without brackets.
    var host: String
    /// For host lists: no trailing dot, no brackets.
    var hostKey: String
    var literal: IPAddress?
    var port: Int
    var explicitPort: Bool
    var pathAndQuery: String

    var serialised: String {
        let portPart = !explicitPort || URLGuardParser.defaultPort(for: scheme) == port ? "" : ":\(port)"
        let uriHost = host.utf8.contains(0x3a) ? "[" + host + "]" : host
        return scheme + "://" + uriHost + portPart + pathAndQuery
    }
}

enum URLGuardParser {
    static let maxURLLength = 8192

    static func defaultPort(for scheme: String) -> Int? {
        switch scheme {
        case "http": return 80
        case "https": return 443
        default: return nil
        }
    }

    // ASCII helpers
    @inline(__always) static func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a }
    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isHex(_ c: UInt8) -> Bool { IPAddress.hexValue(c) != nil }
    @inline(__always) static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5a ? c | 0x20 : c }
    @inline(__always) static func isSchemeChar(_ c: UInt8) -> Bool {
        isAlpha(c) || isDigit(c) || c == 0x2b || c == 0x2d || c == 0x2e  // + - .
    }

    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.properties.isWhitespace { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    static func parse(_ url: String, allowedSchemes: Set<String>) throws -> URLGuardParsedURL {
        var text = url
        return try text.withUTF8 { try parse(bytes: $0, url: url, allowedSchemes: allowedSchemes) }
    }

    private static func parse(bytes b: UnsafeBufferPointer<UInt8>, url: String,
                              allowedSchemes: Set<String>) throws -> URLGuardParsedURL {
        func refuse(_ rule: URLRefusal.Rule, _ reason: String) -> URLRefusal {
            URLRefusal(url: url, reason: reason, rule: rule)
        }
        let n = b.count
        if n == 0 { throw refuse(.malformed, "the URL is empty") }
        if n > maxURLLength { throw refuse(.malformed, "the URL is longer than \(maxURLLength) bytes") }
        var nonASCII = false
        for c in b {
            if c <= 0x20 || c == 0x7f { throw refuse(.malformed, "the URL contains whitespace or control characters") }
            if c == 0x5c { throw refuse(.malformed, "the URL contains a backslash") }
            if c >= 0x80 { nonASCII = true }
        }
        // Unicode whitespace, C1 controls and format characters (bidi overrides, zero-width
        // characters, BOM) have no business in a URL either.
        if nonASCII && url.unicodeScalars.contains(where: isInvisible) {
            throw refuse(.malformed, "the URL contains whitespace or control characters")
        }

        // scheme ":"
        var i = 0
        guard isAlpha(b[0]) else { throw refuse(.malformed, "not an absolute URL (no scheme)") }
        while i < n, isSchemeChar(b[i]) { i += 1 }
        guard i < n, b[i] == 0x3a else { throw refuse(.malformed, "not an absolute URL (no scheme)") }
        let scheme = String(decoding: UnsafeBufferPointer(rebasing: b[0..<i]), as: UTF8.self).lowercased()
        guard allowedSchemes.contains(scheme) else { throw refuse(.scheme, "scheme '\(scheme)' is not allowed") }
        i += 1

        // "//" authority
        guard i + 1 < n, b[i] == 0x2f, b[i + 1] == 0x2f else {
            throw refuse(.malformed, "the URL has no '//' authority")
        }
        i += 2
        let authorityStart = i
        while i < n, b[i] != 0x2f, b[i] != 0x3f, b[i] != 0x23 { i += 1 }  // / ? #
        let authorityEnd = i
        for k in authorityStart..<authorityEnd where b[k] == 0x40 {  // @
            throw refuse(.credentials, "credentials in the URL are not allowed (userinfo invites host confusion)")
        }

        // host
        var host: String, hostKey: String, literal: IPAddress?
        var portStart: Int?  // index just past ':'
        if authorityStart < authorityEnd, b[authorityStart] == 0x5b {  // [
            guard let close = (authorityStart..<authorityEnd).first(where: { b[$0] == 0x5d }) else {
                throw refuse(.host, "unterminated IPv6 literal in the host")
            }
            let inner = (authorityStart + 1)..<close
            if inner.contains(where: { b[$0] == 0x25 }) {
                throw refuse(.host, "IPv6 zone identifiers are not allowed in the host")
            }
            if let first = inner.first, lower(b[first]) == 0x76 {
                throw refuse(.host, "IPvFuture literals are not supported")
            }
            guard let (hi, lo) = IPAddress.parseIPv6(b, inner) else {
                let shown = String(decoding: UnsafeBufferPointer(rebasing: b[authorityStart...close]), as: UTF8.self)
                throw refuse(.host, "host '\(shown)' is not a valid IPv6 address")
            }
            let address = IPAddress.v6(hi, lo)
            literal = address
            hostKey = address.description
            host = hostKey
            if close + 1 < authorityEnd {
                guard b[close + 1] == 0x3a else { throw refuse(.host, "unexpected characters after the IPv6 literal") }
                portStart = close + 2
            }
        } else {
            var hostEnd = authorityStart
            while hostEnd < authorityEnd, b[hostEnd] != 0x3a { hostEnd += 1 }
            if hostEnd < authorityEnd { portStart = hostEnd + 1 }
            (host, hostKey, literal) = try parseRegName(b, authorityStart..<hostEnd, refuse)
        }

        // port
        var port: Int
        let explicitPort = portStart != nil
        if let portStart {
            let digits = portStart..<authorityEnd
            let shown = String(decoding: UnsafeBufferPointer(rebasing: b[digits]), as: UTF8.self)
            if digits.isEmpty { throw refuse(.port, "empty port after ':'") }
            guard digits.allSatisfy({ isDigit(b[$0]) }) else { throw refuse(.port, "port '\(shown)' is not a number") }
            var value = 0
            for k in digits {
                value = value * 10 + Int(b[k] - 0x30)
                if value > 65535 { break }
            }
            guard value >= 1, value <= 65535 else { throw refuse(.port, "port \(shown) is out of range 1-65535") }
            port = value
        } else {
            guard let p = defaultPort(for: scheme) else {
                throw refuse(.port, "scheme '\(scheme)' has no default port; the URL must state one")
            }
            port = p
        }

        // path [? query], fragment dropped
        var end = authorityEnd
        while end < n, b[end] != 0x23 { end += 1 }
        let pathAndQuery = normalisedPathAndQuery(b, authorityEnd..<end)

        return URLGuardParsedURL(scheme: scheme, host: host, hostKey: hostKey, literal: literal, port: port,
                                 explicitPort: explicitPort, pathAndQuery: pathAndQuery)
    }

    /// A registered name (or a dotted-quad IPv4 literal): LDH plus `_`, labels 1…63 bytes, total at
    /// most 253, one trailing dot allowed. A name whose last label is numeric (all digits, or `0x`
    /// plus hex) is an IPv4 address to every resolver that matters, so it must be a canonical dotted
    /// quad (the WHATWG "ends in a number" rule); anything else is refused as non-canonical.
    private static func parseRegName(
        _ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>,
        _ refuse: (URLRefusal.Rule, String) -> URLRefusal
    ) throws -> (String, String, IPAddress?) {
        if r.isEmpty { throw refuse(.host, "the URL has an empty host") }
        var lowered = [UInt8]()
        lowered.reserveCapacity(r.count)
        for k in r {
            let c = b[k]
            if c >= 0x80 { throw refuse(.host, "non-ASCII host (internationalised names must be punycode, xn--…)") }
            if c == 0x25 { throw refuse(.host, "percent-encoded characters are not allowed in the host") }
            guard isAlpha(c) || isDigit(c) || c == 0x2d || c == 0x2e || c == 0x5f else {
                throw refuse(.host, "invalid character '\(Character(Unicode.Scalar(c)))' in the host")
            }
            lowered.append(lower(c))
        }
        let host = String(decoding: lowered, as: UTF8.self)
        let trailingDot = lowered.last == 0x2e
        let coreCount = trailingDot ? lowered.count - 1 : lowered.count
        if coreCount == 0 { throw refuse(.host, "the URL has an empty host") }
        if coreCount > 253 { throw refuse(.host, "host name longer than 253 characters") }

        return try lowered.withUnsafeBufferPointer { h in
            // labels
            var labelStart = 0
            var lastLabel = 0..<0
            for k in 0...coreCount {
                if k == coreCount || h[k] == 0x2e {
                    let len = k - labelStart
                    if len == 0 { throw refuse(.host, "host '\(host)' has an empty label") }
                    if len > 63 { throw refuse(.host, "host '\(host)' has a label longer than 63 characters") }
                    lastLabel = labelStart..<k
                    labelStart = k + 1
                }
            }
            let numericLast: Bool = {
                if lastLabel.allSatisfy({ isDigit(h[$0]) }) { return true }
                guard lastLabel.count >= 2, h[lastLabel.lowerBound] == 0x30, h[lastLabel.lowerBound + 1] == 0x78 else {
                    return false
                }
                return lastLabel.dropFirst(2).allSatisfy { isHex(h[$0]) }
            }()
            guard numericLast else {
                let key = trailingDot ? String(host.dropLast()) : host
                return (host, key, nil)
            }
            guard !trailingDot, let v4 = IPAddress.parseIPv4(h, 0..<coreCount) else {
                throw refuse(.nonCanonicalAddress, "host '\(host)' is a non-canonical IP address")
            }
            return (host, host, .v4(v4))
        }
    }

    // MARK: path and query

    /// Bytes allowed unescaped in a path (RFC 3986 pchar and '/'); in a query '?' too. '%' is kept
    /// only as the start of a valid escape; everything else is percent-encoded.
    @inline(__always)
    private static func isPathByte(_ c: UInt8) -> Bool {
        switch c {
        case 0x61...0x7a, 0x41...0x5a, 0x30...0x39: return true
        case 0x2d, 0x2e, 0x5f, 0x7e: return true                                   // - . _ ~
        case 0x21, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x3b, 0x3d: return true  // sub-delims
        case 0x3a, 0x40, 0x2f: return true                                          // : @ /
        default: return false
        }
    }

    static func normalisedPathAndQuery(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(r.count + 8)
        var k = r.lowerBound
        if k == r.upperBound || b[k] != 0x2f { out.append(0x2f) }  // empty path (or "?q") -> "/"
        var inQuery = false
        var pathEnd = -1
        while k < r.upperBound {
            let c = b[k]
            if c == 0x3f && !inQuery {
                inQuery = true
                pathEnd = out.count
                out.append(c)
            } else if isPathByte(c) || (inQuery && c == 0x3f) {
                out.append(c)
            } else if c == 0x25, k + 2 < r.upperBound, isHex(b[k + 1]), isHex(b[k + 2]) {
                out.append(c)
            } else {
                percentEncode(c, into: &out)
            }
            k += 1
        }
        if pathEnd < 0 { pathEnd = out.count }
        if let dotless = removeDotSegments(out[0..<pathEnd]) {
            out.replaceSubrange(0..<pathEnd, with: dotless)
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    private static func percentEncode(_ c: UInt8, into out: inout [UInt8]) {
        @inline(__always) func digit(_ d: UInt8) -> UInt8 { d < 10 ? 0x30 + d : 0x41 + d - 10 }
        out.append(0x25)
        out.append(digit(c >> 4))
        out.append(digit(c & 0xf))
    }

    /// RFC 3986 §5.2.4 for an absolute path (starting with '/'); nil when there is nothing to remove.
    static func removeDotSegments(_ path: ArraySlice<UInt8>) -> [UInt8]? {
        // Fast path: only a segment that is exactly "." or ".." matters.
        var hasDot = false
        var k = path.startIndex
        while k < path.endIndex {
            if path[k] == 0x2e, k > path.startIndex, path[k - 1] == 0x2f {
                var j = k + 1
                if j < path.endIndex, path[j] == 0x2e { j += 1 }
                if j == path.endIndex || path[j] == 0x2f { hasDot = true; break }
            }
            k += 1
        }
        guard hasDot else { return nil }
        let segments = path.split(separator: 0x2f, omittingEmptySubsequences: false).dropFirst()
        var stack: [ArraySlice<UInt8>] = []
        stack.reserveCapacity(segments.count)
        let last = segments.count - 1
        for (index, segment) in segments.enumerated() {
            let isDot = segment.count == 1 && segment.first == 0x2e
            let isDotDot = segment.count == 2 && segment.allSatisfy { $0 == 0x2e }
            if isDot || isDotDot {
                if isDotDot && !stack.isEmpty { stack.removeLast() }
                if index == last { stack.append([]) }
            } else {
                stack.append(segment)
            }
        }
        var result: [UInt8] = [0x2f]
        result.reserveCapacity(path.count)
        for (index, segment) in stack.enumerated() {
            if index > 0 { result.append(0x2f) }
            result.append(contentsOf: segment)
        }
        return result
    }

    // MARK: redirects

    /// RFC 3986 §5.2.2 reference resolution against a vetted base; the fragment is dropped. Dot
    /// segments are removed later by `parse`.
    static func resolveReference(_ reference: String, against base: VettedURL) -> String {
        let utf8 = reference.utf8
        // A scheme is ALPHA *(ALPHA / DIGIT / + - .) ":" before any '/', '?' or '#'.
        if let first = utf8.first, isAlpha(first) {
            for c in utf8.dropFirst() {
                if c == 0x3a { return reference }  // absolute
                if !isSchemeChar(c) { break }
            }
        }
        var ref = Substring(reference)
        if let hash = ref.firstIndex(of: "#") { ref = ref[..<hash] }
        if ref.hasPrefix("//") { return base.scheme + ":" + ref }

        let authority = base.scheme + "://" + base.hostHeader
        let (basePath, baseQuery): (Substring, Substring?) = {
            let pq = Substring(base.pathAndQuery)
            guard let q = pq.firstIndex(of: "?") else { return (pq, nil) }
            return (pq[..<q], pq[pq.index(after: q)...])
        }()
        let (refPath, refQuery): (Substring, Substring?) = {
            guard let q = ref.firstIndex(of: "?") else { return (ref, nil) }
            return (ref[..<q], ref[ref.index(after: q)...])
        }()

        var path: Substring
        var query: Substring?
        if refPath.isEmpty {
            path = basePath
            query = refQuery ?? baseQuery
        } else if refPath.hasPrefix("/") {
            path = refPath
            query = refQuery
        } else {
            let dir = basePath.lastIndex(of: "/").map { basePath[...$0] } ?? "/"
            path = Substring(dir + refPath)
            query = refQuery
        }
        if path.isEmpty { path = "/" }
        return authority + path + (query.map { "?" + $0 } ?? "")
    }
}
