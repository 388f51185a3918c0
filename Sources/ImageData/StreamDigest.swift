import ImageCore
import CDigests

/// One running digest (MD5, SHA-256 or SHA-512) computed by the system OpenSSL. swift-crypto's
/// BoringSSL only has scalar SHA-512 on AMD CPUs: bench/data.sh measured it at 441–518 MB/s in
/// process against 653–702 MB/s for `openssl speed -evp sha512`, the reference the upload target
/// is set against, and SHA-512 was 45 % of the server's CPU during uploads.
/// Owned by one task at a time.
final class StreamDigest: @unchecked Sendable {
    enum Algorithm: Int32 {
        case md5 = 0, sha256 = 1, sha512 = 2, sha1 = 3

        init(_ pinned: PinnedDigest.Algorithm) {
            switch pinned {
            case .md5: self = .md5
            case .sha1: self = .sha1
            case .sha256: self = .sha256
            case .sha512: self = .sha512
            }
        }
    }
    private let handle: OpaquePointer
    let algorithm: Algorithm

    init(_ algorithm: Algorithm) throws {
        guard let h = imaged_digest_new(algorithm.rawValue) else {
            throw DigestUnavailable(algorithm: algorithm)
        }
        handle = h
        self.algorithm = algorithm
    }

    /// Continues a digest from a state `saveState()` returned (on any node of the same build).
    init(_ algorithm: Algorithm, state: [UInt8]) throws {
        guard let h = state.withUnsafeBufferPointer({ imaged_digest_restore(algorithm.rawValue, $0.baseAddress, $0.count) }) else {
            throw StateRefused(algorithm: algorithm)
        }
        handle = h
        self.algorithm = algorithm
    }

    deinit { imaged_digest_free(handle) }

    /// The running state, to continue later with `init(_:state:)`.
    func saveState() -> [UInt8] {
        let size = imaged_digest_state_size(algorithm.rawValue)
        var out = [UInt8](repeating: 0, count: size)
        let n = out.withUnsafeMutableBufferPointer { imaged_digest_save(handle, $0.baseAddress, size) }
        return Array(out[..<n])
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate cannot fail for these software digests once initialised.
        _ = imaged_digest_update(handle, base, bytes.count)
    }

    /// Lower-case hex of the digest. Call once.
    func finalizeHex() -> String {
        var out = [UInt8](repeating: 0, count: 64)
        let n = Int(imaged_digest_final(handle, &out))
        let table = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(n * 2)
        for b in out[..<n] {
            hex.append(table[Int(b >> 4)])
            hex.append(table[Int(b & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    struct DigestUnavailable: Error, CustomStringConvertible {
        var algorithm: Algorithm
        var description: String { "OpenSSL refused the \(algorithm) digest" }
    }

    struct StateRefused: Error, CustomStringConvertible {
        var algorithm: Algorithm
        var description: String { "the saved \(algorithm) digest state was not made by this build of imaged" }
    }
}
