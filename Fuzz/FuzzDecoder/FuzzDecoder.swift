// The stream decoders (gzip, xz, zstd, bzip2 through CCompression), fed as the ingest feeds them: the
// compressed stream in chunks of any size, small output chunks, then the end of the input.
//
// Input: byte 0 chooses the codec (low 2 bits) and the chunking seed (the rest; 0: one chunk), byte 1
// the output chunk size (1 + byte × 97 bytes); the rest is the compressed stream.
// Checked: no trap; every refusal is a 400 naming the codec; no output chunk is larger than asked; the
// output (or the refusal) is the same in any chunking. Output is cut at 4 MiB (a bomb is the size cap's
// business, not the decoder's).
import FuzzSupport
import ImageCore
import ImageData
import NIOCore

let maxOutput = 4 << 20
let codecs: [SourceCompression] = [.gzip, .xz, .zstd, .bzip2]

enum Outcome: Equatable {
    case decoded(count: Int, hash: UInt64)
    case cut(count: Int, hash: UInt64)
    case refused
}

func decode(_ kind: SourceCompression, _ bytes: [UInt8], seed: UInt8, chunk: Int) -> Outcome {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325, count = 0
    func take(_ out: ByteBuffer) -> Bool {
        require(out.readableBytes <= chunk && out.readableBytes > 0, "output chunk of \(out.readableBytes) for \(chunk)")
        for b in out.readableBytesView { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        count += out.readableBytes
        return count <= maxOutput
    }
    do {
        let decoder = try StreamDecoder(kind, chunkSize: chunk)
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        var offset = 0
        while offset < bytes.count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let end = seed == 0 ? bytes.count : min(offset + Int(state % 5000) + 1, bytes.count)
            decoder.feed(ByteBuffer(bytes: bytes[offset ..< end]))
            while let out = try decoder.drain() { if !take(out) { return .cut(count: count, hash: hash) } }
            offset = end
        }
        while let out = try decoder.finishChunk() { if !take(out) { return .cut(count: count, hash: hash) } }
        return .decoded(count: count, hash: hash)
    } catch let error as ImageError {
        require(error.kind == .badRequest && error.message.contains(kind.rawValue), "unexpected refusal: \(error)")
        return .refused
    } catch {
        require(false, "unexpected error \(error)")
        return .refused
    }
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let control = input.byte(), size = input.byte()
    let kind = codecs[Int(control & 3)], seed = control >> 2, chunk = 1 + Int(size) * 97
    let bytes = input.rest()
    let chunked = decode(kind, bytes, seed: seed, chunk: chunk)
    if seed != 0 {
        let whole = decode(kind, bytes, seed: 0, chunk: 1 << 20)
        switch (chunked, whole) {
        case (.cut, _), (_, .cut): break  // cut at different points
        default: require(chunked == whole, "chunking changed the result: \(chunked) vs \(whole)")
        }
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzDecoder", fuzzOne) }
}
