import Foundation

/// A digest the sender pinned for the bytes it sends or names: the data must have it, or nothing of
/// it is kept (the upload is refused, the import fails). One rule for every ingest path and every
/// front-end; the front-ends only read it from their own fields (`Repr-Digest`, `Content-MD5`,
/// `X-Image-Meta-Expected-Hash`, an import's `expected_hash`).
public struct PinnedDigest: Sendable, Hashable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, CaseIterable, Comparable {
        case md5, sha1, sha256, sha512

        public var byteCount: Int {
            switch self {
            case .md5: 16
            case .sha1: 20
            case .sha256: 32
            case .sha512: 64
            }
        }

        public static func < (a: Self, b: Self) -> Bool { a.byteCount < b.byteCount }

        /// The names accepted in `algo:hex` (Glance's `os_hash_algo` spellings, and the common dashed ones).
        public init?(name: String) {
            switch name.lowercased() {
            case "md5": self = .md5
            case "sha1", "sha-1": self = .sha1
            case "sha256", "sha-256": self = .sha256
            case "sha512", "sha-512": self = .sha512
            default: return nil
            }
        }
    }

    public let algorithm: Algorithm
    /// Lower-case hex.
    public let hex: String

    public static let supported = "md5, sha1, sha256 or sha512"

    public init(algorithm: Algorithm, hex: String) throws {
        let lower = hex.lowercased()
        guard lower.utf8.count == 2 * algorithm.byteCount,
              lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw ImageError.badRequest("A \(algorithm.rawValue) digest is \(2 * algorithm.byteCount) hex digits, not '\(hex)'.")
        }
        self.algorithm = algorithm
        self.hex = lower
    }

    public init(algorithm: Algorithm, bytes: [UInt8]) throws {
        guard bytes.count == algorithm.byteCount else {
            throw ImageError.badRequest("A \(algorithm.rawValue) digest is \(algorithm.byteCount) bytes, not \(bytes.count).")
        }
        self.algorithm = algorithm
        self.hex = bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// `algo:hex`, as an import's `expected_hash` and `X-Image-Meta-Expected-Hash` carry it. An
    /// unknown algorithm is refused before any byte is read.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.firstIndex(of: ":") else {
            throw ImageError.badRequest("An expected hash is 'algorithm:hex' (\(Self.supported)), not '\(text)'.")
        }
        let name = String(trimmed[..<colon])
        guard let algorithm = Algorithm(name: name) else {
            throw ImageError.badRequest("Unsupported hash algorithm '\(name)': use \(Self.supported).")
        }
        try self.init(algorithm: algorithm, hex: String(trimmed[trimmed.index(after: colon)...]))
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }

    /// The image property that records what the sender pinned (`algo:hex`, several comma-separated).
    public static let propertyKey = "imaged_pinned_digest"

    /// Several pins of one algorithm must agree; the list is kept in a stable order.
    public static func merged(_ pins: [PinnedDigest]) throws -> [PinnedDigest] {
        var byAlgorithm: [Algorithm: PinnedDigest] = [:]
        for pin in pins {
            if let other = byAlgorithm[pin.algorithm], other != pin {
                throw ImageError.badRequest("Two different \(pin.algorithm.rawValue) digests were given: \(other.hex) and \(pin.hex).")
            }
            byAlgorithm[pin.algorithm] = pin
        }
        return byAlgorithm.values.sorted { $0.algorithm < $1.algorithm }
    }

    /// The bytes' digests against the pins: the first mismatch, in words, or nil when all match.
    public static func mismatch(_ pins: [PinnedDigest], computed: [Algorithm: String]) -> String? {
        for pin in pins {
            guard let actual = computed[pin.algorithm] else {
                return "the \(pin.algorithm.rawValue) digest of the data was not computed"
            }
            if actual != pin.hex {
                return "the data's \(pin.algorithm.rawValue) is \(actual), the pinned \(pin.algorithm.rawValue) is \(pin.hex)"
            }
        }
        return nil
    }
}

extension PinnedDigest {
    /// The digest a checksum file (`SHA256SUMS`, `MD5SUMS`, `sha512sum` output, or BSD `SHA256 (name) = hex`
    /// lines) gives for the file `name`; the algorithm comes from the BSD tag or the digest's length.
    /// Throws 400 when the file names it not exactly once.
    public static func fromChecksumFile(_ text: String, name: String) throws -> PinnedDigest {
        var found: [PinnedDigest] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if let pin = try bsdLine(line, name: name) ?? gnuLine(line, name: name) { found.append(pin) }
        }
        let distinct = Array(Set(found))
        guard distinct.count == 1 else {
            throw ImageError.badRequest(distinct.isEmpty ? "The checksum file names no digest for '\(name)'."
                                                         : "The checksum file names '\(name)' with different digests.")
        }
        return distinct[0]
    }

    /// `<hex>  <name>` or `<hex> *<name>` (coreutils); a `./` prefix is ignored.
    static func gnuLine(_ line: String, name: String) throws -> PinnedDigest? {
        guard let space = line.firstIndex(of: " ") else { return nil }
        let digest = String(line[..<space])
        var file = line[line.index(after: space)...].drop { $0 == " " }
        if file.hasPrefix("*") { file = file.dropFirst() }
        if file.hasPrefix("./") { file = file.dropFirst(2) }
        guard file == name, let algorithm = Algorithm.allCases.first(where: { 2 * $0.byteCount == digest.utf8.count }) else { return nil }
        return try PinnedDigest(algorithm: algorithm, hex: digest)
    }

    /// `SHA256 (<name>) = <hex>` (BSD, `sha256sum --tag`).
    static func bsdLine(_ line: String, name: String) throws -> PinnedDigest? {
        guard let open = line.range(of: " ("), let close = line.range(of: ") = ", options: .backwards),
              open.upperBound <= close.lowerBound else { return nil }
        var file = line[open.upperBound..<close.lowerBound]
        if file.hasPrefix("./") { file = file.dropFirst(2) }
        guard file == name, let algorithm = Algorithm(name: String(line[..<open.lowerBound])) else { return nil }
        return try PinnedDigest(algorithm: algorithm, hex: String(line[close.upperBound...]).trimmingCharacters(in: .whitespaces))
    }
}
