/// Metadata definitions (Glance's "metadefs"): catalogues of the properties an operator offers on
/// images, volumes, flavors… grouped in namespaces. The catalog stores them; `MetadefService`
/// holds every rule.

public struct MetadefNamespace: Sendable, Equatable {
    public var namespace: String
    public var displayName: String?
    public var description: String?
    /// "public" or "private" (Glance's only two).
    public var visibility: String
    public var isProtected: Bool
    public var owner: String?
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(namespace: String, displayName: String? = nil, description: String? = nil, visibility: String = "private",
                isProtected: Bool = false, owner: String? = nil, createdAt: Int64, updatedAt: Int64) {
        self.namespace = namespace; self.displayName = displayName; self.description = description
        self.visibility = visibility; self.isProtected = isProtected; self.owner = owner
        self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

/// What a namespace holds besides resource-type associations: three kinds of named documents.
public enum MetadefKind: String, Sendable, CaseIterable {
    /// Document: `{"description"?, "required"?: [..], "properties"?: {name: property}}`.
    case object
    /// Document: the property's JSON schema without its name (`title`, `type`, `enum`…).
    case property
    /// Document: `{}` (a tag is only a name).
    case tag
}

public struct MetadefItem: Sendable, Equatable {
    public var namespace: String
    public var kind: MetadefKind
    public var name: String
    public var document: JSONValue
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(namespace: String, kind: MetadefKind, name: String, document: JSONValue = .object([]), createdAt: Int64, updatedAt: Int64) {
        self.namespace = namespace; self.kind = kind; self.name = name; self.document = document
        self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

public struct MetadefResourceType: Sendable, Equatable {
    public var name: String
    public var createdAt: Int64
    public var updatedAt: Int64
    public init(name: String, createdAt: Int64, updatedAt: Int64) { self.name = name; self.createdAt = createdAt; self.updatedAt = updatedAt }
}

/// A namespace applies to a resource type, its properties named with `prefix` there
/// (e.g. `hw_` on images, `hw:` on flavors).
public struct MetadefAssociation: Sendable, Equatable {
    public var namespace: String
    public var resourceType: String
    public var prefix: String?
    public var propertiesTarget: String?
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(namespace: String, resourceType: String, prefix: String? = nil, propertiesTarget: String? = nil,
                createdAt: Int64, updatedAt: Int64) {
        self.namespace = namespace; self.resourceType = resourceType; self.prefix = prefix
        self.propertiesTarget = propertiesTarget; self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

/// A write that would give a second row the same name (namespace, item in its namespace and kind,
/// association); the service words the conflict.
public struct MetadefClash: Error, Sendable {
    public init() {}
}

/// Storage of metadata definitions. No policy here: the service decides who sees and changes what.
public protocol MetadefCatalog: Sendable {
    func metadefNamespaces() async throws -> [MetadefNamespace]
    func metadefNamespace(_ name: String) async throws -> MetadefNamespace?
    /// The namespace with its associations and items, in one transaction (nothing stored when any
    /// part clashes: `MetadefClash`). An association's unknown resource type is created.
    func insertMetadefNamespace(_ namespace: MetadefNamespace, associations: [MetadefAssociation], items: [MetadefItem]) async throws
    /// Rewrites namespace `name` (a rename carries its contents along); false when absent.
    func updateMetadefNamespace(_ name: String, to namespace: MetadefNamespace) async throws -> Bool
    /// Deletes the namespace and everything in it; false when absent.
    func deleteMetadefNamespace(_ name: String) async throws -> Bool

    /// A namespace's items of one kind, oldest first (then by name).
    func metadefItems(namespace: String, kind: MetadefKind) async throws -> [MetadefItem]
    func metadefItem(namespace: String, kind: MetadefKind, name: String) async throws -> MetadefItem?
    /// Inserts `items` (all of one namespace and kind) in one transaction; with `replacing`, that
    /// namespace's items of that kind are deleted first (tags' bulk replace).
    func insertMetadefItems(_ items: [MetadefItem], namespace: String, kind: MetadefKind, replacing: Bool) async throws
    /// Rewrites item `name` (renames included); false when absent.
    func updateMetadefItem(namespace: String, kind: MetadefKind, name: String, to item: MetadefItem) async throws -> Bool
    /// Deletes one item (`name`) or all of that kind (nil); how many went.
    func deleteMetadefItems(namespace: String, kind: MetadefKind, name: String?) async throws -> Int

    func metadefResourceTypes() async throws -> [MetadefResourceType]
    /// Creates the resource types that do not exist yet.
    func ensureMetadefResourceTypes(_ names: [String], at now: Int64) async throws
    /// One namespace's associations, or every namespace's (nil).
    func metadefAssociations(namespace: String?) async throws -> [MetadefAssociation]
    /// Creates the resource type when unknown; `MetadefClash` when the namespace already has it.
    func insertMetadefAssociation(_ association: MetadefAssociation) async throws
    func deleteMetadefAssociation(namespace: String, resourceType: String) async throws -> Bool

    /// Whether a set of definitions named `key` (the shipped set) was loaded once already.
    func metadefSetLoaded(_ key: String) async throws -> Bool
    func markMetadefSetLoaded(_ key: String, at now: Int64) async throws
}
