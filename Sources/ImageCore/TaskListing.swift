/// `GET /v2/tasks` as Glance pages it: equality filters on task columns, one sort key (then
/// `created_at` and `id` as tie-breakers, in the same direction), and a marker task.
public struct TaskListQuery: Sendable, Equatable {
    /// The task columns a list may filter or sort on (Glance: any column of its `tasks` table).
    public enum Column: String, Sendable, CaseIterable {
        case id, type, status, owner
        case imageId = "image_id"
        case userId = "user_id"
        case requestId = "request_id"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case expiresAt = "expires_at"
    }
    public typealias Direction = SortDirection

    /// Equality filters (times are not compared as text: the front-end passes only the other columns).
    public var filters: [(Column, String)] = []
    public var types: [String]? = nil
    public var sortKey: Column = .createdAt
    public var direction: Direction = .desc
    public var marker: String?
    public var limit: Int

    public init(limit: Int) { self.limit = limit }

    public static func == (a: Self, b: Self) -> Bool {
        a.filters.map { "\($0.0.rawValue)=\($0.1)" } == b.filters.map { "\($0.0.rawValue)=\($0.1)" }
            && a.types == b.types && a.sortKey == b.sortKey && a.direction == b.direction
            && a.marker == b.marker && a.limit == b.limit
    }

    /// The column's value as the list compares it (times as zero-padded seconds, so text order is time order).
    static func value(_ t: ImageTask, _ c: Column) -> String? {
        func time(_ s: Int64?) -> String? { s.map { String(repeating: "0", count: max(0, 20 - String($0).count)) + String($0) } }
        switch c {
        case .id: return t.id
        case .type: return t.type
        case .status: return t.status.rawValue
        case .owner: return t.owner
        case .imageId: return t.imageId
        case .userId: return t.userId
        case .requestId: return t.requestId
        case .createdAt: return time(t.createdAt)
        case .updatedAt: return time(t.updatedAt)
        case .expiresAt: return time(t.expiresAt)
        }
    }

    /// Whether `a` comes before `b` in this order (NULL sorts first ascending, as in SQL's NULLS FIRST).
    func precedes(_ a: ImageTask, _ b: ImageTask) -> Bool {
        var keys = [sortKey]
        for k in [Column.createdAt, .id] where !keys.contains(k) { keys.append(k) }
        for k in keys {
            let x = Self.value(a, k), y = Self.value(b, k)
            if x == y { continue }
            let ascending: Bool = switch (x, y) {
            case (nil, _): true
            case (_, nil): false
            case let (x?, y?): x < y
            }
            return direction == .asc ? ascending : !ascending
        }
        return false
    }

    /// One page of `tasks` (any order): filtered, sorted, after the marker, at most `limit`.
    /// nil when the marker is not among them (Glance answers 400 then).
    public func page(of tasks: [ImageTask]) -> [ImageTask]? {
        var rows = tasks.filter { t in
            (types.map { $0.contains(t.type) } ?? true)
                && filters.allSatisfy { Self.value(t, $0.0) == $0.1 }
        }
        rows.sort(by: precedes)
        if let marker {
            guard let at = tasks.first(where: { $0.id == marker.lowercased() }) else { return nil }
            rows = rows.filter { precedes(at, $0) }
        }
        return Array(rows.prefix(max(0, limit)))
    }
}

extension ImageService {
    /// How many of the newest tasks a list looks at: finished tasks expire (48 h by default), so
    /// this bounds the work of a list without hiding a live task in practice.
    public static let taskListScanBound = 10_000

    /// A page of the tasks the caller may see (`query.types` limits it to one front-end's kinds);
    /// 400 for a marker that names no such task.
    public func listTasks(_ query: TaskListQuery, by p: Principal) async throws -> [ImageTask] {
        let visible = try await catalog.listTasks(limit: Self.taskListScanBound).filter { Self.canSee($0, p) }
        guard let page = query.page(of: visible) else {
            throw ImageError.badRequest("Marker task \(query.marker ?? "") could not be found.")
        }
        return page
    }
}
