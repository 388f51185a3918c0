// What every fuzz target shares: its main (libFuzzer's driver in fuzzing builds, the corpus replayer
// in plain ones), a reader of fuzzer bytes, and a way to run the few async decoders to completion.
import CFuzzer
import Foundation

/// A fuzz target's main: under `-DFUZZING` (with `-sanitize=fuzzer`) libFuzzer's driver with the
/// command line's options and corpus directories; otherwise a replay of the files it names.
public func fuzzMain(_ target: String, _ body: @escaping ([UInt8]) -> Void) -> Never {
    #if FUZZING
    fuzzTarget = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzerTestOneInput(data, size) }
    exit(status)
    #else
    replayCorpus(Array(CommandLine.arguments.dropFirst()), target: target, body)
    #endif
}

/// The test function libFuzzer's callback (a C function, which captures nothing) calls.
nonisolated(unsafe) private var fuzzTarget: (([UInt8]) -> Void)?

#if FUZZING
/// libFuzzer's archive brings its own `main`, which names this function; SwiftPM's entry point (the
/// target's `@main`, which passes the same function to the driver) is the one that runs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let fuzzTarget else { fatalError("libFuzzer's own main ran instead of the target's (no test function)") }
    fuzzTarget(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
#endif

/// Runs `body` on every input named by `paths` (a directory: its regular files, sorted by name; a
/// file: itself) and exits: 0 after at least one input, 2 when none was found. A crash or a failed
/// check in `body` traps, as it would under libFuzzer.
public func replayCorpus(_ paths: [String], target: String, _ body: ([UInt8]) -> Void) -> Never {
    guard !paths.isEmpty else {
        FileHandle.standardError.write(Data("usage: \(target) FILE_OR_DIRECTORY...\n".utf8))
        exit(2)
    }
    var count = 0
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            FileHandle.standardError.write(Data("\(target): no such file or directory: \(path)\n".utf8))
            exit(2)
        }
        let files: [String]
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files = names.sorted().map { path + "/" + $0 }.filter {
                var dir: ObjCBool = false
                return FileManager.default.fileExists(atPath: $0, isDirectory: &dir) && !dir.boolValue
            }
        } else {
            files = [path]
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("\(target): cannot read \(file)\n".utf8))
                exit(2)
            }
            body(Array(data))
            count += 1
        }
    }
    print("\(target): replayed \(count) inputs")
    exit(count > 0 ? 0 : 2)
}

/// The fuzzer's bytes as a stream of choices: small integers first, the rest as the payload.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte, 0 once the input is used up.
    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func choice(_ count: Int) -> Int { Int(byte()) % count }

    public mutating func flag() -> Bool { byte() & 1 == 1 }

    /// The next `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(position + max(count, 0), bytes.count)
        defer { position = end }
        return Array(bytes[position ..< end])
    }

    public var isAtEnd: Bool { position >= bytes.count }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return position < bytes.count ? Array(bytes[position...]) : []
    }
}

/// Stops the process the way libFuzzer reports a crash (and a replay fails) when a property the
/// target checks does not hold.
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError("fuzz check failed: \(message())", file: file, line: line) }
}

/// Runs an async decoder to completion from synchronous code. The work must not wait on the
/// calling thread (it never does here: the decoders only compute).
public func runBlocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let value = try await work()
            box.result = Result<T, any Error>.success(value)
        } catch {
            box.result = Result<T, any Error>.failure(error)
        }
        done.signal()
    }
    done.wait()
    return box.result!
}

/// Written by the task, read after the semaphore: never at the same time.
final class ResultBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }
