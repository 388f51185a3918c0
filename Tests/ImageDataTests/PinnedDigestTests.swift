import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// Digests a sender pins (issue 21): parsed once in the core, checked by the ingest before any commit.
@Suite struct PinnedDigestTests {
    let data = pseudoRandom(200_001, seed: 21)

    func pin(_ algorithm: PinnedDigest.Algorithm, of bytes: [UInt8]) throws -> PinnedDigest {
        let digest: [UInt8] = switch algorithm {
        case .md5: Array(Insecure.MD5.hash(data: bytes))
        case .sha1: Array(Insecure.SHA1.hash(data: bytes))
        case .sha256: Array(SHA256.hash(data: bytes))
        case .sha512: Array(SHA512.hash(data: bytes))
        }
        return try PinnedDigest(algorithm: algorithm, bytes: digest)
    }

    @Test func parsesAlgoColonHexAndRefusesWhatItCannotCheck() throws {
        let sha = hex(SHA256.hash(data: data))
        #expect(try PinnedDigest(parsing: "sha256:\(sha.uppercased())") == PinnedDigest(algorithm: .sha256, hex: sha))
        #expect(try PinnedDigest(parsing: " SHA-256:\(sha)").description == "sha256:\(sha)")
        for bad in ["crc32:1234abcd", "sha256", "sha256:xyz", "md5:\(sha)", "sha512:\(sha)", ""] {
            #expect(throws: ImageError.self, "\(bad)") { try PinnedDigest(parsing: bad) }
        }
        do {
            _ = try PinnedDigest(parsing: "blake3:00")
            Issue.record("blake3 accepted")
        } catch let e as ImageError {
            #expect(e.kind == .badRequest && e.message.contains("Unsupported hash algorithm 'blake3'"))
        }
    }

    @Test func twoDifferentPinsOfOneAlgorithmAreRefused() throws {
        let a = try pin(.md5, of: data), b = try pin(.md5, of: Array(data.dropLast()))
        #expect(try PinnedDigest.merged([a, a]) == [a])
        #expect(throws: ImageError.self) { try PinnedDigest.merged([a, b]) }
    }

    /// Every algorithm, with the multihash either way: the right pin commits, a flipped byte commits
    /// nothing (the ingest harness checks no blob and no leftover remains).
    @Test(arguments: PinnedDigest.Algorithm.allCases, [HashAlgorithm.sha256, .sha512])
    func theIngestCommitsOnlyBytesWithThePinnedDigest(algorithm: PinnedDigest.Algorithm, multihash: HashAlgorithm) async throws {
        var limits = IngestLimits(sizeCap: 1 << 40)
        limits.pinned = [try pin(algorithm, of: data)]
        let (result, stored) = try await IngestTests().ingest(data, pieces: [7_777, 65_536], algorithm: multihash, limits: limits)
        #expect(stored == data)
        #expect(result.digests[algorithm] == limits.pinned[0].hex)

        var flipped = data
        flipped[123_456] ^= 0x20
        do {
            _ = try await IngestTests().ingest(flipped, pieces: [65_536], algorithm: multihash, limits: limits)
            Issue.record("a flipped byte was committed")
        } catch let e as ImageError {
            #expect(e.kind == .badRequest)
            #expect(e.message.contains("Checksum verification failed") && e.message.contains(limits.pinned[0].hex))
        }
    }
}

@Suite struct ChecksumFileTests {
    let sha = String(repeating: "ab", count: 32), md5 = String(repeating: "0f", count: 16)

    @Test func findsTheFilesLineInEachFormat() throws {
        let gnu = "\(String(repeating: "11", count: 32))  other.img\n\(sha) *cirros.img\n"
        #expect(try PinnedDigest.fromChecksumFile(gnu, name: "cirros.img") == PinnedDigest(algorithm: .sha256, hex: sha))
        #expect(try PinnedDigest.fromChecksumFile("# sums\n\(md5)  ./cirros.img\r\n", name: "cirros.img").algorithm == .md5)
        let bsd = "SHA512 (cirros.img) = \(String(repeating: "cd", count: 64))\nSHA256 (x.img) = \(sha)\n"
        #expect(try PinnedDigest.fromChecksumFile(bsd, name: "cirros.img").algorithm == .sha512)
    }

    @Test func refusesAMissingOrContradictoryEntry() {
        #expect(throws: ImageError.self) { try PinnedDigest.fromChecksumFile("\(sha)  other.img\n", name: "cirros.img") }
        #expect(throws: ImageError.self) { try PinnedDigest.fromChecksumFile("\(sha)  cirros.img\n\(md5)  cirros.img\n", name: "cirros.img") }
        // a name that only ends like ours is another file
        #expect(throws: ImageError.self) { try PinnedDigest.fromChecksumFile("\(sha)  not-cirros.img\n", name: "cirros.img") }
    }
}
