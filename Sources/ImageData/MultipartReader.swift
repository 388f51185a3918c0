import Foundation
import NIOCore

/// Reads a `multipart/form-data` body part by part without holding it: part headers go into a
/// bounded buffer, part bodies come out chunk by chunk as they arrive (pulled, so a slow consumer
/// slows the upload instead of buffering it). The delimiter may be split across chunks, so the
/// last `delimiter.count - 1` bytes are held back until the next chunk shows whether they start it.
/// One task uses a reader; it is not shared.
public final class MultipartReader<Body: AsyncSequence> where Body.Element == ByteBuffer {
    public struct Part: Sendable, Equatable {
        public var name: String?
        public var filename: String?
        public var contentType: String?
    }

    public struct Malformed: Error, Equatable { public let reason: String }

    private var iterator: Body.AsyncIterator
    private var pending: [UInt8] = []
    private var exhausted = false
    private let opening: [UInt8]
    private let delimiter: [UInt8]
    /// Where the reader is: before the first part, inside a part's body, or done.
    private enum State { case start, inBody, betweenParts, done }
    private var state = State.start
    static var maxHeaderBytes: Int { 16 << 10 }

    public init(body: Body, boundary: String) {
        iterator = body.makeAsyncIterator()
        opening = Array("--".utf8) + Array(boundary.utf8)
        delimiter = Array("\r\n--".utf8) + Array(boundary.utf8)
    }

    /// The boundary of a `multipart/form-data; boundary=…` content type.
    public static func boundary(of contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() where p.lowercased().hasPrefix("boundary=") {
            var b = String(p.dropFirst("boundary=".count))
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            return b.isEmpty || b.utf8.count > 70 ? nil : b
        }
        return nil
    }

    private func more() async throws -> Bool {
        guard !exhausted, let chunk = try await iterator.next() else { exhausted = true; return false }
        pending.append(contentsOf: chunk.readableBytesView)
        return true
    }

    /// The next part's headers, after skipping what is left of the current one; nil after the last part.
    public func nextPart() async throws -> Part? {
        switch state {
        case .done: return nil
        case .inBody: while try await nextChunk() != nil {}
        case .start:
            while Self.index(of: opening, in: pending) == nil {
                if pending.count > Self.maxHeaderBytes { throw Malformed(reason: "no multipart boundary") }
                guard try await more() else { throw Malformed(reason: "no multipart boundary") }
            }
            pending.removeFirst(Self.index(of: opening, in: pending)! + opening.count)
        case .betweenParts: break
        }
        // After a delimiter: `--` ends the body, CRLF starts a part.
        while pending.count < 2 { guard try await more() else { throw Malformed(reason: "truncated multipart body") } }
        if pending[0] == UInt8(ascii: "-"), pending[1] == UInt8(ascii: "-") { state = .done; return nil }
        guard pending[0] == 13, pending[1] == 10 else { throw Malformed(reason: "bad multipart delimiter") }
        pending.removeFirst(2)
        let headerEnd = Array("\r\n\r\n".utf8)
        while Self.index(of: headerEnd, in: pending) == nil {
            if pending.count > Self.maxHeaderBytes { throw Malformed(reason: "multipart part headers too long") }
            guard try await more() else { throw Malformed(reason: "truncated multipart part headers") }
        }
        let end = Self.index(of: headerEnd, in: pending)!
        let part = Self.parseHeaders(String(decoding: pending[..<end], as: UTF8.self))
        pending.removeFirst(end + headerEnd.count)
        state = .inBody
        return part
    }

    /// The next bytes of the current part's body; nil at its end.
    public func nextChunk() async throws -> ByteBuffer? {
        guard state == .inBody else { return nil }
        while true {
            if let at = Self.index(of: delimiter, in: pending) {
                let chunk = ByteBuffer(bytes: pending[..<at])
                pending.removeFirst(at + delimiter.count)
                state = .betweenParts
                if chunk.readableBytes > 0 { return chunk }
                return nil
            }
            // Everything but a possible start of the delimiter can go on.
            let safe = pending.count - (delimiter.count - 1)
            if safe > 0 {
                let chunk = ByteBuffer(bytes: pending[..<safe])
                pending.removeFirst(safe)
                return chunk
            }
            guard try await more() else { throw Malformed(reason: "truncated multipart part") }
        }
    }

    /// The current part's body as a sequence (for the data path, which pulls).
    public var partBody: PartBody { PartBody(reader: self) }

    public struct PartBody: AsyncSequence {
        public typealias Element = ByteBuffer
        let reader: MultipartReader
        public struct AsyncIterator: AsyncIteratorProtocol {
            let reader: MultipartReader
            public mutating func next() async throws -> ByteBuffer? { try await reader.nextChunk() }
        }
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: reader) }
    }

    /// First occurrence of `needle` (memchr for its first byte, memcmp for the rest: no allocation).
    static func index(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        let n = needle.count
        guard n > 0, haystack.count >= n else { return nil }
        return haystack.withUnsafeBufferPointer { hay -> Int? in
            needle.withUnsafeBufferPointer { nd -> Int? in
                guard let base = hay.baseAddress, let nbase = nd.baseAddress else { return nil }
                var i = 0
                while i <= hay.count - n {
                    guard let hit = memchr(base + i, Int32(nbase[0]), hay.count - n - i + 1) else { return nil }
                    i = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + i, nbase, n) == 0 { return i }
                    i += 1
                }
                return nil
            }
        }
    }

    static func parseHeaders(_ text: String) -> Part {
        var part = Part()
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-type" { part.contentType = value }
            guard name == "content-disposition" else { continue }
            for param in value.split(separator: ";").dropFirst() {
                let kv = param.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                var v = kv[1].trimmingCharacters(in: .whitespaces)
                if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
                switch kv[0].trimmingCharacters(in: .whitespaces).lowercased() {
                case "name": part.name = v
                case "filename": part.filename = v
                default: break
                }
            }
        }
        return part
    }
}
