import Foundation
import ImageCore
import ImageData

/// The configured remote IMGAPI repositories and what their last refresh found. The cache is this
/// node's: an import of a uuid this node has not seen refreshes that repository first, so another
/// node's refresh is never needed.
actor DanubeImagestores {
    struct RepoImage: Sendable {
        var uuid: String
        var name: String
        var manifest: JSONValue

        func json(repo: String) -> JSONValue {
            var size: Int64 = 1024
            if case .int(let n)? = manifest["image_size"], n > 0 { size = n }
            var download: Int64 = 0
            if case .int(let n)? = manifest["files"]?.arrayItems?.first?["size"] { download = n }
            let type = manifest["type"]?.stringValue ?? "", os = (manifest["os"]?.stringValue ?? "").lowercased()
            let ostype: Int64 = type == "zone-dataset" ? 5 : type == "lx-dataset" ? 6
                : os == "smartos" ? 2 : ["linux": 1, "illumos": 2, "bsd": 3, "windows": 4][os] ?? 1
            return .object([
                ("uuid", .string(uuid)), ("name", .string(name)), ("version", .string(manifest["version"].flatMap(ZValue.text) ?? "")),
                ("created", manifest["published_at"] ?? .null), ("ostype", .int(ostype)),
                ("desc", .string(manifest["description"]?.stringValue ?? "")), ("homepage", manifest["homepage"] ?? .null),
                ("size", .int(size)), ("state", manifest["state"] ?? .string("active")), ("download_size", .int(download)),
                ("manifest_url", .string(DanubeImagestores.join(repo, "images/\(uuid)"))), ("manifest", manifest),
            ])
        }
    }

    struct Repository: Sendable {
        var name: String
        var url: String
        var lastUpdate: Int64?
        var error: String?
        var images: [RepoImage] = []

        var json: JSONValue {
            .object([("name", .string(name)), ("url", .string(url)),
                     ("last_update", lastUpdate.map { .string(DanubeImage.iso($0)) } ?? .null),
                     ("image_count", lastUpdate == nil ? .null : .int(Int64(images.count))), ("error", error.map { .string($0) } ?? .null)])
        }
    }

    private var repositories: [String: Repository]
    /// Repositories being refreshed now: a second refresh meanwhile is 423 (Danube's lock).
    private var refreshing: Set<String> = []
    private let order: [String]
    private let fetcher: any RemoteFetcher
    static let maxListing: Int64 = 10 << 20

    init(_ configured: [(name: String, url: String)], fetcher: any RemoteFetcher) {
        var repos: [String: Repository] = [:]
        for (name, url) in configured { repos[name] = Repository(name: name, url: url) }
        repositories = repos
        order = configured.map(\.name).sorted()
        self.fetcher = fetcher
    }

    /// Python's `urljoin(base, path)` for a relative path: a base without a trailing slash loses its
    /// last segment (unless it is only a host).
    nonisolated static func join(_ base: String, _ path: String) -> String {
        if base.hasSuffix("/") { return base + path }
        guard let scheme = base.range(of: "://") else { return base + "/" + path }
        let rest = base[scheme.upperBound...]
        guard let slash = rest.lastIndex(of: "/") else { return base + "/" + path }
        return String(base[..<slash]) + "/" + path
    }

    func all() -> [Repository] { order.compactMap { repositories[$0] } }

    func repository(_ name: String) throws -> Repository {
        guard let r = repositories[name] else { throw DanubeError(.notFound, "ImageStore not found") }
        return r
    }

    func refreshAll() async throws -> [Repository] {
        if !refreshing.isEmpty { throw DanubeError.locked }
        var out: [Repository] = []
        for name in order { out.append(try await refresh(name)) }
        return out
    }

    /// `GET <repo>/images` (through the URL guard, 10 MiB at most, 20 s): a JSON array of manifests.
    func refresh(_ name: String) async throws -> Repository {
        var repo = try repository(name)
        guard !refreshing.contains(name) else { throw DanubeError.locked }
        refreshing.insert(name)
        defer { refreshing.remove(name) }
        do {
            // The operator configured this imagestore, so it gets what `--import-private` opens to admins.
            let bytes = try await Self.fetchSmall(fetcher, Self.join(repo.url, "images"), asAdmin: true, maxBytes: Self.maxListing, seconds: 20)
            repo.images = try Self.images(fromListing: bytes)
            repo.error = nil
            repo.lastUpdate = Timestamp.now()
        } catch {
            repo.error = (error as? ImageError)?.message ?? "\(error)"
        }
        repositories[name] = repo
        return repo
    }

    /// The images of a `GET /images` listing (a JSON array of manifests) with a valid uuid, newest first.
    nonisolated static func images(fromListing bytes: [UInt8]) throws -> [RepoImage] {
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(bytes) } catch {
            throw ImageError.badRequest("Image server response could not be decoded (\(error))")
        }
        guard case .array(let items) = parsed else { throw ImageError.badRequest("Unexpected output from image server (\(parsed.typeName))") }
        var images: [RepoImage] = []
        for m in items {
            guard let uuid = m["uuid"]?.stringValue, ImageID.isValid(uuid) else { continue }
            images.append(RepoImage(uuid: uuid.lowercased(), name: m["name"]?.stringValue ?? uuid, manifest: m))
        }
        // Newest first, as Danube lists them.
        images.sort { ($0.manifest["published_at"]?.stringValue ?? "") > ($1.manifest["published_at"]?.stringValue ?? "") }
        return images
    }

    /// A small document (a manifest, a listing) through the URL guard, with a size cap and a deadline.
    nonisolated static func fetchSmall(_ fetcher: any RemoteFetcher, _ url: String, asAdmin: Bool, maxBytes: Int64, seconds: Double) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                var out: [UInt8] = []
                try await fetcher.fetch(url, asAdmin: asAdmin, maxBytes: maxBytes, announce: { _ in }) { out += $0.readableBytesView }
                return out
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first else { throw ImageError.badRequest("timed out after \(Int(seconds)) s") }
            return first
        }
    }

    /// One image of a repository; a uuid the cache does not know refreshes the repository once.
    func image(_ name: String, uuid: String) async throws -> RepoImage {
        if let hit = try repository(name).images.first(where: { $0.uuid == uuid.lowercased() }) { return hit }
        let repo = try await refresh(name)
        guard let hit = repo.images.first(where: { $0.uuid == uuid.lowercased() }) else { throw DanubeError.imageNotFound }
        return hit
    }
}
