import AsyncHTTPClient
import Foundation
import ImageCore
import ImageData
import NIOCore
import NIOSSL

/// Downloads import sources over HTTP(S). Every URL, and every redirect target, passes the
/// `URLGuard` first, and the connection goes to the address the guard vetted (AsyncHTTPClient's
/// `dnsOverride`, which keeps the name for `Host`, SNI and certificate checks), so a DNS answer that
/// changes between check and connect (rebinding) cannot turn an import inward.
public final class HTTPFetcher: RemoteFetcher {
    public struct Options: Sendable {
        public var maxRedirects = 5
        public var connectTimeout: TimeAmount = .seconds(10)
        /// No byte for this long fails the import (a stalled server).
        public var readTimeout: TimeAmount = .seconds(60)
        /// The whole download, however slow but steady.
        public var totalTimeout: TimeAmount = .hours(6)
        /// A job callback (connect, send, answer): a receiver slower than this is given up on.
        public var callbackTimeout: TimeAmount = .seconds(10)
        /// A PEM bundle trusted besides the system's roots (`--ca-file`).
        public var caFile: String?
        /// Parallel ranged GETs of one download (`--import-connections`); 1 is one plain GET.
        public var connections = 4
        /// The unit of a ranged download; `connections` of them are in memory at most.
        public var chunkSize: Int64 = 4 << 20
        /// GETs of one range, the first included, before the download fails.
        public var rangeAttempts = 4
        public init() {}
    }

    let urlGuard: URLGuard
    let options: Options

    public init(urlGuard: URLGuard, options: Options = .init()) {
        self.urlGuard = urlGuard
        self.options = options
    }

    /// One client per hop: the DNS override (the pin) is client configuration. Imports are rare and
    /// long, so the cost of a connection pool per hop does not matter.
    func withClient<T>(pinning target: VettedURL, connectTimeout: TimeAmount? = nil,
                       _ body: (HTTPClient) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,  // followed by hand, through the guard
            timeout: .init(connect: connectTimeout ?? options.connectTimeout, read: connectTimeout ?? options.readTimeout),
            decompression: .disabled)
        configuration.httpVersion = .http1Only
        configuration.connectionPool = .init(idleTimeout: .seconds(60),
                                             concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, options.connections))
        if let caFile = options.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.file(caFile)]
            configuration.tlsConfiguration = tls
        }
        if !target.isIPLiteral, let address = target.addresses.first {
            configuration.dnsOverride = [target.host: "\(address)"]
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(client)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    public func vet(_ url: String, asAdmin: Bool) async throws {
        _ = try await vetted { try await self.urlGuard.check(url, asAdmin: asAdmin) }
    }

    public func fetch(_ url: String, asAdmin: Bool, maxBytes: Int64, announce: (Int64?) async throws -> Void,
                      into sink: (ByteBuffer) async throws -> Void) async throws {
        try await fetch(url, asAdmin: asAdmin, headers: [], maxBytes: maxBytes, announce: announce, into: sink)
    }

    /// `headers` (a caller's token for glance-download) go to the first URL's origin only, never
    /// to another host or port a redirect names.
    public func fetch(_ url: String, asAdmin: Bool, headers: [(String, String)], maxBytes: Int64,
                      announce: (Int64?) async throws -> Void, into sink: (ByteBuffer) async throws -> Void) async throws {
        let origin = Self.origin(url)
        let deadline = NIODeadline.now() + options.totalTimeout
        var target = try await vetted { try await self.urlGuard.check(url, asAdmin: asAdmin) }
        var hops = 0
        while true {
            let hop = target
            let next: VettedURL? = try await withClient(pinning: hop) { client in
                var request = HTTPClientRequest(url: hop.url)
                request.headers.add(name: "User-Agent", value: "imaged-web-download")
                request.headers.add(name: "Accept-Encoding", value: "identity")
                let hopHeaders = Self.origin(hop.url) == origin ? headers : []
                for (name, value) in hopHeaders { request.headers.add(name: name, value: value) }
                // Asks for the first chunk: a 206 says the origin serves ranges (see `RangedDownload`).
                if self.options.connections > 1 {
                    request.headers.add(name: "Range", value: "bytes=0-\(self.options.chunkSize - 1)")
                }
                let response: HTTPClientResponse
                do {
                    response = try await client.execute(request, deadline: deadline)
                } catch {
                    throw ImageError.badRequest("Could not fetch \(hop.url): \(error)")
                }
                let code = response.status.code
                if [301, 302, 303, 307, 308].contains(code) {
                    guard let location = response.headers.first(name: "location") else {
                        throw ImageError.badRequest("Redirect without Location from \(hop.url).")
                    }
                    return try await self.vetted { try await self.urlGuard.checkRedirect(from: hop, location: location, asAdmin: asAdmin) }
                }
                if code == 206, self.options.connections > 1 {
                    try await self.ranged(response, client: client, hop: hop, headers: hopHeaders, maxBytes: maxBytes,
                                          deadline: deadline, announce: announce, into: sink)
                    return nil
                }
                guard code == 200 else {
                    throw ImageError.badRequest("Fetching \(hop.url) failed: HTTP \(code) \(response.status.reasonPhrase).")
                }
                try await Self.stream(response, from: hop, maxBytes: maxBytes, announce: announce, into: sink)
                return nil
            }
            guard let next else { return }
            hops += 1
            guard hops <= options.maxRedirects else {
                throw ImageError.badRequest("Too many redirects fetching \(url) (more than \(options.maxRedirects)).")
            }
            target = next
        }
    }

    /// scheme://host:port of a URL, lower-cased, for "same origin" decisions.
    static func origin(_ url: String) -> String? {
        guard let u = URLComponents(string: url), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased() else { return nil }
        return "\(scheme)://\(host):\(u.port ?? (scheme == "https" ? 443 : 80))"
    }

    static func stream(_ response: HTTPClientResponse, from hop: VettedURL, maxBytes: Int64,
                       announce: (Int64?) async throws -> Void, into sink: (ByteBuffer) async throws -> Void) async throws {
        var announced: Int64?
        if let text = response.headers.first(name: "content-length") {
            guard let n = Int64(text), n >= 0 else { throw ImageError.badRequest("Invalid Content-Length from \(hop.url).") }
            guard n <= maxBytes else {
                throw ImageError.tooLarge("\(hop.url) is \(n) bytes, over the image size cap of \(maxBytes) bytes.")
            }
            announced = n
        }
        try await announce(announced)
        var received: Int64 = 0
        do {
            for try await buffer in response.body {
                received += Int64(buffer.readableBytes)
                guard received <= maxBytes else {
                    throw ImageError.tooLarge("\(hop.url) sent more than the image size cap of \(maxBytes) bytes.")
                }
                try await sink(buffer)
            }
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError.badRequest("Fetching \(hop.url) failed after \(received) bytes: \(error)")
        }
        if let announced, received != announced {
            throw ImageError.badRequest("\(hop.url) ended after \(received) of \(announced) bytes.")
        }
    }

    /// The origin answered the first chunk (206): the rest in ranges, on this vetted hop.
    func ranged(_ first: HTTPClientResponse, client: HTTPClient, hop: VettedURL, headers: [(String, String)], maxBytes: Int64,
                deadline: NIODeadline, announce: (Int64?) async throws -> Void, into sink: (ByteBuffer) async throws -> Void) async throws {
        guard let answered = RangedDownload.ContentRange(first.headers.first(name: "content-range")), answered.first == 0 else {
            throw ImageError.badRequest("\(hop.url) answered a range request without a usable Content-Range.")
        }
        guard answered.complete <= maxBytes else {
            throw ImageError.tooLarge("\(hop.url) is \(answered.complete) bytes, over the image size cap of \(maxBytes) bytes.")
        }
        try await announce(answered.complete)
        let download = RangedDownload(client: client, url: hop.url, headers: headers, total: answered.complete,
                                      validator: RangedDownload.Validator(first), deadline: deadline,
                                      attempts: options.rangeAttempts)
        try await download.run(first: first, firstEnd: answered.last + 1, chunkSize: options.chunkSize,
                               connections: options.connections, into: sink)
    }

    func vetted(_ check: () async throws -> VettedURL) async throws -> VettedURL {
        do {
            return try await check()
        } catch let refusal as URLRefusal {
            throw ImageError.badRequest("URI for web-download does not pass filtering: \(refusal.url) (\(refusal.reason))")
        }
    }
}

extension HTTPFetcher: CallbackSender {
    public func vet(_ url: String, by p: Principal) async throws {
        do {
            _ = try await urlGuard.check(url, asAdmin: p.isAdmin)
        } catch let refusal as URLRefusal {
            throw ImageError.badRequest("Callback URL does not pass filtering: \(refusal.url) (\(refusal.reason))")
        }
    }

    /// One attempt: a callback is a notification, the job's state stays pollable whatever happens here.
    public func post(_ url: String, body: [UInt8], headers: [(String, String)], asAdmin: Bool) async -> Bool {
        guard let target = try? await urlGuard.check(url, asAdmin: asAdmin) else { return false }
        let deadline = NIODeadline.now() + options.callbackTimeout
        return (try? await withClient(pinning: target, connectTimeout: options.callbackTimeout) { client in
            var request = HTTPClientRequest(url: target.url)
            request.method = .POST
            request.headers.add(name: "User-Agent", value: "imaged-callback")
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, deadline: deadline)
            // Read (and drop) the answer so the connection closes cleanly.
            _ = try? await response.body.collect(upTo: 64 << 10)
            return (200..<300).contains(Int(response.status.code))
        }) ?? false
    }
}
