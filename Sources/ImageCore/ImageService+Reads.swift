/// The reads and small writes the vendor front-ends need beyond the image lifecycle: tasks and
/// jobs with their visibility rule, name and id availability, upload slots. Each one is decided
/// here, so front-ends never hold the catalog.
extension ImageService {
    // MARK: Tasks (one visibility rule: an admin sees every task, a project its own)

    static func canSee(_ task: ImageTask, _ p: Principal) -> Bool {
        p.isAdmin || (task.owner != nil && task.owner == p.projectId)
    }

    /// A task the caller may see, or nil (unknown and invisible look the same).
    public func task(id: String, by p: Principal) async throws -> ImageTask? {
        guard let task = try await catalog.task(id: id.lowercased()), Self.canSee(task, p) else { return nil }
        return task
    }

    /// The tasks the caller may see, newest first, at most `limit` looked at.
    public func listTasks(limit: Int, by p: Principal) async throws -> [ImageTask] {
        try await catalog.listTasks(limit: limit).filter { Self.canSee($0, p) }
    }

    /// The tasks of an image the caller can see (404 otherwise), newest first.
    public func tasks(imageId: String, by p: Principal) async throws -> [ImageTask] {
        let image = try await visibleImage(id: imageId, by: p)
        return try await catalog.tasks(imageId: image.id)
    }

    /// Whether a task id is taken (vendor job ids are chosen by clients and never reused).
    public func taskExists(id: String) async throws -> Bool {
        try await catalog.task(id: id.lowercased()) != nil
    }

    /// A vendor job (ZStack's api-jobs) as its caller may see it: the row, or nil when unknown,
    /// expired or another project's (an admin sees every one). Unknown and invisible look the same.
    public func job(id: String, by p: Principal, now: Int64 = Timestamp.now()) async throws -> ImageTask? {
        guard let task = try await catalog.task(id: id.lowercased()), task.expiresAt.map({ $0 > now }) ?? true,
              Self.canSee(task, p) else { return nil }
        return task
    }

    /// Whether the caller's project may start one more vendor job: false when it already holds
    /// `limit` live tasks of `types` (jobs are kept for hours, so creating them is bounded per
    /// project; 0 means unbounded). The count and the insert are not one transaction, so
    /// concurrent callers may pass the bound by a few.
    public func mayStartJob(types: [String], limit: Int, by p: Principal, now: Int64 = Timestamp.now()) async throws -> Bool {
        guard limit > 0, let owner = p.projectId else { return true }
        return try await catalog.countLiveTasks(owner: owner, types: types, now: now) < limit
    }

    /// The image row a job worked on, whatever its status now (a failed import deletes its image, and
    /// the job's answer still names it); nil when never made or no longer the job owner's.
    public func image(ofJob job: ImageTask) async throws -> Image? {
        guard let imageId = job.imageId, let image = try await catalog.image(id: imageId),
              job.owner == nil || image.owner == job.owner else { return nil }
        return image
    }

    /// Records a finished vendor job as a task row owned by the caller; `.conflict` when its id is
    /// taken. The job names its image only when the caller can see that image, so no row ties a
    /// project to another's image.
    public func recordJob(id: String, type: String, imageId: String?, input: String, status: ImageTask.Status,
                          result: String?, message: String, lifetime: Int64, by p: Principal) async throws {
        let now = Timestamp.now()
        // Recorded after the work, so the image may be deleted by now: its own project's (or an
        // admin's) whatever its status, anyone else's only while visible to the caller.
        var seen: String?
        if let imageId, ImageID.isValid(imageId), let image = try await catalog.image(id: imageId.lowercased()) {
            let own = p.isAdmin || (image.owner != nil && image.owner == p.projectId)
            seen = own ? image.id : try await visibleImageIfAny(id: image.id, by: p)?.id
        }
        try await catalog.insertTask(ImageTask(id: id.lowercased(), type: type, status: status, owner: p.projectId,
                                               imageId: seen, userId: p.userId, requestId: nil, input: input,
                                               result: result, message: message, createdAt: now, updatedAt: now,
                                               expiresAt: now + lifetime))
    }

    // MARK: Availability

    /// Whether an image id was ever used, whatever its status or owner (ids are never reused). Says
    /// nothing else about an image the caller cannot see.
    public func idIsTaken(_ id: String) async throws -> Bool {
        guard ImageID.isValid(id) else { return false }
        return try await catalog.image(id: id.lowercased()) != nil
    }

    /// Whether `owner` already has a live image named `name` under `NameRule.namePerOwner`: the
    /// answer a front-end gives before validating the rest; the insert decides again.
    public func nameTaken(_ name: String, owner: String?) async throws -> Bool {
        let probe = Image(id: "", name: name, owner: owner, createdAt: 0, updatedAt: 0, nameRule: .namePerOwner)
        guard let check = probe.uniqueness else { return false }
        return try await catalog.clashingImage(check, except: "") != nil
    }

    // MARK: Upload slots (ZStack's upload:// URLs)

    /// The queued image whose vendor document holds `token` as its upload slot (`uploadToken`,
    /// compared in constant time), with the principal the slot uploads as; nil otherwise.
    public func uploadSlot(imageId: String, token: String, vendor: String) async throws -> (image: Image, uploader: Principal)? {
        guard ImageID.isValid(imageId), let image = try await catalog.image(id: imageId.lowercased()), !image.status.isGone,
              let expected = image.extensions[vendor]?["uploadToken"]?.stringValue,
              ConstantTime.equal(Array(expected.utf8), Array(token.utf8)) else { return nil }
        let uploader = Principal(userId: image.extensions[vendor]?["uploader"]?.stringValue ?? "\(vendor)-upload",
                                 projectId: image.owner, roles: ["member"])
        return (image, uploader)
    }

    /// The image, whoever owns it, behind a capability URL a front-end handed out (ZStack's export
    /// URLs): `holds` decides from the image's vendor document whether the URL's token is still
    /// valid there. Nil when the image is unknown, gone, or `holds` says no.
    public func imageForCapability(imageId: String, vendor: String, holds: (JSONValue) -> Bool) async throws -> Image? {
        guard ImageID.isValid(imageId), let image = try await catalog.image(id: imageId.lowercased()), !image.status.isGone,
              let document = image.extensions[vendor], holds(document) else { return nil }
        return image
    }

    /// Ends an upload slot: the token goes, so its URL no longer names anything.
    public func closeUploadSlot(imageId: String, vendor: String) async throws {
        _ = try await catalog.updateImage(id: imageId.lowercased()) { image in
            if case .object(var doc)? = image.extensions[vendor] {
                doc.removeAll { $0.0 == "uploadToken" }
                image.extensions[vendor] = .object(doc)
            }
        }
    }
}

public enum ConstantTime {
    /// Compares without an early exit, so timing does not reveal how much of a secret matched.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
