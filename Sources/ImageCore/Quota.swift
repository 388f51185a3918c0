/// Per-project limits, named after Glance's unified limits (reference §9). nil = unlimited.
/// Sizes are bytes here; the usage API shows MiB as Glance does.
public struct QuotaLimits: Sendable, Equatable {
    public var imageCountTotal: Int64?
    public var imageSizeTotal: Int64?
    public var imageStageTotal: Int64?
    public var imageCountUploading: Int64?

    public init(imageCountTotal: Int64? = nil, imageSizeTotal: Int64? = nil,
                imageStageTotal: Int64? = nil, imageCountUploading: Int64? = nil) {
        self.imageCountTotal = imageCountTotal; self.imageSizeTotal = imageSizeTotal
        self.imageStageTotal = imageStageTotal; self.imageCountUploading = imageCountUploading
    }

    public static let unlimited = QuotaLimits()
    public var isUnlimited: Bool { self == .unlimited }

    /// The limit of one resource.
    public subscript(_ r: QuotaResource) -> Int64? {
        get {
            switch r {
            case .imageCountTotal: imageCountTotal
            case .imageSizeTotal: imageSizeTotal
            case .imageStageTotal: imageStageTotal
            case .imageCountUploading: imageCountUploading
            }
        }
        set {
            switch r {
            case .imageCountTotal: imageCountTotal = newValue
            case .imageSizeTotal: imageSizeTotal = newValue
            case .imageStageTotal: imageStageTotal = newValue
            case .imageCountUploading: imageCountUploading = newValue
            }
        }
    }

    /// Overrides win resource by resource.
    public func overridden(by o: QuotaLimits?) -> QuotaLimits {
        guard let o else { return self }
        var r = self
        for k in QuotaResource.allCases where o[k] != nil { r[k] = o[k] }
        return r
    }
}

public enum QuotaResource: String, Sendable, CaseIterable {
    case imageSizeTotal = "image_size_total"
    case imageStageTotal = "image_stage_total"
    case imageCountTotal = "image_count_total"
    case imageCountUploading = "image_count_uploading"

    public var isBytes: Bool { self == .imageSizeTotal || self == .imageStageTotal }
}

/// What a project uses, or what one image contributes to it.
public struct ProjectUsage: Sendable, Equatable {
    /// Images not deleted.
    public var imageCount: Int64 = 0
    /// Bytes of images holding data (active, deactivated).
    public var sizeTotal: Int64 = 0
    /// Bytes staged for `glance-direct` (uploading, importing).
    public var stageTotal: Int64 = 0
    /// Images receiving data (saving, uploading, importing).
    public var uploadingCount: Int64 = 0

    public init(imageCount: Int64 = 0, sizeTotal: Int64 = 0, stageTotal: Int64 = 0, uploadingCount: Int64 = 0) {
        self.imageCount = imageCount; self.sizeTotal = sizeTotal
        self.stageTotal = stageTotal; self.uploadingCount = uploadingCount
    }

    /// The statuses each figure counts; the catalogs' usage queries use the same sets.
    public static let countedStatuses: [ImageStatus] = ImageStatus.allCases.filter { !$0.isGone }
    public static let storedStatuses: [ImageStatus] = [.active, .deactivated]
    /// `saving` counts only an open resumable upload's reserved length: a plain upload's size is unset until it ends.
    public static let stagedStatuses: [ImageStatus] = [.saving, .uploading, .importing]
    public static let uploadingStatuses: [ImageStatus] = [.saving, .uploading, .importing]

    /// What one image adds to its owner's usage.
    public init(of image: Image?) {
        guard let image, !image.status.isGone else { return }
        imageCount = 1
        let size = image.size ?? 0
        if Self.storedStatuses.contains(image.status) { sizeTotal = size }
        if Self.stagedStatuses.contains(image.status) { stageTotal = size }
        if Self.uploadingStatuses.contains(image.status) { uploadingCount = 1 }
    }

    public subscript(_ r: QuotaResource) -> Int64 {
        switch r {
        case .imageCountTotal: imageCount
        case .imageSizeTotal: sizeTotal
        case .imageStageTotal: stageTotal
        case .imageCountUploading: uploadingCount
        }
    }

    static func + (a: ProjectUsage, b: ProjectUsage) -> ProjectUsage {
        ProjectUsage(imageCount: a.imageCount + b.imageCount, sizeTotal: a.sizeTotal + b.sizeTotal,
                     stageTotal: a.stageTotal + b.stageTotal, uploadingCount: a.uploadingCount + b.uploadingCount)
    }

    static func - (a: ProjectUsage, b: ProjectUsage) -> ProjectUsage {
        ProjectUsage(imageCount: a.imageCount - b.imageCount, sizeTotal: a.sizeTotal - b.sizeTotal,
                     stageTotal: a.stageTotal - b.stageTotal, uploadingCount: a.uploadingCount - b.uploadingCount)
    }
}

/// Stored images of one owner, disk format and set of stores: what the usage page charts.
public struct StoredShare: Sendable, Equatable {
    public var owner: String?
    public var diskFormat: String?
    /// The image property `stores` as stored (comma-separated store ids; empty: the default store).
    public var stores: String
    public var images: Int64
    public var bytes: Int64
    public init(owner: String?, diskFormat: String?, stores: String, images: Int64, bytes: Int64) {
        self.owner = owner; self.diskFormat = diskFormat; self.stores = stores; self.images = images; self.bytes = bytes
    }
}

/// Reads a project's usage inside the catalog transaction that is about to write, so a check and
/// the write it guards see the same rows (concurrent writers cannot both squeeze under a limit).
public typealias UsageReader = (_ project: String) throws -> ProjectUsage

extension ImageService {
    /// The limits that apply to a project: the configured defaults, overridden per project from the catalog.
    public func limits(for project: String?) async throws -> QuotaLimits {
        guard let project else { return .unlimited }
        return config.quota.overridden(by: try await catalog.quotaOverride(project: project))
    }

    /// Refuses a change that makes its owner's usage grow past a limit (413). Only resources the
    /// change increases are checked, so going back under a lowered limit is always possible.
    static func checkQuota(before: Image?, after: Image, limits: QuotaLimits, usage: UsageReader) throws {
        guard let owner = after.owner, !limits.isUnlimited else { return }
        let old = before?.owner == owner ? ProjectUsage(of: before) : ProjectUsage()
        let new = ProjectUsage(of: after)
        let growing = QuotaResource.allCases.filter { limits[$0] != nil && new[$0] > old[$0] }
        guard !growing.isEmpty else { return }
        let projected = try usage(owner) - old + new
        for r in growing {
            guard let limit = limits[r], projected[r] > limit else { continue }
            throw ImageError.tooLarge(quotaMessage(r, owner: owner, wouldBe: projected[r], limit: limit))
        }
    }

    /// Applies `change` in one catalog write, refused with 413 when it makes the owner's usage grow
    /// past `limits` (the owner's, looked up when not given). A change of owner (admin) is not limited.
    func updateCheckingQuota(id: String, limits given: QuotaLimits? = nil,
                             _ change: @escaping @Sendable (inout Image) throws -> Void) async throws -> Image? {
        var limits = given
        if limits == nil { limits = try await self.limits(for: try await catalog.image(id: id)?.owner) }
        let applying = limits ?? .unlimited
        return try await catalog.updateImage(id: id) { image, usage in
            let original = image
            try change(&image)
            guard original.owner == image.owner else { return }
            try Self.checkQuota(before: original, after: image, limits: applying, usage: usage)
        }
    }

    static func quotaMessage(_ r: QuotaResource, owner: String, wouldBe: Int64, limit: Int64) -> String {
        let unit = r.isBytes ? " bytes" : ""
        return "Quota exceeded for project \(owner): \(r.rawValue) would be \(wouldBe)\(unit), the limit is \(limit)\(unit)."
    }

    /// Bytes the owner may still add to `resource` (nil: unlimited), read outside any transaction:
    /// it lets an upload fail early and bounds the stream; the commit re-checks exactly.
    public func room(in resource: QuotaResource, for owner: String?) async throws -> Int64? {
        guard let owner else { return nil }
        let limits = try await limits(for: owner)
        guard let limit = limits[resource] else { return nil }
        return max(0, limit - (try await catalog.usage(project: owner))[resource])
    }

    /// Usage and limits of every project that owns an image or has its own limits (admins), or of
    /// the caller's project; sorted by project id.
    public func projectUsages(by p: Principal) async throws -> [(project: String, usage: ProjectUsage, limits: QuotaLimits)] {
        guard Policy.allows(.getUsage, p) else { throw ImageError.forbidden("You are not authorized to read usage.") }
        let scope = p.isAdmin ? nil : p.projectId
        if !p.isAdmin && scope == nil { return [] }
        let usages = try await catalog.usageByProject(project: scope)
        var projects = Set(usages.keys)
        let overrides = p.isAdmin ? try await catalog.quotaOverrides() : [:]
        projects.formUnion(overrides.keys)
        if let scope { projects.insert(scope) }
        var out: [(project: String, usage: ProjectUsage, limits: QuotaLimits)] = []
        for project in projects.sorted() {
            let limits = p.isAdmin ? config.quota.overridden(by: overrides[project]) : try await limits(for: project)
            out.append((project, usages[project] ?? ProjectUsage(), limits))
        }
        return out
    }

    /// Stored bytes and images by owner, disk format and stores: every project's for admins, else
    /// the caller's project's.
    public func storedShares(by p: Principal) async throws -> [StoredShare] {
        guard Policy.allows(.getUsage, p) else { throw ImageError.forbidden("You are not authorized to read usage.") }
        if p.isAdmin { return try await catalog.storedShares(project: nil) }
        guard let project = p.projectId else { return [] }
        return try await catalog.storedShares(project: project)
    }

    /// The caller's project usage and limits (`GET /v2/info/usage`).
    public func usage(by p: Principal) async throws -> (usage: ProjectUsage, limits: QuotaLimits) {
        guard Policy.allows(.getUsage, p) else { throw ImageError.forbidden("You are not authorized to read usage.") }
        guard let project = p.projectId else { return (ProjectUsage(), .unlimited) }
        return (try await catalog.usage(project: project), try await limits(for: project))
    }
}
