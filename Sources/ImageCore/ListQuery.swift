/// The order of a list's sort key (image and task lists alike).
public enum SortDirection: String, Sendable { case asc, desc }

/// What a list asks the catalog for, after the service has applied policy.
public struct ImageListQuery: Sendable, Equatable {
    public enum SortKey: String, Sendable, CaseIterable {
        case name, status, id, size
        case containerFormat = "container_format"
        case diskFormat = "disk_format"
        case createdAt = "created_at"
        case updatedAt = "updated_at"

        /// Whether the column may hold NULL (which changes how keyset paging compares it).
        public var isNullable: Bool {
            switch self {
            case .name, .size, .containerFormat, .diskFormat: return true
            case .status, .id, .createdAt, .updatedAt: return false
            }
        }
    }
    public typealias Direction = SortDirection
    public struct Sort: Sendable, Equatable {
        public var key: SortKey
        public var direction: Direction
        public init(_ key: SortKey, _ direction: Direction) { self.key = key; self.direction = direction }
    }

    /// Columns that accept `in:` lists.
    public enum ListColumn: String, Sendable {
        case name, id, status
        case containerFormat = "container_format"
        case diskFormat = "disk_format"
    }
    public enum IntColumn: String, Sendable {
        case size
        case virtualSize = "virtual_size"
        case minDisk = "min_disk"
        case minRam = "min_ram"
    }
    public enum StringColumn: String, Sendable {
        case owner, checksum
        case osHashValue = "os_hash_value"
        case osHashAlgo = "os_hash_algo"
    }
    public enum TimeColumn: String, Sendable {
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
    public enum Comparison: String, Sendable, CaseIterable { case eq, neq, gt, gte, lt, lte }

    public enum Filter: Sendable, Equatable {
        case oneOf(ListColumn, [String])
        case string(StringColumn, String)
        case int(IntColumn, Comparison, Int64)
        case time(TimeColumn, Comparison, Int64)
        case isProtected(Bool)
        case tag(String)
        case property(String, String)
        /// The name contains this text, ignoring ASCII case (the console's search box).
        case nameContains(String)
    }

    /// Which images the caller may see, already decided by policy.
    public struct Scope: Sendable, Equatable {
        public enum VisibilityFilter: Sendable, Equatable { case `default`, all, only(Visibility) }
        public var isAdmin: Bool
        public var projectId: String?
        public var visibility: VisibilityFilter
        /// Membership statuses that count for shared images; nil means any.
        public var memberStatuses: [MemberStatus]?

        public init(isAdmin: Bool, projectId: String?, visibility: VisibilityFilter, memberStatuses: [MemberStatus]?) {
            self.isAdmin = isAdmin; self.projectId = projectId
            self.visibility = visibility; self.memberStatuses = memberStatuses
        }
    }

    public var scope: Scope
    public var filters: [Filter]
    /// Already ends with the `created_at`, `id` tie-breakers.
    public var sort: [Sort]
    public var osHidden: Bool
    public var limit: Int
    /// The marker image, already resolved (the catalog pages after its sort values).
    public var marker: Image?
    /// Rows to skip first (page-numbered APIs such as Avi's; OpenStack pages with markers).
    public var offset: Int = 0
    /// Also list images deleted softly (`pending_delete`, ZStack's recoverable Deleted status).
    public var includePendingDelete = false

    public init(scope: Scope, filters: [Filter] = [], sort: [Sort], osHidden: Bool = false, limit: Int, marker: Image? = nil) {
        self.scope = scope; self.filters = filters; self.sort = sort
        self.osHidden = osHidden; self.limit = limit; self.marker = marker
    }
}

/// The sort value of an image for one key, for keyset paging and in-memory checks.
public enum SortValue: Sendable, Equatable {
    case text(String?)
    case integer(Int64?)
}

extension Image {
    public func sortValue(_ key: ImageListQuery.SortKey) -> SortValue {
        switch key {
        case .name: return .text(name)
        case .status: return .text(status.rawValue)
        case .id: return .text(id)
        case .size: return .integer(size)
        case .containerFormat: return .text(containerFormat)
        case .diskFormat: return .text(diskFormat)
        case .createdAt: return .integer(createdAt)
        case .updatedAt: return .integer(updatedAt)
        }
    }
}
