/// The only door to metadata definitions, with Glance's default policy (glance/policies/metadef.py):
/// admins manage everything; readers of a project read public namespaces and their own project's
/// private ones; a namespace the caller cannot read does not exist for it (404); a protected
/// namespace refuses to have itself or anything in it deleted (403).
public struct MetadefService: Sendable {
    let catalog: any MetadefCatalog
    let defaultLimit: Int
    let maxLimit: Int

    public init(catalog: any MetadefCatalog, defaultLimit: Int = 25, maxLimit: Int = 1000) {
        self.catalog = catalog; self.defaultLimit = defaultLimit; self.maxLimit = maxLimit
    }

    /// A namespace with everything it holds, as `GET /v2/metadefs/namespaces/{ns}` shows it.
    public struct Detail: Sendable {
        public var namespace: MetadefNamespace
        public var associations: [MetadefAssociation]
        public var objects: [MetadefItem]
        public var properties: [MetadefItem]
        public var tags: [MetadefItem]

        public init(namespace: MetadefNamespace, associations: [MetadefAssociation] = [], objects: [MetadefItem] = [],
                    properties: [MetadefItem] = [], tags: [MetadefItem] = []) {
            self.namespace = namespace; self.associations = associations; self.objects = objects
            self.properties = properties; self.tags = tags
        }
    }

    public struct ListQuery: Sendable {
        public var limit: Int?
        public var marker: String?
        public var sortKey = "created_at"
        public var ascending = false
        public var visibility: String?
        public var resourceTypes: [String] = []
        public init() {}
    }

    // MARK: Policy

    static func canRead(_ ns: MetadefNamespace, _ p: Principal) -> Bool {
        p.isAdmin || (p.roles.contains("reader") && (ns.visibility == "public" || (p.projectId != nil && ns.owner == p.projectId)))
    }

    static func requireReader(_ p: Principal, _ action: String) throws {
        guard p.isAdmin || p.roles.contains("reader") else { throw denied(action) }
    }

    static func requireAdmin(_ p: Principal, _ action: String) throws {
        guard p.isAdmin else { throw denied(action) }
    }

    static func denied(_ action: String) -> ImageError { .forbidden("You are not authorized to complete \(action) action.") }

    /// The namespace when the caller may see it; 404 otherwise (Glance hides what it refuses to show).
    func readable(_ name: String, _ p: Principal) async throws -> MetadefNamespace {
        guard let ns = try await catalog.metadefNamespace(name), Self.canRead(ns, p) else {
            throw ImageError.notFound("Metadata definition namespace=\(name) was not found.")
        }
        return ns
    }

    /// A namespace the caller changes: found (else 404), then admin only (403).
    func writable(_ name: String, _ p: Principal, _ action: String) async throws -> MetadefNamespace {
        let ns = try await readable(name, p)
        try Self.requireAdmin(p, action)
        return ns
    }

    static func notDeletable(_ ns: MetadefNamespace, _ what: String) throws {
        if ns.isProtected { throw ImageError.forbidden("\(what) is protected and cannot be deleted.") }
    }

    static func clash(_ message: String, _ work: () async throws -> Void) async throws {
        do { try await work() } catch is MetadefClash { throw ImageError.conflict(message) }
    }

    // MARK: Namespaces

    public func listNamespaces(_ q: ListQuery, by p: Principal) async throws -> (namespaces: [Detail], next: String?) {
        try Self.requireReader(p, "get_metadef_namespaces")
        guard ["created_at", "updated_at", "namespace", "display_name", "visibility", "protected", "owner"].contains(q.sortKey) else {
            throw ImageError.badRequest("Invalid sort key: \(q.sortKey)")
        }
        if let v = q.visibility, !["public", "private"].contains(v) { throw ImageError.badRequest("Invalid visibility value: \(v)") }
        let limit = min(q.limit ?? defaultLimit, maxLimit)
        guard limit >= 0 else { throw ImageError.badRequest("limit param must be positive") }
        let associations = try await catalog.metadefAssociations(namespace: nil)
        var rows = try await catalog.metadefNamespaces().filter { Self.canRead($0, p) }
        if let v = q.visibility { rows = rows.filter { $0.visibility == v } }
        if !q.resourceTypes.isEmpty {
            let wanted = Set(q.resourceTypes)
            let having = Set(associations.filter { wanted.contains($0.resourceType) }.map(\.namespace))
            rows = rows.filter { having.contains($0.namespace) }
        }
        rows.sort { a, b in
            let (x, y) = q.ascending ? (a, b) : (b, a)
            switch Self.order(x, y, q.sortKey) {
            case .some(let less): return less
            case .none: return q.ascending ? a.namespace < b.namespace : a.namespace > b.namespace
            }
        }
        if let marker = q.marker {
            guard let i = rows.firstIndex(where: { $0.namespace == marker }) else {
                throw ImageError.notFound("Metadata definition namespace=\(marker) was not found.")
            }
            rows = Array(rows[(i + 1)...])
        }
        let page = Array(rows.prefix(limit))
        let byNamespace = Dictionary(grouping: associations, by: \.namespace)
        let details = page.map { Detail(namespace: $0, associations: byNamespace[$0.namespace] ?? [], objects: [], properties: [], tags: []) }
        return (details, page.count == limit && limit > 0 && rows.count > limit ? page.last?.namespace : nil)
    }

    /// Whether `a` sorts before `b` on `key`; nil when they tie.
    static func order(_ a: MetadefNamespace, _ b: MetadefNamespace, _ key: String) -> Bool? {
        func cmp<T: Comparable>(_ x: T, _ y: T) -> Bool? { x == y ? nil : x < y }
        switch key {
        case "created_at": return cmp(a.createdAt, b.createdAt)
        case "updated_at": return cmp(a.updatedAt, b.updatedAt)
        case "display_name": return cmp(a.displayName ?? "", b.displayName ?? "")
        case "visibility": return cmp(a.visibility, b.visibility)
        case "protected": return cmp(a.isProtected ? 1 : 0, b.isProtected ? 1 : 0)
        case "owner": return cmp(a.owner ?? "", b.owner ?? "")
        default: return cmp(a.namespace, b.namespace)
        }
    }

    /// `resourceType` names an association whose prefix is put before every property name (Glance's
    /// `?resource_type=` on show).
    public func namespace(_ name: String, resourceType: String? = nil, by p: Principal) async throws -> Detail {
        let ns = try await readable(name, p)
        var d = Detail(namespace: ns, associations: try await catalog.metadefAssociations(namespace: name),
                       objects: try await catalog.metadefItems(namespace: name, kind: .object),
                       properties: try await catalog.metadefItems(namespace: name, kind: .property),
                       tags: try await catalog.metadefItems(namespace: name, kind: .tag))
        if let rt = resourceType, let prefix = d.associations.first(where: { $0.resourceType == rt })?.prefix, !prefix.isEmpty {
            for i in d.properties.indices { d.properties[i].name = prefix + d.properties[i].name }
            for i in d.objects.indices { d.objects[i].document = Self.prefixed(d.objects[i].document, prefix) }
        }
        return d
    }

    static func prefixed(_ object: JSONValue, _ prefix: String) -> JSONValue {
        guard case .object(var members) = object else { return object }
        for i in members.indices {
            switch members[i] {
            case ("properties", .object(let props)): members[i].1 = .object(props.map { (prefix + $0.0, $0.1) })
            case ("required", .array(let names)): members[i].1 = .array(names.map { $0.stringValue.map { .string(prefix + $0) } ?? $0 })
            default: break
            }
        }
        return .object(members)
    }

    public func createNamespace(_ body: JSONValue?, by p: Principal) async throws -> Detail {
        AuditTrail.note("metadef.namespace.create", by: p)
        try Self.requireAdmin(p, "add_metadef_namespace")
        let (ns, associations, items) = try MetadefBodies.namespace(body, owner: p.projectId, now: Timestamp.now())
        try await Self.clash("The metadata definition namespace=\(ns.namespace) already exists.") {
            try await catalog.insertMetadefNamespace(ns, associations: associations, items: items)
        }
        return Detail(namespace: ns, associations: associations, objects: items.filter { $0.kind == .object },
                      properties: items.filter { $0.kind == .property }, tags: items.filter { $0.kind == .tag })
    }

    public func updateNamespace(_ name: String, _ body: JSONValue?, by p: Principal) async throws -> MetadefNamespace {
        AuditTrail.note("metadef.namespace.update", by: p)
        let current = try await writable(name, p, "modify_metadef_namespace")
        let ns = try MetadefBodies.namespaceUpdate(body, current: current, owner: p.projectId, now: Timestamp.now())
        try await Self.clash("The metadata definition namespace=\(ns.namespace) already exists.") {
            guard try await catalog.updateMetadefNamespace(name, to: ns) else {
                throw ImageError.notFound("Metadata definition namespace=\(name) was not found.")
            }
        }
        return ns
    }

    public func deleteNamespace(_ name: String, by p: Principal) async throws {
        AuditTrail.note("metadef.namespace.delete", by: p)
        let ns = try await writable(name, p, "delete_metadef_namespace")
        try Self.notDeletable(ns, "Metadata definition namespace \(name)")
        _ = try await catalog.deleteMetadefNamespace(name)
    }

    // MARK: Objects, properties, tags

    static func noun(_ kind: MetadefKind) -> String {
        switch kind {
        case .object: "object"
        case .property: "property"
        case .tag: "tag"
        }
    }

    /// The audit action of a write to items of `kind` (`metadef.tag.create`…), noted before any check so
    /// a refused write is audited too.
    static func audit(_ kind: MetadefKind, _ verb: String, by p: Principal) {
        AuditTrail.note("metadef.\(noun(kind)).\(verb)", by: p)
    }

    public func items(_ kind: MetadefKind, namespace: String, by p: Principal) async throws -> [MetadefItem] {
        _ = try await readable(namespace, p)
        return try await catalog.metadefItems(namespace: namespace, kind: kind)
    }

    /// One item; for properties, `resourceType` means the name carries that association's prefix.
    public func item(_ kind: MetadefKind, namespace: String, name: String, resourceType: String? = nil, by p: Principal) async throws -> MetadefItem {
        _ = try await readable(namespace, p)
        var stored = name
        var prefix = ""
        if kind == .property, let rt = resourceType,
           let a = try await catalog.metadefAssociations(namespace: namespace).first(where: { $0.resourceType == rt }),
           let pre = a.prefix, !pre.isEmpty {
            guard name.hasPrefix(pre) else {
                throw ImageError.notFound("Property \(name) does not start with the expected resource type association prefix of '\(pre)'.")
            }
            stored = String(name.dropFirst(pre.count))
            prefix = pre
        }
        guard var item = try await catalog.metadefItem(namespace: namespace, kind: kind, name: stored) else { throw missing(kind, name, namespace) }
        item.name = prefix + item.name
        return item
    }

    func missing(_ kind: MetadefKind, _ name: String, _ namespace: String) -> ImageError {
        .notFound("The metadata definition \(Self.noun(kind)) with name=\(name) was not found in namespace=\(namespace).")
    }

    func duplicate(_ kind: MetadefKind, _ name: String, _ namespace: String) -> String {
        "A metadata definition \(Self.noun(kind)) with name=\(name) already exists in namespace=\(namespace)."
    }

    /// Parses a body of `kind` for `namespace`.
    static func parse(_ kind: MetadefKind, _ body: JSONValue?, namespace: String, now: Int64) throws -> MetadefItem {
        switch kind {
        case .object: try MetadefBodies.object(body, namespace: namespace, now: now)
        case .property: try MetadefBodies.property(body, namespace: namespace, now: now)
        case .tag: try MetadefBodies.tag(body, namespace: namespace, now: now)
        }
    }

    public func createItem(_ kind: MetadefKind, namespace: String, body: JSONValue?, by p: Principal) async throws -> MetadefItem {
        Self.audit(kind, "create", by: p)
        _ = try await writable(namespace, p, "add_metadef_\(Self.noun(kind))")
        return try await insert(try Self.parse(kind, body, namespace: namespace, now: Timestamp.now()))
    }

    /// `POST …/tags/{name}` (no body).
    public func createTag(namespace: String, name: String, by p: Principal) async throws -> MetadefItem {
        Self.audit(.tag, "create", by: p)
        _ = try await writable(namespace, p, "add_metadef_tag")
        guard !name.isEmpty, name.count <= 255 else { throw ImageError.badRequest("A tag name must be 1 to 255 characters.") }
        return try await insert(MetadefBodies.tag(named: name, namespace: namespace, now: Timestamp.now()))
    }

    func insert(_ item: MetadefItem) async throws -> MetadefItem {
        try await Self.clash(duplicate(item.kind, item.name, item.namespace)) {
            try await catalog.insertMetadefItems([item], namespace: item.namespace, kind: item.kind, replacing: false)
        }
        return item
    }

    /// `POST …/tags` with `{"tags":[{"name":…}]}`: replaces every tag, or adds to them when `append`
    /// (`X-Openstack-Append: true`); a name twice in the body, or (appending) one already there, is 409.
    public func createTags(namespace: String, body: JSONValue?, append: Bool, by p: Principal) async throws -> [MetadefItem] {
        Self.audit(.tag, "create", by: p)
        _ = try await writable(namespace, p, "add_metadef_tags")
        let m = try MetadefBodies.members(body, allowed: ["tags"])
        let now = Timestamp.now()
        let tags = try MetadefBodies.array(m, "tags").map { try MetadefBodies.tag($0, namespace: namespace, now: now) }
        var seen = Set<String>()
        for t in tags where !seen.insert(t.name).inserted {
            throw ImageError.conflict("A metadata tag with name=\(t.name) already exists in namespace=\(namespace). (Please note that metadata tag names are case insensitive).")
        }
        do {
            try await catalog.insertMetadefItems(tags, namespace: namespace, kind: .tag, replacing: !append)
        } catch is MetadefClash {
            let existing = Set(try await catalog.metadefItems(namespace: namespace, kind: .tag).map(\.name))
            let name = tags.first { existing.contains($0.name) }?.name ?? tags.first?.name ?? ""
            throw ImageError.conflict("A metadata tag with name=\(name) already exists in namespace=\(namespace).")
        }
        return tags
    }

    public func updateItem(_ kind: MetadefKind, namespace: String, name: String, body: JSONValue?, by p: Principal) async throws -> MetadefItem {
        Self.audit(kind, "update", by: p)
        _ = try await writable(namespace, p, "modify_metadef_\(Self.noun(kind))")
        guard let current = try await catalog.metadefItem(namespace: namespace, kind: kind, name: name) else { throw missing(kind, name, namespace) }
        var item = try Self.parse(kind, body, namespace: namespace, now: Timestamp.now())
        item.createdAt = current.createdAt
        try await Self.clash(duplicate(kind, item.name, namespace)) {
            guard try await catalog.updateMetadefItem(namespace: namespace, kind: kind, name: name, to: item) else { throw missing(kind, name, namespace) }
        }
        return item
    }

    public func deleteItem(_ kind: MetadefKind, namespace: String, name: String, by p: Principal) async throws {
        Self.audit(kind, "delete", by: p)
        let ns = try await writable(namespace, p, "delete_metadef_\(Self.noun(kind))")
        try Self.notDeletable(ns, "Metadata definition \(Self.noun(kind)) \(name)")
        guard try await catalog.deleteMetadefItems(namespace: namespace, kind: kind, name: name) > 0 else { throw missing(kind, name, namespace) }
    }

    /// `DELETE …/objects|properties|tags`: every one of that kind.
    public func deleteItems(_ kind: MetadefKind, namespace: String, by p: Principal) async throws {
        Self.audit(kind, "delete", by: p)
        let ns = try await writable(namespace, p, "delete_metadef_namespace")
        try Self.notDeletable(ns, "Metadata definition namespace \(namespace)")
        _ = try await catalog.deleteMetadefItems(namespace: namespace, kind: kind, name: nil)
    }

    // MARK: Resource types

    public func resourceTypes(by p: Principal) async throws -> [MetadefResourceType] {
        try Self.requireReader(p, "list_metadef_resource_types")
        return try await catalog.metadefResourceTypes()
    }

    public func associations(namespace: String, by p: Principal) async throws -> [MetadefAssociation] {
        _ = try await readable(namespace, p)
        return try await catalog.metadefAssociations(namespace: namespace)
    }

    public func associate(namespace: String, body: JSONValue?, by p: Principal) async throws -> MetadefAssociation {
        AuditTrail.note("metadef.resource_type.associate", by: p)
        _ = try await writable(namespace, p, "add_metadef_resource_type_association")
        let a = try MetadefBodies.association(body, namespace: namespace, now: Timestamp.now())
        try await Self.clash("The metadata definition resource-type association of resource-type=\(a.resourceType) to namespace=\(namespace), already exists.") {
            try await catalog.insertMetadefAssociation(a)
        }
        return a
    }

    public func deassociate(namespace: String, resourceType: String, by p: Principal) async throws {
        AuditTrail.note("metadef.resource_type.dissociate", by: p)
        let ns = try await writable(namespace, p, "remove_metadef_resource_type_association")
        try Self.notDeletable(ns, "Metadata definition resource-type-association \(resourceType)")
        guard try await catalog.deleteMetadefAssociation(namespace: namespace, resourceType: resourceType) else {
            throw ImageError.notFound("Failed to find resource type \(resourceType) to delete")
        }
    }

    // MARK: Loading definitions (shipped set, `imaged metadefs load`)

    public enum LoadOutcome: Sendable, Equatable { case created, replaced, skipped }

    /// Loads one namespace document (Glance's file format) as the operator: a namespace that exists
    /// is replaced when `replace`, else left alone.
    public func load(_ document: JSONValue, replace: Bool) async throws -> (name: String, outcome: LoadOutcome) {
        let (ns, associations, items) = try MetadefBodies.namespace(document, owner: nil, now: Timestamp.now())
        var outcome = LoadOutcome.created
        if try await catalog.metadefNamespace(ns.namespace) != nil {
            guard replace else { return (ns.namespace, .skipped) }
            _ = try await catalog.deleteMetadefNamespace(ns.namespace)
            outcome = .replaced
        }
        do {
            try await catalog.insertMetadefNamespace(ns, associations: associations, items: items)
        } catch is MetadefClash {
            // Another node loaded it at the same moment.
            return (ns.namespace, .skipped)
        }
        return (ns.namespace, outcome)
    }

    /// The name under which the catalog remembers that the shipped set was loaded.
    public static let shippedSet = "shipped-v1"

    /// The shipped namespaces, once per catalog: after the first load an operator's deletions stay deleted.
    @discardableResult
    public func loadShippedOnce() async throws -> Bool {
        let key = Self.shippedSet
        guard try await !catalog.metadefSetLoaded(key) else { return false }
        try await catalog.ensureMetadefResourceTypes(ShippedMetadefs.resourceTypes, at: Timestamp.now())
        for text in ShippedMetadefs.documents {
            _ = try await load(try JSONValue.parse(text), replace: false)
        }
        try await catalog.markMetadefSetLoaded(key, at: Timestamp.now())
        return true
    }
}

extension ImageService {
    /// Metadata definitions, over the same catalog.
    public var metadefs: MetadefService {
        MetadefService(catalog: catalog, defaultLimit: config.listDefaultLimit, maxLimit: config.listMaxLimit)
    }
}
