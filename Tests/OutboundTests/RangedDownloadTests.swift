import Hummingbird
import HummingbirdTesting
import ImageCore
import NIOCore
import Synchronization
import Testing
@testable import Outbound

/// A real origin that serves `/ranged` with byte ranges and an ETag, and records the Range and
/// If-Range of every request; `/to-ranged` redirects there. `laterETag` is the ETag of every answer
/// after the first, sent by an origin that ignores If-Range (a broken cache); `arrived` sees each Range.
func withRangedOrigin(_ payload: [UInt8], etag: String = "\"e1\"", laterETag: String? = nil,
                      arrived: @escaping @Sendable (String?) -> Void = { _ in },
                      _ test: @Sendable (Int, @Sendable () -> [(String?, String?)]) async throws -> Void) async throws {
    let seen = Mutex<[(String?, String?)]>([])
    let router = Router()
    router.get("/ranged") { request, _ in
        let range = request.headers[.range], ifRange = request.headers[.ifRange]
        arrived(range)
        let index = seen.withLock { $0.append((range, ifRange)); return $0.count - 1 }
        let current = index > 0 ? laterETag ?? etag : etag
        var headers: HTTPFields = [.acceptRanges: "bytes", .eTag: current]
        guard let range, range.hasPrefix("bytes="), ifRange == nil || ifRange == etag || laterETag != nil else {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: payload)))
        }
        let bounds = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        let first = Int(bounds[0])!, last = min(payload.count - 1, Int(bounds[1]) ?? payload.count - 1)
        headers[.contentRange] = "bytes \(first)-\(last)/\(payload.count)"
        return Response(status: .partialContent, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: payload[first...last])))
    }
    router.get("/to-ranged") { _, _ in Response(status: .found, headers: [.location: "/ranged"]) }
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    try await app.test(.live) { client in try await test(client.port!, { seen.withLock { $0 } }) }
}

@Suite struct RangedDownloadTests {
    let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

    func fetcher(connections: Int = 4, chunk: Int64 = 64 << 10) -> HTTPFetcher {
        var policy = URLGuardPolicy()
        policy.allowedPorts = []
        policy.allowCIDRs = [CIDR("127.0.0.1/32")!]
        var options = HTTPFetcher.Options()
        options.connections = connections
        options.chunkSize = chunk
        // The origin's name exists only in the guard's resolver: every range must go to the vetted address.
        return HTTPFetcher(urlGuard: URLGuard(policy: policy, resolver: MapResolver(map: ["origin.ranged.invalid": [IPAddress("127.0.0.1")!]])),
                           options: options)
    }

    /// After a redirect, the ranges go to the hop that answered, in order into the sink, with If-Range.
    @Test func rangesFollowTheVettedHopAndArriveInOrder() async throws {
        let payload = self.payload
        let f = fetcher()
        try await withRangedOrigin(payload) { port, seen in
            var announced: Int64?
            var bytes: [UInt8] = []
            try await f.fetch("http://origin.ranged.invalid:\(port)/to-ranged", asAdmin: false, maxBytes: 1 << 30,
                              announce: { announced = $0 }) { bytes += Array($0.readableBytesView) }
            #expect(announced == 300_000)
            #expect(bytes == payload)
            let requests = seen()
            // 300 000 bytes in 64 KiB chunks: 5 ranges, the first without If-Range.
            #expect(requests.count == 5)
            #expect(requests.first?.0 == "bytes=0-65535" && requests.first?.1 == nil)
            #expect(requests.dropFirst().allSatisfy { $0.1 == "\"e1\"" })
            #expect(Set(requests.compactMap(\.0)) == Set(stride(from: 0, to: 300_000, by: 65536).map { "bytes=\($0)-\(min($0 + 65535, 299_999))" }))
        }
    }

    /// One connection: one plain GET, no Range (the behaviour before `--import-connections`).
    @Test func oneConnectionIsOnePlainGet() async throws {
        let payload = self.payload
        let f = fetcher(connections: 1)
        try await withRangedOrigin(payload) { port, seen in
            var bytes: [UInt8] = []
            try await f.fetch("http://origin.ranged.invalid:\(port)/ranged", asAdmin: false, maxBytes: 1 << 30,
                              announce: { _ in }) { bytes += Array($0.readableBytesView) }
            #expect(bytes == payload)
            #expect(seen().count == 1 && seen()[0].0 == nil)
        }
    }

    /// The size cap is checked against Content-Range's length before the ranges are asked.
    @Test func theSizeCapAppliesToTheWholeLength() async throws {
        let payload = self.payload
        let f = fetcher()
        try await withRangedOrigin(payload) { port, seen in
            await #expect(performing: {
                try await f.fetch("http://origin.ranged.invalid:\(port)/ranged", asAdmin: false, maxBytes: 100_000,
                                  announce: { _ in }) { _ in }
            }, throws: { ($0 as? ImageError)?.kind == .payloadTooLarge })
            #expect(seen().count == 1)
        }
    }

    /// Memory stays bounded whatever the sink's pace: a range is asked only when it ends within
    /// `connections` chunks of the bytes already handed to the sink (the reorder window).
    @Test func theReorderWindowBoundsWhatIsAhead() async throws {
        let payload = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let delivered = Mutex<Int64>(0), worstAhead = Mutex<Int64>(0)
        let chunk: Int64 = 32 << 10, connections = 3
        let f = fetcher(connections: connections, chunk: chunk)
        try await withRangedOrigin(payload, arrived: { range in
            guard let first = range.flatMap({ Int64($0.dropFirst(6).split(separator: "-")[0]) }) else { return }
            let ahead = first + chunk - delivered.withLock { $0 }
            worstAhead.withLock { $0 = max($0, ahead) }
        }) { port, seen in
            var bytes: [UInt8] = []
            try await f.fetch("http://origin.ranged.invalid:\(port)/ranged", asAdmin: false, maxBytes: 1 << 30,
                              announce: { _ in }) { part in
                try await Task.sleep(for: .milliseconds(2))  // a slow ingest
                bytes += Array(part.readableBytesView)
                delivered.withLock { $0 += Int64(part.readableBytes) }
            }
            #expect(bytes == payload)
            #expect(seen().count == 31)  // 1 000 000 bytes in 32 KiB chunks
        }
        #expect(worstAhead.withLock { $0 } <= Int64(connections) * chunk)
    }

    /// An origin that ignores If-Range and answers 206 with another ETag: the object changed, no retry.
    @Test func anotherETagInA206FailsTheDownload() async throws {
        let payload = self.payload
        let f = fetcher()
        try await withRangedOrigin(payload, laterETag: "\"e2\"") { port, seen in
            await #expect(performing: {
                try await f.fetch("http://origin.ranged.invalid:\(port)/ranged", asAdmin: false, maxBytes: 1 << 30,
                                  announce: { _ in }) { _ in }
            }, throws: { e in
                (e as? ImageError)?.kind == .badRequest && "\(e)".contains("changed during the download") && "\(e)".contains("\"e2\"")
            })
            #expect(seen().count <= 5)  // the first chunk and at most one GET per other chunk
        }
    }

    @Test func contentRangeParsing() {
        #expect(RangedDownload.ContentRange("bytes 0-99/1000") == .init("bytes 0-99/1000"))
        #expect(RangedDownload.ContentRange("bytes 0-99/1000")?.complete == 1000)
        #expect(RangedDownload.ContentRange("bytes 10-9/1000") == nil)
        #expect(RangedDownload.ContentRange("bytes 0-99/*") == nil)
        #expect(RangedDownload.ContentRange("bytes 0-1000/1000") == nil)
        #expect(RangedDownload.ContentRange("items 0-9/10") == nil)
    }
}
