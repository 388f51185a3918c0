/// Glance's default policy (secure RBAC, reference §10.3 and §8) as one table: every access
/// decision in the catalog is `Policy.allows(action, principal, target)`. Front-ends never decide
/// access themselves; they only map `ImageError.forbidden`/`.notFound` to their formats.
public enum PolicyAction: String, Sendable, CaseIterable {
    case getImages = "get_images"
    case getImage = "get_image"
    case addImage = "add_image"
    case modifyImage = "modify_image"
    case publicizeImage = "publicize_image"
    case communitizeImage = "communitize_image"
    case deleteImage = "delete_image"
    case uploadImage = "upload_image"
    case downloadImage = "download_image"
    case deactivate = "deactivate"
    case reactivate = "reactivate"
    case copyImage = "copy_image"
    case addMember = "add_member"
    case deleteMember = "delete_member"
    case getMember = "get_member"
    case getMembers = "get_members"
    case modifyMember = "modify_member"
    case getUsage = "get_usage"
    case tasksAPIAccess = "tasks_api_access"
    // The node-local image cache (v2.14, clean and prune v2.18).
    case cacheImage = "cache_image"
    case cacheList = "cache_list"
    case cacheDelete = "cache_delete"
    case cacheClean = "cache_clean"
    case cachePrune = "cache_prune"
    case listCachedNodes = "list_cached_nodes"
    // The locations API (v2.17) and the store endpoints (v2.10, v2.15).
    case addImageLocation = "add_image_location"
    case fetchImageLocation = "fetch_image_location"
    case deleteImageLocation = "delete_image_location"
    case getImageLocation = "get_image_location"
    case storesInfoDetail = "stores_info_detail"
}

/// What a rule looks at besides the caller: the image (or the image being created) and, for
/// member status changes, the member whose status changes.
public struct PolicyTarget: Sendable {
    public var owner: String?
    public var visibility: Visibility
    /// The caller's project is a member of this (shared) image, in any member status.
    public var callerIsImageMember: Bool
    /// For `modify_member`: the project whose membership is being changed.
    public var memberId: String?

    public init(owner: String?, visibility: Visibility = .private, callerIsImageMember: Bool = false, memberId: String? = nil) {
        self.owner = owner; self.visibility = visibility
        self.callerIsImageMember = callerIsImageMember; self.memberId = memberId
    }

    public init(_ image: Image, callerIsImageMember: Bool = false) {
        self.init(owner: image.owner, visibility: image.visibility, callerIsImageMember: callerIsImageMember)
    }

    /// A check that needs no image (list, usage, tasks API).
    public static let none = PolicyTarget(owner: nil)
}

public enum Policy {
    /// The building blocks of Glance's policy file.
    public indirect enum Rule: Sendable {
        /// `role:admin` in any project: admin is global for images.
        case admin
        /// The caller holds the role (in its own project).
        case role(String)
        /// The caller's project owns the target.
        case ownerProject
        /// The caller's project is a member of the (shared) target.
        case imageMember
        /// The target has no owner (legacy rows): readable by all.
        case ownerless
        case visibility(Set<Visibility>)
        /// The caller's project is the member being changed.
        case memberSelf
        case all([Rule])
        case any([Rule])
    }

    /// ADMIN or (role in the owner's project).
    static func inOwnerProject(_ role: String) -> Rule { .any([.admin, .all([.role(role), .ownerProject])]) }

    /// Who may see an image: owner, members, public/community for everyone, ownerless rows.
    static let readable = Rule.any([.ownerProject, .ownerless, .imageMember, .visibility([.public, .community])])

    /// Who may read an image's member list or entries: the owner project and the members themselves.
    static let readsMembers = Rule.any([.admin, .all([.role("reader"), .any([.ownerProject, .imageMember])])])

    /// The table. Defaults from Glance's `glance/policies/*.py` with secure RBAC on.
    public static let rules: [PolicyAction: Rule] = [
        .getImages: .any([.admin, .role("reader")]),
        .getImage: .any([.admin, .all([.role("reader"), readable])]),
        .addImage: inOwnerProject("member"),
        .modifyImage: inOwnerProject("member"),
        .publicizeImage: .admin,
        .communitizeImage: inOwnerProject("member"),
        .deleteImage: inOwnerProject("member"),
        .uploadImage: inOwnerProject("member"),
        // The reader role can see an image but not fetch its data.
        .downloadImage: .any([.admin, .all([.role("member"), readable])]),
        .deactivate: inOwnerProject("member"),
        .reactivate: inOwnerProject("member"),
        .copyImage: .admin,
        .addMember: inOwnerProject("member"),
        .deleteMember: inOwnerProject("member"),
        .getMember: readsMembers,
        .getMembers: readsMembers,
        .modifyMember: .any([.admin, .all([.role("member"), .memberSelf])]),
        .getUsage: .any([.admin, .role("reader")]),
        .tasksAPIAccess: .admin,
        .cacheImage: .admin, .cacheList: .admin, .cacheDelete: .admin, .cacheClean: .admin, .cachePrune: .admin,
        .listCachedNodes: .admin,
        // SERVICE_OR_PROJECT_MEMBER: no admin clause, as in Glance.
        .addImageLocation: .any([.role("service"), .all([.role("member"), .ownerProject])]),
        .fetchImageLocation: .role("service"),
        .deleteImageLocation: .admin,
        .getImageLocation: inOwnerProject("reader"),
        .storesInfoDetail: .any([.admin, .role("service")]),
    ]

    public static func allows(_ action: PolicyAction, _ p: Principal, _ target: PolicyTarget = .none) -> Bool {
        guard let rule = rules[action] else { return false }
        return evaluate(rule, p, target)
    }

    static func evaluate(_ rule: Rule, _ p: Principal, _ t: PolicyTarget) -> Bool {
        switch rule {
        case .admin: return p.isAdmin
        case .role(let r): return p.roles.contains(r)
        case .ownerProject: return p.projectId != nil && t.owner == p.projectId
        case .imageMember: return t.visibility == .shared && t.callerIsImageMember
        case .ownerless: return t.owner == nil
        case .visibility(let set): return set.contains(t.visibility)
        case .memberSelf: return p.projectId != nil && t.memberId == p.projectId
        case .all(let rules): return rules.allSatisfy { evaluate($0, p, t) }
        case .any(let rules): return rules.contains { evaluate($0, p, t) }
        }
    }
}
