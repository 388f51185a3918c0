import Foundation
import Testing
@testable import ImageData

// Real images are made by qemu-img / qemu-io / genisoimage in a scratch directory, then fed
// through the inspector in many chunkings. A missing tool fails the test (it is never skipped).

// MARK: - Support

struct FormatInspectorTestError: Error, CustomStringConvertible {
    var description: String
}

enum FormatInspectorTestSupport {
    static func tool(_ name: String) throws -> String {
        var dirs = ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin"]
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            dirs += path.split(separator: ":").map(String.init)
        }
        for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        throw FormatInspectorTestError(description:
            "required tool '\(name)' not found in PATH; install it (qemu-img/qemu-io: qemu-utils, genisoimage: genisoimage)")
    }

    /// Runs the tool in `dir` and returns its stdout. Through the server's own child runner
    /// (posix_spawn): Foundation's Process crashes intermittently on Linux (swift-corelibs-foundation#5472).
    @discardableResult
    static func run(_ name: String, _ arguments: [String], in dir: URL) throws -> String {
        let out = dir.path + "/.stdout-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        // sh: cd to the directory, stdout to a file, then exec the tool with its arguments untouched.
        let script = #"cd "$1" || exit 126; out=$2; shift 2; exec "$@" > "$out""#
        let (status, stderr) = try ImageConverter.run(["/bin/sh", "-c", script, "sh", dir.path, out, try tool(name)] + arguments, timeout: 600)
        guard status == 0 else {
            throw FormatInspectorTestError(description: "\(name) \(arguments.joined(separator: " ")) failed (\(status)): \(stderr)")
        }
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    static func qemuImg(_ arguments: [String], in dir: URL) throws {
        try run("qemu-img", arguments, in: dir)
    }

    /// `qemu-img info --output=json`'s virtual-size.
    static func qemuVirtualSize(_ file: String, format: String? = nil, in dir: URL) throws -> Int64 {
        struct Info: Decodable {
            var virtualSize: Int64
            enum CodingKeys: String, CodingKey { case virtualSize = "virtual-size" }
        }
        var arguments = ["info", "--output=json"]
        if let format { arguments += ["-f", format] }
        let json = try run("qemu-img", arguments + [file], in: dir)
        return try JSONDecoder().decode(Info.self, from: Data(json.utf8)).virtualSize
    }

    static func makeScratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("format-inspector-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func withScratch<T>(_ body: (URL) throws -> T) throws -> T {
        let dir = try makeScratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        return try body(dir)
    }

    static func read(_ name: String, in dir: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws {
        try Data(bytes).write(to: dir.appendingPathComponent(name))
    }

    /// Deterministic pseudo-random bytes (SplitMix64).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = Generator(state: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            for _ in 0 ..< 8 where index < count {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    static func inspect(_ bytes: [UInt8], chunk: Int, maxVirtualSize: Int64 = 16 << 40) -> FormatInspection {
        inspect(bytes, maxVirtualSize: maxVirtualSize) { _ in chunk }
    }

    /// Feeds `bytes` in pieces whose size `plan` picks from the current offset.
    static func inspect(_ bytes: [UInt8], maxVirtualSize: Int64 = 16 << 40,
                        plan: (Int) -> Int) -> FormatInspection {
        var inspector = FormatInspector(maxVirtualSize: maxVirtualSize)
        bytes.withUnsafeBytes { all in
            var offset = 0
            while offset < all.count {
                let end = min(offset + max(plan(offset), 1), all.count)
                inspector.feed(UnsafeRawBufferPointer(rebasing: all[offset ..< end]))
                offset = end
            }
        }
        #expect(inspector.bytesSeen == Int64(bytes.count))
        return inspector.finish()
    }

    /// Inspects with every chunking (whole, 1 MiB, 4096, 65537, 7, random splits, and 1 byte
    /// for small inputs); all must agree. Returns the whole-stream result. For inputs over
    /// 4 MiB the 7-byte plan covers the first 4 MiB and the last 64 KiB (where every region
    /// of the formats here lies) and goes 1 MiB at a time in between, to keep debug test runs fast.
    static func inspectAllWays(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> FormatInspection {
        let count = bytes.count
        let whole = inspect(bytes, chunk: max(count, 1))
        var plans: [(String, (Int) -> Int)] = [
            ("1 MiB", { _ in 1 << 20 }), ("4096", { _ in 4096 }), ("65537", { _ in 65537 }),
            ("7", { offset in offset < 4 << 20 || offset >= count - (64 << 10) ? 7 : (1 << 20) - 1 }),
        ]
        if count <= 256 << 10 { plans.append(("1", { _ in 1 })) }
        for seed: UInt64 in [1, 0xC0FFEE] {
            var generator = Generator(state: seed)
            // Mostly small pieces with occasional large ones.
            plans.append(("random split, seed \(seed)", { _ in
                generator.next() % 8 == 0 ? Int(generator.next() % (3 << 20)) + 1 : Int(generator.next() % 70_000) + 1
            }))
        }
        for (name, plan) in plans {
            let result = inspect(bytes, plan: plan)
            #expect(result == whole, "chunking '\(name)' disagrees with whole-stream inspection", sourceLocation: sourceLocation)
        }
        return whole
    }

    static func decide(_ inspection: FormatInspection, declared: String, container: String = "bare") -> Result<Int64?, FormatRefusal> {
        do throws(FormatRefusal) {
            return .success(try checkDiskFormat(declared: declared, containerFormat: container, inspection: inspection))
        } catch {
            return .failure(error)
        }
    }

    static func expectAccepted(_ inspection: FormatInspection, declared: String, container: String = "bare",
                               virtualSize: Int64?, sourceLocation: SourceLocation = #_sourceLocation) {
        switch decide(inspection, declared: declared, container: container) {
        case .success(let size):
            #expect(size == virtualSize, "recorded virtual size", sourceLocation: sourceLocation)
        case .failure(let refusal):
            Issue.record("expected \(declared)/\(container) to be accepted, refused: \(refusal)", sourceLocation: sourceLocation)
        }
    }

    static func expectRefused(_ inspection: FormatInspection, declared: String, container: String = "bare",
                              containing fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        switch decide(inspection, declared: declared, container: container) {
        case .success(let size):
            Issue.record("expected \(declared)/\(container) to be refused, accepted with size \(String(describing: size)); inspection \(inspection)",
                         sourceLocation: sourceLocation)
        case .failure(let refusal):
            for fragment in fragments {
                #expect(refusal.message.contains(fragment), "refusal '\(refusal.message)' should mention '\(fragment)'",
                        sourceLocation: sourceLocation)
            }
        }
    }

    static func patch(_ bytes: inout [UInt8], at offset: Int, _ replacement: [UInt8]) {
        bytes.replaceSubrange(offset ..< offset + replacement.count, with: replacement)
    }

    static func putBE64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for index in 0 ..< 8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(index))) }
    }

    static func putLE64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for index in 0 ..< 8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    /// A protective MBR (one 0xEE partition from LBA 1) written over the first sector's table.
    static func writeProtectiveMBR(_ bytes: inout [UInt8], totalSectors: UInt32) {
        var entry = [UInt8](repeating: 0, count: 16)
        entry[1] = 0x00; entry[2] = 0x02; entry[3] = 0x00   // start CHS
        entry[4] = 0xEE
        entry[5] = 0xFF; entry[6] = 0xFF; entry[7] = 0xFF   // end CHS
        entry[8] = 1                                          // start LBA
        let size = totalSectors - 1
        for index in 0 ..< 4 { entry[12 + index] = UInt8(truncatingIfNeeded: size >> (8 * UInt32(index))) }
        patch(&bytes, at: 446, entry)
        patch(&bytes, at: 462, [UInt8](repeating: 0, count: 48))
        patch(&bytes, at: 510, [0x55, 0xAA])
    }
}

private typealias FIS = FormatInspectorTestSupport

// MARK: - Tests

@Suite("FormatInspector")
struct FormatInspectorTests {
    @Test("tools are installed (qemu-img, qemu-io, genisoimage)")
    func toolsInstalled() throws {
        for name in ["qemu-img", "qemu-io", "genisoimage"] {
            _ = try FIS.tool(name)
        }
    }

    @Test("raw: random bytes and all zeros")
    func raw() throws {
        for bytes in [FIS.randomBytes(3 << 20 | 123, seed: 42), [UInt8](repeating: 0, count: 2 << 20), FIS.randomBytes(300, seed: 7)] {
            let result = FIS.inspectAllWays(bytes)
            #expect(result.detected == "raw")
            #expect(result.allMatched.isEmpty)
            #expect(result.virtualSize == Int64(bytes.count))
            #expect(result.safetyFailure == nil)
            FIS.expectAccepted(result, declared: "raw", virtualSize: Int64(bytes.count))
        }
        let empty = FormatInspector().finish()
        #expect(empty.detected == "raw" && empty.virtualSize == 0)
    }

    @Test("qcow2 with data is accepted", arguments: ["1.1", "0.10"])
    func qcow2(compat: String) throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "-o", "compat=\(compat)", "disk.qcow2", "1G"], in: dir)
            try FIS.run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x5c 512M 64k", "disk.qcow2"], in: dir)
            let expected = try FIS.qemuVirtualSize("disk.qcow2", in: dir)
            #expect(expected == 1 << 30)
            let result = FIS.inspectAllWays(try FIS.read("disk.qcow2", in: dir))
            #expect(result.detected == "qcow2")
            #expect(result.allMatched == ["qcow2"])
            #expect(result.virtualSize == expected)
            #expect(result.safetyFailure == nil)
            FIS.expectAccepted(result, declared: "qcow2", virtualSize: expected)
        }
    }

    @Test("qcow2 with a backing file is refused, whatever is declared")
    func qcow2BackingFile() throws {
        try FIS.withScratch { dir in
            try FIS.write(FIS.randomBytes(1 << 20, seed: 3), "base.raw", in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2"], in: dir)
            let result = FIS.inspectAllWays(try FIS.read("top.qcow2", in: dir))
            #expect(result.detected == "qcow2")
            #expect(result.safetyFailure?.contains("backing file") == true)
            FIS.expectRefused(result, declared: "qcow2", containing: ["Image failed safety checks", "backing file"])
            FIS.expectRefused(result, declared: "raw", containing: ["backing file"])
            FIS.expectRefused(result, declared: "qcow2", container: "ova", containing: ["backing file"])
            FIS.expectRefused(result, declared: "raw", container: "docker", containing: ["backing file"])
        }
    }

    @Test("qcow2 with an external data file is refused")
    func qcow2DataFile() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "x.qcow2", "64M"], in: dir)
            let result = FIS.inspectAllWays(try FIS.read("x.qcow2", in: dir))
            #expect(result.detected == "qcow2")
            #expect(result.virtualSize == 64 << 20)
            FIS.expectRefused(result, declared: "qcow2", containing: ["data file"])
        }
    }

    @Test("qcow2 with an unknown incompatible feature bit is refused; known bits are fine")
    func qcow2IncompatibleFeatures() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            let original = try FIS.read("x.qcow2", in: dir)
            for (bits, refused) in [(UInt64(1) << 5, true), (UInt64(1) << 40, true), (UInt64(0b11011), false)] {
                var bytes = original
                FIS.putBE64(&bytes, at: 72, bits)
                let result = FIS.inspectAllWays(bytes)
                #expect(result.detected == "qcow2")
                if refused {
                    FIS.expectRefused(result, declared: "qcow2", containing: ["unknown incompatible feature"])
                } else {
                    FIS.expectAccepted(result, declared: "qcow2", virtualSize: 1 << 30)
                }
            }
        }
    }

    @Test("qcow2 claiming an absurd virtual size is refused by the cap")
    func qcow2AbsurdSize() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            var bytes = try FIS.read("x.qcow2", in: dir)
            FIS.putBE64(&bytes, at: 24, 1 << 60)
            let result = FIS.inspectAllWays(bytes)
            #expect(result.virtualSize == 1 << 60)
            #expect(result.safetyFailure?.contains("virtual size 1152921504606846976 exceeds the limit 17592186044416") == true)
            FIS.expectRefused(result, declared: "qcow2", containing: ["exceeds the limit"])
            FIS.expectRefused(result, declared: "raw", containing: ["exceeds the limit"])
            // Beyond Int64: not representable, still refused.
            FIS.putBE64(&bytes, at: 24, UInt64.max)
            let huge = FIS.inspect(bytes, chunk: 4096)
            #expect(huge.virtualSize == nil)
            FIS.expectRefused(huge, declared: "qcow2", containing: ["exceeds the limit"])
            // A caller-chosen cap applies too.
            let small = FIS.inspect(try FIS.read("x.qcow2", in: dir), chunk: 65536, maxVirtualSize: 512 << 20)
            FIS.expectRefused(small, declared: "qcow2", containing: ["virtual size 1073741824 exceeds the limit 536870912"])
        }
    }

    @Test("qcow2 with an unsupported version is refused")
    func qcow2Version() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            var bytes = try FIS.read("x.qcow2", in: dir)
            FIS.patch(&bytes, at: 4, [0, 0, 0, 1])
            let result = FIS.inspectAllWays(bytes)
            #expect(result.detected == "qcow2")
            FIS.expectRefused(result, declared: "qcow2", containing: ["unsupported qcow2 version 1"])
        }
    }

    @Test("qed is always refused")
    func qed() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qed", "x.qed", "1G"], in: dir)
            let result = FIS.inspectAllWays(try FIS.read("x.qed", in: dir))
            #expect(result.detected == "qed")
            FIS.expectRefused(result, declared: "qed", containing: ["QED is not supported"])
            FIS.expectRefused(result, declared: "raw", containing: ["QED is not supported"])
        }
    }

    @Test("vmdk monolithicSparse and streamOptimized are accepted")
    func vmdkAccepted() throws {
        try FIS.withScratch { dir in
            try FIS.write(FIS.randomBytes(3 << 20, seed: 11) + [UInt8](repeating: 0, count: 1 << 20), "data.raw", in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "sparse.vmdk", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", "stream-empty.vmdk", "2G"], in: dir)
            try FIS.qemuImg(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "data.raw", "stream.vmdk"], in: dir)
            try FIS.qemuImg(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", "data.raw", "sparse-data.vmdk"], in: dir)
            for name in ["sparse.vmdk", "stream-empty.vmdk", "stream.vmdk", "sparse-data.vmdk"] {
                let expected = try FIS.qemuVirtualSize(name, in: dir)
                let result = FIS.inspectAllWays(try FIS.read(name, in: dir))
                #expect(result.detected == "vmdk", "\(name)")
                #expect(result.virtualSize == expected, "\(name)")
                #expect(result.safetyFailure == nil, "\(name)")
                FIS.expectAccepted(result, declared: "vmdk", virtualSize: expected)
            }
        }
    }

    /// VMware's streamOptimized puts the grain directory at the end (GD_AT_END) with a
    /// footer; qemu-img writes it at the front, so the footer layout is built from qemu's header.
    @Test("vmdk streamOptimized with a footer (GD_AT_END): footer checked")
    func vmdkFooter() throws {
        try FIS.withScratch { dir in
            try FIS.write(FIS.randomBytes(1 << 20, seed: 12), "data.raw", in: dir)
            try FIS.qemuImg(["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "data.raw", "s.vmdk"], in: dir)
            let original = try FIS.read("s.vmdk", in: dir)
            let header = Array(original[0 ..< 512])
            var bytes = original
            FIS.putLE64(&bytes, at: 56, .max)   // gdOffset = GD_AT_END
            var marker = [UInt8](repeating: 0, count: 512)
            marker[0] = 1; marker[12] = 3       // footer marker: 1 sector, type 3
            let valid = bytes + marker + header + [UInt8](repeating: 0, count: 512)
            let result = FIS.inspectAllWays(valid)
            #expect(result.detected == "vmdk")
            #expect(result.safetyFailure == nil)
            FIS.expectAccepted(result, declared: "vmdk", virtualSize: 1 << 20)

            var badEOS = valid
            badEOS[badEOS.count - 500] = 1
            FIS.expectRefused(FIS.inspectAllWays(badEOS), declared: "vmdk", containing: ["end-of-stream marker"])

            var footerAtEnd = valid
            FIS.putLE64(&footerAtEnd, at: valid.count - 1024 + 56, .max)
            FIS.expectRefused(FIS.inspectAllWays(footerAtEnd), declared: "vmdk", containing: ["another footer"])

            var otherCapacity = valid
            FIS.putLE64(&otherCapacity, at: valid.count - 1024 + 12, 1 << 40)
            FIS.expectRefused(FIS.inspectAllWays(otherCapacity), declared: "vmdk", containing: ["footer capacity"])

            let noFooter = bytes   // GD_AT_END but the stream has no footer
            FIS.expectRefused(FIS.inspect(noFooter, chunk: 4096), declared: "vmdk", containing: ["footer marker"])
        }
    }

    @Test("vmdk monolithicFlat and twoGbMaxExtentSparse (descriptor files) are refused")
    func vmdkDescriptorFiles() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "64M"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "split.vmdk", "64M"], in: dir)
            for name in ["flat.vmdk", "split.vmdk"] {
                let result = FIS.inspectAllWays(try FIS.read(name, in: dir))
                #expect(result.detected == "vmdk", "\(name)")
                FIS.expectRefused(result, declared: "vmdk", containing: ["Image failed safety checks", "descriptor file"])
                FIS.expectRefused(result, declared: "raw", containing: ["descriptor file"])
            }
            // The sparse extent of the split image has no embedded descriptor at sector 1.
            let extent = FIS.inspectAllWays(try FIS.read("split-s001.vmdk", in: dir))
            #expect(extent.detected == "vmdk")
            FIS.expectRefused(extent, declared: "vmdk", containing: ["descriptor"])
            // A descriptor in the qemu-probe shape (blank/comment lines, then version=).
            let probeShaped = Array("#comment\n   \nversion=1\nCID=fffffffe\ncreateType=\"monolithicSparse\"\nRW 8 SPARSE \"a.vmdk\"\n".utf8)
            let text = FIS.inspectAllWays(probeShaped)
            #expect(text.detected == "vmdk")
            FIS.expectRefused(text, declared: "vmdk", containing: ["descriptor file"])
        }
    }

    @Test("vmdk whose embedded descriptor names another file or has odd lines is refused")
    func vmdkPatchedDescriptor() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", "disk12.vmdk", "1G"], in: dir)
            let original = try FIS.read("disk12.vmdk", in: dir)
            func patched(_ from: String, _ to: String) throws -> [UInt8] {
                #expect(from.utf8.count == to.utf8.count)
                let descriptor = Array(original[512 ..< 512 + 20 * 512])
                let needle = Array(from.utf8)
                guard let at = (0 ... descriptor.count - needle.count).first(where: { Array(descriptor[$0 ..< $0 + needle.count]) == needle }) else {
                    throw FormatInspectorTestError(description: "'\(from)' not in the descriptor")
                }
                var bytes = original
                FIS.patch(&bytes, at: 512 + at, Array(to.utf8))
                return bytes
            }
            FIS.expectRefused(FIS.inspectAllWays(try patched("\"disk12.vmdk\"", "\"/etc/passwd\"")),
                            declared: "vmdk", containing: ["names another file"])
            FIS.expectRefused(FIS.inspectAllWays(try patched("monolithicSparse", "monolithicFlat  ")),
                            declared: "vmdk", containing: ["unsupported createType"])
            FIS.expectRefused(FIS.inspectAllWays(try patched("# Extent description", "include /etc/passwd1")),
                            declared: "vmdk", containing: ["invalid descriptor line"])
            FIS.expectRefused(FIS.inspectAllWays(try patched("RW 2097152 SPARSE", "#  2097152 SPARSE")),
                            declared: "vmdk", containing: ["no extents"])
            // Unpatched it is fine.
            FIS.expectAccepted(FIS.inspectAllWays(original), declared: "vmdk", virtualSize: 1 << 30)
        }
    }

    @Test("vhd (dynamic and fixed), vhdx and vdi report qemu's virtual size")
    func vhdVhdxVdi() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic", "dyn.vhd", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=fixed", "fixed.vhd", "3M"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vhdx", "x.vhdx", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vdi", "x.vdi", "1G"], in: dir)
            try FIS.write(FIS.randomBytes(2 << 20, seed: 5), "data.raw", in: dir)
            try FIS.qemuImg(["convert", "-f", "raw", "-O", "vhdx", "data.raw", "data.vhdx"], in: dir)
            try FIS.qemuImg(["convert", "-f", "raw", "-O", "vpc", "data.raw", "data.vhd"], in: dir)
            let cases: [(file: String, qemuFormat: String, format: String)] = [
                ("dyn.vhd", "vpc", "vhd"), ("fixed.vhd", "vpc", "vhd"), ("data.vhd", "vpc", "vhd"),
                ("x.vhdx", "vhdx", "vhdx"), ("data.vhdx", "vhdx", "vhdx"), ("x.vdi", "vdi", "vdi"),
            ]
            for item in cases {
                let expected = try FIS.qemuVirtualSize(item.file, format: item.qemuFormat, in: dir)
                let result = FIS.inspectAllWays(try FIS.read(item.file, in: dir))
                #expect(result.detected == item.format, "\(item.file)")
                #expect(result.allMatched == [item.format], "\(item.file)")
                #expect(result.virtualSize == expected, "\(item.file)")
                #expect(result.safetyFailure == nil, "\(item.file)")
                FIS.expectAccepted(result, declared: item.format, virtualSize: expected)
                FIS.expectRefused(result, declared: "qcow2", containing: ["does not match stream data \(item.format)"])
            }
        }
    }

    @Test("vhd differencing disk and vhdx with a parent are refused")
    func differencing() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic", "dyn.vhd", "64M"], in: dir)
            var vhd = try FIS.read("dyn.vhd", in: dir)
            FIS.patch(&vhd, at: 60, [0, 0, 0, 4])
            FIS.expectRefused(FIS.inspectAllWays(vhd), declared: "vhd", containing: ["differencing"])

            try FIS.qemuImg(["create", "-q", "-f", "vhdx", "x.vhdx", "64M"], in: dir)
            var vhdx = try FIS.read("x.vhdx", in: dir)
            // File Parameters item: HasParent flag (bit 1 of the flags word at item + 4).
            let metadata = 0x30_0000
            #expect(Array(vhdx[metadata ..< metadata + 8]) == Array("metadata".utf8))
            let count = Int(vhdx[metadata + 10]) | Int(vhdx[metadata + 11]) << 8
            var paramsOffset: Int?
            for index in 0 ..< count {
                let entry = metadata + 32 + index * 32
                if Array(vhdx[entry ..< entry + 16]) == FormatInspectorBytes.vhdxFileParametersGUID {
                    paramsOffset = metadata + Int(FormatInspectorBytes.le32(vhdx, entry + 16))
                }
            }
            let params = try #require(paramsOffset)
            vhdx[params + 4] |= 0b10
            FIS.expectRefused(FIS.inspectAllWays(vhdx), declared: "vhdx", containing: ["differencing"])
        }
    }

    @Test("iso from genisoimage; hybrid iso+gpt counts as iso")
    func iso() throws {
        try FIS.withScratch { dir in
            let content = dir.appendingPathComponent("content", isDirectory: true)
            try FileManager.default.createDirectory(at: content, withIntermediateDirectories: true)
            try Data(FIS.randomBytes(300_000, seed: 9)).write(to: content.appendingPathComponent("payload.bin"))
            try Data("hello\n".utf8).write(to: content.appendingPathComponent("README.txt"))
            try FIS.run("genisoimage", ["-quiet", "-o", "x.iso", "-R", "-J", "content"], in: dir)
            let bytes = try FIS.read("x.iso", in: dir)
            let result = FIS.inspectAllWays(bytes)
            #expect(result.detected == "iso")
            #expect(result.allMatched == ["iso"])
            #expect(result.virtualSize == Int64(bytes.count))
            #expect(try FIS.qemuVirtualSize("x.iso", format: "raw", in: dir) == Int64(bytes.count))
            FIS.expectAccepted(result, declared: "iso", virtualSize: Int64(bytes.count))
            FIS.expectAccepted(result, declared: "raw", virtualSize: Int64(bytes.count))
            FIS.expectRefused(result, declared: "qcow2", containing: ["does not match stream data iso"])

            var hybrid = bytes
            FIS.writeProtectiveMBR(&hybrid, totalSectors: UInt32(bytes.count / 512))
            let both = FIS.inspectAllWays(hybrid)
            #expect(both.allMatched == ["iso", "gpt"])
            #expect(both.detected == "iso")
            FIS.expectAccepted(both, declared: "iso", virtualSize: Int64(bytes.count))
        }
    }

    @Test("gpt: protective MBR accepted; extra MBR partitions or bad boot flags refused")
    func gpt() throws {
        var disk = FIS.randomBytes(1 << 20, seed: 21)
        FIS.writeProtectiveMBR(&disk, totalSectors: 2048)
        disk[0x10] = 0   // not a FAT boot sector
        let result = FIS.inspectAllWays(disk)
        #expect(result.detected == "gpt")
        #expect(result.virtualSize == 1 << 20)
        FIS.expectAccepted(result, declared: "gpt", virtualSize: 1 << 20)
        FIS.expectAccepted(result, declared: "raw", virtualSize: 1 << 20)

        var hybridMBR = disk
        hybridMBR[446 + 16 + 4] = 0x83   // a Linux partition beside the protective one
        FIS.expectRefused(FIS.inspectAllWays(hybridMBR), declared: "gpt", containing: ["besides the protective one"])

        var badBoot = disk
        badBoot[446] = 0x12
        FIS.expectRefused(FIS.inspectAllWays(badBoot), declared: "raw", containing: ["boot flag"])

        var badStart = disk
        badStart[446 + 8] = 5
        FIS.expectRefused(FIS.inspectAllWays(badStart), declared: "gpt", containing: ["start LBA"])

        // A plain MBR disk without a protective partition is raw.
        var mbr = disk
        mbr[446 + 4] = 0x83
        #expect(FIS.inspectAllWays(mbr).detected == "raw")
    }

    @Test("luks v1 is detected; other versions are refused")
    func luks() throws {
        try FIS.withScratch { dir in
            // qemu-img times its PBKDF to choose the iteration count; on a loaded machine that timing can
            // fail ("Unable to get accurate CPU usage"), so a longer measurement is tried again.
            var attempt = 0
            while true {
                do {
                    try FIS.qemuImg(["create", "-q", "-f", "luks", "--object", "secret,id=sec0,data=test",
                                     "-o", "key-secret=sec0,iter-time=\(attempt == 0 ? 10 : 200)", "x.luks", "256K"], in: dir)
                    break
                } catch let e as FormatInspectorTestError where e.description.contains("Unable to get accurate CPU usage") && attempt < 3 {
                    attempt += 1
                }
            }
            let expected = try FIS.qemuVirtualSize("x.luks", in: dir)
            var bytes = try FIS.read("x.luks", in: dir)
            let result = FIS.inspectAllWays(bytes)
            #expect(result.detected == "luks")
            #expect(result.virtualSize == expected)
            FIS.expectAccepted(result, declared: "luks", virtualSize: expected)
            FIS.patch(&bytes, at: 6, [0, 2])
            FIS.expectRefused(FIS.inspectAllWays(bytes), declared: "luks", containing: ["LUKS version 2"])
        }
    }

    @Test("declared/detected mismatch decisions")
    func mismatches() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "clean.qcow2", "1G"], in: dir)
            try FIS.write(FIS.randomBytes(1 << 20, seed: 1), "base.raw", in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "top.qcow2"], in: dir)
            let cleanBytes = try FIS.read("clean.qcow2", in: dir)
            let clean = FIS.inspectAllWays(cleanBytes)
            let backed = FIS.inspectAllWays(try FIS.read("top.qcow2", in: dir))
            let rawBytes = FIS.randomBytes(1 << 20, seed: 2)
            let raw = FIS.inspectAllWays(rawBytes)

            FIS.expectRefused(clean, declared: "vmdk", containing: ["Image disk_format vmdk does not match stream data qcow2"])
            FIS.expectRefused(raw, declared: "qcow2", containing: ["Image disk_format qcow2 does not match stream data raw"])
            FIS.expectAccepted(clean, declared: "raw", virtualSize: Int64(cleanBytes.count))
            FIS.expectRefused(backed, declared: "raw", containing: ["Image failed safety checks", "backing file"])
            for declared in ["ami", "ari", "aki", "ploop"] {
                FIS.expectAccepted(raw, declared: declared, virtualSize: nil)
            }
            FIS.expectRefused(raw, declared: "iso", containing: ["does not match"])
            FIS.expectRefused(backed, declared: "qcow2", container: "ova", containing: ["backing file"])
            FIS.expectAccepted(clean, declared: "qcow2", container: "ova", virtualSize: 1 << 30)
            FIS.expectAccepted(clean, declared: "raw", container: "ova", virtualSize: nil)
            FIS.expectAccepted(clean, declared: "vmdk", container: "ova", virtualSize: nil)
            FIS.expectAccepted(raw, declared: "raw", virtualSize: Int64(rawBytes.count))
        }
    }

    @Test("polyglot qcow2+iso is refused")
    func polyglot() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            var bytes = try FIS.read("x.qcow2", in: dir)
            #expect(bytes[0x8000 ..< 0x8800].allSatisfy { $0 == 0 })
            FIS.patch(&bytes, at: 0x8000, [1] + Array("CD001".utf8) + [1])
            // qemu still opens it as qcow2.
            try FIS.write(bytes, "poly.qcow2", in: dir)
            #expect(try FIS.qemuVirtualSize("poly.qcow2", in: dir) == 1 << 30)
            let result = FIS.inspectAllWays(bytes)
            #expect(result.allMatched == ["qcow2", "iso"])
            FIS.expectRefused(result, declared: "qcow2", containing: ["Multiple formats detected: qcow2, iso"])
            FIS.expectRefused(result, declared: "raw", containing: ["Multiple formats detected"])
            FIS.expectRefused(result, declared: "iso", container: "ova", containing: ["Multiple formats detected"])
        }
    }

    @Test("truncated headers are refused")
    func truncated() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "x.vmdk", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vhdx", "x.vhdx", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vdi", "x.vdi", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vpc", "x.vhd", "1G"], in: dir)
            let cases: [(file: String, keep: Int, format: String, rule: String)] = [
                ("x.qcow2", 50, "qcow2", "truncated header"),
                ("x.qcow2", 4, "qcow2", "truncated header"),
                ("x.vmdk", 40, "vmdk", "truncated header"),
                ("x.vmdk", 600, "vmdk", "truncated descriptor"),
                ("x.vhdx", 100_000, "vhdx", "truncated (region table"),
                ("x.vhdx", 2 << 20, "vhdx", "truncated (metadata table"),
                ("x.vdi", 100, "vdi", "truncated header"),
                ("x.vhd", 100, "vhd", "truncated footer"),
            ]
            for item in cases {
                let bytes = Array(try FIS.read(item.file, in: dir).prefix(item.keep))
                let result = FIS.inspectAllWays(bytes)
                #expect(result.detected == item.format, "\(item.file) cut at \(item.keep)")
                #expect(result.virtualSize == nil, "\(item.file) cut at \(item.keep)")
                FIS.expectRefused(result, declared: item.format, containing: [item.rule])
                FIS.expectRefused(result, declared: "raw", containing: [item.rule])
            }
            try FIS.run("genisoimage", ["-quiet", "-o", "x.iso", "."], in: dir)
            let iso = Array(try FIS.read("x.iso", in: dir).prefix(0x8100))
            FIS.expectRefused(FIS.inspectAllWays(iso), declared: "iso", containing: ["truncated primary volume descriptor"])
        }
    }

    @Test("memory stays bounded over a 256 MiB stream")
    func boundedMemory() throws {
        var chunk = FIS.randomBytes(1 << 20, seed: 99)
        var inspector = FormatInspector()
        var peak = 0
        for index in 0 ..< 256 {
            chunk[index % chunk.count] &+= 1
            inspector.feed(chunk)
            peak = max(peak, inspector.retainedBytes)
        }
        #expect(inspector.bytesSeen == 256 << 20)
        #expect(peak <= 64 << 10, "retained \(peak) bytes")
        let result = inspector.finish()
        #expect(result.detected == "raw")
        #expect(result.virtualSize == 256 << 20)
        #expect(!inspector.hasPendingRegion)

        // A vhdx (the format with the most follow-up regions) stays small too.
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "vhdx", "x.vhdx", "1G"], in: dir)
            let bytes = try FIS.read("x.vhdx", in: dir)
            var vhdx = FormatInspector()
            var vhdxPeak = 0
            bytes.withUnsafeBytes { all in
                var offset = 0
                while offset < all.count {
                    let end = min(offset + 4096, all.count)
                    vhdx.feed(UnsafeRawBufferPointer(rebasing: all[offset ..< end]))
                    vhdxPeak = max(vhdxPeak, vhdx.retainedBytes)
                    offset = end
                }
            }
            #expect(vhdxPeak <= 256 << 10, "retained \(vhdxPeak) bytes")
            #expect(!vhdx.hasPendingRegion)
        }
    }

    @Test("mutated headers never trap and inspect the same in any chunking")
    func mutatedHeaders() throws {
        try FIS.withScratch { dir in
            try FIS.qemuImg(["create", "-q", "-f", "qcow2", "x.qcow2", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vmdk", "x.vmdk", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vpc", "x.vhd", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vdi", "x.vdi", "1G"], in: dir)
            try FIS.qemuImg(["create", "-q", "-f", "vhdx", "x.vhdx", "64M"], in: dir)
            var generator = FIS.Generator(state: 2024)
            for (name, span) in [("x.qcow2", 128), ("x.vmdk", 2048), ("x.vhd", 512), ("x.vdi", 512)] {
                let original = Array(try FIS.read(name, in: dir).prefix(48 << 10))
                for _ in 0 ..< 30 {
                    var bytes = original
                    for _ in 0 ..< 1 + Int(generator.next() % 4) {
                        bytes[Int(generator.next() % UInt64(span))] = UInt8(truncatingIfNeeded: generator.next())
                    }
                    let whole = FIS.inspect(bytes, chunk: bytes.count)
                    #expect(FIS.inspect(bytes, chunk: 61) == whole, "\(name)")
                }
            }
            let vhdx = try FIS.read("x.vhdx", in: dir)
            for _ in 0 ..< 20 {
                var bytes = vhdx
                // The region table header/entries, or the metadata table at 3 MiB.
                let base = generator.next() % 2 == 0 ? 192 << 10 : 3 << 20
                bytes[base + Int(generator.next() % 128)] = UInt8(truncatingIfNeeded: generator.next())
                let whole = FIS.inspect(bytes, chunk: bytes.count)
                #expect(FIS.inspect(bytes, chunk: 4093) == whole)
                if whole.safetyFailure == nil { #expect(whole.virtualSize != nil) }
            }
        }
    }

    @Test("checkDiskFormat rules on constructed inspections")
    func decisionRules() throws {
        let hybrid = FormatInspection(detected: "iso", allMatched: ["iso", "gpt"], virtualSize: 4096,
                                      safetyFailure: nil, bytesSeen: 4096)
        FIS.expectAccepted(hybrid, declared: "iso", virtualSize: 4096)
        #expect(!hybrid.isPolyglot)
        let triple = FormatInspection(detected: "iso", allMatched: ["vhd", "iso", "gpt"], virtualSize: 4096,
                                      safetyFailure: nil, bytesSeen: 4096)
        FIS.expectRefused(triple, declared: "iso", containing: ["Multiple formats detected: vhd, iso, gpt"])
        #expect(triple.isPolyglot)
        let unsafe = FormatInspection(detected: "vmdk", allMatched: ["vmdk"], virtualSize: nil,
                                      safetyFailure: "vmdk: x", bytesSeen: 10)
        FIS.expectRefused(unsafe, declared: "ami", container: "ami", containing: ["Image failed safety checks: vmdk: x"])
        let raw = FormatInspection(detected: "raw", allMatched: [], virtualSize: 10, safetyFailure: nil, bytesSeen: 10)
        FIS.expectAccepted(raw, declared: "ami", container: "ami", virtualSize: nil)
        FIS.expectAccepted(raw, declared: "raw", container: "bare", virtualSize: 10)
        FIS.expectRefused(raw, declared: "vhdx", containing: ["does not match"])
        #expect(FormatRefusal("m").description == "m")
    }
}
