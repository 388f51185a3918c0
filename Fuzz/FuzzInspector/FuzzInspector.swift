// The disk-format inspector, fed as the data path feeds it: the stream in chunks of any size, then
// the verdict and the accept/refuse decision for every declared format.
//
// Input: byte 0 chooses the encoding and the chunking, byte 1 the options, the rest is the stream.
//   byte 0, bit 7 clear: the rest is the stream as it is.
//   byte 0, bit 7 set:   the rest describes a sparse stream over zeros, so that a small input reaches
//                        the far structures (vhdx region table at 192 KiB and metadata beyond,
//                        footers at the end): a 3-byte big-endian length, then records of a 3-byte
//                        offset, a 2-byte length and that many bytes. At most 6 MiB.
//   byte 0, bits 0-6:    seed of the chunk sizes (0: the whole stream in one chunk).
//   byte 1, bit 0:       a 1 GiB virtual-size limit instead of the default 16 TiB.
// Checked: no trap; the same formats match in any chunking, and the whole verdict agrees unless a
// structure lay before bytes already streamed (which only the chunked run can meet); bounded memory;
// the decision refuses every polyglot and every safety failure.
import FuzzSupport
import ImageData

let maxStream = 6 << 20

func stream(_ input: inout FuzzInput, sparse: Bool) -> [UInt8] {
    guard sparse else { return input.rest() }
    func number(_ width: Int) -> Int { (0 ..< width).reduce(0) { value, _ in value << 8 | Int(input.byte()) } }
    var length = number(3) % (maxStream + 1)
    var records: [(Int, [UInt8])] = []
    while !input.isAtEnd {
        let offset = number(3) % maxStream
        let bytes = input.take(min(number(2), maxStream - offset))
        records.append((offset, bytes))
        length = max(length, offset + bytes.count)
    }
    var out = [UInt8](repeating: 0, count: length)
    for (offset, bytes) in records { out.replaceSubrange(offset ..< offset + bytes.count, with: bytes) }
    return out
}

struct ChunkPlan {
    var state: UInt64
    /// Mostly small pieces, some page-sized and some large, now and then a whole MiB.
    mutating func next() -> Int {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        switch state % 8 {
        case 0, 1, 2: return Int((state >> 8) % 16) + 1
        case 3, 4: return Int((state >> 8) % 4096) + 1
        case 5, 6: return Int((state >> 8) % 70_000) + 1
        default: return 1 << 20
        }
    }
}

func inspect(_ bytes: [UInt8], seed: UInt8, limit: Int64) -> (FormatInspection, Int) {
    var inspector = FormatInspector(maxVirtualSize: limit)
    var peak = 0
    var plan = ChunkPlan(state: UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1)
    bytes.withUnsafeBytes { all in
        var offset = 0
        while offset < all.count {
            let end = seed == 0 ? all.count : min(offset + plan.next(), all.count)
            inspector.feed(UnsafeRawBufferPointer(rebasing: all[offset ..< end]))
            peak = max(peak, inspector.retainedBytes)
            offset = end
        }
    }
    require(inspector.bytesSeen == Int64(bytes.count), "bytesSeen \(inspector.bytesSeen) for \(bytes.count) bytes")
    return (inspector.finish(), peak)
}

let formats = ["qcow2", "qed", "vmdk", "vhd", "vhdx", "vdi", "luks", "iso", "gpt"]
let declarable = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "qed", "gpt", "luks", "ami", "ploop"]

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let control = input.byte(), options = input.byte()
    let bytes = stream(&input, sparse: control & 0x80 != 0)
    let limit: Int64 = options & 1 == 1 ? 1 << 30 : 16 << 40
    let seed = control & 0x7F

    let (chunked, peak) = inspect(bytes, seed: seed, limit: limit)
    require(peak <= 1_300_000, "the inspector held \(peak) bytes")
    require(chunked.allMatched.allSatisfy(formats.contains), "unknown format in \(chunked.allMatched)")
    require(chunked.allMatched.isEmpty == (chunked.detected == "raw"), "raw detected with matches \(chunked.allMatched)")
    require(chunked.allMatched.isEmpty || chunked.allMatched.contains(chunked.detected), "detected \(chunked.detected) not matched")
    if seed != 0 {
        let (whole, _) = inspect(bytes, seed: 0, limit: limit)
        require(whole.allMatched == chunked.allMatched && whole.detected == chunked.detected,
                "chunking changed the formats: \(chunked.allMatched) vs \(whole.allMatched)")
        if !(chunked.safetyFailure ?? "").contains("precedes data already streamed") {
            require(whole == chunked, "chunking changed the verdict: \(chunked) vs \(whole)")
        }
    }

    for container in ["bare", "ovf"] {
        for declared in declarable {
            do {
                let size = try checkDiskFormat(declared: declared, containerFormat: container, inspection: chunked)
                require(!chunked.isPolyglot && chunked.safetyFailure == nil, "accepted despite \(chunked)")
                if container == "bare", declared == chunked.detected { require(size == chunked.virtualSize, "size \(String(describing: size))") }
            } catch {
                _ = error.description
            }
        }
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzInspector", fuzzOne) }
}
