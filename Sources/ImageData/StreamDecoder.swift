import CCompression
import ImageCore
import NIOCore

/// The compressions an ingest recognises from the first bytes of a stream.
public enum SourceCompression: String, Sendable, CaseIterable {
    case gzip, xz, zstd, bzip2

    /// Bytes `detect` needs at most.
    static let magicLength = 6

    /// The compression whose magic the stream starts with, if any. gzip also needs method 8
    /// (deflate, the only one defined) and bzip2 a block-size digit, so fewer raw images collide.
    static func detect(_ head: some Collection<UInt8>) -> SourceCompression? {
        let b = Array(head.prefix(magicLength))
        func starts(_ magic: [UInt8]) -> Bool { b.count >= magic.count && Array(b[..<magic.count]) == magic }
        if starts([0x1f, 0x8b, 0x08]) { return .gzip }
        if starts([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .xz }
        if starts([0x28, 0xb5, 0x2f, 0xfd]) { return .zstd }
        if starts([0x42, 0x5a, 0x68]), b.count >= 4, (0x31...0x39).contains(b[3]) { return .bzip2 }
        return nil
    }

    var codec: Int32 {
        switch self {
        case .gzip: Int32(IMAGED_CODEC_GZIP)
        case .xz: Int32(IMAGED_CODEC_XZ)
        case .zstd: Int32(IMAGED_CODEC_ZSTD)
        case .bzip2: Int32(IMAGED_CODEC_BZIP2)
        }
    }
}

/// One streaming decoder (zlib, liblzma, libzstd or libbz2 through CCompression) with bounded memory:
/// `feed` hands it compressed bytes, `drain` gives decompressed chunks of at most `chunkSize` until
/// the fed bytes are used up, `finishChunk` the rest once the input has ended. Blocking CPU work:
/// call it off the cooperative pool. Used by one task at a time (public for the FuzzDecoder target).
public final class StreamDecoder: @unchecked Sendable {
    /// What a stream may make the decoder allocate at most (xz dictionary, zstd window): `xz -9`
    /// needs 65 MiB, zstd's default window limit is 128 MiB.
    static let memoryLimit: UInt64 = 256 << 20
    /// Compressed bytes held for the decoder at most while its worker threads are busy.
    static let inputAhead = 4 << 20

    let compression: SourceCompression
    let chunkSize: Int
    private let handle: OpaquePointer
    private var pending = ByteBuffer()
    private var done = false

    public init(_ compression: SourceCompression, chunkSize: Int = 1 << 20) throws {
        guard let h = imaged_decoder_new(compression.codec, Self.memoryLimit) else {
            throw ImageError(.internal, "Cannot start the \(compression.rawValue) decoder (out of memory).")
        }
        self.compression = compression
        self.chunkSize = chunkSize
        handle = h
    }

    deinit { imaged_decoder_free(handle) }

    /// Fed bytes the decoder has not taken yet.
    public var pendingInput: Int { pending.readableBytes }

    public func feed(_ input: ByteBuffer) {
        if pending.readableBytes == 0 { pending = input } else { var i = input; pending.writeBuffer(&i) }
    }

    /// The next decompressed chunk of what was fed, or nil once it is all used (feed more or finish).
    public func drain() throws -> ByteBuffer? {
        try chunk(finish: false)
    }

    /// After the last `feed`: the remaining chunks, then nil; throws when the input ended mid-stream.
    public func finishChunk() throws -> ByteBuffer? {
        if done { return nil }
        if pending.readableBytes > 0 {
            // Input the threaded xz decoder had no worker for yet when the last `drain` returned: decode
            // it now, waiting for the workers. Input no decoder takes is data after the stream.
            if let out = try chunk(finish: false, waitForWorkers: true) { return out }
            if pending.readableBytes > 0 { throw corrupt("data the decoder cannot use follows the stream") }
        }
        return try chunk(finish: true)
    }

    private func chunk(finish: Bool, waitForWorkers: Bool = false) throws -> ByteBuffer? {
        var out = ByteBufferAllocator().buffer(capacity: chunkSize)
        while out.readableBytes < chunkSize && !done {
            var used = 0, made = 0, code: Int32 = 0
            let room = chunkSize - out.readableBytes
            pending.withUnsafeReadableBytes { input in
                _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { output in
                    code = imaged_decoder_run(handle, input.baseAddress, finish ? 0 : input.count, &used,
                                              output.baseAddress, room, &made, finish ? 1 : 0)
                    return made
                }
            }
            pending.moveReaderIndex(forwardBy: used)
            if code == IMAGED_DECODE_DONE { done = true; break }
            if code < 0 { throw failure(code) }
            if used == 0 && made == 0 {
                // Threaded xz: the workers hold the input and have no output yet. Wait for them at the end
                // and when enough input is waiting; otherwise let the caller hand over more input first.
                if code == IMAGED_DECODE_BUSY && (finish || waitForWorkers || pending.readableBytes >= Self.inputAhead) { continue }
                if finish { throw failure(Int32(IMAGED_DECODE_TRUNCATED)) }
                break  // needs more input
            }
        }
        return out.readableBytes > 0 ? out : nil
    }

    private func failure(_ code: Int32) -> ImageError {
        switch code {
        case Int32(IMAGED_DECODE_TRUNCATED): corrupt("the compressed data ends before its stream does")
        case Int32(IMAGED_DECODE_MEMLIMIT):
            ImageError.badRequest("The \(compression.rawValue) data needs more than \(Self.memoryLimit >> 20) MiB of memory to decompress.")
        case Int32(IMAGED_DECODE_NOMEM): ImageError(.internal, "Out of memory decompressing \(compression.rawValue) data.")
        default: corrupt("the compressed data is corrupt")
        }
    }

    private func corrupt(_ why: String) -> ImageError {
        ImageError.badRequest("Image data is not valid \(compression.rawValue) data: \(why).")
    }
}
