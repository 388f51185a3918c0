import Crypto
import Foundation

/// AWS Signature Version 4 for S3 requests (header form). Pure: the caller supplies the time.
public struct SigV4Signer: Sendable {
    public var accessKey: String
    public var secretKey: String
    public var region: String
    public var service = "s3"

    public init(accessKey: String, secretKey: String, region: String) {
        self.accessKey = accessKey; self.secretKey = secretKey; self.region = region
    }

    /// Payload hash of a request whose body is not hashed (streamed parts, over TLS or loopback).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// `20130524T000000Z` and `20130524` for a date.
    static func stamps(_ date: Date) -> (String, String) {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        let d = c.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func p(_ v: Int?, _ w: Int) -> String { let s = String(v ?? 0); return String(repeating: "0", count: max(0, w - s.count)) + s }
        let day = p(d.year, 4) + p(d.month, 2) + p(d.day, 2)
        return (day + "T" + p(d.hour, 2) + p(d.minute, 2) + p(d.second, 2) + "Z", day)
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX (upper case). `/` is kept in paths.
    public static func uriEncode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(UnicodeScalar(b))
            if (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
                || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E || (keepSlash && b == 0x2F) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// Signs a request: returns the headers to add (`Authorization`, `x-amz-date`, `x-amz-content-sha256`).
    /// `path` is the already-encoded absolute path; `query` the decoded name/value pairs; `headers`
    /// must include `host` and any other header to sign (lower-cased names).
    public func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                     payloadHash: String, date: Date) -> [(String, String)] {
        let (amzDate, day) = Self.stamps(date)
        var all = headers.map { ($0.0.lowercased(), $0.1.trimmingCharacters(in: .whitespaces)) }
        all.append(("x-amz-date", amzDate))
        all.append(("x-amz-content-sha256", payloadHash))
        all.sort { $0.0 < $1.0 }
        var encoded: [(String, String)] = query.map { (Self.uriEncode($0.0, keepSlash: false), Self.uriEncode($0.1, keepSlash: false)) }
        encoded.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        let canonicalQuery: String = encoded.map { (p: (String, String)) -> String in p.0 + "=" + p.1 }.joined(separator: "&")
        let signedHeaders: String = all.map { $0.0 }.joined(separator: ";")
        let headerBlock: String = all.map { (h: (String, String)) -> String in h.0 + ":" + h.1 + "\n" }.joined()
        let canonical: String = [method, path, canonicalQuery, headerBlock, signedHeaders, payloadHash].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Data(canonical.utf8))))"
        var key = SymmetricKey(data: Data(("AWS4" + secretKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(toSign.utf8), using: key))
        return [
            ("Authorization", "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"),
            ("x-amz-date", amzDate),
            ("x-amz-content-sha256", payloadHash),
        ]
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256Hex(_ bytes: some DataProtocol) -> String { hex(SHA256.hash(data: bytes)) }
}
