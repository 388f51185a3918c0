import Foundation
import ImageCore
import Logging
import NIOCore
import Testing
@testable import ImageData

/// What the converter decides and runs; the conversions themselves are in tests/e2e/test_conversion.py.
@Suite struct ImageConversionTests {
    @Test func convertToIsReadFromTheImportRequest() throws {
        #expect(try ConversionTarget.requested(in: .object([])) == nil)
        #expect(try ConversionTarget.requested(in: .object([("convert_to", .null)])) == nil)
        #expect(try ConversionTarget.requested(in: .object([("convert_to", .string("raw"))])) == .raw)
        #expect(try ConversionTarget.requested(in: .object([("convert_to", .string("qcow2"))])) == .qcow2)
        for bad: JSONValue in [.string("vhd"), .string("RAW"), .int(1), .bool(true)] {
            #expect(throws: ImageError.self) { try ConversionTarget.requested(in: .object([("convert_to", bad)])) }
        }
    }

    @Test func onlyDiskFormatsOtherThanTheTargetAreConverted() {
        for f in ["qcow2", "vmdk", "vhd", "vhdx", "vdi", "qed"] { #expect(ConversionTarget.raw.converts(f), "\(f)") }
        for f in ["raw", "iso", "gpt", "luks"] { #expect(!ConversionTarget.raw.converts(f), "\(f)") }
        #expect(ConversionTarget.qcow2.converts("raw"))
        #expect(!ConversionTarget.qcow2.converts("qcow2"))
        #expect(ImageConverter.qemuFormat("vhd") == "vpc")
    }

    @Test func qemuImgRunsUnderLimitsWithTheSourceFormatNamed() throws {
        let dir = NSTemporaryDirectory() + "/imaged-conv-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = ConversionConfig(directory: dir)
        config.timeoutSeconds = 77
        let converter = try ImageConverter(config: config, logger: Logger(label: "test"))
        let argv = converter.commandLine(source: "/s/a.src", format: "vhd", target: .raw, output: "/s/a.raw", maxOutputBytes: 12345)
        // No network: a namespace of its own whenever the node may make one (root here, or user namespaces).
        if argv.first == "unshare" { #expect(argv.contains("--net")) }
        let limits = try #require(argv.firstIndex(of: "prlimit"))
        #expect(argv[limits...].contains("--as=\(4 << 30)"))
        #expect(argv[limits...].contains("--cpu=77"))
        #expect(argv[limits...].contains("--fsize=12345"))
        #expect(argv[limits...].contains("--core=0"))
        let timeout = try #require(argv.firstIndex(of: "timeout"))
        #expect(Array(argv[timeout...].prefix(3)) == ["timeout", "--signal=KILL", "77"])
        #expect(Array(argv.suffix(9)) == ["qemu-img", "convert", "-q", "-f", "vpc", "-O", "raw", "/s/a.src", "/s/a.raw"])
    }

    @Test func leftoverScratchFilesAreRemovedAtStart() throws {
        let dir = NSTemporaryDirectory() + "/imaged-conv-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/conv-old.src", contents: Data([1, 2, 3]))
        FileManager.default.createFile(atPath: dir + "/keep.txt", contents: Data([1]))
        _ = try ImageConverter(config: ConversionConfig(directory: dir), logger: Logger(label: "test"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["keep.txt"])
    }

    /// qemu-img refusing the data is the client's problem (400 naming it); no output is left behind.
    @Test func aFailedConversionIs400AndLeavesNoOutput() async throws {
        let dir = NSTemporaryDirectory() + "/imaged-conv-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = ConversionConfig(directory: dir)
        config.qemuImg = "false"  // coreutils' false: exits 1 whatever it is asked
        let converter = try ImageConverter(config: config, logger: Logger(label: "test"))
        let scratch = try converter.scratchWriter()
        try await scratch.write(ByteBuffer(bytes: [1, 2, 3]))
        try await scratch.commit()
        do {
            _ = try await converter.convert(source: scratch.path, format: "qcow2", to: .raw, maxOutputBytes: 1 << 20)
            Issue.record("a failing qemu-img converted")
        } catch let e as ImageError {
            #expect(e.kind == .badRequest)
            #expect(e.message.contains("from qcow2 to raw failed"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [URL(fileURLWithPath: scratch.path).lastPathComponent])
    }

    /// The child runner (posix_spawn, not Foundation's Process): exit codes, stderr, the PATH-only
    /// environment, no inherited descriptors or ignored signals, and the timeout's kill.
    @Test func childProcessesRunWithTheirStatusStderrAndNothingInherited() throws {
        let shell = ["/bin/sh", "-c"]
        let exit3 = try ImageConverter.run(shell + ["echo complaint >&2; exit 3"], timeout: 10)
        #expect(exit3.status == 3)
        #expect(exit3.stderr == "complaint\n")
        // Only PATH, LC_ALL and MALLOC_ARENA_MAX reach the child: no credentials from the server's environment.
        let env = try ImageConverter.run(shell + ["env | sort >&2"], timeout: 10)
        #expect(env.status == 0)
        let names: [String] = env.stderr.split(separator: "\n").map { line in String(line.prefix { $0 != "=" }) }
        #expect(names.filter { $0 != "PWD" } == ["LC_ALL", "MALLOC_ARENA_MAX", "PATH"])
        // A descriptor this process holds open is not the child's (closefrom 3).
        let held = open("/dev/null", O_RDONLY)  // no O_CLOEXEC on purpose
        defer { close(held) }
        let fds = try ImageConverter.run(shell + ["ls /proc/self/fd >&2"], timeout: 10)
        let childFDs: [String] = fds.stderr.split(separator: "\n").map(String.init)
        #expect(!childFDs.contains(String(held)))
        #expect(childFDs.contains("2"))
        // The server ignores SIGPIPE (as this process does now); the child gets the default back, so the
        // shell dies of the SIGPIPE it sends itself (128 + 13). A shell started with it ignored exits 0.
        signal(SIGPIPE, SIG_IGN)
        let pipe = try ImageConverter.run(shell + ["kill -PIPE $$; exit 0"], timeout: 10)
        #expect(pipe.status == 128 + 13)
        // A stuck child is killed at the timeout and reported as 137.
        let started = ContinuousClock.now
        let stuck = try ImageConverter.run(["/bin/sleep", "30"], timeout: 1)
        #expect(stuck.status == 137)
        #expect(started.duration(to: .now) < .seconds(10))
        // Where the kernel has no pidfd_open, the wait polls: the same status, the same timeout.
        #expect(try ImageConverter.run(shell + ["sleep 0.2; exit 4"], timeout: 10, pidfd: false).status == 4)
        #expect(try ImageConverter.run(["/bin/sleep", "30"], timeout: 1, pidfd: false).status == 137)
        // A missing program is an error the caller reports, not a crash.
        #expect(throws: ImageError.self) { try ImageConverter.run(["/nonexistent/qemu-img"], timeout: 10) }
    }

    /// The first MiB decides: bytes already in the target format go straight to the store, others to scratch.
    @Test func theHeadDecidesBetweenStoreAndScratch() async throws {
        let dir = NSTemporaryDirectory() + "/imaged-conv-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var qcow2Header = [UInt8](repeating: 0, count: 2 << 20)
        qcow2Header.replaceSubrange(0..<8, with: [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3])  // "QFI\xfb", version 3
        qcow2Header[23] = 16  // cluster_bits 16
        for (bytes, toScratch) in [([UInt8](repeating: 7, count: 3 << 20), false), (qcow2Header, true), ([UInt8](repeating: 1, count: 100), false)] {
            let memory = MemoryWriter()
            let w = ConvertingWriter(target: .raw, store: { memory },
                                     scratch: { try ScratchFile(path: dir + "/conv-\(UUID().uuidString).src") })
            var rest = bytes[...]
            while !rest.isEmpty {
                let n = min(300_000, rest.count)
                try await w.write(ByteBuffer(bytes: rest.prefix(n)))
                rest = rest.dropFirst(n)
            }
            try await w.commit()
            if toScratch {
                let scratch = try #require(w.scratch)
                #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path)) == Data(bytes))
                #expect(memory.bytes.isEmpty)
            } else {
                #expect(w.scratch == nil)
                #expect(memory.bytes == bytes && memory.committed)
            }
        }
    }
}

/// A blob writer that keeps the bytes in memory (unit test double for the store side).
private final class MemoryWriter: BlobWriter, @unchecked Sendable {
    var bytes: [UInt8] = []
    var committed = false
    func write(_ buffer: ByteBuffer) async throws { bytes += buffer.readableBytesView }
    func commit() async throws { committed = true }
    func cancel() async { bytes = [] }
}
