import AsyncHTTPClient
import ImageCore
import ImageData
import NIOCore

/// Downloads import sources over HTTP(S). Every URL, and every redirect target, passes the
/// `URLGuard` first; plain-HTTP connections go to the address the guard vetted (the name is sent as
/// `Host`), so a DNS answer that changes between check and connect cannot redirect us inward.
/// HTTPS connects by name (certificate checks need it) and relies on the guard's check alone.
public final class HTTPFetcher: RemoteFetcher {
    public struct Options: Sendable {
        public var maxRedirects = 5
        public var connectTimeout: TimeAmount = .seconds(10)
        /// No byte for this long fails the import (a stalled server).
        public var readTimeout: TimeAmount = .seconds(60)
        /// The whole download, however slow but steady.
        public var totalTimeout: TimeAmount = .hours(6)
        public init() {}
    }

    let urlGuard: URLGuard
    let options: Options
    let client: HTTPClient

    public init(urlGuard: URLGuard, options: Options = .init()) {
        self.urlGuard = urlGuard
        self.options = options
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,  // followed by hand, through the guard
            timeout: .init(connect: options.connectTimeout, read: options.readTimeout),
            decompression: .disabled)
        configuration.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    deinit {
        try? client.syncShutdown()
    }

    public func vet(_ url: String) async throws {
        do {
            _ = try await urlGuard.check(url)
        } catch let refusal as URLRefusal {
            throw ImageError.badRequest("URI for web-download does not pass filtering: \(url) (\(refusal.reason))")
        }
    }

    public func fetch(_ url: String, maxBytes: Int64, announce: (Int64?) async throws -> Void,
                      into sink: (ByteBuffer) async throws -> Void) async throws {
        let deadline = NIODeadline.now() + options.totalTimeout
        var target = try await vetted { try await self.urlGuard.check(url) }
        var hops = 0
        while true {
            var request = HTTPClientRequest(url: Self.connectURL(target))
            request.headers.replaceOrAdd(name: "Host", value: Self.hostHeader(target))
            request.headers.add(name: "User-Agent", value: "imaged-web-download")
            request.headers.add(name: "Accept-Encoding", value: "identity")
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, deadline: deadline)
            } catch {
                throw ImageError.badRequest("Could not fetch \(target.url): \(error)")
            }
            let code = response.status.code
            if [301, 302, 303, 307, 308].contains(code) {
                hops += 1
                guard hops <= options.maxRedirects else {
                    throw ImageError.badRequest("Too many redirects fetching \(url) (more than \(options.maxRedirects)).")
                }
                guard let location = response.headers.first(name: "location") else {
                    throw ImageError.badRequest("Redirect without Location from \(target.url).")
                }
                let from = target
                target = try await vetted { try await self.urlGuard.checkRedirect(from: from, location: location) }
                continue
            }
            guard code == 200 else {
                throw ImageError.badRequest("Fetching \(target.url) failed: HTTP \(code) \(response.status.reasonPhrase).")
            }
            var announced: Int64?
            if let text = response.headers.first(name: "content-length") {
                guard let n = Int64(text), n >= 0 else { throw ImageError.badRequest("Invalid Content-Length from \(target.url).") }
                guard n <= maxBytes else {
                    throw ImageError.tooLarge("\(target.url) is \(n) bytes, over the image size cap of \(maxBytes) bytes.")
                }
                announced = n
            }
            try await announce(announced)
            var received: Int64 = 0
            do {
                for try await buffer in response.body {
                    received += Int64(buffer.readableBytes)
                    guard received <= maxBytes else {
                        throw ImageError.tooLarge("\(target.url) sent more than the image size cap of \(maxBytes) bytes.")
                    }
                    try await sink(buffer)
                }
            } catch let e as ImageError {
                throw e
            } catch {
                throw ImageError.badRequest("Fetching \(target.url) failed after \(received) bytes: \(error)")
            }
            if let announced, received != announced {
                throw ImageError.badRequest("\(target.url) ended after \(received) of \(announced) bytes.")
            }
            return
        }
    }

    func vetted(_ check: () async throws -> VettedURL) async throws -> VettedURL {
        do {
            return try await check()
        } catch let refusal as URLRefusal {
            throw ImageError.badRequest("URI for web-download does not pass filtering: \(refusal.url) (\(refusal.reason))")
        }
    }

    /// For http, the vetted address itself; for https, the name (TLS verifies it).
    static func connectURL(_ t: VettedURL) -> String {
        guard t.scheme == "http", let address = t.addresses.first else { return t.url }
        let host: String
        if case .v6 = address { host = "[\(address)]" } else { host = "\(address)" }
        return "http://\(host):\(t.port)\(t.pathAndQuery)"
    }

    static func hostHeader(_ t: VettedURL) -> String {
        let host = t.host.contains(":") ? "[\(t.host)]" : t.host
        let defaultPort = t.scheme == "https" ? 443 : 80
        return t.port == defaultPort ? host : "\(host):\(t.port)"
    }
}
