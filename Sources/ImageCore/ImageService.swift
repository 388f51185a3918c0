import Logging

public struct ImageServiceConfig: Sendable {
    public var containerFormats = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
    public var diskFormats = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
    public var propertyQuota = 128
    public var tagQuota = 128
    public var memberQuota = 128
    public var listDefaultLimit = 25
    public var listMaxLimit = 1000
    /// Limits for every project unless overridden per project in the catalog.
    public var quota = QuotaLimits.unlimited
    /// This node's id in the cluster: recorded as the writer of the uploads it runs.
    public var nodeId = "node-" + ImageID.generate().prefix(8)
    /// Where the core's events (Glance's notifications) go; none by default.
    public var events: any EventSink = NoEvents()

    public init() {}
}

/// One change of a PATCH (or of a vendor front-end's update), in OpenStack attribute names.
public struct ImageChange: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        /// `strict` is the draft-04 `add`: refuses to overwrite an existing value.
        case add(strict: Bool)
        case replace
        case remove
    }
    public var operation: Operation
    public var attribute: String
    public var value: JSONValue?

    public init(_ operation: Operation, _ attribute: String, _ value: JSONValue? = nil) {
        self.operation = operation; self.attribute = attribute; self.value = value
    }
}

/// A list request as the caller phrased it; the service turns it into an `ImageListQuery`.
public struct ImageListRequest: Sendable, Equatable {
    public var filters: [ImageListQuery.Filter] = []
    public var sort: [ImageListQuery.Sort] = []
    public var visibility: ImageListQuery.Scope.VisibilityFilter = .default
    /// nil: the default (`accepted`); empty: any status.
    public var memberStatuses: [MemberStatus]? = nil
    public var osHidden = false
    public var limit: Int? = nil
    public var marker: String? = nil
    /// Rows to skip (page-numbered APIs).
    public var offset = 0
    /// Also list the caller's softly deleted (`pending_delete`) images.
    public var includePendingDelete = false

    public init() {}
}

/// The rules of the catalog: lifecycle, visibility, policy, quotas, validation.
/// Front-ends translate to and from it; they never touch storage.
public struct ImageService: Sendable {
    /// Internal on purpose: the service is the only door to the catalog (design.md). Front-ends get
    /// service calls; the data path and the task runner are handed the catalog by the composition root.
    let catalog: any Catalog
    public let config: ImageServiceConfig
    let logger: Logger

    public init(catalog: any Catalog, config: ImageServiceConfig = .init(), logger: Logger = Logger(label: "imaged.service")) {
        self.catalog = catalog
        self.config = config
        self.logger = logger
    }

    // MARK: Policy (the rules themselves are the table in Policy.swift)

    /// Whether the caller may see the image at all (metadata).
    public func canRead(_ image: Image, _ p: Principal, membership: ImageMember?) -> Bool {
        !image.status.isGone && Policy.allows(.getImage, p, PolicyTarget(image, callerIsImageMember: membership != nil))
    }

    /// The caller's membership of a shared image it does not own (any member status grants reading).
    func membership(_ image: Image, _ p: Principal) async throws -> ImageMember? {
        guard image.visibility == .shared, let project = p.projectId, image.owner != project, !p.isAdmin else { return nil }
        return try await catalog.member(imageId: image.id, memberId: project)
    }

    /// Loads an image the caller can see, or 404 (never revealing whether it exists).
    public func visibleImage(id: String, by p: Principal) async throws -> Image {
        try await visibleImageAndMembership(id: id, by: p).image
    }

    /// The image when the caller can see it, nil when it cannot (or it does not exist); other
    /// failures (the catalog unreachable) are thrown, not taken for "not found".
    public func visibleImageIfAny(id: String, by p: Principal) async throws -> Image? {
        do { return try await visibleImage(id: id, by: p) } catch let e as ImageError where e.kind == .notFound { return nil }
    }

    func visibleImageAndMembership(id: String, by p: Principal) async throws -> (image: Image, member: ImageMember?) {
        guard ImageID.isValid(id), let image = try await catalog.image(id: id.lowercased()) else {
            throw ImageError.notFound("No image found with ID \(id)")
        }
        let member = try await membership(image, p)
        guard canRead(image, p, membership: member) else {
            throw ImageError.notFound("No image found with ID \(id)")
        }
        return (image, member)
    }

    /// Loads an image for an action: 404 if the caller cannot see it, 403 if it can but the
    /// policy refuses the action (reference §2.4).
    public func authorizedImage(id: String, by p: Principal, for action: PolicyAction, verb: String) async throws -> Image {
        AuditTrail.note(action.auditAction, imageId: id, by: p)
        let (image, member) = try await visibleImageAndMembership(id: id, by: p)
        AuditTrail.note(image: image)
        guard Policy.allows(action, p, PolicyTarget(image, callerIsImageMember: member != nil)) else {
            throw ImageError.forbidden("You are not authorized to \(verb) image \(image.id).")
        }
        return image
    }

    // MARK: Images

    public func showImage(id: String, by p: Principal) async throws -> Image {
        try await visibleImage(id: id, by: p)
    }

    /// Creates an image from attributes (OpenStack names, in the order the caller sent them) and
    /// the vendor documents of the front-end that created it.
    /// `nameRule` is the uniqueness the creating API keeps (nil for Glance's free names); a clash
    /// throws `.duplicate`, decided inside the insert.
    public func createImage(_ attributes: [(String, JSONValue)], extensions: [String: JSONValue] = [:],
                            nameRule: NameRule? = nil, by p: Principal) async throws -> Image {
        AuditTrail.note("image.create", by: p)
        var image = try Self.newImage(attributes, extensions: extensions, config: config, by: p, now: Timestamp.now())
        image.nameRule = nameRule
        let limits = try await limits(for: image.owner)
        try await catalog.insertImage(image) { [image] usage in
            try Self.checkQuota(before: nil, after: image, limits: limits, usage: usage)
        }
        logger.info("image created", metadata: ["image": .string(image.id), "owner": .string(image.owner ?? "-")])
        AuditTrail.note(image: image)
        emit("image.create", image: image)
        return image
    }

    /// The image a create would insert: every attribute validated, then policy, visibility and the
    /// per-image quotas checked. Pure: the owner's usage is checked by the catalog's insert.
    package static func newImage(_ attributes: [(String, JSONValue)], extensions: [String: JSONValue] = [:],
                                 config: ImageServiceConfig, by p: Principal, now: Int64) throws -> Image {
        var image = Image(id: ImageID.generate(), owner: p.projectId, createdAt: now, updatedAt: now, extensions: extensions)
        var readOnlyKey: String?
        var ownerGiven = false
        for (key, value) in attributes {
            if key == "id" {
                guard case .string(let s) = value, ImageID.isValid(s) else {
                    throw ImageError.badRequest("Invalid value for 'id': not a UUID")
                }
                image.id = s.lowercased()
            } else if ImageAttributes.writable.contains(key) {
                try ImageAttributes.set(key, value, on: &image, config: config)
                if key == "owner" { ownerGiven = true }
            } else if ImageAttributes.readOnly.contains(key) {
                readOnlyKey = readOnlyKey ?? key
            } else {
                try ImageAttributes.checkPropertyKey(key)
                try ImageAttributes.set(key, value, on: &image, config: config)
            }
        }
        if ownerGiven, !p.isAdmin, image.owner != p.projectId {
            throw ImageError.forbidden("You are not permitted to create images owned by '\(image.owner ?? "null")'.")
        }
        guard Policy.allows(.addImage, p, PolicyTarget(image)) else {
            throw ImageError.forbidden("You are not authorized to create images.")
        }
        try checkVisibilityPolicy(image, p)
        try checkQuotas(image, config)
        if let key = readOnlyKey { throw ImageError.forbidden("Attribute '\(key)' is read-only.") }
        return image
    }

    static func checkVisibilityPolicy(_ image: Image, _ p: Principal) throws(ImageError) {
        switch image.visibility {
        case .public where !Policy.allows(.publicizeImage, p, PolicyTarget(image)):
            throw .forbidden("You are not authorized to set visibility to public (admin only).")
        case .community where !Policy.allows(.communitizeImage, p, PolicyTarget(image)):
            throw .forbidden("You are not authorized to set visibility to community.")
        default: break
        }
    }

    static func checkQuotas(_ image: Image, _ config: ImageServiceConfig) throws(ImageError) {
        if image.tags.count > config.tagQuota {
            throw .tooLarge("Maximum number of tags exceeded (\(image.tags.count) of \(config.tagQuota)).")
        }
        let counted = image.properties.keys.filter { !$0.hasPrefix(ImageAttributes.reservedPrefix) }.count
        if counted > config.propertyQuota {
            throw .tooLarge("Maximum number of properties exceeded (\(counted) of \(config.propertyQuota)).")
        }
    }

    /// A change of one vendor's extension document, computed from the stored one inside the write
    /// (so concurrent changes through that vendor's API are not lost); nil removes the document.
    public typealias ExtensionChange = @Sendable (JSONValue?) throws -> JSONValue?

    /// Applies changes in order and saves once; any failure leaves the image untouched.
    /// `vendorChanges` rewrite vendor documents in the same write.
    /// `expect`, when given, checks the stored image first (a front-end's precondition, e.g. Avi's
    /// `_last_modified`) inside the same write.
    /// `activate`, when given, also reactivates (true) or deactivates (false) the image in the same
    /// write, under the same rules as `reactivateImage`/`deactivateImage` (a vendor update that
    /// changes fields and state at once either does both or nothing).
    public func updateImage(id: String, changes: [ImageChange], vendorChanges: [String: ExtensionChange] = [:],
                            activate: Bool? = nil, expect: (@Sendable (Image) throws -> Void)? = nil,
                            by p: Principal) async throws -> Image {
        try Self.checkChangeable(changes)
        return try await mutate(id: id, by: p, action: .modifyImage, verb: "update") { [config] image in
            try expect?(image)
            try Self.applyChanges(changes, to: &image, config: config, by: p)
            for (vendor, change) in vendorChanges { image.extensions[vendor] = try change(image.extensions[vendor]) }
            try Self.checkQuotas(image, config)
            if let activate {
                try Self.transition(&image, by: p, action: activate ? .reactivate : .deactivate,
                                    from: activate ? .deactivated : .active, to: activate ? .active : .deactivated)
            }
        }
    }

    /// Refuses changes of read-only and reserved attributes (before the image is even looked up).
    package static func checkChangeable(_ changes: [ImageChange]) throws(ImageError) {
        for change in changes {
            let a = change.attribute
            if ImageAttributes.readOnly.contains(a) { throw ImageError.forbidden("Attribute '\(a)' is read-only.") }
            if ImageAttributes.isReserved(a) { throw ImageError.forbidden("Attribute '\(a)' is reserved.") }
        }
    }

    /// The changes applied in order to the stored image (validation and policy included). Pure.
    package static func applyChanges(_ changes: [ImageChange], to image: inout Image, config: ImageServiceConfig,
                                     by p: Principal) throws(ImageError) {
        for change in changes { try applyChange(change, to: &image, config: config, by: p) }
    }

    static func applyChange(_ change: ImageChange, to image: inout Image, config: ImageServiceConfig,
                            by p: Principal) throws(ImageError) {
        let key = change.attribute
        let isBase = ImageAttributes.writable.contains(key)
        if !isBase { try ImageAttributes.checkPropertyKey(key) }
        switch change.operation {
        case .remove:
            guard !isBase else { throw .forbidden("Attribute '\(key)' may not be removed.") }
            guard image.properties.removeValue(forKey: key) != nil else {
                throw .conflict("Property \(key) does not exist.")
            }
            return
        case .replace:
            if !isBase, image.properties[key] == nil { throw .conflict("Property \(key) does not exist.") }
        case .add(let strict):
            // draft-04 `add` never overwrites, and base attributes always exist.
            if strict, isBase || image.properties[key] != nil {
                throw .conflict("Property \(key) already present.")
            }
        }
        guard let value = change.value else { throw .badRequest("Operation on '\(key)' needs a value.") }
        let before = image
        try ImageAttributes.set(key, value, on: &image, config: config)
        switch key {
        case "owner" where image.owner != before.owner && !p.isAdmin:
            throw .forbidden("Owner can't be updated by non admin.")
        case "visibility" where image.visibility != before.visibility:
            try checkVisibilityPolicy(image, p)
        case "disk_format" where image.diskFormat != before.diskFormat,
            "container_format" where image.containerFormat != before.containerFormat:
            guard before.status == .queued || before.status == .importing else {
                throw .forbidden("Attribute \(key) can be only replaced for a queued image.")
            }
        default: break
        }
    }

    /// Checks access, then changes the image atomically in the catalog. Access is checked again
    /// inside the transaction, against the row being changed.
    func mutate(id: String, by p: Principal, action: PolicyAction, verb: String,
                _ change: @escaping @Sendable (inout Image) throws -> Void) async throws -> Image {
        let visible = try await authorizedImage(id: id, by: p, for: action, verb: verb)
        let updated = try await updateCheckingQuota(id: visible.id, limits: try await limits(for: visible.owner)) { image in
            // Owner and visibility may have changed since the check above; only owner-based rules
            // reach here (members never modify images), so no membership lookup is needed.
            guard !image.status.isGone, Policy.allows(action, p, PolicyTarget(image)) else {
                throw ImageError.notFound("No image found with ID \(id)")
            }
            let original = image
            try change(&image)
            Self.noteUse(&image, before: original, now: Timestamp.now())  // a VM recorded: last used now
            if image != original { image.updatedAt = max(Timestamp.now(), original.updatedAt) }
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        AuditTrail.note(image: updated)  // the name after a rename
        if action == .deleteImage {
            emit("image.delete", image: updated, extra: EventPayload.deleted(at: updated.deletedAt ?? Timestamp.now()))
        } else {
            emit("image.update", image: updated)
        }
        return updated
    }

    /// Refuses what no API may delete: a protected image (403) or one VMs are recorded against (in use).
    static func checkDeletable(_ image: Image) throws(ImageError) {
        if image.isProtected { throw ImageError.forbidden("Image \(image.id) is protected and cannot be deleted.") }
        let vms = image.recordedVMs
        if !vms.isEmpty {
            throw ImageError(.inUse, "Image \(image.id) is in use by \(vms.count == 1 ? "VM" : "VMs") \(vms.joined(separator: ", ")) and cannot be deleted.")
        }
    }

    /// Returns the deleted row (an open resumable upload's session is still in it: its bytes are the caller's to discard).
    @discardableResult
    public func deleteImage(id: String, by p: Principal) async throws -> Image {
        let deleted = try await mutate(id: id, by: p, action: .deleteImage, verb: "delete") { image in
            try Self.checkDeletable(image)
            image.status = .deleted
            image.deletedAt = Timestamp.now()
        }
        logger.info("image deleted", metadata: ["image": .string(id)])
        return deleted
    }

    // MARK: Soft deletion (ZStack's Delete → Deleted → Recover | Expunge)

    /// An image the caller may see, or one of its own it deleted softly (`pending_delete`): the
    /// vendor front-ends with recoverable deletes show those; OpenStack never does.
    public func visibleImageOrSoftDeleted(id: String, by p: Principal) async throws -> Image {
        guard ImageID.isValid(id), let image = try await catalog.image(id: id.lowercased()) else {
            throw ImageError.notFound("No image found with ID \(id)")
        }
        AuditTrail.note(image: image)
        if image.status == .pendingDelete {
            guard Policy.allows(.deleteImage, p, PolicyTarget(image)) else { throw ImageError.notFound("No image found with ID \(id)") }
            return image
        }
        return try await visibleImage(id: id, by: p)
    }

    /// active/deactivated → pending_delete, data kept (Glance's delayed delete): gone for OpenStack
    /// clients, recoverable or expungeable through the front-end that did it. `change` records
    /// vendor state in the same write.
    public func softDeleteImage(id: String, by p: Principal,
                                _ change: (@Sendable (inout Image) throws -> Void)? = nil) async throws -> Image {
        let image = try await mutate(id: id, by: p, action: .deleteImage, verb: "delete") { image in
            try Self.checkDeletable(image)
            guard image.status == .active || image.status == .deactivated else {
                throw ImageError.conflict("Image \(image.id) in status '\(image.status.rawValue)' cannot be deleted softly.")
            }
            try change?(&image)
            image.status = .pendingDelete
            image.deletedAt = Timestamp.now()
        }
        logger.info("image deleted softly", metadata: ["image": .string(id)])
        return image
    }

    /// pending_delete → `to` (active or deactivated), within the owner's quota again.
    public func recoverImage(id: String, to status: ImageStatus, by p: Principal,
                             _ change: (@Sendable (inout Image) throws -> Void)? = nil) async throws -> Image {
        AuditTrail.note("image.recover", imageId: id, by: p)
        let image = try await visibleImageOrSoftDeleted(id: id, by: p)
        guard Policy.allows(.deleteImage, p, PolicyTarget(image)) else {
            throw ImageError.forbidden("You are not authorized to recover image \(image.id).")
        }
        let updated = try await updateCheckingQuota(id: image.id, limits: try await limits(for: image.owner)) { image in
            guard image.status == .pendingDelete else {
                throw ImageError.conflict("Image \(image.id) is in status '\(image.status.rawValue)', not deleted.")
            }
            try change?(&image)
            image.status = status
            image.deletedAt = nil
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        emit("image.update", image: updated)
        return updated
    }

    /// pending_delete → deleted: the row stays as a deleted image; the caller removes the data.
    public func expungeImage(id: String, by p: Principal) async throws -> Image {
        AuditTrail.note("image.expunge", imageId: id, by: p)
        let image = try await visibleImageOrSoftDeleted(id: id, by: p)
        guard Policy.allows(.deleteImage, p, PolicyTarget(image)) else {
            throw ImageError.forbidden("You are not authorized to expunge image \(image.id).")
        }
        let updated = try await catalog.updateImage(id: image.id) { image in
            guard image.status == .pendingDelete else {
                throw ImageError.conflict("Image \(image.id) is in status '\(image.status.rawValue)', not deleted.")
            }
            image.status = .deleted
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        logger.info("image expunged", metadata: ["image": .string(id)])
        return updated
    }

    /// Forgets the image's data in some of its stores (ZStack's expunge from some backup storages),
    /// softly deleted images included: `stores` loses them in one write, at least one must remain,
    /// and `change` records vendor state in the same write. The caller removes those blobs afterwards.
    public func forgetStores(id: String, _ drop: Set<String>, by p: Principal,
                             _ change: (@Sendable (inout Image) throws -> Void)? = nil) async throws -> Image {
        AuditTrail.note("image.forget_stores", imageId: id, by: p)
        let image = try await visibleImageOrSoftDeleted(id: id, by: p)
        guard Policy.allows(.deleteImage, p, PolicyTarget(image)) else {
            throw ImageError.forbidden("You are not authorized to delete data of image \(image.id).")
        }
        let updated = try await catalog.updateImage(id: image.id) { image in
            guard [.active, .deactivated, .pendingDelete].contains(image.status) else {
                throw ImageError.conflict("Image \(image.id) is in status '\(image.status.rawValue)'; its stores cannot change.")
            }
            let held = Self.storeIds(image)
            let kept = held.filter { !drop.contains($0) }
            guard !kept.isEmpty, kept.count < held.count else {
                throw ImageError.conflict("Image \(image.id) must keep its data in at least one store it is in.")
            }
            try change?(&image)
            image.properties[Self.storesKey] = kept.joined(separator: ",")
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        emit("image.update", image: updated)
        logger.info("image data forgotten in some stores", metadata: ["image": .string(id), "stores": .string(drop.sorted().joined(separator: ","))])
        return updated
    }

    /// active → deactivated; already deactivated is a no-op; any other status is refused (403).
    public func deactivateImage(id: String, by p: Principal) async throws {
        try await transition(id: id, by: p, action: .deactivate, from: .active, to: .deactivated)
    }

    /// deactivated → active; already active is a no-op; any other status is refused (403).
    public func reactivateImage(id: String, by p: Principal) async throws {
        try await transition(id: id, by: p, action: .reactivate, from: .deactivated, to: .active)
    }

    func transition(id: String, by p: Principal, action: PolicyAction, from: ImageStatus, to: ImageStatus) async throws {
        _ = try await mutate(id: id, by: p, action: action, verb: action.rawValue) { image in
            try Self.transition(&image, by: p, action: action, from: from, to: to)
        }
    }

    /// from → to; already `to` is a no-op; any other status is refused (403), as is a caller the
    /// action's policy refuses.
    static func transition(_ image: inout Image, by p: Principal, action: PolicyAction, from: ImageStatus,
                           to: ImageStatus) throws(ImageError) {
        guard image.status != to else { return }
        guard Policy.allows(action, p, PolicyTarget(image)) else {
            throw ImageError.forbidden("You are not authorized to \(action.rawValue) image \(image.id).")
        }
        guard image.status == from else {
            throw ImageError.forbidden("Not allowed to \(action.rawValue) image in status '\(image.status.rawValue)'")
        }
        image.status = to
    }

    public func addTag(id: String, tag: String, by p: Principal) async throws {
        let tag = try ImageAttributes.validTag(tag)
        _ = try await mutate(id: id, by: p, action: .modifyImage, verb: "update") { [config] image in
            guard !image.tags.contains(tag) else { return }
            image.tags = ImageAttributes.normalizedTags(image.tags + [tag])
            try Self.checkQuotas(image, config)
        }
    }

    public func removeTag(id: String, tag: String, by p: Principal) async throws {
        _ = try await mutate(id: id, by: p, action: .modifyImage, verb: "update") { image in
            guard let i = image.tags.firstIndex(of: tag) else { throw ImageError.notFound("Tag \(tag) not found.") }
            image.tags.remove(at: i)
        }
    }

    // MARK: Lists

    public func listImages(_ request: ImageListRequest, by p: Principal) async throws -> [Image] {
        var query = try Self.listQuery(request, config: config, by: p)
        if let m = request.marker {
            do {
                query.marker = try await visibleImage(id: m, by: p)
            } catch let e as ImageError where e.kind == .notFound {
                throw ImageError.badRequest("Invalid marker. Image \(m) could not be found.")
            }
        }
        return try await catalog.listImages(query)
    }

    /// Every image a list request matches, page after page (vendor APIs that filter or page in
    /// their own terms after reading). `limit`, `marker` and `offset` of the request are ignored.
    public func listAllImages(_ request: ImageListRequest, by p: Principal) async throws -> [Image] {
        var request = request
        request.limit = config.listMaxLimit
        request.marker = nil
        request.offset = 0
        var out: [Image] = []
        while true {
            let page = try await listImages(request, by: p)
            out += page
            if page.count < config.listMaxLimit { return out }
            request.offset += page.count
        }
    }

    /// What the catalog is asked for a list request: policy, limits, tie-breaking sort keys, the
    /// caller's scope. Pure; the marker (which needs the catalog) is resolved by `listImages`.
    package static func listQuery(_ request: ImageListRequest, config: ImageServiceConfig,
                                  by p: Principal) throws(ImageError) -> ImageListQuery {
        guard Policy.allows(.getImages, p) else { throw ImageError.forbidden("You are not authorized to list images.") }
        var limit = request.limit ?? config.listDefaultLimit
        guard limit >= 0 else { throw ImageError.badRequest("limit param must be positive") }
        limit = min(limit, config.listMaxLimit)

        var sort = request.sort
        let lastDirection = sort.last?.direction ?? .desc
        if let unique = sort.firstIndex(where: { $0.key == .id }) {
            // Nothing after the unique id can change the order; keys there only keep a database from
            // walking the id index (PostgreSQL then sorts each page again).
            sort.removeSubrange((unique + 1)...)
        } else {
            if !sort.contains(where: { $0.key == .createdAt }) { sort.append(.init(.createdAt, lastDirection)) }
            sort.append(.init(.id, lastDirection))
        }

        let scope = ImageListQuery.Scope(
            isAdmin: p.isAdmin, projectId: p.projectId, visibility: request.visibility,
            memberStatuses: request.memberStatuses.map { $0.isEmpty ? nil : $0 } ?? [.accepted])
        var query = ImageListQuery(scope: scope, filters: request.filters, sort: sort,
                                   osHidden: request.osHidden, limit: limit)
        // Checked before the marker is looked up (no front-end sends a negative offset).
        guard request.offset >= 0 else { throw ImageError.badRequest("offset must not be negative") }
        query.offset = request.offset
        query.includePendingDelete = request.includePendingDelete
        return query
    }

    /// How many images a list with these filters would return in all (the paging of the request is ignored).
    public func countImages(_ request: ImageListRequest, by p: Principal) async throws -> Int {
        guard Policy.allows(.getImages, p) else { throw ImageError.forbidden("You are not authorized to list images.") }
        let scope = ImageListQuery.Scope(
            isAdmin: p.isAdmin, projectId: p.projectId, visibility: request.visibility,
            memberStatuses: request.memberStatuses.map { $0.isEmpty ? nil : $0 } ?? [.accepted])
        var query = ImageListQuery(scope: scope, filters: request.filters, sort: [], osHidden: request.osHidden, limit: 0)
        query.includePendingDelete = request.includePendingDelete
        return try await catalog.countImages(query)
    }

    // MARK: Members

    public func addMember(imageId: String, memberId: String, by p: Principal) async throws -> ImageMember {
        let memberId = memberId.trimmingSpaces
        guard !memberId.isEmpty, memberId.unicodeScalars.count <= 255 else {
            throw ImageError.badRequest("Member id must be 1 to 255 characters.")
        }
        let image = try await authorizedImage(id: imageId, by: p, for: .addMember, verb: "add members to")
        guard image.visibility == .shared else { throw ImageError.forbidden("Only shared images have members.") }
        let existing = try await catalog.members(imageId: image.id)
        if existing.contains(where: { $0.memberId == memberId }) {
            throw ImageError.conflict("Member \(memberId) already exists on image \(image.id).")
        }
        guard existing.count < config.memberQuota else {
            throw ImageError.tooLarge("Maximum number of image members exceeded (\(config.memberQuota)).")
        }
        let now = Timestamp.now()
        let member = ImageMember(imageId: image.id, memberId: memberId, status: .pending, createdAt: now, updatedAt: now)
        try await catalog.insertMember(member)
        emit("image.member.create", EventPayload.member(member))
        return member
    }

    /// The owner (or an admin) sees every member; a member project sees only its own entry.
    public func listMembers(imageId: String, by p: Principal) async throws -> [ImageMember] {
        let (image, mine) = try await visibleImageAndMembership(id: imageId, by: p)
        guard image.visibility == .shared else { throw ImageError.forbidden("Only shared images have members.") }
        guard Policy.allows(.getMembers, p, PolicyTarget(image, callerIsImageMember: mine != nil)) else {
            throw ImageError.notFound("No image found with ID \(imageId)")
        }
        if let mine, !Policy.allows(.addMember, p, PolicyTarget(image)) { return [mine] }
        return try await catalog.members(imageId: image.id)
    }

    /// Any refusal is 404 here, as in Glance.
    public func showMember(imageId: String, memberId: String, by p: Principal) async throws -> ImageMember {
        let notFound = ImageError.notFound("Member \(memberId) not found for image \(imageId).")
        let found: (image: Image, member: ImageMember?)
        do { found = try await visibleImageAndMembership(id: imageId, by: p) } catch { throw notFound }
        let image = found.image
        guard image.visibility == .shared,
              Policy.allows(.getMember, p, PolicyTarget(image, callerIsImageMember: found.member != nil)),
              p.isAdmin || image.owner == p.projectId || memberId == p.projectId,
              let m = try await catalog.member(imageId: image.id, memberId: memberId)
        else { throw notFound }
        return m
    }

    /// Only the member project itself (or an admin) changes a member status; the owner gets 403.
    public func setMemberStatus(imageId: String, memberId: String, status: String, by p: Principal) async throws -> ImageMember {
        guard let newStatus = MemberStatus(rawValue: status) else {
            throw ImageError.badRequest("Invalid status '\(status)': must be pending, accepted or rejected.")
        }
        AuditTrail.note("member.update", imageId: imageId, by: p)
        let image = try await visibleImage(id: imageId, by: p)
        AuditTrail.note(image: image)
        guard var m = try await catalog.member(imageId: image.id, memberId: memberId), image.visibility == .shared else {
            throw ImageError.notFound("Member \(memberId) not found for image \(imageId).")
        }
        var target = PolicyTarget(image)
        target.memberId = memberId
        guard Policy.allows(.modifyMember, p, target) else {
            throw ImageError.forbidden("You are not permitted to modify the status of member \(memberId).")
        }
        if m.status != newStatus {
            m.status = newStatus
            m.updatedAt = Timestamp.now()
            try await catalog.updateMember(m)
        }
        emit("image.member.update", EventPayload.member(m))
        return m
    }

    public func removeMember(imageId: String, memberId: String, by p: Principal) async throws {
        // A member may see the image but not manage its members (403).
        let image = try await authorizedImage(id: imageId, by: p, for: .deleteMember, verb: "remove members of")
        let member = try await catalog.member(imageId: image.id, memberId: memberId)  // the event's payload
        guard try await catalog.deleteMember(imageId: image.id, memberId: memberId) else {
            throw ImageError.notFound("Member \(memberId) not found for image \(imageId).")
        }
        if let member { emit("image.member.delete", EventPayload.member(member, deletedAt: Timestamp.now())) }
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace (no Foundation on hot paths).
    public var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
