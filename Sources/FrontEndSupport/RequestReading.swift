import Foundation
import HTTPTypes
import ImageCore
import Hummingbird
import NIOCore

/// What every front-end needs to read from a request, written once: the body within a limit, the
/// base URL its links start with, query and form strings, the request id.
public enum RequestReading {
    /// A body larger than the front-end's limit; each front-end answers it in its own format.
    public struct BodyTooLarge: Error, Equatable {
        public let limit: Int
    }

    /// The whole body when it fits in `limit` bytes: refused from `Content-Length` before reading
    /// when declared, else while reading (a chunked body is never buffered past the limit).
    public static func body(_ request: Request, limit: Int) async throws(BodyTooLarge) -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw BodyTooLarge(limit: limit) }
        var request = request
        do { return try await request.collectBody(upTo: limit) } catch { throw BodyTooLarge(limit: limit) }
    }

    /// `http(s)://host[:port]` links start with: the configured public endpoint (without a trailing
    /// slash), else the request's authority.
    public static func baseURL(_ request: Request, publicEndpoint: String?) -> String {
        if let e = publicEndpoint { return e.hasSuffix("/") ? String(e.dropLast()) : e }
        // The scheme the listener set: https when it serves TLS.
        return (request.head.scheme == "https" ? "https://" : "http://") + (request.head.authority ?? "localhost")
    }

    /// `a=b&c=d` (a query string or an `application/x-www-form-urlencoded` body), in order, `+` read
    /// as a space and percent-escapes decoded where well-formed: clients that send a raw `%` (ZStack's
    /// Python SDK) keep it.
    public static func formPairs(_ text: String?) -> [(String, String)] {
        queryParts(text).map { part in
            let (key, value) = keyAndValue(part)
            return (formDecode(key), value.map(formDecode) ?? "")
        }
    }

    /// A query's `&`-separated parts as written, empty ones dropped. Cut on the UTF-8 bytes of `&`
    /// (ASCII, so every cut falls on a scalar boundary): splitting the String by Character was 1.4 %
    /// of a random-marker list's samples, this 0.4 %.
    public static func queryParts(_ text: String?) -> [Substring] {
        guard let text else { return [] }
        var found: [Substring] = []
        let bytes = text.utf8
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
            if start < end { found.append(text[start..<end]) }
            start = end < bytes.endIndex ? bytes.index(after: end) : end
        }
        return found
    }

    /// A part cut at its first `=`, both sides as written; no value when there is no `=`.
    public static func keyAndValue(_ part: Substring) -> (key: Substring, value: Substring?) {
        guard let equals = part.utf8.firstIndex(of: UInt8(ascii: "=")) else { return (part, nil) }
        return (part[..<equals], part[part.utf8.index(after: equals)...])
    }

    /// Form encoding as browsers and Python's `urlencode` do it: unreserved characters kept, space as `+`,
    /// every other byte percent-escaped (what `formPairs` reads back).
    public static func formEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: " "): out += "+"
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// `a=b; c=d` from every Cookie header; the first value of a name wins (clients that repeat a name
    /// send the most specific first).
    public static func cookies(_ headers: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for header in headers {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let key = parts[0].trimmingCharacters(in: .whitespaces)
                if out[key] == nil { out[key] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
        }
        return out
    }

    public static func formDecode(_ s: Substring) -> String {
        guard s.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(s) }
        let spaced = s.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// A path segment with its %-escapes decoded (the segment itself when one is invalid). Most have
    /// none and skip Foundation's decoder, which is a CFString round trip on every GET.
    public static func percentDecoded(_ s: String) -> String {
        // Concrete types, not `some StringProtocol`: across modules a generic one ran unspecialized,
        // fetching type metadata on every GET (~2 % of it for a 36-byte id).
        guard hasPercent(s.utf8) else { return s }
        return s.removingPercentEncoding ?? s
    }

    public static func percentDecoded(_ s: Substring) -> String {
        guard hasPercent(s.utf8) else { return String(s) }
        return s.removingPercentEncoding ?? String(s)
    }

    @inline(__always)
    static func hasPercent<U: Sequence<UInt8>>(_ utf8: U) -> Bool {
        for byte in utf8 where byte == UInt8(ascii: "%") { return true }
        return false
    }

    /// `fields[name]` (the values of every field of that name, joined with commas), without building
    /// the lazy joined sequence when there is one field or none: on a hot path that cost more than
    /// the scan itself.
    public static func header(_ name: HTTPField.Name, in fields: HTTPFields) -> String? {
        var found: String?
        for field in fields where field.name == name {
            if found != nil { return fields[name] }
            found = field.value
        }
        return found
    }

    /// A caller's request id when it is a sane token (1–64 of `A-Z a-z 0-9 - _`), else nil: ids go
    /// into logs and headers, so nothing else is echoed.
    public static func requestId(_ given: String?) -> String? {
        guard let given, !given.isEmpty, given.utf8.count <= 64,
              given.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 })
        else { return nil }
        return given
    }

    /// A new request id in Glance's form.
    public static func newRequestId() -> String { "req-" + ImageID.generate() }
}

/// Page-numbered listings (Avi's `page`/`page_size`, Scalr's `pageNum`/`maxResults`): the rows
/// before a page without trapping on overflow (a huge page number once took the server down).
public struct PageWindow: Sendable, Equatable {
    /// 1-based.
    public let page: Int
    public let size: Int

    public init(page: Int, size: Int) { self.page = page; self.size = size }

    /// The one rule for a page size (`limit`, `page_size`) above an API's documented maximum where
    /// that API clamps rather than refuses (Glance, Avi, ZStack): the maximum is served. No list
    /// answers more rows than its README says, whatever the client asks.
    public static func cappedSize(_ asked: Int, max: Int) -> Int { Swift.min(Swift.max(asked, 0), max) }

    /// Rows before the page; nil when past anything representable (an empty page).
    public var offset: Int? {
        let (skipped, overflow) = (page - 1).multipliedReportingOverflow(by: size)
        return overflow ? nil : skipped
    }

    /// Whether rows follow the page, of `total`.
    public func hasNext(total: Int) -> Bool {
        let (end, overflow) = page.multipliedReportingOverflow(by: size)
        return !overflow && end < total
    }

    /// The page's part of `rows` (empty past the end).
    public func slice<T>(_ rows: [T]) -> ArraySlice<T> {
        guard let offset else { return [] }
        return rows.dropFirst(offset).prefix(size)
    }

    /// How many pages `total` rows make (at least one).
    public func lastPage(total: Int) -> Int { max(1, (total + size - 1) / size) }
}
