/// A uniqueness an image claims among live images. The front-end that creates the image chooses
/// it (Glance's names are not unique; Avi's and Danube's are); from then on the catalog checks it
/// inside every write that could break it: the insert, a rename or a change of owner or visibility,
/// a recovery from soft deletion. So two concurrent creates, on one node or on several, cannot
/// both win.
public enum NameRule: String, Sendable, CaseIterable {
    /// The name is unique among the owner's live images (Avi names per tenant, Danube per owner).
    case namePerOwner = "name_per_owner"
    /// A registered cloud image (platform, location, cloud id) is registered once among the images
    /// its viewers can see (Scalr's UnicityViolation): public ones for a public registration,
    /// public and community ones for a community one, and the owner's own private ones too.
    case cloudImageInSight = "cloud_image_in_sight"

    /// The properties that name a registered cloud image.
    public static let cloudPlatformKey = "scalr_cloud_platform"
    public static let cloudLocationKey = "scalr_cloud_location"
    public static let cloudImageIdKey = "scalr_cloud_image_id"
}

/// What the catalog checks when an image claiming a `NameRule` is written: among live images
/// matching `candidates` (other than the image itself), none may `clash`.
public struct UniquenessCheck: Sendable {
    /// Writers of the same contested value serialize on it (PostgreSQL takes an advisory lock on
    /// it; SQLite's single writer needs none). Two checks with one key guard the same value.
    public let lockKey: String
    /// Narrows the rows to look at (indexed columns and properties).
    public let candidates: [ImageListQuery.Filter]
    /// Whether a live candidate really clashes with the image written.
    public let clashes: @Sendable (Image) -> Bool
    /// What the write throws when one does (kind `.duplicate`).
    public let conflict: ImageError
}

extension Image {
    /// The check a write of this image must pass; nil when it claims nothing or is not live.
    public var uniqueness: UniquenessCheck? {
        guard let rule = nameRule, !status.isGone else { return nil }
        switch rule {
        case .namePerOwner:
            guard let name else { return nil }
            let owner = self.owner ?? ""
            return UniquenessCheck(
                lockKey: "name\u{1F}\(owner)\u{1F}\(name)", candidates: [.oneOf(.name, [name]), .string(.owner, owner)],
                clashes: { _ in true },
                conflict: ImageError(.duplicate, "An image named '\(name)' already exists in project \(owner)."))
        case .cloudImageInSight:
            guard let platform = properties[NameRule.cloudPlatformKey],
                  let cloudId = properties[NameRule.cloudImageIdKey] else { return nil }
            let location = properties[NameRule.cloudLocationKey]
            let (visibility, owner) = (self.visibility, self.owner)
            return UniquenessCheck(
                lockKey: "cloud\u{1F}\(platform)\u{1F}\(location ?? "")\u{1F}\(cloudId)",
                candidates: [.property(NameRule.cloudPlatformKey, platform), .property(NameRule.cloudImageIdKey, cloudId)],
                clashes: { other in
                    guard other.nameRule == .cloudImageInSight, other.properties[NameRule.cloudLocationKey] == location else { return false }
                    switch (visibility, other.visibility) {
                    case (_, .public): return true
                    case (.community, .community), (.private, .community), (.shared, .community): return true
                    case (.private, .private), (.shared, .private), (.private, .shared), (.shared, .shared): return other.owner == owner
                    default: return false
                    }
                },
                conflict: ImageError(.duplicate, "Cloud image \(cloudId) of \(platform) is already registered."))
        }
    }

    /// The check a change from `before` to this image must pass: only when the image claims a
    /// value it did not hold while live before (a new image, a rename, a recovery…).
    public func uniqueness(changedFrom before: Image?) -> UniquenessCheck? {
        guard let after = uniqueness else { return nil }
        guard let before, let held = before.uniqueness, held.lockKey == after.lockKey,
              before.visibility == visibility, before.owner == owner else { return after }
        return nil
    }
}
