import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import ServiceLifecycle

/// The server's certificate and key (`--tls-cert`, `--tls-key`): TLS 1.2 at least, NIOSSL's modern
/// cipher defaults. Each new connection takes the context current when it is accepted, so a reload
/// (SIGHUP) serves the new certificate to new connections while those already open keep theirs.
public final class TLSCertificateStore: Sendable {
    public let certificateFile: String
    public let keyFile: String
    private let context: NIOLockedValueBox<NIOSSLContext>

    public init(certificateFile: String, keyFile: String) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        context = NIOLockedValueBox(try Self.load(certificateFile: certificateFile, keyFile: keyFile))
    }

    var current: NIOSSLContext { context.withLockedValue { $0 } }

    /// Reads both files again; a certificate or key that does not load (or a key that does not match
    /// the certificate) is logged and the one in use is kept.
    public func reload(logger: Logger) {
        do {
            let fresh = try Self.load(certificateFile: certificateFile, keyFile: keyFile)
            context.withLockedValue { $0 = fresh }
            logger.notice("TLS certificate reloaded from \(certificateFile)")
        } catch {
            logger.error("TLS certificate reload failed, the previous certificate stays in use: \(error)")
        }
    }

    static func load(certificateFile: String, keyFile: String) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        guard !chain.isEmpty else { throw ConfigError("--tls-cert \(certificateFile) holds no PEM certificate") }
        let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // BoringSSL refuses a key that does not belong to the certificate here.
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Reloads the certificate on every SIGHUP for the life of the server.
struct CertificateReloadService: Service {
    let store: TLSCertificateStore
    let logger: Logger

    func run() async throws {
        signal(SIGHUP, SIG_IGN)   // the dispatch source gets it instead of the default action (exit)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        let store = store, logger = logger
        source.setEventHandler { store.reload(logger: logger) }
        source.resume()
        defer { source.cancel() }
        try? await gracefulShutdown()
    }
}
