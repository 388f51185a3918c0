import Hummingbird
import HummingbirdTesting
import ImageCore
import NIOCore
import Synchronization
import Testing
@testable import Outbound

/// Maps names to addresses the way a (hostile) DNS server might.
struct MapResolver: HostResolver {
    var map: [String: [IPAddress]]
    func resolve(host: String, port: Int) async throws -> [IPAddress] { map[host] ?? [] }
}

/// A real HTTP origin on loopback: `/data` (bytes), `/redirect-to?u=URL`, `/short` (lies about its length).
func withOrigin(_ test: @Sendable (Int) async throws -> Void) async throws {
    let router = Router()
    let payload = ByteBuffer(bytes: (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    router.get("/data") { _, _ in Response(status: .ok, body: .init(byteBuffer: payload)) }
    router.get("/redirect-to") { request, _ in
        Response(status: .found, headers: [.location: request.uri.queryParameters.get("u") ?? "/data"])
    }
    router.get("/short") { _, _ in
        Response(status: .ok, headers: [.contentLength: "1000"], body: .init { writer in
            try await writer.write(ByteBuffer(bytes: [1, 2, 3]))
            throw CancellationError()
        })
    }
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    try await app.test(.live) { client in try await test(client.port!) }
}

@Suite struct HTTPFetcherTests {
    func fetcher(_ resolver: MapResolver = .init(map: [:]), allow: [String] = ["127.0.0.1/32"]) -> HTTPFetcher {
        var policy = URLGuardPolicy()
        policy.allowedPorts = []
        policy.allowCIDRs = allow.compactMap(CIDR.init)
        return HTTPFetcher(urlGuard: URLGuard(policy: policy, resolver: resolver))
    }

    func fetch(_ f: HTTPFetcher, _ url: String, max: Int64 = 1 << 30) async throws -> (Int64?, [UInt8]) {
        var announced: Int64?
        var bytes: [UInt8] = []
        try await f.fetch(url, asAdmin: false, maxBytes: max, announce: { announced = $0 }) { bytes += Array($0.readableBytesView) }
        return (announced, bytes)
    }

    @Test func fetchesFromAnAllowedOrigin() async throws {
        try await withOrigin { port in
            let (announced, bytes) = try await fetch(fetcher(), "http://127.0.0.1:\(port)/data")
            #expect(announced == 200_000)
            #expect(bytes == (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        }
    }

    /// The connection goes to the address the guard vetted: this name exists only in the guard's
    /// resolver, so the fetch can work only if the vetted address is the one dialled.
    @Test func connectionIsPinnedToTheVettedAddress() async throws {
        try await withOrigin { port in
            let f = fetcher(MapResolver(map: ["origin.pinned.invalid": [IPAddress("127.0.0.1")!]]))
            let (_, bytes) = try await fetch(f, "http://origin.pinned.invalid:\(port)/data")
            #expect(bytes.count == 200_000)
        }
    }

    @Test func redirectsAreFollowedAndReChecked() async throws {
        try await withOrigin { port in
            let ok = try await fetch(fetcher(), "http://127.0.0.1:\(port)/redirect-to?u=/data")
            #expect(ok.1.count == 200_000)
            for target in ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:\(port)/data", "file:///etc/passwd"] {
                await #expect(performing: {
                    _ = try await fetch(fetcher(), "http://127.0.0.1:\(port)/redirect-to?u=\(target)")
                }, throws: { e in
                    (e as? ImageError)?.kind == .badRequest && "\(e)".contains("does not pass filtering")
                })
            }
        }
    }

    @Test func sizeCapAndTruncationFail() async throws {
        try await withOrigin { port in
            await #expect(performing: { _ = try await fetch(fetcher(), "http://127.0.0.1:\(port)/data", max: 1000) },
                          throws: { ($0 as? ImageError)?.kind == .payloadTooLarge })
            await #expect(performing: { _ = try await fetch(fetcher(), "http://127.0.0.1:\(port)/short") },
                          throws: { ($0 as? ImageError)?.kind == .badRequest })
        }
    }

    @Test func vetRefusesBeforeAnyConnection() async throws {
        await #expect(performing: { try await fetcher(allow: []).vet("http://127.0.0.1/x", asAdmin: true) },
                      throws: { "\($0)".contains("does not pass filtering") })
        await #expect(performing: { try await fetcher().vet("http://2130706433/x", asAdmin: true) },
                      throws: { "\($0)".contains("non-canonical") })
    }

    /// Job callbacks: one POST through the guard, true only on 2xx, never a throw, never long.
    @Test func callbacksPostOnceThroughTheGuard() async throws {
        let received = Mutex<[(String, [UInt8], String?)]>([])
        let router = Router()
        router.post("/hook") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            received.withLock { $0.append(("hook", Array(body.readableBytesView), request.headers[.init("X-Job-UUID")!])) }
            return Response(status: .noContent)
        }
        router.post("/broken") { _, _ in
            received.withLock { $0.append(("broken", [], nil)) }
            return Response(status: .internalServerError)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = client.port!
            let f = fetcher()
            #expect(await f.post("http://127.0.0.1:\(port)/hook", body: Array(#"{"ok":true}"#.utf8),
                                 headers: [("X-Job-UUID", "job-1"), ("Content-Type", "application/json")], asAdmin: false))
            #expect(await f.post("http://127.0.0.1:\(port)/broken", body: [], headers: [], asAdmin: false) == false)
            // Refused by the guard: nothing is sent.
            #expect(await fetcher(allow: []).post("http://127.0.0.1:\(port)/hook", body: [1], headers: [], asAdmin: true) == false)
            let seen = received.withLock { $0 }
            #expect(seen.count == 2)
            #expect(seen.first?.0 == "hook" && seen.first?.1 == Array(#"{"ok":true}"#.utf8) && seen.first?.2 == "job-1")
        }
        // A receiver that is down: false, quickly.
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await fetcher().post("http://127.0.0.1:9/hook", body: [], headers: [], asAdmin: false) == false)
        #expect(clock.now - start < .seconds(15))
        let member = Principal(userId: "m", projectId: "p", roles: ["member"])
        await #expect(performing: { try await fetcher(allow: []).vet("http://127.0.0.1/hook", by: member) },
                      throws: { "\($0)".contains("Callback URL does not pass filtering") && "\($0)".contains("--import-allow-cidr 127.0.0.1/32") })
    }
}
