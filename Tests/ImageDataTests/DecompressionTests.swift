import BlobStoreFile
import Crypto
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// The decoders against files made by the real command-line tools (gzip, xz, zstd, bzip2).
@Suite struct DecompressionTests {
    /// 3 MiB with runs of random and zero bytes: compressible, yet every chunk differs.
    static let original: [UInt8] = {
        var out: [UInt8] = []
        for i in 0..<24 {
            let block: [UInt8] = i % 3 == 2 ? [UInt8](repeating: 0, count: 1 << 17) : pseudoRandom(1 << 17, seed: UInt64(i + 1))
            out += block
        }
        return out
    }()

    /// `tool args` applied to `data` (through files: no pipe deadlock), as the tool writes it.
    static func compress(_ data: [UInt8], _ tool: String, _ args: [String] = ["-c"]) throws -> [UInt8] {
        let dir = temporaryDirectory("compress")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = dir + "/in", output = dir + "/out"
        try Data(data).write(to: URL(fileURLWithPath: input))
        // The server's child runner, not Foundation's Process (swift-corelibs-foundation#5472).
        let (status, stderr) = try ImageConverter.run(["/bin/sh", "-c", "\(tool) \(args.joined(separator: " ")) \"$0\" > \"$1\"", input, output],
                                                      timeout: 600)
        #expect(status == 0, "\(tool) failed: \(stderr)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    static let tools: [(SourceCompression, String)] = [(.gzip, "gzip"), (.xz, "xz"), (.zstd, "zstd -q"), (.bzip2, "bzip2")]

    /// Runs the decoder over `input` fed in `piece`-byte slices with `chunk`-byte outputs.
    static func decode(_ kind: SourceCompression, _ input: [UInt8], piece: Int, chunk: Int = 1 << 20) throws -> [UInt8] {
        let decoder = try StreamDecoder(kind, chunkSize: chunk)
        var out: [UInt8] = []
        var i = 0
        while i < input.count {
            let n = min(piece, input.count - i)
            decoder.feed(ByteBuffer(bytes: input[i..<i + n]))
            while let b = try decoder.drain() {
                #expect(b.readableBytes <= chunk)
                out += b.readableBytesView
            }
            i += n
        }
        while let b = try decoder.finishChunk() { out += b.readableBytesView }
        return out
    }

    /// The whole input in one `feed`, then only `finishChunk` (no `drain`).
    static func feedAllThenFinish(_ kind: SourceCompression, _ input: [UInt8]) throws -> [UInt8] {
        let decoder = try StreamDecoder(kind, chunkSize: 1 << 20)
        decoder.feed(ByteBuffer(bytes: input))
        var out: [UInt8] = []
        while let b = try decoder.finishChunk() { out += b.readableBytesView }
        return out
    }

    @Test(arguments: [0, 1, 2, 3])
    func roundTripsWhatTheToolMade(tool: Int) throws {
        let (kind, command) = Self.tools[tool]
        let compressed = try Self.compress(Self.original, command)
        #expect(SourceCompression.detect(compressed.prefix(6)) == kind)
        #expect(try Self.decode(kind, compressed, piece: 1 << 20) == Self.original)
        // Odd input slices and small outputs: state carried across every call boundary.
        #expect(try Self.decode(kind, compressed, piece: 4_099, chunk: 65_521) == Self.original)
        #expect(try Self.feedAllThenFinish(kind, compressed) == Self.original)
    }

    /// A multi-block .xz (what `xz -T` makes, and most published images are) goes through liblzma's
    /// threaded decoder: the same bytes at every slicing, and a cut or a flipped byte mid-file is still an error.
    @Test func multiBlockXzDecodesOnThreadsLikeOneStream() throws {
        let compressed = try Self.compress(Self.original, "xz", ["-c", "-T2", "--block-size=262144"])
        #expect(try Self.decode(.xz, compressed, piece: 1 << 20) == Self.original)
        #expect(try Self.decode(.xz, compressed, piece: 4_099, chunk: 65_521) == Self.original)
        #expect(try Self.decode(.xz, compressed + compressed, piece: 100_000) == Self.original + Self.original)
        // Everything fed, then straight to the end: the input the workers had not taken yet is decoded, not refused.
        #expect(try Self.feedAllThenFinish(.xz, compressed) == Self.original)
        #expect(throws: ImageError.self) { try Self.decode(.xz, Array(compressed.prefix(compressed.count / 2)), piece: 1 << 16) }
        var flipped = compressed
        flipped[compressed.count / 2] ^= 0x5a
        #expect(throws: ImageError.self) { try Self.decode(.xz, flipped, piece: 1 << 16) }
    }

    /// `cat a.gz b.gz` (and the same for the other formats) is one stream of both contents, as the tools read it.
    @Test(arguments: [0, 1, 2, 3])
    func concatenatedStreamsDecodeAsOne(tool: Int) throws {
        let (kind, command) = Self.tools[tool]
        let a = Array(Self.original.prefix(1 << 20)), b = Array(Self.original.suffix(1 << 19))
        let both = try Self.compress(a, command) + Self.compress(b, command)
        #expect(try Self.decode(kind, both, piece: 10_000) == a + b)
    }

    @Test(arguments: [0, 1, 2, 3])
    func truncatedInputIsAnError(tool: Int) throws {
        let (kind, command) = Self.tools[tool]
        let compressed = try Self.compress(Self.original, command)
        #expect(throws: ImageError.self) { try Self.decode(kind, Array(compressed.dropLast(9)), piece: 1 << 16) }
    }

    /// Bytes after the end of the stream that are not another stream are refused, not silently dropped.
    @Test(arguments: [0, 1, 2, 3])
    func bytesAfterTheStreamAreAnError(tool: Int) throws {
        let (kind, command) = Self.tools[tool]
        let compressed = try Self.compress(Self.original, command) + Array("not compressed data at all\n".utf8)
        #expect(throws: ImageError.self) { try Self.decode(kind, compressed, piece: 1 << 16) }
        #expect(throws: ImageError.self) { try Self.feedAllThenFinish(kind, compressed) }
    }

    @Test(arguments: [0, 1, 2, 3])
    func corruptInputIsAnError(tool: Int) throws {
        let (kind, command) = Self.tools[tool]
        var compressed = try Self.compress(Self.original, command)
        for i in stride(from: compressed.count / 3, to: compressed.count / 3 + 64, by: 1) { compressed[i] ^= 0x5a }
        do {
            _ = try Self.decode(kind, compressed, piece: 1 << 16)
            Issue.record("corrupt \(kind) data decoded without an error")
        } catch let error as ImageError {
            #expect(error.kind == .badRequest)
            #expect(error.message.contains("not valid \(kind.rawValue) data"))
        }
    }

    @Test func detectsOnlyTheMagics() {
        #expect(SourceCompression.detect([0x1f, 0x8b, 0x08, 0, 0, 0]) == .gzip)
        #expect(SourceCompression.detect([0x1f, 0x8b, 0x07, 0, 0, 0]) == nil)
        #expect(SourceCompression.detect(Array("BZh9".utf8) + [0x31, 0x41]) == .bzip2)
        #expect(SourceCompression.detect(Array("BZhx".utf8)) == nil)
        #expect(SourceCompression.detect([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) == .xz)
        #expect(SourceCompression.detect([0xfd, 0x37, 0x7a, 0x58, 0x5a]) == nil)
        #expect(SourceCompression.detect([0x28, 0xb5, 0x2f, 0xfd, 0, 0]) == .zstd)
        #expect(SourceCompression.detect(Array("QFI\u{fb}".utf8)) == nil)
    }

    // MARK: Through the ingest

    func ingest(_ sent: [UInt8], limits: IngestLimits, decompress: Bool = true) async throws -> (IngestResult, [UInt8]) {
        let dir = temporaryDirectory("decompress-ingest")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FileBlobStore(root: dir)
        let writer = try await store.makeWriter(key: "images/x")
        let ingest = try DecompressingIngest(writer: writer, algorithm: .sha256, limits: limits, decompress: decompress, batchSize: 1 << 16)
        do {
            var i = 0
            while i < sent.count {
                let n = min(30_001, sent.count - i)
                try await ingest.append(ByteBuffer(bytes: sent[i..<i + n]))
                i += n
            }
            let result = try await ingest.finish()
            try await writer.commit()
            var stored: [UInt8] = []
            try await store.read(key: "images/x", range: nil, chunkSize: 1 << 20) { stored += Array($0.readableBytesView) }
            return (result, stored)
        } catch {
            await ingest.abort()
            await writer.cancel()
            #expect(try await store.size(key: "images/x") == nil)
            throw error
        }
    }

    /// Digests and size of the image; the declared size and the pins of the bytes as sent.
    @Test func storesTheDecompressedImageAndChecksPinsOnTheSentBytes() async throws {
        let sent = try Self.compress(Self.original, "xz")
        var limits = IngestLimits(sizeCap: 1 << 30, expectedSize: Int64(sent.count))
        limits.pinned = [try PinnedDigest(parsing: "sha256:" + hex(SHA256.hash(data: sent)))]
        let (result, stored) = try await ingest(sent, limits: limits)
        #expect(stored == Self.original)
        #expect(result.size == Int64(Self.original.count))
        #expect(result.md5 == hex(Insecure.MD5.hash(data: Self.original)))
        #expect(result.hashValue == hex(SHA256.hash(data: Self.original)))
        #expect(result.sourceCompression == .xz)
        #expect(result.inspection.bytesSeen == Int64(Self.original.count))

        // A pin of the decompressed bytes is not a pin of what was sent.
        limits.pinned = [try PinnedDigest(parsing: "sha256:" + hex(SHA256.hash(data: Self.original)))]
        do {
            _ = try await ingest(sent, limits: limits)
            Issue.record("a pin of the decompressed bytes was accepted")
        } catch let error as ImageError {
            #expect(error.kind == .badRequest && error.message.contains("as sent"))
        }
    }

    @Test func plainBytesAndDecompressOffPassThrough() async throws {
        let gz = try Self.compress(Self.original, "gzip")
        let (off, storedOff) = try await ingest(gz, limits: .init(sizeCap: 1 << 30), decompress: false)
        #expect(storedOff == gz && off.sourceCompression == nil)
        let (plain, storedPlain) = try await ingest(Array(Self.original.prefix(5)), limits: .init(sizeCap: 1 << 30))
        #expect(storedPlain == Array(Self.original.prefix(5)) && plain.sourceCompression == nil)
    }

    /// A bomb stops at the size cap of the decompressed bytes (413), nothing kept.
    @Test func sizeCapBoundsTheDecompressedBytes() async throws {
        let zeros = try Self.compress([UInt8](repeating: 0, count: 64 << 20), "zstd -q")
        #expect(zeros.count < 1 << 16)
        do {
            _ = try await ingest(zeros, limits: .init(sizeCap: 8 << 20))
            Issue.record("64 MiB stored under an 8 MiB cap")
        } catch let error as ImageError {
            #expect(error.kind == .payloadTooLarge)
        }
    }
}
