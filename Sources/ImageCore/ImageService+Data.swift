/// The lifecycle rules of image data (Glance's state machine, reference §4). The bytes themselves
/// move in ImageData; these methods only decide and record.
extension ImageService {
    /// What a finished upload or import records, in the same step that makes the image active.
    public struct DataFacts: Sendable, Equatable {
        public var size: Int64
        public var checksum: String
        public var hashAlgorithm: String
        public var hashValue: String
        public var virtualSize: Int64?
        /// How the sent bytes were compressed (gzip, xz, zstd, bzip2) when the ingest decompressed them:
        /// recorded as `imaged_source_compression`.
        public var sourceCompression: String? = nil
        /// When the ingest converted the data: the format it came in (`imaged_source_format`) and the
        /// format stored, which becomes the image's `disk_format`.
        public var sourceFormat: String? = nil
        public var convertedTo: String? = nil
        public init(size: Int64, checksum: String, hashAlgorithm: String, hashValue: String, virtualSize: Int64?) {
            self.size = size; self.checksum = checksum; self.hashAlgorithm = hashAlgorithm
            self.hashValue = hashValue; self.virtualSize = virtualSize
        }
    }

    /// The property naming how the image's data was compressed when sent (reserved: only the ingest sets it).
    public static let sourceCompressionKey = "imaged_source_compression"
    /// The property naming the disk format the data came in when the ingest converted it (reserved).
    public static let sourceFormatKey = "imaged_source_format"

    /// queued → `to` (saving for `PUT /file`, uploading for `PUT /stage`), for the owner or an admin.
    public func beginUpload(id: String, to: ImageStatus, by p: Principal) async throws -> Image {
        AuditTrail.note(to == .saving ? "image.upload" : "image.stage", imageId: id, by: p)
        let image = try await mutate(id: id, by: p, action: to == .saving ? .uploadImage : .modifyImage, verb: "upload data to") { image in
            try Self.startWriting(&image, to: to, writer: config.nodeId)
        }
        emit("image.prepare", image: image, extra: EventPayload.importStores(image))
        return image
    }

    /// The rule of every upload's start (plain or resumable): queued → `to`, recorded as `writer`'s;
    /// data to save needs its formats first (staged data may come first: glance-direct insists at import).
    static func startWriting(_ image: inout Image, to: ImageStatus, writer: String) throws {
        guard image.status == .queued else {
            throw ImageError.conflict("Image status transition from \(image.status.rawValue) to \(to.rawValue) is not allowed")
        }
        guard to != .saving || (image.diskFormat != nil && image.containerFormat != nil) else {
            throw ImageError.badRequest("Properties disk_format, container_format must be set prior to saving data.")
        }
        image.status = to
        image.writerNode = writer
    }

    /// saving (or importing) → active with size and digests, all in one catalog write. When the image
    /// was deleted meanwhile the caller gets 410 and must discard the data it committed.
    /// `writer`: whose upload this is (this node's by default; a resumable upload's session).
    /// `importTask`: an import's task, which must still hold the image's import lock (a cancelled
    /// import's run that had not noticed yet publishes nothing, even when a new import has begun).
    public func finishData(id: String, from: ImageStatus, facts: DataFacts, writer: UploadWriter? = nil, importTask: String? = nil,
                           also: @escaping @Sendable (inout Image) -> Void = { _ in }) async throws -> Image {
        let writer = writer ?? .node(config.nodeId)
        let updated = try await updateCheckingQuota(id: id) { image in
            if let importTask, image.properties[Self.importLockKey] != importTask {
                throw ImageError.conflict("Image \(id) is no longer importing for task \(importTask); data discarded.")
            }
            guard image.status == from else {
                if image.status == .deleted || image.status == .pendingDelete {
                    throw ImageError(.gone, "Image \(id) was deleted while its data was being written.")
                }
                throw ImageError.conflict("Image \(id) is \(image.status.rawValue), not \(from.rawValue); data discarded.")
            }
            // Another node's upload now (this one was reaped as abandoned, then the image uploaded again).
            guard writer.owns(image.writerNode) else {
                throw ImageError.conflict("Image \(id) is being written by another node; data discarded.")
            }
            image.status = .active
            image.writerNode = nil
            image.size = facts.size
            image.checksum = facts.checksum
            image.osHashAlgo = facts.hashAlgorithm
            image.osHashValue = facts.hashValue
            image.virtualSize = facts.virtualSize
            if let compression = facts.sourceCompression { image.properties[Self.sourceCompressionKey] = compression }
            if let target = facts.convertedTo, let source = facts.sourceFormat {
                image.diskFormat = target
                image.properties[Self.sourceFormatKey] = source
            }
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
            also(&image)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        emit("image.upload", image: updated, extra: EventPayload.importStores(updated))
        emit("image.activate", image: updated)
        return updated
    }

    /// uploading → uploading with the staged size recorded (staged data is not downloadable).
    @discardableResult
    public func finishStage(id: String, size: Int64, writer: UploadWriter? = nil,
                            also: @escaping @Sendable (inout Image) -> Void = { _ in }) async throws -> Image {
        let writer = writer ?? .node(config.nodeId)
        let updated = try await updateCheckingQuota(id: id) { image in
            guard image.status == .uploading else {
                if image.status == .deleted { throw ImageError(.gone, "Image \(id) was deleted while its data was being staged.") }
                throw ImageError.conflict("Image \(id) is \(image.status.rawValue), not uploading.")
            }
            guard writer.owns(image.writerNode) else {
                throw ImageError.conflict("Image \(id) is being staged by another node; data discarded.")
            }
            image.writerNode = nil
            image.size = size
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
            also(&image)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        emit("image.upload", image: updated, extra: EventPayload.importStores(updated))
        return updated
    }

    /// This node's id, recorded as the writer of its uploads.
    public var nodeId: String { config.nodeId }

    /// A failed or abandoned upload/import: back to queued (Glance), size and virtual size cleared,
    /// so the client can retry. Does nothing when the image has moved on (deleted, say), or when
    /// its upload is not `writer`'s (this node's by default): another node's upload is never undone.
    /// With `importTask`, only while that task holds the import lock (not a newer import's image).
    @discardableResult
    public func returnToQueued(id: String, from: Set<ImageStatus>, writer: UploadWriter? = nil, importTask: String? = nil,
                               also: @escaping @Sendable (inout Image) -> Void = { _ in }) async throws -> Image? {
        let writer = writer ?? .node(config.nodeId)
        return try await catalog.updateImage(id: id) { image in
            guard from.contains(image.status), writer.owns(image.writerNode) else { return }
            if let importTask, image.properties[Self.importLockKey] != importTask { return }
            image.requeue()
            also(&image)
        }
    }

    /// An image whose data the caller may download: visible, member role (Glance's `download_image`),
    /// and not deactivated unless admin.
    public func imageForDownload(id: String, by p: Principal) async throws -> Image {
        let image = try await authorizedImage(id: id, by: p, for: .downloadImage, verb: "download")
        if image.status == .deactivated && !p.isAdmin {
            throw ImageError.forbidden("The requested image has been deactivated. Image data download is forbidden.")
        }
        return image
    }

    /// Checks and records the start of an import: takes the image's import lock
    /// (`os_glance_import_task`) and moves it to `importing`, all in one write.
    public func beginImport(id: String, method: String, taskId: String, store: String, by p: Principal) async throws -> Image {
        AuditTrail.note("image.import", imageId: id, by: p)
        let image = try await mutate(id: id, by: p, action: .modifyImage, verb: "import data to") { image in
            guard image.diskFormat != nil, image.containerFormat != nil else {
                throw ImageError.conflict("Image \(image.id) needs disk_format and container_format before import.")
            }
            if let holder = image.properties[ImageService.importLockKey], !holder.isEmpty {
                throw ImageError.conflict("Image \(image.id) has an import in progress (task \(holder)).")
            }
            let needed: ImageStatus = method == "glance-direct" ? .uploading : .queued
            guard image.status == needed else {
                throw ImageError.conflict("Image status transition from \(image.status.rawValue) to importing is not allowed"
                    + (method == "glance-direct" ? " (stage data first)" : ""))
            }
            image.status = .importing
            image.properties[ImageService.importLockKey] = taskId
            image.markImporting(store)
        }
        emit("image.prepare", image: image, extra: EventPayload.importStores(image))
        return image
    }

    /// `copy-image` on an active image: takes the import lock and names the target stores; the
    /// image stays active (and downloadable) while its data is copied.
    public func beginCopy(id: String, taskId: String, stores: String, by p: Principal) async throws -> Image {
        AuditTrail.note("image.copy", imageId: id, by: p)
        return try await mutate(id: id, by: p, action: .modifyImage, verb: "copy data of") { image in
            guard image.status == .active else {
                throw ImageError.conflict("Image \(image.id) is \(image.status.rawValue); only active images can be copied.")
            }
            if let holder = image.properties[ImageService.importLockKey], !holder.isEmpty {
                throw ImageError.conflict("Image \(image.id) has an import in progress (task \(holder)).")
            }
            image.properties[ImageService.importLockKey] = taskId
            image.markImporting(stores)
        }
    }

    public static let importLockKey = "os_glance_import_task"
    public static let failedImportKey = "os_glance_failed_import"
    public static let importingToStoresKey = "os_glance_importing_to_stores"
}

extension Image {
    /// Ends an import's hold on the image (its lock and target stores); `failedStore` records a
    /// failure in `os_glance_failed_import`, as Glance does.
    /// Back to `queued` as Glance leaves a failed or abandoned upload or import: no size, virtual size,
    /// digests or writer, so the client can try again.
    public mutating func requeue() {
        status = .queued
        writerNode = nil
        size = nil
        virtualSize = nil
        checksum = nil
        osHashAlgo = nil
        osHashValue = nil
        updatedAt = max(Timestamp.now(), updatedAt)
    }

    public mutating func releaseImportLock(failedStore: String? = nil) {
        properties.removeValue(forKey: ImageService.importLockKey)
        properties.removeValue(forKey: ImageService.importingToStoresKey)
        if let failedStore { properties[ImageService.failedImportKey] = failedStore }
    }
}
