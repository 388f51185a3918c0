/// Metadata storage. Implementations: SQLite (embedded) and PostgreSQL (scale-out).
/// The catalog stores and queries; it decides no policy (the service does).
public protocol Catalog: TaskCatalog, AccountCatalog, NodeCatalog, MetadefCatalog {
    /// Throws `ImageError.conflict` when the id exists, deleted images included (ids are never reused),
    /// and the image's `uniqueness` conflict (kind `.duplicate`) when a live image clashes with it.
    /// `check` runs inside the inserting transaction, with the owner's usage read there too;
    /// when it throws, that image is not inserted.
    func insertImage(_ image: Image, check: (@Sendable (UsageReader) throws -> Void)?) async throws
    /// The first live image other than `id` that clashes with `check` (a read for front-ends'
    /// early answers; inserts and updates run the same check inside their write).
    func clashingImage(_ check: UniquenessCheck, except id: String) async throws -> Image?
    /// The row whatever its status, deleted included; nil when the id was never used.
    func image(id: String) async throws -> Image?
    /// Applies `change` to the stored image inside one write transaction (no lost updates between
    /// concurrent writers) and returns the result; nil when the id was never used. When `change`
    /// throws, nothing is written. `version` is bumped when the image changed. A change that makes
    /// the image claim a value another live image holds (`Image.uniqueness(changedFrom:)`) throws
    /// that check's conflict.
    /// `change` gets a reader of any project's usage as stored in the same transaction. It may run
    /// more than once (PostgreSQL runs it again once the usage it asked for has been read), so it
    /// must have no effect beyond the image it is given.
    func updateImage(id: String, _ change: @escaping @Sendable (inout Image, UsageReader) throws -> Void) async throws -> Image?
    func listImages(_ query: ImageListQuery) async throws -> [Image]
    /// How many rows `query` matches, ignoring its sort, marker, offset and limit.
    func countImages(_ query: ImageListQuery) async throws -> Int
    /// Images in any of `statuses`, whatever their owner (for the start-up scrub).
    func images(withStatus statuses: [ImageStatus]) async throws -> [Image]
    /// Every row, deleted included, in id order after `id` (nil: from the start), for `imaged migrate`.
    func exportImages(after id: String?, limit: Int) async throws -> [Image]

    func members(imageId: String) async throws -> [ImageMember]
    func member(imageId: String, memberId: String) async throws -> ImageMember?
    /// Throws `ImageError.conflict` when the member exists.
    func insertMember(_ member: ImageMember) async throws
    func updateMember(_ member: ImageMember) async throws
    func deleteMember(imageId: String, memberId: String) async throws -> Bool

    /// What a project's images use now (statuses as in `ProjectUsage`).
    func usage(project: String) async throws -> ProjectUsage
    /// Per-project limits set by the operator (`imaged quota set`); nil when none.
    func quotaOverride(project: String) async throws -> QuotaLimits?
    /// nil removes the override.
    func setQuotaOverride(project: String, _ limits: QuotaLimits?) async throws
    /// Every project's overrides, by project id.
    func quotaOverrides() async throws -> [String: QuotaLimits]
    /// Each project's usage (of `project` only, when given), for projects that own a live image.
    func usageByProject(project: String?) async throws -> [String: ProjectUsage]
    /// Images holding data (`ProjectUsage.storedStatuses`) grouped by owner, disk format and stores
    /// (of `project` only, when given), largest first.
    func storedShares(project: String?) async throws -> [StoredShare]
}

extension Catalog {
    public func insertImage(_ image: Image) async throws { try await insertImage(image, check: nil) }

    public func updateImage(id: String, _ change: @escaping @Sendable (inout Image) throws -> Void) async throws -> Image? {
        try await updateImage(id: id) { image, _ in try change(&image) }
    }
}

/// A catalog whose schema a newer imaged has migrated: this binary refuses to open it.
public struct CatalogSchemaTooNew: Error, CustomStringConvertible {
    public let catalog: String
    public let unknown: [String]
    public init(catalog: String, unknown: [String]) { self.catalog = catalog; self.unknown = unknown }
    public var description: String {
        "the catalog \(catalog) was migrated by a newer imaged (migrations unknown to this binary: \(unknown.joined(separator: ", "))); "
            + "run that version, or restore a backup made before the upgrade"
    }
}
