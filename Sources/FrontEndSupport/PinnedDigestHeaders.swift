import Foundation
import HTTPTypes
import ImageCore

/// The digests a request pins for its body, read from the headers every front-end's uploads accept:
/// `Repr-Digest` (RFC 9530: `sha-256=:<base64>:, sha-512=:<base64>:`) and
/// `X-Image-Meta-Expected-Hash: <algo>:<hex>`. (`Content-MD5` stays with each front-end, whose
/// format and error each already define.) An unknown algorithm or a malformed value throws
/// `ImageError.badRequest` before any byte of the body is read.
public enum PinnedDigestHeaders {
    public static let reprDigest = HTTPField.Name("repr-digest")!
    public static let expectedHash = HTTPField.Name("x-image-meta-expected-hash")!

    public static func read(_ headers: HTTPFields) throws -> [PinnedDigest] {
        var pins: [PinnedDigest] = []
        for value in headers[values: reprDigest] { pins += try reprDigestMembers(value) }
        // (an empty value is refused too: a client that sends the header means to pin something)
        for value in headers[values: expectedHash] { pins.append(try PinnedDigest(parsing: value)) }
        return try PinnedDigest.merged(pins)
    }

    /// RFC 9530's names (its registry: `sha-256`, `sha-512`, and the deprecated `md5` and `sha`).
    static func algorithm(rfc9530 name: String) -> PinnedDigest.Algorithm? {
        switch name.lowercased() {
        case "sha-256": .sha256
        case "sha-512": .sha512
        case "md5": .md5
        case "sha": .sha1
        default: nil
        }
    }

    /// One `Repr-Digest` field value: a structured-field dictionary of byte sequences (`:base64:`);
    /// parameters after `;` are ignored.
    static func reprDigestMembers(_ value: String) throws -> [PinnedDigest] {
        var out: [PinnedDigest] = []
        for member in value.split(separator: ",") {
            let text = member.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let eq = text.firstIndex(of: "=") else {
                throw ImageError.badRequest("Repr-Digest member '\(text)' is not algorithm=:base64:.")
            }
            let name = String(text[..<eq])
            guard let algorithm = algorithm(rfc9530: name) else {
                throw ImageError.badRequest("Unsupported Repr-Digest algorithm '\(name)': use sha-256, sha-512, md5 or sha.")
            }
            var item = text[text.index(after: eq)...]
            if let semicolon = item.firstIndex(of: ";") { item = item[..<semicolon] }
            let encoded = item.trimmingCharacters(in: .whitespaces)
            guard encoded.count >= 2, encoded.hasPrefix(":"), encoded.hasSuffix(":"),
                  let bytes = Data(base64Encoded: String(encoded.dropFirst().dropLast())) else {
                throw ImageError.badRequest("Repr-Digest \(name) must be a byte sequence, :base64:, not '\(encoded)'.")
            }
            out.append(try PinnedDigest(algorithm: algorithm, bytes: Array(bytes)))
        }
        return out
    }
}
