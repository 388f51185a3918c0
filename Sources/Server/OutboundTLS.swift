import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOSSL

/// Outbound TLS (Keystone, S3; imports through `HTTPFetcher.Options.caFile`): the system's trust
/// roots plus the PEM bundle of `--ca-file`, certificates always verified.
public enum OutboundTLS {
    /// One client per CA file for the life of the process (an HTTPClient must never be dropped
    /// unshut); without a CA file the shared client, which trusts the system roots.
    private static let clients = NIOLockedValueBox<[String: HTTPClient]>([:])

    static func client(caFile: String?) throws -> HTTPClient {
        guard let caFile else { return .shared }
        try check(caFile: caFile)
        return clients.withLockedValue { clients in
            if let client = clients[caFile] { return client }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.file(caFile)]
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            clients[caFile] = client
            return client
        }
    }

    /// The S3 store's client: like `client(caFile:)`, with a short connect timeout, so a store that is
    /// down fails each attempt in seconds (AsyncHTTPClient's default keeps retrying the connection for
    /// 90 s per request) and an upload or download is answered 503 instead of hanging.
    static func storeClient(caFile: String?) throws -> HTTPClient {
        if let caFile { try check(caFile: caFile) }
        let key = "store:" + (caFile ?? "")
        return clients.withLockedValue { clients in
            if let client = clients[key] { return client }
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
            let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: .init(tlsConfiguration: tls, timeout: .init(connect: .seconds(3))))
            clients[key] = client
            return client
        }
    }

    /// A bundle that does not load is a start-up error, not a failed handshake later.
    public static func check(caFile: String) throws {
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw ConfigError("--ca-file \(caFile): \(error)")
        }
        guard !certificates.isEmpty else { throw ConfigError("--ca-file \(caFile) holds no PEM certificate") }
    }
}
