import Crypto
import Foundation
import ImageCore

/// ZStack's access-key authentication: `Authorization: ZStack <AccessKeyId>:<signature>` with
/// `Date: <EEE, dd MMM yyyy HH:mm:ss zzz>`, where signature = base64(HMAC-SHA1(secret,
/// `METHOD \n Date \n path`)) and path is the URL path after the context path, without the query
/// (`/v1/images/…`). A date more than 15 minutes away from now is refused.
public enum ZStackSignature {
    public static let scheme = "ZStack"
    public static let window: Int64 = 15 * 60

    /// Why a request is refused: the HTTP status and the plain-text body ZStack's REST layer answers.
    public struct Refusal: Error, Equatable, Sendable {
        public let status: Int
        public let message: String
        init(_ status: Int, _ message: String) { self.status = status; self.message = message }

        public static let malformed = Refusal(400, "Authorization header must be 'ZStack <AccessKeyId>:<signature>'")
        public static let badDate = Refusal(400, "missing or invalid header 'Date', it must be like 'EEE, dd MMM yyyy HH:mm:ss zzz'")
        public static let skewed = Refusal(403, "requestTimeTooSkewed: the difference between the request time and the server's time is more than 15 minutes")
        public static let refused = Refusal(401, "invalid access key or signature")
    }

    public static func stringToSign(method: String, date: String, path: String) -> String {
        "\(method.uppercased())\n\(date)\n\(path)"
    }

    public static func sign(secret: String, method: String, date: String, path: String) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(stringToSign(method: method, date: date, path: path).utf8),
                                                         using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970 of `EEE, dd MMM yyyy HH:mm:ss zzz` (zone `GMT`, `UTC`, `Z`, or an offset
    /// `±hh:mm`, `±hhmm`, `GMT±hh:mm`); nil for anything else.
    public static func parseDate(_ text: String) -> Int64? {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard words.count == 6, words[0].count == 4, words[0].hasSuffix(","), words[0].dropLast().allSatisfy(\.isLetter),
              let day = Int(words[1]), words[1].count <= 2, let month = months.firstIndex(of: words[2]),
              words[3].count == 4, let year = Int(words[3]) else { return nil }
        let hms = words[4].split(separator: ":", omittingEmptySubsequences: false)
        guard hms.count == 3, hms.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) }),
              let h = Int(hms[0]), let m = Int(hms[1]), let s = Int(hms[2]), h < 24, m < 60, s < 61 else { return nil }
        var zone = words[5]
        if zone == "GMT" || zone == "UTC" || zone == "Z" { zone = "+00:00" }
        if zone.hasPrefix("GMT") || zone.hasPrefix("UTC") { zone = String(zone.dropFirst(3)) }
        let sign: Int64
        switch zone.first {
        case "+": sign = 1
        case "-": sign = -1
        default: return nil
        }
        let digits = zone.dropFirst().filter { $0 != ":" }
        guard digits.count == 4, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let oh = Int(digits.prefix(2)), let om = Int(digits.suffix(2)),
              oh < 24, om < 60 else { return nil }
        guard let local = Timestamp.seconds(year: year, month: month + 1, day: day, hour: h, minute: m, second: s) else { return nil }
        return local - sign * Int64(oh * 3600 + om * 60)
    }

    /// The key id and signature of an `Authorization: ZStack <id>:<signature>` header; nil when the
    /// header is another scheme.
    public static func credential(_ header: String) throws -> (keyId: String, signature: String)? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0] == scheme else { return nil }
        let value = parts[1].trimmingCharacters(in: .whitespaces)
        guard let colon = value.firstIndex(of: ":"), colon != value.startIndex, value.index(after: colon) != value.endIndex else {
            throw Refusal.malformed
        }
        return (String(value[..<colon]), String(value[value.index(after: colon)...]))
    }

    /// Checks one request; `secretOf` finds the key's secret (nil: unknown key). Returns the key id.
    public static func verify(keyId: String, signature: String, date: String?, method: String, path: String,
                              now: Int64 = Timestamp.now(), secretOf: (String) async throws -> String?) async throws -> String {
        guard let date, let when = parseDate(date) else { throw Refusal.badDate }
        guard abs(now - when) <= window else { throw Refusal.skewed }
        guard let secret = try await secretOf(keyId) else { throw Refusal.refused }
        let expected = Array(sign(secret: secret, method: method, date: date, path: path).utf8), given = Array(signature.utf8)
        // Compared without an early exit, so timing tells nothing about the right signature.
        guard expected.count == given.count, zip(expected, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { throw Refusal.refused }
        return keyId
    }
}
