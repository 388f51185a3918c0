/// A JSON document as the APIs receive it. Our own parser keeps integers apart from floats,
/// limits nesting depth (hostile bodies) and reports malformed input precisely.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.0 == key })?.1
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayItems: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }

    /// The JSON type name used in validation messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

public struct JSONParseError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

extension JSONValue {
    public static let maxDepth = 64

    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        var parser = Parser(Array(bytes))
        return try parser.parseDocument()
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    struct Parser {
        let b: [UInt8]
        var i = 0
        init(_ b: [UInt8]) { self.b = b }

        func fail(_ m: String) -> JSONParseError { JSONParseError(message: m, offset: i) }

        mutating func skipWS() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func parseDocument() throws(JSONParseError) -> JSONValue {
            // A UTF-8 byte order mark is tolerated, as Python's json does with utf-8-sig.
            if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
            skipWS()
            let v = try value(depth: 0)
            skipWS()
            guard i == b.count else { throw fail("unexpected data after the JSON value") }
            return v
        }

        mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
            guard depth <= JSONValue.maxDepth else { throw fail("JSON nested too deeply") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, JSONValue)] = []
                // Where each key is in `members`: a repeated key's value replaces the first one's in linear
                // time (searching `members` for every key made a 1 MiB body of short keys cost minutes of CPU).
                var positions: [String: Int] = [:]
                skipWS()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipWS()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let k = try string()
                    skipWS()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipWS()
                    let v = try value(depth: depth + 1)
                    if let idx = positions[k] {
                        members[idx].1 = v
                    } else {
                        positions[k] = members.count
                        members.append((k, v))
                    }
                    skipWS()
                    guard i < b.count else { throw fail("unexpected end of input") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONValue] = []
                skipWS()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipWS()
                    items.append(try value(depth: depth + 1))
                    skipWS()
                    guard i < b.count else { throw fail("unexpected end of input") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default:
                return try number()
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONParseError) {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw fail("invalid literal") }
            let p = word.utf8Start
            for k in 0..<n where b[i + k] != p[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func number() throws(JSONParseError) -> JSONValue {
            let start = i
            var isFloat = false
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("invalid value") }
            if b[i] == 48 { i += 1 } else { while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 } }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                isFloat = true
                i += 1
                guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("invalid number") }
                while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                isFloat = true
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("invalid number") }
                while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if !isFloat, let v = Int64(text) { return .int(v) }
            guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
            return .double(d)
        }

        mutating func hex4() throws(JSONParseError) -> UInt32 {
            guard i + 4 <= b.count else { throw fail("invalid unicode escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 48...57: d = UInt32(c - 48)
                case 97...102: d = UInt32(c - 87)
                case 65...70: d = UInt32(c - 55)
                default: throw fail("invalid unicode escape")
                }
                v = v * 16 + d
                i += 1
            }
            return v
        }

        mutating func string() throws(JSONParseError) -> String {
            i += 1  // opening quote
            let start = i
            // Fast path: no escapes.
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    let s = String(validating: b[start..<i], as: UTF8.self)
                    i += 1
                    guard let s else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c == UInt8(ascii: "\\") || c < 0x20 { break }
                i += 1
            }
            var out: [UInt8] = Array(b[start..<i])
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { break }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var cp = try hex4()
                    if cp >= 0xD800 && cp < 0xDC00 {
                        guard i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        i += 2
                        let lo = try hex4()
                        guard lo >= 0xDC00 && lo < 0xE000 else { throw fail("unpaired surrogate") }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    } else if cp >= 0xDC00 && cp < 0xE000 {
                        throw fail("unpaired surrogate")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(cp)!)).utf8))
                default: throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }
    }
}

/// Builds JSON text directly into bytes: the hot path of every response.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    @inline(__always) public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func string(_ s: String) {
        bytes.append(0x22)
        var s = s
        s.withUTF8 { u in
            guard let base = u.baseAddress else { return }
            var runStart = 0
            var k = 0
            while k < u.count {
                // Eight bytes at a time while none of them needs an escape: most strings have none.
                if k + 8 <= u.count, !Self.mayNeedEscape(UnsafeRawPointer(base + k).loadUnaligned(as: UInt64.self)) {
                    k += 8
                    continue
                }
                let c = base[k]
                if c < 0x20 || c == 0x22 || c == 0x5C {
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<k]))
                    escape(c)
                    runStart = k + 1
                }
                k += 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart...]))
        }
        bytes.append(0x22)
    }

    private mutating func escape(_ c: UInt8) {
        switch c {
        case 0x22: raw("\\\"")
        case 0x5C: raw("\\\\")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        default:
            raw("\\u00")
            bytes.append(Self.hexDigits[Int(c >> 4)])
            bytes.append(Self.hexDigits[Int(c & 15)])
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Whether any byte of `w` is below 0x20, a quote or a backslash (exact: no byte is missed, and
    /// none is reported that is not there).
    @inline(__always) package static func mayNeedEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let below20 = (w &- ones &* 0x20) & ~w & highs
        let q = w ^ (ones &* 0x22)
        let b = w ^ (ones &* 0x5C)
        let quote = (q &- ones) & ~q & highs
        let backslash = (b &- ones) & ~b & highs
        return (below20 | quote | backslash) != 0
    }

    public mutating func optionalString(_ s: String?) {
        if let s { string(s) } else { raw("null") }
    }

    /// Decimal digits written in place (no `String` made per number).
    public mutating func int(_ v: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var magnitude = v.magnitude
            var first = digits.count
            repeat {
                first -= 1
                digits[first] = 0x30 + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if v < 0 { bytes.append(0x2D) }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[first...]))
        }
    }

    public mutating func optionalInt(_ v: Int64?) {
        if let v { int(v) } else { raw("null") }
    }

    public mutating func bool(_ v: Bool) { if v { raw("true") } else { raw("false") } }

    /// `"key":` — the caller writes commas.
    public mutating func key(_ k: String) { string(k); bytes.append(0x3A) }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let x): bool(x)
        case .int(let x): int(x)
        case .double(let x): bytes.append(contentsOf: "\(x)".utf8)
        case .string(let s): string(s)
        case .array(let items):
            bytes.append(0x5B)
            for (k, item) in items.enumerated() {
                if k > 0 { bytes.append(0x2C) }
                value(item)
            }
            bytes.append(0x5D)
        case .object(let members):
            bytes.append(0x7B)
            for (k, m) in members.enumerated() {
                if k > 0 { bytes.append(0x2C) }
                key(m.0)
                value(m.1)
            }
            bytes.append(0x7D)
        }
    }

    /// The elements of a JSON array or object, commas between; each written by `element` (the caller
    /// writes the brackets and whatever comes around them).
    public mutating func elements<S: Sequence>(_ items: S, _ element: (inout JSONWriter, S.Element) -> Void) {
        for (k, item) in items.enumerated() {
            if k > 0 { bytes.append(0x2C) }
            element(&self, item)
        }
    }

    /// `["a","b",…]`.
    public mutating func strings(_ items: some Sequence<String>) {
        bytes.append(0x5B)
        elements(items) { w, s in w.string(s) }
        bytes.append(0x5D)
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// `"YYYY-MM-DDThh:mm:ssZ"`, written digit by digit (the hot part of every image body).
    public mutating func timestamp(_ seconds: Int64) {
        let (y, mo, d, h, mi, s) = Timestamp.civil(seconds)
        @inline(__always) func digits(_ v: Int, _ n: Int) {
            var div = 1
            for _ in 1..<n { div *= 10 }
            var v = v
            for _ in 0..<n {
                bytes.append(UInt8(48 + (v / div) % 10))
                v %= div
                div /= 10
            }
        }
        bytes.append(0x22)
        digits(y, 4); bytes.append(0x2D); digits(mo, 2); bytes.append(0x2D); digits(d, 2)
        bytes.append(0x54); digits(h, 2); bytes.append(0x3A); digits(mi, 2); bytes.append(0x3A); digits(s, 2)
        bytes.append(0x5A); bytes.append(0x22)
    }
}

extension JSONValue {
    public var serialized: String {
        var w = JSONWriter()
        w.value(self)
        return w.text
    }
}

extension JSONValue {
    /// This object with `fields` set: same-named members replaced where they are, others appended
    /// in order. A non-object (or nil document) counts as an empty object. The vendor front-ends
    /// update their extension documents with it.
    public static func merging(_ doc: JSONValue?, _ fields: [(String, JSONValue)]) -> JSONValue {
        var members: [(String, JSONValue)] = []
        if case .object(let m)? = doc { members = m }
        for (k, v) in fields {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return .object(members)
    }
}
