import CChildProcess
import Foundation
import ImageCore
import Logging
import NIOCore

/// The disk formats an ingest can convert image data to (`"convert_to"` on an import, `?convert=` on a store).
public enum ConversionTarget: String, Sendable, CaseIterable {
    case raw, qcow2

    /// The import's `"convert_to"`: absent means the store's setting; anything but a known target is 400.
    public static func requested(in importRequest: JSONValue) throws -> ConversionTarget? {
        guard let value = importRequest["convert_to"], value != .null else { return nil }
        guard let name = value.stringValue, let target = ConversionTarget(rawValue: name) else {
            throw ImageError.badRequest("'convert_to' must be one of \(allCases.map(\.rawValue).joined(separator: ", ")); got \(value).")
        }
        return target
    }

    /// Whether bytes detected as `format` are converted: a format qemu-img reads that is not already the
    /// target. Disk-in-a-file formats only: an ISO, a bare GPT disk or LUKS volume is kept as it is.
    public func converts(_ format: String) -> Bool {
        format != rawValue && ImageConverter.qemuFormat(format) != nil
    }
}

public struct ConversionConfig: Sendable {
    /// The qemu-img binary (Debian's qemu-utils).
    public var qemuImg = "qemu-img"
    /// Local scratch space for the source and the converted file (each node its own; emptied at start).
    public var directory: String
    /// The conversion is killed after this many seconds (wall clock and CPU).
    public var timeoutSeconds = 3600
    /// Address-space limit of the qemu-img process.
    public var memoryLimitBytes: Int64 = 4 << 30
    public init(directory: String) { self.directory = directory }
}

/// Runs `qemu-img convert` as a sandboxed child: no network (a network namespace of its own when the
/// node may make one), address-space, CPU, file-size and open-file limits, a wall-clock timeout, an
/// empty environment, the source format always named (`-f`, never probed). The source was inspected
/// before (no backing or data files, no polyglot), so qemu-img only ever opens the two scratch files.
public final class ImageConverter: Sendable {
    public let config: ConversionConfig
    let logger: Logger
    private let isolation: Isolation

    enum Isolation: Sendable, Equatable {
        case netns       // unshare --net (root)
        case userns      // unshare --map-root-user --net (unprivileged user namespaces)
        case none
    }

    public init(config: ConversionConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let fm = FileManager.default
        try fm.createDirectory(atPath: config.directory, withIntermediateDirectories: true)
        // Scratch files of a conversion this node was running when it stopped.
        for name in (try? fm.contentsOfDirectory(atPath: config.directory)) ?? [] where name.hasPrefix("conv-") {
            try? fm.removeItem(atPath: config.directory + "/" + name)
        }
        isolation = Self.probedIsolation
        if isolation == .none {
            logger.warning("image conversion runs without a network namespace (unshare refused); rlimits and timeout still apply")
        }
    }

    /// Whether qemu-img can be run at all (a store that converts needs it at start).
    public func available() -> Bool {
        (try? Self.run(["/usr/bin/env", config.qemuImg, "--version"], timeout: 20).status) == 0
    }

    /// qemu-img's name for an inspector's format, nil when qemu-img should not convert it.
    static func qemuFormat(_ detected: String) -> String? {
        switch detected {
        case "raw", "qcow2", "vmdk", "vhdx", "vdi", "qed": return detected
        case "vhd": return "vpc"
        default: return nil
        }
    }

    /// A new scratch file for a source, as a blob writer (no fsync: it lives for one conversion).
    func scratchWriter() throws -> ScratchFile {
        try ScratchFile(path: config.directory + "/conv-" + ImageID.generate() + ".src")
    }

    /// The command line that converts `source` (detected as `format`) into `output`.
    func commandLine(source: String, format: String, target: ConversionTarget, output: String, maxOutputBytes: Int64) -> [String] {
        var argv: [String]
        switch isolation {
        case .netns: argv = ["unshare", "--net", "--"]
        case .userns: argv = ["unshare", "--map-root-user", "--net", "--"]
        case .none: argv = []
        }
        argv += ["prlimit", "--as=\(config.memoryLimitBytes)", "--cpu=\(config.timeoutSeconds)", "--fsize=\(maxOutputBytes)",
                 "--nofile=128", "--core=0", "--",
                 "timeout", "--signal=KILL", "\(config.timeoutSeconds)",
                 config.qemuImg, "convert", "-q", "-f", Self.qemuFormat(format) ?? format, "-O", target.rawValue, source, output]
        return argv
    }

    /// Converts the scratch file `source` into a new scratch file and returns its path (the caller removes it).
    /// Fails with 400 naming qemu-img's complaint (the data is the client's), 500 when qemu-img cannot run.
    func convert(source: String, format: String, to target: ConversionTarget, maxOutputBytes: Int64) async throws -> String {
        let output = source.replacingOccurrences(of: ".src", with: ".\(target.rawValue)")
        let argv = commandLine(source: source, format: format, target: target, output: output, maxOutputBytes: maxOutputBytes)
        let started = ContinuousClock.now
        let outcome: (status: Int32, stderr: String)
        do {
            outcome = try await ImageIngest.digestThreads.runIfActive { [timeout = config.timeoutSeconds] in
                try Self.run(["/usr/bin/env"] + argv, timeout: timeout + 30)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: output)
            throw ImageError(.internal, "Image conversion could not run qemu-img: \(error).")
        }
        guard outcome.status == 0 else {
            try? FileManager.default.removeItem(atPath: output)
            let why = outcome.stderr.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300)
            if outcome.status == 127 { throw ImageError(.internal, "Image conversion needs qemu-img (Debian's qemu-utils): \(why)") }
            if outcome.status == 137 || outcome.status == 124 {
                throw ImageError(.internal, "Image conversion from \(format) to \(target.rawValue) took longer than \(config.timeoutSeconds) s.")
            }
            throw ImageError.badRequest("Image conversion from \(format) to \(target.rawValue) failed: \(why.isEmpty ? "qemu-img exit \(outcome.status)" : String(why))")
        }
        let took = started.duration(to: .now).components
        logger.info("image converted", metadata: ["from": .string(format), "to": .string(target.rawValue),
                                                  "ms": "\(took.seconds * 1000 + took.attoseconds / 1_000_000_000_000_000)"])
        return output
    }

    /// Runs a command with an empty environment (PATH only); returns its exit status (128 + the signal
    /// for a child a signal ended, 137 when the timeout killed it) and what it wrote to stderr.
    /// A stuck child is killed after `timeout` seconds. Blocks the calling thread (callers run it on a
    /// pool thread); the spawn is our own posix_spawn, not Foundation's Process (see CChildProcess).
    /// `pidfd: false` (tests) takes the path of a kernel without pidfd_open.
    static func run(_ argv: [String], timeout: Int, pidfd: Bool = true) throws -> (status: Int32, stderr: String) {
        let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "MALLOC_ARENA_MAX=2"]
        // A file, not a pipe: a chatty child never blocks on a full pipe while nobody reads it.
        let errPath = NSTemporaryDirectory() + "/imaged-conv-\(ImageID.generate()).err"
        let errFD = open(errPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard errFD >= 0 else { throw ImageError(.internal, "cannot create \(errPath): errno \(errno)") }
        unlink(errPath)  // the open descriptor is all we read it through
        defer { close(errFD) }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgv + cEnv).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = imaged_spawn(argv[0], cArgv, cEnv, errFD, &pid)
        guard spawned == 0 else { throw ImageError(.internal, "cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        var killed: Int32 = 0
        let waited = imaged_wait_child(pid, Int32(clamping: timeout * 1000), pidfd ? 1 : 0, &status, &killed)
        guard waited == 0 else { throw ImageError(.internal, "cannot wait for \(argv[0]): \(String(cString: strerror(waited)))") }
        let signal = status & 0x7f
        let code: Int32 = killed != 0 ? 137 : signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return (code, readStderr(errFD))
    }

    /// The first 64 KiB the child wrote to stderr (the message is quoted, never whole).
    private static func readStderr(_ fd: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 64 << 10)
        var filled = 0
        while filled < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            filled += n
        }
        return String(decoding: bytes[..<filled], as: UTF8.self)
    }

    /// What this host allows, probed once per process (two child processes; the answer does not change).
    static let probedIsolation = probeIsolation()

    static func probeIsolation() -> Isolation {
        if (try? run(["/usr/bin/env", "unshare", "--net", "--", "true"], timeout: 10).status) == 0 { return .netns }
        if (try? run(["/usr/bin/env", "unshare", "--map-root-user", "--net", "--", "true"], timeout: 10).status) == 0 { return .userns }
        return .none
    }
}

/// A local scratch file written through the blob-writer interface (the conversion's source).
final class ScratchFile: BlobWriter, @unchecked Sendable {
    let path: String
    private let fd: Int32
    private var closed = false

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError(.internal, "cannot create conversion scratch file \(path): errno \(errno)") }
        self.path = path
    }

    func write(_ buffer: ByteBuffer) async throws {
        let fd = self.fd
        try await ImageIngest.digestThreads.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw BlobStoreError(errno == ENOSPC ? .noSpace : .io, "conversion scratch file: errno \(errno)")
                    }
                    done += n
                }
            }
        }
    }

    /// The file is complete (it stays local: the conversion reads it, then removes it).
    func commit() async throws { closeOnce() }

    func cancel() async {
        closeOnce()
        unlink(path)
    }

    /// Never twice: the number may already belong to another file.
    private func closeOnce() {
        if !closed { closed = true; close(fd) }
    }

    /// Streams a local file in `chunk`-sized buffers (reads on the digest threads).
    static func read(_ path: String, chunk: Int = 1 << 20, into sink: (ByteBuffer) async throws -> Void) async throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError(.internal, "cannot open converted image \(path): errno \(errno)") }
        defer { close(fd) }
        while true {
            let buffer = try await ImageIngest.digestThreads.runIfActive { () throws -> ByteBuffer in
                var b = ByteBufferAllocator().buffer(capacity: chunk)
                var failed: Int32 = 0
                b.writeWithUnsafeMutableBytes(minimumWritableBytes: chunk) { ptr in
                    var got = 0
                    while got < chunk {
                        let r = Glibc.read(fd, ptr.baseAddress! + got, chunk - got)
                        if r < 0 && errno == EINTR { continue }
                        if r < 0 { failed = errno }
                        if r <= 0 { break }
                        got += r
                    }
                    return got
                }
                // A read error must not pass for the end of the file: the image would be stored cut short.
                if failed != 0 { throw BlobStoreError(.io, "reading the converted image: errno \(failed)") }
                return b
            }
            if buffer.readableBytes == 0 { return }
            try await sink(buffer)
        }
    }
}

/// Holds the first bytes of the (decompressed) image until their format is known, then sends
/// everything either to the store's writer or, when the bytes need converting, to a scratch file.
/// So an image that is already in the target format costs nothing extra.
final class ConvertingWriter: BlobWriter, @unchecked Sendable {
    static let headBytes = 1 << 20
    let target: ConversionTarget
    private let makeStoreWriter: @Sendable () async throws -> any BlobWriter
    private let makeScratch: @Sendable () throws -> ScratchFile
    private var head = ByteBuffer()
    private var chosen: (any BlobWriter)?
    private(set) var scratch: ScratchFile?
    private var cancelled = false

    init(target: ConversionTarget, store: @escaping @Sendable () async throws -> any BlobWriter,
         scratch: @escaping @Sendable () throws -> ScratchFile) {
        self.target = target; makeStoreWriter = store; makeScratch = scratch
    }

    func write(_ buffer: ByteBuffer) async throws {
        if let chosen { return try await chosen.write(buffer) }
        var buffer = buffer
        head.writeBuffer(&buffer)
        if head.readableBytes >= Self.headBytes { try await choose() }
    }

    private func choose() async throws {
        var inspector = FormatInspector()
        head.withUnsafeReadableBytes { inspector.feed($0) }
        let detected = inspector.finish().detected
        let writer: any BlobWriter
        if target.converts(detected) {
            let s = try makeScratch()
            scratch = s
            writer = s
        } else {
            writer = try await makeStoreWriter()
        }
        chosen = writer
        let first = head
        head = ByteBuffer()
        if first.readableBytes > 0 { try await writer.write(first) }
    }

    func commit() async throws {
        if chosen == nil { try await choose() }
        try await chosen!.commit()
    }

    func cancel() async {
        await chosen?.cancel()
    }
}
