import ImageCore
import Logging
import NIOCore

/// `imaged migrate`: copies a whole installation (catalog rows and blobs) from one catalog + blob
/// store pair to another. Every image blob is re-digested on the way and committed only when its
/// MD5 and multihash match the catalog; a row is written only after its blob, so the target never
/// names data it does not hold. Running it again after an interruption skips what is already there
/// (same row version, blob of the recorded size) and finishes the rest.
/// Run it with no server writing to the source.
public struct Migration: Sendable {
    public struct Side: Sendable {
        public let catalog: any Catalog
        public let blobs: any BlobStore
        public init(catalog: any Catalog, blobs: any BlobStore) { self.catalog = catalog; self.blobs = blobs }
    }

    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var images = 0
        public var imagesSkipped = 0
        public var blobsCopied = 0
        public var bytesCopied: Int64 = 0
        public var members = 0
        public var tasks = 0
        public var accounts = 0
        public var apiKeys = 0
        public var quotas = 0
        public var metadefNamespaces = 0
        /// Images copied without their name rule: the source already held a clash (made before
        /// names were decided inside the catalog write), which the target's write would refuse.
        public var nameRulesDropped: [String] = []
        public init() {}

        public var description: String {
            "images \(images) (\(imagesSkipped) already there), blobs \(blobsCopied) (\(bytesCopied) bytes, digests verified), " +
            "members \(members), tasks \(tasks), accounts \(accounts), API keys \(apiKeys), quota overrides \(quotas), "
                + "metadef namespaces \(metadefNamespaces)"
                + (nameRulesDropped.isEmpty ? "" : "; copied without their name rule (the source held a clash): \(nameRulesDropped.joined(separator: ", "))")
        }
    }

    let source: Side
    let target: Side
    let logger: Logger
    let pageSize: Int
    let progress: @Sendable (Report) -> Void

    public init(from source: Side, to target: Side, pageSize: Int = 200, logger: Logger = Logger(label: "imaged.migrate"),
                progress: @escaping @Sendable (Report) -> Void = { _ in }) {
        self.source = source; self.target = target; self.pageSize = pageSize; self.logger = logger; self.progress = progress
    }

    public func run() async throws -> Report {
        var report = Report()
        // Accounts first: API keys reference them.
        for account in try await source.catalog.accounts() {
            if try await target.catalog.account(name: account.name) == nil {
                try await target.catalog.insertAccount(account)
            } else {
                try await target.catalog.updateAccount(account)
            }
            report.accounts += 1
            for key in try await source.catalog.apiKeys(accountName: account.name) {
                if try await target.catalog.apiKey(id: key.keyId) == nil { try await target.catalog.insertAPIKey(key) }
                report.apiKeys += 1
            }
        }
        for (project, limits) in try await source.catalog.quotaOverrides() {
            try await target.catalog.setQuotaOverride(project: project, limits)
            report.quotas += 1
        }
        report.metadefNamespaces = try await copyMetadefs()
        var after: String?
        while true {
            let page = try await source.catalog.exportImages(after: after, limit: pageSize)
            for image in page {
                try await copy(image, &report)
            }
            progress(report)
            guard page.count == pageSize, let last = page.last else { break }
            after = last.id
        }
        for task in try await source.catalog.listTasks(limit: Int.max).reversed() {
            if try await target.catalog.task(id: task.id) == nil {
                try await target.catalog.insertTask(task)
            } else {
                _ = try await target.catalog.updateTask(id: task.id) { $0 = task }
            }
            report.tasks += 1
        }
        return report
    }

    func copy(_ image: Image, _ report: inout Report) async throws {
        report.images += 1
        let existing = try await target.catalog.image(id: image.id)
        // Data at an external location (the locations API) has no blob: the location is in the image row.
        let hasData = image.locations.isEmpty && (image.status == .active || image.status == .deactivated || image.status == .pendingDelete)
        let blobKey = BlobKey.image(image.id)
        var blobInPlace = !hasData
        if hasData, let size = try await target.blobs.size(key: blobKey), size == image.size { blobInPlace = true }
        if existing == image, blobInPlace {
            report.imagesSkipped += 1
        } else {
            if hasData, !blobInPlace {
                report.bytesCopied += try await copyImageBlob(image, from: source.blobs, to: target.blobs)
                report.blobsCopied += 1
            }
            if image.status == .uploading, try await source.blobs.size(key: BlobKey.staging(image.id)) != nil {
                report.bytesCopied += try await copyStaged(image.id)
                report.blobsCopied += 1
            }
            // The blob is committed before the row that names it.
            do {
                try await write(image, exists: existing != nil)
            } catch let e as ImageError where e.kind == .duplicate {
                var unclaimed = image
                unclaimed.nameRule = nil
                try await write(unclaimed, exists: existing != nil)
                report.nameRulesDropped.append(image.id)
            }
        }
        for member in try await source.catalog.members(imageId: image.id) {
            if try await target.catalog.member(imageId: image.id, memberId: member.memberId) == nil {
                try await target.catalog.insertMember(member)
            } else {
                try await target.catalog.updateMember(member)
            }
            report.members += 1
        }
    }

    func write(_ image: Image, exists: Bool) async throws {
        if exists {
            // Only when the source changed since an earlier run; `version` stays the target's own counter.
            _ = try await target.catalog.updateImage(id: image.id) { $0 = image }
        } else {
            try await target.catalog.insertImage(image)
        }
    }

    /// Staged bytes (glance-direct) have no recorded digest: copied and checked by size.
    func copyStaged(_ id: String) async throws -> Int64 {
        let key = BlobKey.staging(id)
        let writer = try await target.blobs.makeWriter(key: key)
        var copied: Int64 = 0
        do {
            try await source.blobs.read(key: key, range: nil, chunkSize: 1 << 20) { buffer in
                copied += Int64(buffer.readableBytes)
                try await writer.write(buffer)
            }
            try await writer.commit()
        } catch {
            await writer.cancel()
            throw error
        }
        guard try await target.blobs.size(key: key) == copied else {
            throw ImageError(.internal, "staged data of \(id): size differs after the copy")
        }
        return copied
    }
}
