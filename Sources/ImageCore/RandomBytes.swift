#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Random words for ids, read from the system generator (`getrandom`) a block at a time.
///
/// Every request gets a new id, and `SystemRandomNumberGenerator` makes one `getrandom` call per
/// 64-bit word: two system calls per request (1.5 % of a GET on SQLite). A block of 256 bytes (the
/// most `getentropy` gives at once) serves 16 ids; the bytes are the kernel's all the same, each
/// handed out once.
public final class RandomBytes: Sendable {
    public static let shared = RandomBytes()

    static let blockWords = 32
    private let state: Mutex<Block>

    private struct Block: ~Copyable {
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: RandomBytes.blockWords)
        /// The next unused word; `blockWords` when the block is used up.
        var next = RandomBytes.blockWords

        deinit { words.deallocate() }
    }

    init() { state = Mutex(Block()) }

    /// Two fresh random words.
    public func next128() -> (UInt64, UInt64) {
        state.withLock { block in
            if block.next + 2 > Self.blockWords {
                Self.fill(UnsafeMutableRawBufferPointer(start: block.words, count: Self.blockWords * 8))
                block.next = 0
            }
            defer {
                // Spent words are cleared, so a later reader of this memory learns nothing of past ids.
                block.words[block.next] = 0
                block.words[block.next + 1] = 0
                block.next += 2
            }
            return (block.words[block.next], block.words[block.next + 1])
        }
    }

    /// Fills `buffer` (at most 256 bytes) from the system generator (`getentropy`, the `getrandom`
    /// system call); through `SystemRandomNumberGenerator` if that fails.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var done = 0
        if getentropy(buffer.baseAddress!, buffer.count) == 0 { done = buffer.count }
        var generator = SystemRandomNumberGenerator()
        while done < buffer.count {
            var word = generator.next() as UInt64
            let count = min(8, buffer.count - done)
            withUnsafeBytes(of: &word) { buffer.baseAddress!.advanced(by: done).copyMemory(from: $0.baseAddress!, byteCount: count) }
            done += count
        }
    }
}
