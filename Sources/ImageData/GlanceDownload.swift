import ImageCore
import NIOCore
import Synchronization

/// The glance-download import method (glance/async_/flows/_internal_plugins/glance_download.py):
/// the image's data and formats come from the same image in another region's image service,
/// found in the caller's Keystone catalog and read with the caller's token.
///
/// The token is a bearer credential: it is kept in this node's memory only (never in the task
/// row), so the task runs on the node that accepted it; a node that restarts, or another node
/// that takes the task over, fails it cleanly (the image goes back to queued) and the caller
/// imports again. The endpoint is the operator's (the catalog), so it is fetched with the admin
/// reach of the URL guard (`--import-private`, `--import-allow-cidr`), never a user's.
public enum GlanceDownload {
    public static let method = "glance-download"
    /// Glance's `[glance_download_properties] extra_properties` default: prefixes copied from the remote image.
    public static let copiedPrefixes = ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"]

    /// `glance_image_id`, `glance_region`, `glance_service_interface` (public by default), or Glance's 400s.
    public static func parameters(_ method: JSONValue?) throws -> (imageId: String, region: String, interface: String) {
        guard method?["glance_region"] != nil else {
            throw ImageError.badRequest("'glance_region' needs to be set for glance-download import method")
        }
        guard let given = method?["glance_image_id"] else {
            throw ImageError.badRequest("'glance_image_id' needs to be set for glance-download import method")
        }
        guard case .string(let imageId) = given, ImageID.isValid(imageId) else {
            throw ImageError.badRequest("Remote image id does not look like a UUID: \(given.stringValue ?? given.serialized)")
        }
        guard case .string(let region) = method?["glance_region"] else { throw ImageError.badRequest("'glance_region' must be a string.") }
        var interface = "public"
        if let i = method?["glance_service_interface"] {
            guard case .string(let s) = i else { throw ImageError.badRequest("'glance_service_interface' must be a string.") }
            interface = s
        }
        return (imageId.lowercased(), region, interface)
    }

    /// What the remote image says about itself, checked before any byte is fetched.
    struct Remote: Sendable {
        var size: Int64
        var checksum: String?
        var hashAlgo: String?
        var hashValue: String?
        var diskFormat: String?
        var containerFormat: String?
        var properties: [String: String]

        init(_ doc: JSONValue, id: String) throws {
            guard doc["status"]?.stringValue == "active" else {
                throw ImageError.conflict("Source image status should be active instead of \(doc["status"]?.stringValue ?? "unknown")")
            }
            guard case .int(let n)? = doc["size"], n >= 0 else {
                throw ImageError.badRequest("Size attribute of remote image \(id) could not be determined.")
            }
            size = n
            checksum = doc["checksum"]?.stringValue
            hashAlgo = doc["os_hash_algo"]?.stringValue
            hashValue = doc["os_hash_value"]?.stringValue
            diskFormat = doc["disk_format"]?.stringValue
            containerFormat = doc["container_format"]?.stringValue
            properties = [:]
            if case .object(let members) = doc {
                for (key, value) in members where !key.hasPrefix("os_glance")
                    && GlanceDownload.copiedPrefixes.contains(where: { key.hasPrefix($0) }) {
                    if let s = value.stringValue { properties[key] = s }
                }
            }
        }

        /// The data matches what the remote image promised (Glance checks only the size; we check the digests too).
        func verify(_ r: IngestResult) throws {
            if let checksum, checksum.lowercased() != r.md5 {
                throw ImageError.badRequest("The downloaded data's MD5 \(r.md5) is not the remote image's checksum \(checksum).")
            }
            if let hashAlgo, hashAlgo == r.hashAlgorithm.rawValue, let hashValue, hashValue.lowercased() != r.hashValue {
                throw ImageError.badRequest("The downloaded data's \(hashAlgo) is not the remote image's os_hash_value.")
            }
        }

        func adopt(_ image: inout Image) {
            if let diskFormat { image.diskFormat = diskFormat }
            if let containerFormat { image.containerFormat = containerFormat }
            for (k, v) in properties { image.properties[k] = v }
        }
    }
}

/// Callers' tokens for the glance-download tasks this node runs, by task id (memory only).
public final class TaskCredentials: Sendable {
    private let tokens = Mutex<[String: String]>([:])
    public init() {}
    func set(_ token: String, for task: String) { tokens.withLock { $0[task] = token } }
    func token(for task: String) -> String? { tokens.withLock { $0[task] } }
    func remove(_ task: String) { _ = tokens.withLock { $0.removeValue(forKey: task) } }
}

extension ImageImports {
    /// The request-time part of glance-download: parameters checked (400), the endpoint looked up
    /// in the caller's catalog (recorded in the task input; a missing one fails the task, as in
    /// Glance), and the members the task input gets.
    func glanceDownloadInput(_ requestBody: JSONValue, token: String?) async throws -> [(String, JSONValue)] {
        let (_, region, interface) = try GlanceDownload.parameters(requestBody["method"])
        guard let token, !token.isEmpty, let regions = runner.regions else {
            throw ImageError.badRequest("glance-download needs Keystone: the caller's token and its service catalog.")
        }
        let endpoint = try await regions.imageEndpoint(token: token, region: region, interface: interface)
        return [("remote_endpoint", endpoint.map { .string($0) } ?? .null)]
    }
}

extension TaskRunner {
    /// Reads the remote image's record, then streams its data into `store`, verified against it.
    func ingestGlanceDownload(_ task: ImageTask, input: JSONValue, image: Image, into key: String, store: any BlobStore,
                              _ progress: TaskProgress, verify: (Image, IngestResult) throws -> Void) async throws -> (IngestResult, @Sendable (inout Image) -> Void) {
        let (remoteId, region, interface) = try GlanceDownload.parameters(input["import_req"]?["method"])
        guard let endpoint = input["remote_endpoint"]?.stringValue else {
            throw ImageError.notFound("Glance endpoint not found for region \(region) and interface \(interface) in the caller's catalog.")
        }
        guard let token = credentials.token(for: task.id) else {
            throw ImageError.conflict("The caller's token is held only by the node that accepted this import (it restarted or another node took the task over); import again.")
        }
        let data = self.data!, fetcher = self.fetcher!
        let headers = [("X-Auth-Token", token), ("Accept", "application/json")]
        var record: [UInt8] = []
        try await fetcher.fetch(endpoint + "/v2/images/" + remoteId, asAdmin: true, headers: headers, maxBytes: 1 << 20,
                                announce: { _ in }) { record.append(contentsOf: $0.readableBytesView) }
        let remote = try GlanceDownload.Remote(try JSONValue.parse(record), id: remoteId)
        var target = image
        remote.adopt(&target)
        let quota = try await data.quotaRoom(.imageSizeTotal, owner: image.owner, declared: remote.size)
        // Another Glance's image is copied as it is stored there (its checksum is of those bytes): never decompressed.
        let result = try await data.ingest(into: key, store: store, declaredSize: remote.size, quota: quota,
                                           pinned: try ImageImports.pinned(inTask: input), decompress: false, verify: { r in
            try remote.verify(r)
            try verify(target, r)
        }) { sink in
            try await fetcher.fetch(endpoint + "/v2/images/" + remoteId + "/file", asAdmin: true, headers: [("X-Auth-Token", token)],
                                    maxBytes: data.config.imageSizeCap, announce: { progress.setTotal($0) }) { buffer in
                try await sink(buffer)
                progress.add(buffer.readableBytes)
            }
        }
        return (result, { [remote] in remote.adopt(&$0) })
    }
}
