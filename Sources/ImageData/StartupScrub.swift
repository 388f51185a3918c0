import ImageCore
import Logging

/// Puts the catalog and the blob store back in agreement after a crash, before serving:
/// temporaries and unreferenced blobs are removed; images a dead upload left in `saving` (or in
/// `uploading` without staged data, or `importing` without a live task) are queued again.
/// Only for a single node that owns its data (the data directory is locked): with several nodes,
/// another node's upload in flight would look abandoned.
public struct StartupScrub: Sendable {
    public struct Report: Sendable, Equatable {
        public var temporariesRemoved = 0
        public var blobsRemoved = 0
        public var imagesRequeued = 0
        public var tasksResumed = 0
        public init() {}
    }

    let catalog: any Catalog
    let blobs: any BlobStore
    let logger: Logger
    /// False for a store that is not the default: it holds no staged data, so only its leftovers and
    /// orphaned blobs are its business; the images are checked once, against the default store.
    let checkImages: Bool

    public init(catalog: any Catalog, blobs: any BlobStore, checkImages: Bool = true,
                logger: Logger = Logger(label: "imaged.scrub")) {
        self.catalog = catalog; self.blobs = blobs; self.checkImages = checkImages; self.logger = logger
    }

    public func run() async throws -> Report {
        var report = Report()
        // Open resumable uploads keep their bytes; no request of this node is writing them any more.
        var sessions: [String] = []
        for image in try await catalog.images(withStatus: [.saving, .uploading]) {
            guard let s = image.uploadSession, image.writerNode == s.writer else { continue }
            if s.store == blobs.id, let token = s.token { sessions.append(token) }
            if checkImages, s.holder != nil {
                _ = try? await ImageService(catalog: catalog).updateUploadSession(id: image.id, sessionId: s.id) {
                    $0.holder = nil
                    $0.heldUntil = nil
                }
            }
        }
        if let resumable = blobs.resumable {
            report.temporariesRemoved = try await resumable.removeLeftovers(keeping: sessions)
        } else {
            report.temporariesRemoved = try await blobs.removeLeftovers()
        }
        if report.temporariesRemoved > 0 {
            logger.notice("removed \(report.temporariesRemoved) unfinished blob write(s) left by a crash")
        }
        let service = ImageService(catalog: catalog)
        for image in checkImages ? try await catalog.images(withStatus: [.saving, .uploading, .importing]) : [] {
            // A resumable upload survives restarts; it ends by completion, termination or expiry.
            if UploadSession.isSessionWriter(image.writerNode) { continue }
            var reason: String?
            switch image.status {
            case .saving:
                reason = "upload interrupted by a restart"
            case .uploading:
                if try await blobs.size(key: BlobKey.staging(image.id)) == nil { reason = "staging interrupted by a restart" }
            case .importing:
                var task: ImageTask?
                if let taskId = image.properties[ImageService.importLockKey] { task = try await catalog.task(id: taskId) }
                if let task, !task.status.isFinished {
                    // This node is the only one: the lease holder is dead, so resume now.
                    _ = try await catalog.updateTask(id: task.id) { $0.leaseExpiresAt = 0 }
                    report.tasksResumed += 1
                    logger.notice("import task \(task.id) of image \(image.id) interrupted by a restart: resuming")
                } else {
                    reason = "import has no running task"
                }
            default: break
            }
            guard let reason else { continue }
            let failedStore = image.status == .importing ? blobs.id : nil
            try await service.returnToQueued(id: image.id, from: [image.status], writer: .any) { $0.releaseImportLock(failedStore: failedStore) }
            report.imagesRequeued += 1
            logger.notice("image \(image.id) was \(image.status.rawValue) (\(reason)): back to queued")
        }
        for key in try await blobs.keys(prefix: "images/") {
            let id = String(key.dropFirst("images/".count))
            let image = try await catalog.image(id: id)
            if image?.status == .active || image?.status == .deactivated || image?.status == .importing
                || image?.status == .pendingDelete { continue }  // softly deleted: kept until expunged
            try await blobs.delete(key: key)
            report.blobsRemoved += 1
            logger.notice("removed blob \(key): no active image refers to it (\(image?.status.rawValue ?? "no such image"))")
        }
        for key in try await blobs.keys(prefix: "staging/") {
            let id = String(key.dropFirst("staging/".count))
            let status = try await catalog.image(id: id)?.status
            if status == .uploading || status == .importing { continue }
            try await blobs.delete(key: key)
            report.blobsRemoved += 1
            logger.notice("removed staged blob \(key): image is \(status?.rawValue ?? "gone")")
        }
        return report
    }
}
