import BlobStoreFile
import BlobStoreS3
import Foundation
import Identity
import ImageCore
import Logging

/// The blob store a configuration names, and a description for the logs.
/// A named store without a directory of its own gets `<data-dir>/stores/<id>`.
public func makeBlobStore(_ choice: ServerConfig.Blobs, dataDir: String, storeId: String? = nil, caFile: String? = nil,
                          logger: Logger) throws -> (any BlobStore, String) {
    switch choice {
    case .file(let dir, let sparse, let direct):
        let root = dir ?? (storeId.map { dataDir + "/stores/" + $0 } ?? dataDir + "/blobs")
        return (try FileBlobStore(root: root, sparse: sparse, direct: direct), storeId == nil ? "file blobs" : "files in \(root)")
    case .s3(let s3):
        return (try S3BlobStore(config: s3, client: try OutboundTLS.storeClient(caFile: caFile), logger: logger),
                "S3 blobs in \(s3.endpoint) bucket \(s3.bucket)" + (s3.keyPrefix.isEmpty ? "" : " under \(s3.keyPrefix)"))
    }
}

/// The identity providers the configuration asks for, cheapest first: static tokens, local API
/// keys (`imk_…:secret`), then Keystone.
func makeAuthenticator(_ config: ServerConfig, catalog: any AccountCatalog, dataDir: String,
                       keystone authenticator: KeystoneAuthenticator?) throws -> (any TokenAuthenticator, String) {
    if case .none = config.auth {
        guard config.keystone == nil else { throw ConfigError("--no-auth and --keystone-url exclude each other") }
        return (NoAuthAuthenticator(), "NONE (--no-auth: every request is an admin of project 'local')")
    }
    var chain: [any TokenAuthenticator] = []
    var described: [String] = []
    if case .tokenFile(let path) = config.auth, path != nil || config.keystone == nil {
        let file = path ?? dataDir + "/tokens.json"
        if path == nil, !FileManager.default.fileExists(atPath: file) {
            try TokenFile.createDefault(at: file)
        }
        chain.append(try StaticTokenAuthenticator(contentsOf: file))
        described.append("static tokens from \(file)")
    }
    chain.append(APIKeyAuthenticator(accounts: LocalAccounts(catalog: catalog)))
    described.append("local API keys")
    if let keystone = config.keystone, let authenticator {
        chain.append(authenticator)
        described.append("Keystone at \(keystone.baseURL) (cache \(Int(keystone.cacheSeconds)) s)")
    }
    return (ChainedAuthenticator(chain), described.joined(separator: ", "))
}

enum TokenFile {
    /// A first start without configuration gets one random admin token, readable by the owner only.
    static func createDefault(at path: String) throws {
        var bytes = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let doc = """
            {"tokens": [
              {"token": "\(token)", "user_id": "admin", "project_id": "admin", "roles": ["admin"]}
            ]}

            """
        guard FileManager.default.createFile(atPath: path, contents: Data(doc.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigError("cannot create token file \(path)")
        }
    }
}
