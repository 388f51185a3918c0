import AsyncHTTPClient
import Foundation
import ImageCore
import NIOCore

/// Parallel ranged web-download. The first GET of an import asks for the first chunk
/// (`Range: bytes=0-…`); an origin that answers 206 with the whole length in `Content-Range` and a
/// validator (a strong ETag, else Last-Modified) is read with up to `connections` ranged GETs at
/// once, all on the hop that answered (the URL guard's pinned address, so no DNS rebinding between
/// ranges). Every further GET carries `If-Range: <validator>`: a 200 instead of 206, another ETag
/// or another length means the object changed, and the download fails (nothing is committed).
///
/// The ingest computes digests and the format inspection on the stream, so chunks are handed to
/// the sink in order: at most `connections` chunks are fetched or waiting at any time (a bounded
/// reorder window, `connections × chunkSize` bytes of memory whatever the image's size). A range
/// that fails is asked again from the first byte not yet received, a few times.
struct RangedDownload: Sendable {
    let client: HTTPClient
    let url: String
    /// The caller's headers for this hop (only when it is the first URL's origin).
    let headers: [(String, String)]
    let total: Int64
    let validator: Validator?
    let deadline: NIODeadline
    let attempts: Int

    /// What identifies one version of the object: a strong ETag, else Last-Modified.
    struct Validator: Sendable, Equatable {
        enum Kind: Sendable { case etag, lastModified }
        let kind: Kind
        let value: String

        init?(_ response: HTTPClientResponse) {
            let headers = response.headers
            if let etag = headers.first(name: "etag"), !etag.hasPrefix("W/"), etag.hasPrefix("\"") {
                kind = .etag; value = etag
            } else if let date = headers.first(name: "last-modified"), !date.isEmpty {
                kind = .lastModified; value = date
            } else {
                return nil
            }
        }

        /// The same kind of validator in a later answer, if it sent one.
        func current(in response: HTTPClientResponse) -> String? {
            response.headers.first(name: kind == .etag ? "etag" : "last-modified")
        }
    }

    /// `Content-Range: bytes first-last/complete`, with a known length.
    struct ContentRange: Equatable {
        let first: Int64, last: Int64, complete: Int64

        init?(_ text: String?) {
            guard let text, text.lowercased().hasPrefix("bytes ") else { return nil }
            let parts = text.dropFirst(6).split(separator: "/")
            guard parts.count == 2, let complete = Int64(parts[1].trimmingCharacters(in: .whitespaces)) else { return nil }
            let bounds = parts[0].split(separator: "-")
            guard bounds.count == 2, let first = Int64(bounds[0].trimmingCharacters(in: .whitespaces)),
                  let last = Int64(bounds[1].trimmingCharacters(in: .whitespaces)),
                  first >= 0, first <= last, last < complete else { return nil }
            self.first = first; self.last = last; self.complete = complete
        }
    }

    /// A transport failure or a short answer: worth asking again from where it stopped.
    struct Retryable: Error, CustomStringConvertible { let description: String }
    /// The sink refused the bytes (quota, size, pinned digest…): never retried, passed on as is.
    struct SinkFailed: Error { let underlying: any Error }

    func changed(_ detail: String) -> ImageError {
        ImageError.badRequest("The object at \(url) changed during the download (\(detail)); nothing was stored, import it again.")
    }

    /// Reads the object: the first answer's bytes `0..<firstEnd` (`first`, already a 206), then
    /// the rest, in parallel ranges when `parallel`, else in one ranged GET.
    func run(first: HTTPClientResponse, firstEnd: Int64, chunkSize: Int64, connections: Int,
             into sink: (ByteBuffer) async throws -> Void) async throws {
        let rest = stride(from: firstEnd, to: total, by: Int(chunkSize)).map { $0..<min($0 + chunkSize, total) }
        // Without a validator a resumed or parallel range could mix two versions: one stream then.
        guard validator != nil, connections > 1, rest.count > 1 else {
            try await fetch(0..<firstEnd, answered: first, into: sink)
            if firstEnd < total { try await fetch(firstEnd..<total, into: sink) }
            return
        }
        try await withThrowingTaskGroup(of: (Int, ByteBuffer).self) { group in
            var launched = 0
            // The first chunk streams on its own connection meanwhile: N - 1 others to begin with.
            while launched < min(rest.count, connections - 1) {
                let index = launched, range = rest[index]
                group.addTask { (index, try await self.buffered(range)) }
                launched += 1
            }
            try await fetch(0..<firstEnd, answered: first, into: sink)
            var ready: [Int: ByteBuffer] = [:]
            var next = 0
            while next < rest.count {
                if let chunk = ready.removeValue(forKey: next) {
                    do { try await sink(chunk) } catch { throw SinkFailed(underlying: error) }
                    next += 1
                    // The window: chunks next ..< next + connections are fetched or waiting, no more.
                    while launched < rest.count, launched < next + connections {
                        let index = launched, range = rest[index]
                        group.addTask { (index, try await self.buffered(range)) }
                        launched += 1
                    }
                    continue
                }
                guard let (index, chunk) = try await group.next() else { break }
                ready[index] = chunk
            }
        }
    }

    /// One range, kept in memory.
    func buffered(_ range: Range<Int64>) async throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: Int(range.upperBound - range.lowerBound))
        try await fetch(range) { part in buffer.writeImmutableBuffer(part) }
        return buffer
    }

    /// One range into `deliver`, in order; a failed GET is asked again from the first missing byte.
    /// `answered` is a response already received for this range (the first GET).
    func fetch(_ range: Range<Int64>, answered: HTTPClientResponse? = nil,
               into deliver: (ByteBuffer) async throws -> Void) async throws {
        var received: Int64 = 0
        var pending = answered
        var failures = 0
        let length = range.upperBound - range.lowerBound
        while received < length {
            do {
                let response: HTTPClientResponse
                if let answer = pending {
                    pending = nil
                    response = answer
                } else {
                    response = try await get(range.lowerBound + received..<range.upperBound)
                }
                try await read(response, expecting: length - received) { part in
                    received += Int64(part.readableBytes)
                    do { try await deliver(part) } catch { throw SinkFailed(underlying: error) }
                }
            } catch let e as SinkFailed {
                throw e.underlying
            } catch let e as ImageError {
                throw e
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failures += 1
                // Without a validator a resumed range could be another version's bytes.
                guard failures < attempts, validator != nil, !Task.isCancelled else {
                    throw ImageError.badRequest("Fetching bytes \(range.lowerBound + received)-\(range.upperBound - 1) of \(url) failed"
                        + " (\(failures) attempt\(failures == 1 ? "" : "s")): \(error)")
                }
                try await Task.sleep(for: .milliseconds(100 * failures))
            }
        }
    }

    /// One ranged GET with If-Range; its answer is checked to be these bytes of the same object.
    func get(_ range: Range<Int64>) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "imaged-web-download")
        request.headers.add(name: "Accept-Encoding", value: "identity")
        request.headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound - 1)")
        if let validator { request.headers.add(name: "If-Range", value: validator.value) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, deadline: deadline)
        switch response.status.code {
        case 206:
            guard let answered = ContentRange(response.headers.first(name: "content-range")) else {
                throw ImageError.badRequest("\(url) answered a range request without a usable Content-Range.")
            }
            if let validator, let now = validator.current(in: response), now != validator.value {
                throw changed("\(validator.kind == .etag ? "ETag" : "Last-Modified") was \(validator.value), now \(now)")
            }
            guard answered.complete == total else { throw changed("its length was \(total) bytes, now \(answered.complete)") }
            guard answered.first == range.lowerBound, answered.last <= range.upperBound - 1 else {
                throw ImageError.badRequest("\(url) answered bytes \(answered.first)-\(answered.last) when asked for \(range.lowerBound)-\(range.upperBound - 1).")
            }
            return response
        case 200:
            // If-Range did not match: the server sends the whole, newer object.
            throw changed("the server answered If-Range with the whole object")
        case 416:
            throw changed("the range is no longer satisfiable")
        case 408, 429, 500...599:
            throw Retryable(description: "HTTP \(response.status.code) \(response.status.reasonPhrase)")
        default:
            throw ImageError.badRequest("Fetching \(url) failed: HTTP \(response.status.code) \(response.status.reasonPhrase).")
        }
    }

    /// A 206's body, at most `limit` bytes of it; fewer than its Content-Range named is a retryable failure.
    func read(_ response: HTTPClientResponse, expecting limit: Int64,
              into deliver: (ByteBuffer) async throws -> Void) async throws {
        let answered = ContentRange(response.headers.first(name: "content-range"))
        let expected = min(limit, answered.map { $0.last - $0.first + 1 } ?? limit)
        var got: Int64 = 0
        for try await buffer in response.body {
            got += Int64(buffer.readableBytes)
            guard got <= expected else { throw ImageError.badRequest("\(url) sent more bytes than the range it answered.") }
            try await deliver(buffer)
        }
        if got < expected { throw Retryable(description: "the answer ended after \(got) of \(expected) bytes") }
    }
}
