import Foundation
// Streaming disk-image format inspection.
//
// Modelled on the checks OpenStack Glance runs through oslo.utils' format_inspector: the
// upload is fed through in order, in chunks of any size; the inspector keeps only the header
// regions it needs (a fixed 34 KiB prefix, plus up to ~1.2 MiB of format-specific regions
// requested once their offsets are known) and a 1536-byte rolling tail. When no region is
// pending a chunk costs one counter update and one copy of at most 1536 bytes into the tail.
//
// Only the Swift standard library is used, and Foundation for `Data` in the inspector's saved form.

/// The result of inspecting a whole stream.
public struct FormatInspection: Sendable, Equatable {
    /// "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "qed", "gpt" or "luks";
    /// "raw" when nothing matched. With several matches (a polyglot) this is the first of
    /// `allMatched`, except that exactly iso+gpt (a hybrid ISO) is "iso".
    public var detected: String
    /// Every format whose signature/structure matched, in a fixed order
    /// (qcow2, qed, vmdk, vhd, vhdx, vdi, luks, iso, gpt). Never contains "raw".
    public var allMatched: [String]
    /// The virtual size from the detected format's header; the byte count for raw and gpt;
    /// nil when unknown (truncated header, unreadable field, or not representable).
    public var virtualSize: Int64?
    /// nil when the detected format passed its safety checks; otherwise
    /// "<format>: <rule>" (several failures are joined with "; ").
    public var safetyFailure: String?
    /// Number of bytes in the stream (the actual size), when known.
    public var bytesSeen: Int64?

    /// More than one format matched, other than the iso+gpt hybrid (which counts as iso).
    public var isPolyglot: Bool {
        allMatched.count > 1 && !(allMatched.count == 2 && Set(allMatched) == ["iso", "gpt"])
    }

    public init(detected: String, allMatched: [String], virtualSize: Int64?,
                safetyFailure: String?, bytesSeen: Int64? = nil) {
        self.detected = detected
        self.allMatched = allMatched
        self.virtualSize = virtualSize
        self.safetyFailure = safetyFailure
        self.bytesSeen = bytesSeen
    }
}

/// Why an upload was refused by `checkDiskFormat`.
public struct FormatRefusal: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The accept/refuse decision for an upload (Glance's rules plus hardening).
///
/// 1. More than one format matched (except exactly iso+gpt) → refused as a polyglot.
/// 2. The detected format's safety checks always apply, whatever was declared and
///    whatever the container format.
/// 3. With container "bare": detected == declared → accepted with the header's virtual size;
///    declared "raw" → accepted with the byte count (raw means "anything", the detected
///    format's safety checks already ran); detected raw with a declared format this
///    inspector cannot inspect (ami, ari, aki, ploop, …) → accepted with no virtual size;
///    otherwise refused as a mismatch. Other containers: no format match is required and
///    the virtual size is only reported when detected == declared.
///
/// Returns the virtual size to record (may be nil).
public func checkDiskFormat(declared diskFormat: String, containerFormat: String,
                            inspection: FormatInspection) throws(FormatRefusal) -> Int64? {
    if inspection.isPolyglot {
        throw FormatRefusal("Multiple formats detected: \(inspection.allMatched.joined(separator: ", "))")
    }
    if let failure = inspection.safetyFailure {
        throw FormatRefusal("Image failed safety checks: \(failure)")
    }
    let detected = inspection.detected
    guard containerFormat == "bare" else {
        return detected == diskFormat ? inspection.virtualSize : nil
    }
    if detected == diskFormat {
        return inspection.virtualSize
    }
    if diskFormat == "raw" {
        return inspection.bytesSeen ?? (detected == "raw" ? inspection.virtualSize : nil)
    }
    if detected == "raw" && !FormatInspector.inspectableFormats.contains(diskFormat) {
        return nil
    }
    throw FormatRefusal("Image disk_format \(diskFormat) does not match stream data \(detected)")
}

/// A streaming disk-image format inspector. Feed every byte of the upload in order, then
/// call `finish()`.
/// Codable: a resumable upload saves the inspector with its digests and continues it later.
public struct FormatInspector: Sendable, Codable {
    /// The disk formats this inspector can recognise (and so can verify a declaration of).
    public static let inspectableFormats: Set<String> =
        ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "qed", "gpt", "luks"]

    /// Virtual sizes above this are refused as absurd.
    public let maxVirtualSize: Int64
    /// Bytes fed so far.
    public private(set) var bytesSeen: Int64 = 0

    // Captured regions; index 0 is the fixed prefix ("head") every format looks at.
    var regions: [FormatInspectorRegion]
    var tail = FormatInspectorTail()
    /// The next stream offset some pending region wants (Int64.max when none): chunks ending
    /// at or before it take the fast path.
    var nextPendingOffset: Int64 = 0

    var hasPendingRegion: Bool { nextPendingOffset != .max }

    // Follow-up state.
    var vmdkHeaderExamined = false
    var vmdkDescriptorIndex: Int?
    var vhdxExamined = false
    var vhdxRegionTableIndex: Int?
    var vhdxRegionTableParsed = false
    var vhdxMetadataIndex: Int?
    var vhdxMetadataSized = false
    var vhdxMetadataParsed = false
    var vhdxSizeIndex: Int?
    var vhdxParamsIndex: Int?
    var vhdxHasParentLocator = false
    var vhdxProblem: String?

    public init(maxVirtualSize: Int64 = 16 << 40) {
        self.maxVirtualSize = maxVirtualSize
        self.regions = [FormatInspectorRegion(offset: 0, length: FormatInspectorLayout.headLength)]
    }

    /// Bytes currently held by the inspector (captured regions plus the rolling tail).
    package var retainedBytes: Int {
        regions.reduce(FormatInspectorTail.capacity) { $0 + $1.data.count }
    }

    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if bytesSeen + Int64(bytes.count) > nextPendingOffset {
            captureChunk(bytes)
        }
        bytesSeen += Int64(bytes.count)
        tail.append(bytes)
    }

    /// Call after the last byte.
    public func finish() -> FormatInspection {
        let verdicts = evaluateAll()
        let matched = verdicts.map(\.name)
        guard !verdicts.isEmpty else {
            var inspection = FormatInspection(detected: "raw", allMatched: [], virtualSize: bytesSeen,
                                              safetyFailure: nil, bytesSeen: bytesSeen)
            if bytesSeen > maxVirtualSize {
                inspection.safetyFailure = "raw: virtual size \(bytesSeen) exceeds the limit \(maxVirtualSize)"
            }
            return inspection
        }
        var chosen = verdicts[0]
        if verdicts.count == 2, Set(matched) == ["iso", "gpt"], let iso = verdicts.first(where: { $0.name == "iso" }) {
            chosen = iso
        }
        var failures = chosen.failures
        var virtualSize: Int64?
        let limit = max(maxVirtualSize, 0)
        switch chosen.size {
        case .unknown:
            virtualSize = nil
        case .bytes(let value):
            virtualSize = value <= UInt64(Int64.max) ? Int64(value) : nil
            if value > UInt64(limit) {
                failures.append("virtual size \(value) exceeds the limit \(maxVirtualSize)")
            }
        case .overflow(let text):
            virtualSize = nil
            failures.append("virtual size \(text) exceeds the limit \(maxVirtualSize)")
        }
        let failure = failures.isEmpty ? nil : failures.map { "\(chosen.name): \($0)" }.joined(separator: "; ")
        return FormatInspection(detected: chosen.name, allMatched: matched, virtualSize: virtualSize,
                                safetyFailure: failure, bytesSeen: bytesSeen)
    }
}

// MARK: - Capture machinery

enum FormatInspectorLayout {
    /// Prefix kept for every stream: covers the ISO 9660 primary volume descriptor
    /// (sector 16 of 2048 bytes), which is the furthest fixed-offset structure.
    static let headLength = 0x8800
    static let vmdkMaxDescriptor = 1 << 20
    static let vhdxRegionTableOffset: Int64 = 192 * 1024
    static let vhdxRegionTableLength = 64 * 1024
    static let vhdxMaxEntries = 2047
}

/// A byte range of the stream to capture, filled contiguously from its start.
struct FormatInspectorRegion: Sendable, Codable {
    let offset: Int64
    var length: Int
    var data: [UInt8] = []
    /// Set when the stream had already passed the next wanted byte when the region was asked for.
    var missed = false

    init(offset: Int64, length: Int) {
        self.offset = offset
        self.length = length
        data.reserveCapacity(min(length, 64 * 1024))
    }

    enum CodingKeys: String, CodingKey { case offset, length, data, missed }

    // The captured bytes as base64 (`Data`), not a JSON array of numbers.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        offset = try c.decode(Int64.self, forKey: .offset)
        length = try c.decode(Int.self, forKey: .length)
        data = Array(try c.decode(Data.self, forKey: .data))
        missed = try c.decode(Bool.self, forKey: .missed)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(offset, forKey: .offset)
        try c.encode(length, forKey: .length)
        try c.encode(Data(data), forKey: .data)
        try c.encode(missed, forKey: .missed)
    }

    var isComplete: Bool { data.count >= length }
    var isPending: Bool { !missed && data.count < length }
    var nextWanted: Int64 { offset + Int64(data.count) }

    mutating func capture(_ chunk: UnsafeRawBufferPointer, at chunkStart: Int64) {
        guard isPending else { return }
        let want = nextWanted
        let chunkEnd = chunkStart + Int64(chunk.count)
        guard want < chunkEnd else { return }
        guard want >= chunkStart else {
            missed = true
            return
        }
        let from = Int(want - chunkStart)
        let count = min(length - data.count, chunk.count - from)
        appendBytes(UnsafeRawBufferPointer(rebasing: chunk[from ..< from + count]))
    }

    mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        bytes.withMemoryRebound(to: UInt8.self) { data.append(contentsOf: $0) }
    }
}

/// The last `capacity` bytes of the stream, in a ring.
struct FormatInspectorTail: Sendable, Codable {
    static let capacity = 1536
    private var storage = [UInt8](repeating: 0, count: FormatInspectorTail.capacity)
    private var next = 0
    private(set) var filled = 0

    init() {}

    enum CodingKeys: String, CodingKey { case bytes }

    /// Saved as the retained bytes, oldest first; restored as a ring that holds just them.
    init(from decoder: any Decoder) throws {
        let saved = Array(try decoder.container(keyedBy: CodingKeys.self).decode(Data.self, forKey: .bytes))
        guard saved.count <= Self.capacity else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "inspector tail too long"))
        }
        saved.withUnsafeBytes { append($0) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Data(bytes), forKey: .bytes)
    }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        let cap = Self.capacity
        let total = chunk.count
        if total >= cap {
            storage.withUnsafeMutableBytes { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[(total - cap)...]))
            }
            next = 0
            filled = cap
            return
        }
        var position = next
        storage.withUnsafeMutableBytes { dst in
            var source = 0
            while source < total {
                let count = min(total - source, cap - position)
                UnsafeMutableRawBufferPointer(rebasing: dst[position ..< position + count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: chunk[source ..< source + count]))
                source += count
                position = (position + count) % cap
            }
        }
        next = position
        filled = min(cap, filled + total)
    }

    /// The retained bytes, oldest first.
    var bytes: [UInt8] {
        let cap = Self.capacity
        if filled < cap {
            return Array(storage[(next - filled) ..< next])
        }
        return Array(storage[next...]) + Array(storage[..<next])
    }
}

extension FormatInspector {
    mutating func captureChunk(_ chunk: UnsafeRawBufferPointer) {
        let start = bytesSeen
        while true {
            for index in regions.indices where regions[index].isPending {
                regions[index].capture(chunk, at: start)
            }
            if !advanceAnalysis() { break }
        }
        nextPendingOffset = regions.reduce(Int64.max) { $1.isPending ? min($0, $1.nextWanted) : $0 }
    }

    /// Adds a region, pre-filling whatever part of it other regions already captured.
    mutating func addRegion(offset: Int64, length: Int) -> Int {
        var region = FormatInspectorRegion(offset: offset, length: length)
        var progressed = true
        while progressed && region.isPending {
            progressed = false
            let want = region.nextWanted
            for other in regions where other.offset <= want && want < other.nextWanted {
                let from = Int(want - other.offset)
                let count = min(region.length - region.data.count, other.data.count - from)
                other.data.withUnsafeBytes { region.appendBytes(UnsafeRawBufferPointer(rebasing: $0[from ..< from + count])) }
                progressed = true
                break
            }
        }
        regions.append(region)
        return regions.count - 1
    }

    /// Requests follow-up regions once the structures locating them are captured.
    /// Returns true when it added or resized a region (the current chunk is then offered again).
    mutating func advanceAnalysis() -> Bool {
        typealias B = FormatInspectorBytes
        var changed = false
        let headCount = regions[0].data.count

        // VMDK hosted sparse extent: the embedded descriptor.
        if !vmdkHeaderExamined && headCount >= 64 {
            vmdkHeaderExamined = true
            let head = regions[0].data
            if B.hasPrefix(head, B.vmdkMagic) {
                let sector = B.le64(head, 28), count = B.le64(head, 36)
                if sector == 1 && count > 0 && count <= UInt64(FormatInspectorLayout.vmdkMaxDescriptor / 512) {
                    vmdkDescriptorIndex = addRegion(offset: 512, length: Int(count) * 512)
                    changed = true
                }
            }
        }

        // VHDX: region table → metadata table → items.
        if !vhdxExamined && headCount >= 8 {
            vhdxExamined = true
            if B.hasPrefix(regions[0].data, B.vhdxMagic) {
                vhdxRegionTableIndex = addRegion(offset: FormatInspectorLayout.vhdxRegionTableOffset,
                                                 length: FormatInspectorLayout.vhdxRegionTableLength)
                changed = true
            }
        }
        if let table = vhdxRegionTableIndex, !vhdxRegionTableParsed, regions[table].isComplete {
            vhdxRegionTableParsed = true
            if let offset = parseVHDXRegionTable(regions[table].data) {
                vhdxMetadataIndex = addRegion(offset: offset, length: 32)
                changed = true
            }
        }
        if let meta = vhdxMetadataIndex, !vhdxMetadataSized, regions[meta].isComplete {
            vhdxMetadataSized = true
            let data = regions[meta].data
            if !B.hasPrefix(data, Array("metadata".utf8)) {
                vhdxProblem = "metadata table signature missing"
            } else {
                let count = Int(B.le16(data, 10))
                if count > FormatInspectorLayout.vhdxMaxEntries {
                    vhdxProblem = "metadata table has \(count) entries (limit 2047)"
                } else if count > 0 {
                    regions[meta].length = 32 + count * 32
                    changed = true
                }
            }
        }
        if let meta = vhdxMetadataIndex, vhdxMetadataSized, vhdxProblem == nil, !vhdxMetadataParsed,
           regions[meta].isComplete {
            vhdxMetadataParsed = true
            let data = regions[meta].data
            let base = regions[meta].offset
            for index in 0 ..< (data.count - 32) / 32 {
                let entry = 32 + index * 32
                let itemOffset = Int64(B.le32(data, entry + 16))
                let itemLength = B.le32(data, entry + 20)
                if B.equal(data, entry, B.vhdxVirtualDiskSizeGUID) && vhdxSizeIndex == nil {
                    if itemLength < 8 { vhdxProblem = "virtual disk size item too short"; continue }
                    vhdxSizeIndex = addRegion(offset: base + itemOffset, length: 8)
                    changed = true
                } else if B.equal(data, entry, B.vhdxFileParametersGUID) && vhdxParamsIndex == nil {
                    if itemLength < 8 { vhdxProblem = "file parameters item too short"; continue }
                    vhdxParamsIndex = addRegion(offset: base + itemOffset, length: 8)
                    changed = true
                } else if B.equal(data, entry, B.vhdxParentLocatorGUID) {
                    vhdxHasParentLocator = true
                }
            }
            if vhdxSizeIndex == nil && vhdxProblem == nil {
                vhdxProblem = "virtual disk size item not found"
            }
        }
        return changed
    }

    /// Returns the metadata region's file offset, or records why it cannot.
    mutating func parseVHDXRegionTable(_ table: [UInt8]) -> Int64? {
        typealias B = FormatInspectorBytes
        guard B.hasPrefix(table, Array("regi".utf8)) else {
            vhdxProblem = "region table signature missing"
            return nil
        }
        let count = Int(B.le32(table, 8))
        guard count <= FormatInspectorLayout.vhdxMaxEntries else {
            vhdxProblem = "region table has \(count) entries (limit 2047)"
            return nil
        }
        for index in 0 ..< count {
            let entry = 16 + index * 32
            if B.equal(table, entry, B.vhdxMetadataRegionGUID) {
                let offset = B.le64(table, entry + 16)
                guard offset < UInt64(Int64.max / 2) else {
                    vhdxProblem = "metadata region offset \(offset) is invalid"
                    return nil
                }
                return Int64(offset)
            }
        }
        vhdxProblem = "metadata region not found"
        return nil
    }
}

// MARK: - Evaluation

enum FormatInspectorSize: Sendable, Equatable {
    case unknown
    case bytes(UInt64)
    case overflow(String)
}

struct FormatInspectorVerdict: Sendable {
    var name: String
    var size: FormatInspectorSize = .unknown
    var failures: [String] = []
}

extension FormatInspector {
    func evaluateAll() -> [FormatInspectorVerdict] {
        let head = regions[0].data
        let candidates: [FormatInspectorVerdict?] = [
            evaluateQCOW2(head), evaluateQED(head), evaluateVMDK(head), evaluateVHD(head),
            evaluateVHDX(head), evaluateVDI(head), evaluateLUKS(head), evaluateISO(head), evaluateGPT(head),
        ]
        return candidates.compactMap { $0 }
    }

    func evaluateQCOW2(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard B.hasPrefix(h, [0x51, 0x46, 0x49, 0xFB]) else { return nil }
        var verdict = FormatInspectorVerdict(name: "qcow2")
        guard h.count >= 8 else {
            verdict.failures.append("truncated header")
            return verdict
        }
        let version = B.be32(h, 4)
        guard version == 2 || version == 3 else {
            verdict.failures.append("unsupported qcow2 version \(version)")
            return verdict
        }
        let needed = version == 3 ? 104 : 72
        guard h.count >= needed else {
            verdict.failures.append("truncated header")
            return verdict
        }
        verdict.size = .bytes(B.be64(h, 24))
        if B.be64(h, 8) != 0 {
            verdict.failures.append("image has a backing file")
        }
        if version == 3 {
            let incompatible = B.be64(h, 72)
            if incompatible & (1 << 2) != 0 {
                verdict.failures.append("image uses an external data file")
            }
            // Known: dirty (0), corrupt (1), compression type (3), extended L2 (4).
            let unknown = incompatible & ~UInt64(0b1_1111)
            if unknown != 0 {
                verdict.failures.append("unknown incompatible feature bits 0x\(String(unknown, radix: 16))")
            }
            let headerLength = B.be32(h, 100)
            if headerLength < 104 {
                verdict.failures.append("invalid header length \(headerLength)")
            }
        }
        return verdict
    }

    func evaluateQED(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard B.hasPrefix(h, [0x51, 0x45, 0x44, 0x00]) else { return nil }
        var verdict = FormatInspectorVerdict(name: "qed")
        if h.count >= 56 { verdict.size = .bytes(B.le64(h, 48)) }
        verdict.failures.append("QED is not supported")
        return verdict
    }

    func evaluateVMDK(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        if B.hasPrefix(h, Array("COWD".utf8)) {
            return FormatInspectorVerdict(name: "vmdk", failures: ["VMDK3 (COWD) sparse extents are not supported"])
        }
        if !B.hasPrefix(h, B.vmdkMagic) {
            guard B.looksLikeVMDKDescriptorFile(h) else { return nil }
            return FormatInspectorVerdict(
                name: "vmdk",
                failures: ["bare descriptor file is not supported (its extents name other files)"])
        }
        var verdict = FormatInspectorVerdict(name: "vmdk")
        guard h.count >= 64 else {
            verdict.failures.append("truncated header")
            return verdict
        }
        let version = B.le32(h, 4)
        let capacity = B.le64(h, 12)
        let descriptorSector = B.le64(h, 28), descriptorSectors = B.le64(h, 36)
        let gdOffset = B.le64(h, 56)
        if !(1 ... 3).contains(version) {
            verdict.failures.append("unsupported version \(version)")
        }
        if descriptorSector != 1 {
            verdict.failures.append("descriptor must be at sector 1 (found \(descriptorSector))")
            return verdict
        }
        if descriptorSectors == 0 {
            verdict.failures.append("no embedded descriptor")
            return verdict
        }
        if descriptorSectors > UInt64(FormatInspectorLayout.vmdkMaxDescriptor / 512) {
            verdict.failures.append("descriptor larger than 1 MiB (\(descriptorSectors) sectors)")
            return verdict
        }
        guard let index = vmdkDescriptorIndex, regions[index].isComplete else {
            verdict.failures.append("truncated descriptor")
            return verdict
        }
        let (bytes, overflow) = capacity.multipliedReportingOverflow(by: 512)
        verdict.size = overflow ? .overflow("\(capacity)*512") : .bytes(bytes)
        verdict.failures += B.vmdkDescriptorProblems(regions[index].data)
        if gdOffset == B.vmdkGDAtEnd {
            verdict.failures += vmdkFooterProblems(header: h)
        }
        return verdict
    }

    /// streamOptimized with the grain directory at the end: the last 1536 bytes must be a
    /// footer marker, a footer header agreeing with the header, and an end-of-stream marker.
    func vmdkFooterProblems(header h: [UInt8]) -> [String] {
        typealias B = FormatInspectorBytes
        let t = tail.bytes
        guard t.count == 1536, bytesSeen >= 512 + 1536 else { return ["truncated (footer missing)"] }
        var problems: [String] = []
        // Footer marker: value (sectors), size 0, type 3 (footer), zero padding.
        if B.le32(t, 8) != 0 || B.le32(t, 12) != 3 || !B.allZero(t, 16 ..< 512) {
            problems.append("footer marker is invalid")
        }
        let f = Array(t[512 ..< 1024])
        if !B.hasPrefix(f, B.vmdkMagic) || B.le32(f, 4) != B.le32(h, 4) {
            problems.append("footer header signature or version does not match the header")
        } else if B.le64(f, 28) != B.le64(h, 28) || B.le64(f, 36) != B.le64(h, 36) {
            problems.append("footer specifies a different descriptor than the header")
        } else if B.le64(f, 12) != B.le64(h, 12) {
            problems.append("footer capacity does not match the header")
        } else if B.le64(f, 56) == B.vmdkGDAtEnd {
            problems.append("footer indicates another footer")
        }
        if !B.allZero(t, 1024 ..< 1536) {
            problems.append("end-of-stream marker is invalid")
        }
        return problems
    }

    func evaluateVHD(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        let footer: [UInt8]
        let atEnd: Bool
        if B.hasPrefix(h, B.vhdCookie) {
            guard h.count >= 512 else {
                return FormatInspectorVerdict(name: "vhd", failures: ["truncated footer"])
            }
            footer = Array(h[0 ..< 512])
            atEnd = false
        } else {
            let t = tail.bytes
            guard bytesSeen >= 512, t.count >= 512 else { return nil }
            let last = Array(t[(t.count - 512)...])
            guard B.hasPrefix(last, B.vhdCookie) else { return nil }
            footer = last
            atEnd = true
        }
        var verdict = FormatInspectorVerdict(name: "vhd", size: .bytes(B.be64(footer, 48)))
        let diskType = B.be32(footer, 60)
        switch diskType {
        case 2: break
        case 3 where !atEnd: break
        case 3: verdict.failures.append("dynamic disk without its footer copy at offset 0")
        case 4: verdict.failures.append("differencing disk (it names a parent image)")
        default: verdict.failures.append("unsupported disk type \(diskType)")
        }
        return verdict
    }

    func evaluateVHDX(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard B.hasPrefix(h, B.vhdxMagic) else { return nil }
        var verdict = FormatInspectorVerdict(name: "vhdx")
        if let problem = vhdxProblem {
            verdict.failures.append(problem)
            return verdict
        }
        func status(_ index: Int?, _ what: String) -> String? {
            guard let index else { return "truncated (\(what) not reached)" }
            let region = regions[index]
            if region.isComplete { return nil }
            if region.missed { return "\(what) at offset \(region.offset) precedes data already streamed" }
            return "truncated (\(what) not reached)"
        }
        for (index, what) in [(vhdxRegionTableIndex, "region table"), (vhdxMetadataIndex, "metadata table"),
                              (vhdxSizeIndex, "virtual disk size")] {
            if let problem = status(index, what) {
                verdict.failures.append(problem)
                return verdict
            }
        }
        verdict.size = .bytes(B.le64(regions[vhdxSizeIndex!].data, 0))
        if vhdxHasParentLocator {
            verdict.failures.append("differencing disk (parent locator present)")
        }
        if let params = vhdxParamsIndex {
            if let problem = status(params, "file parameters") {
                verdict.failures.append(problem)
            } else if B.le32(regions[params].data, 4) & 0b10 != 0 {
                verdict.failures.append("differencing disk (HasParent flag set)")
            }
        }
        return verdict
    }

    func evaluateVDI(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard h.count >= 0x44, B.le32(h, 0x40) == 0xBEDA_107F else { return nil }
        var verdict = FormatInspectorVerdict(name: "vdi")
        guard h.count >= 0x178 else {
            verdict.failures.append("truncated header")
            return verdict
        }
        // The disk size is at 0x170 in the v1.1 header, the only version qemu opens.
        if B.le32(h, 0x44) == 0x0001_0001 {
            verdict.size = .bytes(B.le64(h, 0x170))
        }
        return verdict
    }

    func evaluateLUKS(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard B.hasPrefix(h, [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]) else { return nil }
        var verdict = FormatInspectorVerdict(name: "luks")
        guard h.count >= 108 else {
            verdict.failures.append("truncated header")
            return verdict
        }
        let version = B.be16(h, 6)
        if version != 1 {
            verdict.failures.append("LUKS version \(version) is not supported")
            return verdict
        }
        // The decrypted size: everything after the payload offset (in 512-byte sectors).
        let payload = Int64(B.be32(h, 104)) * 512
        if payload <= bytesSeen {
            verdict.size = .bytes(UInt64(bytesSeen - payload))
        }
        return verdict
    }

    func evaluateISO(_ h: [UInt8]) -> FormatInspectorVerdict? {
        typealias B = FormatInspectorBytes
        guard h.count >= 0x8006, B.equal(h, 0x8001, Array("CD001".utf8)) else { return nil }
        var verdict = FormatInspectorVerdict(name: "iso")
        guard h.count >= 0x8800 else {
            verdict.failures.append("truncated primary volume descriptor")
            return verdict
        }
        if h[0x8000] == 1 {
            let blocks = UInt64(B.le32(h, 0x8000 + 80))
            let blockSize = UInt64(B.le16(h, 0x8000 + 128))
            verdict.size = .bytes(blocks * blockSize)
        }
        return verdict
    }

    func evaluateGPT(_ h: [UInt8]) -> FormatInspectorVerdict? {
        guard h.count >= 512, h[510] == 0x55, h[511] == 0xAA else { return nil }
        // A FAT volume boot record also ends in 55 AA; its BPB has 2 FATs and media F8.
        if h[0x10] == 2 && h[0x15] == 0xF8 { return nil }
        let entries = (0 ..< 4).map { 446 + 16 * $0 }
        guard entries.contains(where: { h[$0 + 4] == 0xEE }) else { return nil }
        var verdict = FormatInspectorVerdict(name: "gpt", size: .bytes(UInt64(bytesSeen)))
        for (index, entry) in entries.enumerated() {
            let boot = h[entry], type = h[entry + 4]
            if boot != 0x00 && boot != 0x80 {
                verdict.failures.append("MBR partition \(index) has an invalid boot flag")
            }
            if type == 0xEE {
                if index != 0 {
                    verdict.failures.append("protective partition is not the first MBR entry")
                }
                if h[entry + 1] != 0x00 || h[entry + 2] != 0x02 || h[entry + 3] != 0x00 {
                    verdict.failures.append("protective partition has an invalid start CHS")
                }
                if FormatInspectorBytes.le32(h, entry + 8) != 1 {
                    verdict.failures.append("protective partition has an invalid start LBA")
                }
            } else if type != 0 {
                verdict.failures.append("MBR defines partitions besides the protective one")
            }
        }
        return verdict
    }
}

// MARK: - Byte helpers and format constants

enum FormatInspectorBytes {
    static let vmdkMagic: [UInt8] = Array("KDMV".utf8)
    static let vhdxMagic: [UInt8] = Array("vhdxfile".utf8)
    static let vhdCookie: [UInt8] = Array("conectix".utf8)
    static let vmdkGDAtEnd: UInt64 = 0xFFFF_FFFF_FFFF_FFFF

    // GUIDs as stored on disk (first three fields little-endian).
    /// 8B7CA206-4790-4B9A-B8FE-575F050F886E
    static let vhdxMetadataRegionGUID: [UInt8] =
        [0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E]
    /// 2FA54224-CD1B-4876-B211-5DBED83BF4B8
    static let vhdxVirtualDiskSizeGUID: [UInt8] =
        [0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8]
    /// CAA16737-FA36-4D43-B3B6-33F0AA44E76B
    static let vhdxFileParametersGUID: [UInt8] =
        [0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B]
    /// A8D35F2D-B30B-454D-ABF7-D3D84834AB0C
    static let vhdxParentLocatorGUID: [UInt8] =
        [0x2D, 0x5F, 0xD3, 0xA8, 0x0B, 0xB3, 0x4D, 0x45, 0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C]

    static func hasPrefix(_ data: [UInt8], _ prefix: [UInt8]) -> Bool {
        equal(data, 0, prefix)
    }

    static func equal(_ data: [UInt8], _ at: Int, _ expected: [UInt8]) -> Bool {
        guard at >= 0, data.count - at >= expected.count else { return false }
        for index in expected.indices where data[at + index] != expected[index] { return false }
        return true
    }

    static func allZero(_ data: [UInt8], _ range: Range<Int>) -> Bool {
        data[range].allSatisfy { $0 == 0 }
    }

    /// Little-endian unsigned integer of `width` bytes; bytes past the end read as 0.
    static func le(_ data: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in stride(from: width - 1, through: 0, by: -1) {
            value <<= 8
            if at + index < data.count { value |= UInt64(data[at + index]) }
        }
        return value
    }

    static func be(_ data: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0 ..< width {
            value <<= 8
            if at + index < data.count { value |= UInt64(data[at + index]) }
        }
        return value
    }

    static func le16(_ d: [UInt8], _ at: Int) -> UInt16 { UInt16(le(d, at, 2)) }
    static func le32(_ d: [UInt8], _ at: Int) -> UInt32 { UInt32(le(d, at, 4)) }
    static func le64(_ d: [UInt8], _ at: Int) -> UInt64 { le(d, at, 8) }
    static func be16(_ d: [UInt8], _ at: Int) -> UInt16 { UInt16(be(d, at, 2)) }
    static func be32(_ d: [UInt8], _ at: Int) -> UInt32 { UInt32(be(d, at, 4)) }
    static func be64(_ d: [UInt8], _ at: Int) -> UInt64 { be(d, at, 8) }

    /// A text VMDK descriptor file: starts with "# Disk DescriptorFile", or is what qemu's
    /// vmdk probe accepts (comment and blank lines, then "version=1|2|3").
    static func looksLikeVMDKDescriptorFile(_ h: [UInt8]) -> Bool {
        let marker = Array("# disk descriptorfile".utf8)
        if h.count >= marker.count,
           zip(h.prefix(marker.count), marker).allSatisfy({ asciiLower($0) == $1 }) {
            return true
        }
        let end = min(h.count, 2048)
        var p = 0
        let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), cr = UInt8(ascii: "\r")
        while p < end {
            if h[p] == UInt8(ascii: "#") {
                while p < end && h[p] != newline { p += 1 }
                p += 1
                continue
            }
            if h[p] == space {
                while p < end && h[p] == space { p += 1 }
                if p < end && h[p] == cr { p += 1 }
                if p == end || h[p] != newline { return false }
                p += 1
                continue
            }
            for digit in ["1", "2", "3"] {
                for ending in ["\n", "\r\n"] {
                    let line = Array("version=\(digit)\(ending)".utf8)
                    if end - p >= line.count && equal(h, p, line) { return true }
                }
            }
            return false
        }
        return false
    }

    static func asciiLower(_ byte: UInt8) -> UInt8 {
        (0x41 ... 0x5A).contains(byte) ? byte | 0x20 : byte
    }

    /// Cautious descriptor parsing: every line must be understood; extents must not name
    /// another file; the createType must be one whose data is embedded in this file.
    static func vmdkDescriptorProblems(_ region: [UInt8]) -> [String] {
        let text = region.prefix { $0 != 0 }
        if text.contains(where: { $0 >= 0x80 || ($0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D) }) {
            return ["descriptor is not ASCII text"]
        }
        var createType: String?
        var extents = 0
        var namesOtherFile = false
        // Split on LF bytes before decoding: "\r\n" would otherwise be one Character.
        for rawLine in text.split(separator: 0x0A, omittingEmptySubsequences: true) {
            let trimmed = String(trimBlanks(Substring(String(decoding: rawLine, as: UTF8.self))))
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let lower = trimmed.lowercased()
            if lower.hasPrefix("ddb.") { continue }
            let firstWord = lower.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            if ["rw", "rdonly", "noaccess"].contains(firstWord) {
                extents += 1
                if trimmed.contains("/") || trimmed.contains("\\") { namesOtherFile = true }
                continue
            }
            if let equals = trimmed.firstIndex(of: "=") {
                let key = trimBlanks(trimmed[..<equals])
                if !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) {
                    if key.lowercased() == "createtype" {
                        var value = trimBlanks(trimmed[trimmed.index(after: equals)...])
                        if value.hasPrefix("\"") { value = value.dropFirst() }
                        createType = String(value.prefix { $0 != "\"" }.prefix(64))
                    }
                    continue
                }
            }
            return ["invalid descriptor line \"\(trimmed.prefix(60))\""]
        }
        var problems: [String] = []
        if let type = createType {
            if !["monolithicsparse", "streamoptimized"].contains(type.lowercased()) {
                problems.append("unsupported createType \"\(type)\"")
            }
        } else {
            problems.append("descriptor has no createType")
        }
        if namesOtherFile { problems.append("extent names another file") }
        if extents == 0 { problems.append("descriptor defines no extents") }
        return problems
    }
}

extension FormatInspectorBytes {
    static func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" }

    static func trimBlanks(_ s: Substring) -> Substring {
        var start = s.startIndex, end = s.endIndex
        while start < end, isBlank(s[start]) { start = s.index(after: start) }
        while end > start, isBlank(s[s.index(before: end)]) { end = s.index(before: end) }
        return s[start ..< end]
    }
}
