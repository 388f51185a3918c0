import Crypto
import Foundation
import ImageCore

/// Scalr's request signatures (API v1beta0): `X-Scalr-Signature: V1-HMAC-SHA256 <base64>` over
/// `METHOD \n DATE \n PATH \n CANONICAL_QUERY \n BODY`, with the key's secret, and a date within
/// ±300 s. The checks run in Scalr's order so each refusal is the one Scalr gives.
public enum ScalrSignature {
    public static let prefix = "V1-HMAC-SHA256"
    public static let window: TimeInterval = 300

    /// Why a request is refused: Scalr's HTTP status, error code and message.
    public struct Refusal: Error, Equatable, Sendable {
        public let status: Int
        public let code: String
        public let message: String
        init(_ status: Int, _ code: String, _ message: String) { self.status = status; self.code = code; self.message = message }

        public static let unsigned = Refusal(401, "BadAuthentication", "Unsigned request")
        public static let badDate = Refusal(400, "BadRequest", "Missing or invalid X-Scalr-Date header")
        public static let badPrefix = Refusal(401, "BadAuthentication", "Invalid signature")
        public static let unknownKey = Refusal(401, "BadAuthentication", "Invalid API Key")
        public static let expired = Refusal(401, "BadAuthentication", "Request is expired.")
        public static let mismatch = Refusal(401, "BadAuthentication", "Signature does not match")
    }

    /// RFC 3986 encoding of Scalr's canonical query: unreserved characters literal, the rest `%XX`
    /// upper-case (space `%20`, `/` `%2F`).
    public static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(Unicode.Scalar(b))
            if (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || "-_.~".contains(c) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// The query as Scalr canonicalises it: parsed (`+` is a space, the last of a repeated name
    /// wins), sorted by name bytewise, re-encoded, joined with `&`. Empty when there is no query.
    public static func canonicalQuery(_ raw: String?) -> String {
        guard let raw, !raw.isEmpty else { return "" }
        var values: [String: String] = [:]
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            values[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return values.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
            .map { "\(encode($0.key))=\(encode($0.value))" }.joined(separator: "&")
    }

    /// The exact bytes signed (no trailing newline added).
    public static func stringToSign(method: String, date: String, path: String, query: String?, body: [UInt8]) -> [UInt8] {
        let head = [method.uppercased(), date.filter { !$0.isWhitespace }, path, canonicalQuery(query)].joined(separator: "\n")
        return Array(head.utf8) + [0x0A] + body
    }

    public static func sign(secret: String, method: String, date: String, path: String, query: String?, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: stringToSign(method: method, date: date, path: path, query: query, body: body),
                                                  using: SymmetricKey(data: Array(secret.utf8)))
        return "\(prefix) \(Data(mac).base64EncodedString())"
    }

    /// ISO 8601 with `Z` or an offset, with or without fractional seconds (what Scalr's clients send), read by
    /// the core's own parser: no formatter per request, and no ICU (whose parser trapped, SIGFPE, on a fraction
    /// of 35 or more digits, taking the server down from one unauthenticated request).
    public static func parseDate(_ text: String) -> Date? {
        let s = text.filter { !$0.isWhitespace }
        guard isDateShaped(s), let seconds = Timestamp.parse(s) else { return nil }
        // Timestamp keeps whole seconds; the fraction (1 to 9 digits, checked above) is added back.
        let fraction = s.firstIndex(of: ".").map { dot in Double("0" + s[dot...].prefix { $0 == "." || $0.isASCII && $0.isNumber }) ?? 0 } ?? 0
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// `YYYY-MM-DDThh:mm:ss`, an optional fraction of 1 to 9 digits, then `Z` or `±hh:mm` (`±hhmm`).
    static func isDateShaped(_ s: String) -> Bool {
        let u = Array(s.utf8)
        var i = 0
        func digits(_ n: Int) -> Bool {
            guard i + n <= u.count, u[i ..< i + n].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
            i += n
            return true
        }
        func byte(_ c: Character) -> Bool {
            guard i < u.count, u[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard digits(4), byte("-"), digits(2), byte("-"), digits(2), byte("T"), digits(2), byte(":"), digits(2), byte(":"),
              digits(2) else { return false }
        if byte(".") {
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 { i += 1 }
            guard (1 ... 9).contains(i - start) else { return false }
        }
        if byte("Z") { return i == u.count }
        guard byte("+") || byte("-"), digits(2) else { return false }
        _ = byte(":")
        return digits(2) && i == u.count
    }

    /// Checks one request. `secretOf` finds the key's secret (nil: unknown key). Returns the key id.
    public static func verify(keyId: String?, date: String?, signature: String?, method: String, path: String, query: String?,
                              body: [UInt8], now: Date = Date(), secretOf: (String) async throws -> String?) async throws -> String {
        guard let keyId, !keyId.isEmpty, let signature else { throw Refusal.unsigned }
        guard let date, let when = parseDate(date) else { throw Refusal.badDate }
        let parts = signature.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0] == prefix else { throw Refusal.badPrefix }
        guard let secret = try await secretOf(keyId) else { throw Refusal.unknownKey }
        guard abs(now.timeIntervalSince(when)) <= window else { throw Refusal.expired }
        let expected = sign(secret: secret, method: method, date: date, path: path, query: query, body: body)
        // Compared without an early exit, so timing tells nothing about the right signature.
        let a = Array(expected.utf8), b = Array(signature.utf8)
        guard a.count == b.count, zip(a, b).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { throw Refusal.mismatch }
        return keyId
    }
}

/// Secrets that must be used again (Scalr's HMAC keys), sealed with AES-256-GCM under a key only the
/// servers hold: the catalog (and its backups) holds `aes256gcm$<base64 nonce|ciphertext|tag>`.
public struct SecretSealer: Sendable {
    let key: SymmetricKey
    static let scheme = "aes256gcm"

    public init(keyBytes: [UInt8]) throws {
        guard keyBytes.count == 32 else { throw IdentityError("the secret key must be 32 bytes") }
        key = SymmetricKey(data: keyBytes)
    }

    /// The key in `path` (32 bytes, base64), created with mode 0600 when absent and `create` is set.
    public static func load(path: String, create: Bool) throws -> SecretSealer {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw IdentityError("\(path) does not hold a base64 key")
            }
            return try SecretSealer(keyBytes: Array(bytes))
        }
        guard create else { throw IdentityError("no secret key at \(path)") }
        let bytes = try Secrets.randomBytes(32)
        guard FileManager.default.createFile(atPath: path, contents: Data((Data(bytes).base64EncodedString() + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw IdentityError("cannot write the secret key to \(path)")
        }
        return try SecretSealer(keyBytes: bytes)
    }

    /// `context` (the key id) is bound as associated data: a sealed secret copied to another key id does not open.
    public func seal(_ secret: String, context: String) throws -> String {
        let box = try AES.GCM.seal(Array(secret.utf8), using: key, authenticating: Array(context.utf8))
        guard let combined = box.combined else { throw IdentityError("AES-GCM gave no combined box") }
        return "\(Self.scheme)$\(combined.base64EncodedString())"
    }

    public func open(_ sealed: String, context: String) -> String? {
        guard sealed.hasPrefix(Self.scheme + "$"), let data = Data(base64Encoded: String(sealed.dropFirst(Self.scheme.count + 1))),
              let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: key, authenticating: Array(context.utf8)) else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }
}

/// Scalr's environments are integers; imaged's are projects. An environment id is derived from the
/// project name (FNV-1a, 31 bits, never 0), so every node and the admin tool agree without a table.
public enum ScalrEnvironment {
    public static func id(ofProject project: String) -> Int64 {
        var h: UInt32 = 2_166_136_261
        for b in project.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        let n = Int64(h & 0x7fff_ffff)
        return n == 0 ? 1 : n
    }
}
