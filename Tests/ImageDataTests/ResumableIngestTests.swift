import BlobStoreFile
import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// What a resumable upload relies on: digests and the format inspection saved at any offset and
/// continued later (after a JSON round trip through the catalog) give what one uninterrupted pass gives.
private typealias FIS = FormatInspectorTestSupport

@Suite struct ResumableIngestTests {
    @Test(arguments: [StreamDigest.Algorithm.md5, .sha1, .sha256, .sha512], [0, 1, 127, 128, 65_537])
    func aSavedDigestContinuesWhereItStopped(_ algorithm: StreamDigest.Algorithm, _ cut: Int) throws {
        let data = pseudoRandom(200_003, seed: 5)
        let whole = try StreamDigest(algorithm)
        data.withUnsafeBytes { whole.update($0) }
        let first = try StreamDigest(algorithm)
        data[..<cut].withUnsafeBytes { first.update($0) }
        let saved = first.saveState()
        #expect(saved.count > 16)
        let second = try StreamDigest(algorithm, state: saved)
        data[cut...].withUnsafeBytes { second.update($0) }
        let expected = whole.finalizeHex()
        #expect(second.finalizeHex() == expected)
        // The saved state is not consumed: a second restore from it gives the same digest again.
        let again = try StreamDigest(algorithm, state: saved)
        data[cut...].withUnsafeBytes { again.update($0) }
        #expect(again.finalizeHex() == expected)
    }

    @Test func aStateOfAnotherAlgorithmOrDamagedIsRefused() throws {
        let d = try StreamDigest(.sha256)
        d.update(UnsafeRawBufferPointer(start: nil, count: 0))
        let saved = d.saveState()
        #expect(throws: StreamDigest.StateRefused.self) { _ = try StreamDigest(.sha512, state: saved) }
        #expect(throws: StreamDigest.StateRefused.self) { _ = try StreamDigest(.sha256, state: Array(saved.dropLast())) }
        var forged = saved
        forged[0] ^= 0xff  // the layout's magic
        #expect(throws: StreamDigest.StateRefused.self) { _ = try StreamDigest(.sha256, state: forged) }
    }

    /// A qcow2 made by qemu-img, fed in two parts with the inspector saved (JSON) in between at
    /// several offsets, inside the header and past it: the same verdict as one pass.
    @Test func aSavedInspectorContinuesWhereItStopped() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "disk.qcow2", "1G"], in: dir)
            try FIS.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 0 1M", "disk.qcow2"], in: dir)
            let bytes = try FIS.read("disk.qcow2", in: dir)
            var whole = FormatInspector()
            whole.feed(bytes)
            let expected = whole.finish()
            #expect(expected.detected == "qcow2" && expected.virtualSize == 1 << 30)
            for cut in [0, 100, 4096, 0x8800 - 1, 0x8800 + 5, bytes.count - 700, bytes.count] {
                var first = FormatInspector()
                first.feed(Array(bytes[..<cut]))
                var second = try JSONDecoder().decode(FormatInspector.self, from: try JSONEncoder().encode(first))
                second.feed(Array(bytes[cut...]))
                #expect(second.finish() == expected, "cut at \(cut)")
            }
        }
    }

    /// An ingest suspended and resumed (its state through JSON, as the catalog keeps it) into the
    /// same writer gives the digests, size, inspection and stored bytes of one uninterrupted ingest.
    @Test(arguments: [[1], [3, 1_000_000], [7, 7, 7]])
    func aSuspendedIngestResumesIntoTheSameBlob(_ cuts: [Int]) async throws {
        let data = pseudoRandom(3_000_001, seed: 11)
        let dir = temporaryDirectory("resume-ingest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        var limits = IngestLimits(sizeCap: 1 << 40, expectedSize: Int64(data.count))
        limits.pinned = [try PinnedDigest(algorithm: .sha256, hex: hex(SHA256.hash(data: data)))]
        var token = try await store.beginResumable(key: "images/r", session: "0123-abcd")
        var state: IngestState?
        var at = 0
        for (i, cut) in cuts.enumerated() {
            let end = min(data.count, at + data.count * cut / 10)
            let writer = try await store.resumeWriter(key: "images/r", token: token, offset: Int64(at))
            let ingest = try ImageIngest(writer: writer, algorithm: .sha512, limits: limits, batchSize: 1 << 16, resume: state)
            try await ingest.append(ByteBuffer(bytes: data[at..<end]))
            let saved = try await ingest.suspend()
            token = try await writer.checkpoint()
            await writer.suspend()
            state = try JSONDecoder().decode(IngestState.self, from: try JSONEncoder().encode(saved))
            #expect(state?.received == Int64(end), "part \(i)")
            at = end
        }
        let writer = try await store.resumeWriter(key: "images/r", token: token, offset: Int64(at))
        let ingest = try ImageIngest(writer: writer, algorithm: .sha512, limits: limits, batchSize: 1 << 16, resume: state)
        try await ingest.append(ByteBuffer(bytes: data[at...]))
        let result = try await ingest.finish()
        try await writer.commit()
        #expect(result.size == Int64(data.count))
        #expect(result.md5 == hex(Insecure.MD5.hash(data: data)))
        #expect(result.hashValue == hex(SHA512.hash(data: data)))
        #expect(result.digests[.sha256] == hex(SHA256.hash(data: data)))
        #expect(result.inspection.detected == "raw")
        var stored: [UInt8] = []
        try await store.read(key: "images/r", range: nil, chunkSize: 1 << 20) { stored += Array($0.readableBytesView) }
        #expect(stored == data)
        // The saved state alone tells the same facts (what a session's completion uses).
        let fromState = try await {
            let w = try await store.beginResumable(key: "images/s", session: "0123-beef")
            let writer = try await store.resumeWriter(key: "images/s", token: w, offset: 0)
            let i = try ImageIngest(writer: writer, algorithm: .sha512, limits: limits, batchSize: 1 << 16)
            try await i.append(ByteBuffer(bytes: data))
            let s = try await i.suspend()
            await writer.cancel()
            return try s.result(algorithm: .sha512)
        }()
        #expect(fromState.md5 == result.md5 && fromState.hashValue == result.hashValue && fromState.size == result.size)
        #expect(fromState.digests[.sha256] == result.digests[.sha256])
    }
}
