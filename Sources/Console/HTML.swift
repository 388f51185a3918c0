import FrontEndSupport

/// A piece of HTML. Text interpolated into it is escaped unless it is itself `HTML`, so a page cannot
/// print an image name, a property or a message unescaped by accident: `"<td>\(image.name)</td>"`
/// as `HTML` is safe; only `HTML(trusted:)` takes markup as it is, and only for the console's own.
public struct HTML: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var text: String

    public init(trusted text: String) { self.text = text }
    public init(stringLiteral value: String) { text = value }
    public init(stringInterpolation: Interpolation) { text = stringInterpolation.text }
    public var description: String { text }

    public static let empty = HTML(trusted: "")

    public struct Interpolation: StringInterpolationProtocol {
        var text = ""
        public init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity + 16 * interpolationCount) }
        public mutating func appendLiteral(_ literal: String) { text += literal }
        public mutating func appendInterpolation(_ html: HTML) { text += html.text }
        public mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        public mutating func appendInterpolation(_ value: String?) { if let value { text += HTML.escape(value) } }
        public mutating func appendInterpolation(_ value: Int) { text += String(value) }
        public mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        public mutating func appendInterpolation(_ value: Double) { text += String(value) }
        public mutating func appendInterpolation(_ parts: [HTML]) { for p in parts { text += p.text } }
    }

    public static func + (a: HTML, b: HTML) -> HTML { HTML(trusted: a.text + b.text) }
    public static func += (a: inout HTML, b: HTML) { a.text += b.text }

    /// Escapes the five characters that matter in text and in quoted attribute values.
    public static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// `a=b&c=d` from pairs, each part encoded; empty values left out.
    public static func query(_ pairs: [(String, String)]) -> String {
        pairs.filter { !$0.1.isEmpty }.map { RequestReading.formEncode($0.0) + "=" + RequestReading.formEncode($0.1) }.joined(separator: "&")
    }
}
