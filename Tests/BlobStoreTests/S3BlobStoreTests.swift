import BlobStoreS3
import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing

/// AWS's published Signature V4 examples (S3 developer guide, "Examples of signature calculations").
@Suite struct SigV4Tests {
    let signer = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z

    func signature(_ headers: [(String, String)]) -> String? {
        headers.first { $0.0 == "Authorization" }?.1.components(separatedBy: "Signature=").last
    }

    @Test func getObjectWithRange() {
        let h = signer.sign(method: "GET", path: "/test.txt", query: [],
                            headers: [("host", "examplebucket.s3.amazonaws.com"), ("range", "bytes=0-9")],
                            payloadHash: SigV4Signer.emptyPayloadHash, date: date)
        #expect(signature(h) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(h.first { $0.0 == "Authorization" }?.1.contains(
            "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date") == true)
        #expect(h.contains { $0 == ("x-amz-date", "20130524T000000Z") })
    }

    @Test func listObjectsQueryIsSortedAndEncoded() {
        let h = signer.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                            headers: [("host", "examplebucket.s3.amazonaws.com")],
                            payloadHash: SigV4Signer.emptyPayloadHash, date: date)
        #expect(signature(h) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func uriEncoding() {
        #expect(SigV4Signer.uriEncode("a b/c~d+e=&", keepSlash: true) == "a%20b/c~d%2Be%3D%26")
        #expect(SigV4Signer.uriEncode("a/b", keepSlash: false) == "a%2Fb")
    }
}

/// The S3 driver against a real S3 server (Ceph RGW started by scripts/test.sh). `IMAGED_TEST_S3_ENV`
/// names the env file that scripts/s3.sh writes (S3_ENDPOINT, S3_BUCKET, S3_REGION, AWS keys).
enum S3TestEnvironment {
    static let values: [String: String]? = {
        guard let path = ProcessInfo.processInfo.environment["IMAGED_TEST_S3_ENV"],
              let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") {
            var l = line.trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("export ") { l.removeFirst(7) }
            guard let eq = l.firstIndex(of: "="), !l.hasPrefix("#") else { continue }
            var v = String(l[l.index(after: eq)...])
            if v.count >= 2, (v.hasPrefix("\"") && v.hasSuffix("\"")) || (v.hasPrefix("'") && v.hasSuffix("'")) { v = String(v.dropFirst().dropLast()) }
            env[String(l[..<eq])] = v
        }
        return env
    }()
}

@Suite(.enabled(if: S3TestEnvironment.values != nil, "IMAGED_TEST_S3_ENV is not set"))
struct S3BlobStoreTests {
    static var environment: [String: String]? { S3TestEnvironment.values }

    /// A store confined to its own key prefix, so tests never see each other's objects.
    static func store(partSize: Int = 5 << 20) throws -> S3BlobStore {
        let e = try #require(environment)
        var c = S3Config(endpoint: try #require(e["S3_ENDPOINT"]), bucket: try #require(e["S3_BUCKET"]),
                         accessKey: try #require(e["AWS_ACCESS_KEY_ID"]), secretKey: try #require(e["AWS_SECRET_ACCESS_KEY"]))
        c.region = e["S3_REGION"] ?? "us-east-1"
        c.keyPrefix = "t-\(UUID().uuidString.lowercased())/"
        c.partSize = partSize
        return try S3BlobStore(config: c)
    }

    /// ≥ 1 GiB through a multipart upload (parts in flight), read back whole and by range.
    @Test func multipartUploadOfOneGiB() async throws {
        let store = try Self.store(partSize: 16 << 20)
        let chunk = BlobStoreConformance.bytes(1 << 20, seed: 3)
        let base = ByteBuffer(bytes: chunk)
        let total = (1 << 30) + (3 << 20) + 12_345   // not a whole number of parts
        let writer = try await store.makeWriter(key: "images/big")
        var written = 0, sent = SHA256()
        while written < total {
            let n = min(chunk.count, total - written)
            var piece = base.getSlice(at: 0, length: n)!
            piece.setInteger(UInt64(written), at: 0)   // every MiB differs
            piece.withUnsafeReadableBytes { sent.update(bufferPointer: $0) }
            try await writer.write(piece)
            written += n
        }
        #expect(try await store.size(key: "images/big") == nil)   // invisible before commit
        try await writer.commit()
        #expect(try await store.size(key: "images/big") == Int64(total))
        var got = SHA256(), count = 0
        try await store.read(key: "images/big", range: nil, chunkSize: 1 << 20) { b in
            b.withUnsafeReadableBytes { got.update(bufferPointer: $0) }
            count += b.readableBytes
        }
        #expect(count == total)
        #expect(Data(got.finalize()) == Data(sent.finalize()))
        let tail = try await BlobStoreConformance.readAll(store, "images/big", range: Int64(total - 100)..<Int64(total))
        #expect(tail == Array(chunk[(total - 100) % (1 << 20)..<((total - 100) % (1 << 20) + 100)]))
        #expect(try await store.incompleteUploads().isEmpty)
        try await store.delete(key: "images/big")
        #expect(try await store.size(key: "images/big") == nil)
    }

    /// A cancelled writer aborts its multipart upload: no upload and no part is left (ListMultipartUploads).
    @Test func cancelAbortsTheMultipartUpload() async throws {
        let store = try Self.store()
        let w = try await BlobStoreConformance.write(store, "images/cancelled", BlobStoreConformance.bytes(17 << 20), pieces: 7)
        #expect(try await store.incompleteUploads().count == 1)   // parts are already up
        await w.cancel()
        #expect(try await store.incompleteUploads().isEmpty)
        #expect(try await store.keys(prefix: "images/").isEmpty)
        await BlobStoreConformance.expectFailure(.writerClosed) { try await w.write(ByteBuffer(bytes: [1])) }
    }

    /// A crash leaves uploads open; the start-up scrub aborts them.
    @Test func leftoversOfACrashAreAborted() async throws {
        let store = try Self.store()
        _ = try await BlobStoreConformance.write(store, "images/crashed", BlobStoreConformance.bytes(12 << 20), pieces: 3)
        #expect(try await store.incompleteUploads().count == 1)
        #expect(try await store.removeLeftovers() == 1)
        #expect(try await store.incompleteUploads().isEmpty)
        #expect(try await store.removeLeftovers() == 0)
    }

    @Test func wrongCredentialsAreRefused() async throws {
        let e = try #require(Self.environment)
        var c = S3Config(endpoint: e["S3_ENDPOINT"]!, bucket: e["S3_BUCKET"]!, accessKey: e["AWS_ACCESS_KEY_ID"]!, secretKey: "wrong")
        c.region = e["S3_REGION"] ?? "us-east-1"
        let store = try S3BlobStore(config: c)
        await BlobStoreConformance.expectFailure(.accessDenied) { _ = try await store.size(key: "images/x") }
    }
}
