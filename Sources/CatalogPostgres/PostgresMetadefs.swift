import CatalogSQL
import ImageCore
import PostgresNIO

/// Metadata definitions in PostgreSQL (same tables as the SQLite catalog); never cached, so every
/// node sees an operator's change at once.
extension PostgresCatalog {
    static let metadefSchema = [
        """
        CREATE TABLE metadef_namespaces (
            namespace TEXT COLLATE "C" PRIMARY KEY,
            display_name TEXT,
            description TEXT,
            visibility TEXT NOT NULL,
            protected BOOLEAN NOT NULL,
            owner TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE metadef_items (
            namespace TEXT COLLATE "C" NOT NULL REFERENCES metadef_namespaces(namespace) ON DELETE CASCADE ON UPDATE CASCADE,
            kind TEXT NOT NULL,
            name TEXT COLLATE "C" NOT NULL,
            document TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (namespace, kind, name)
        )
        """,
        "CREATE TABLE metadef_resource_types (name TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
        """
        CREATE TABLE metadef_associations (
            namespace TEXT COLLATE "C" NOT NULL REFERENCES metadef_namespaces(namespace) ON DELETE CASCADE ON UPDATE CASCADE,
            resource_type TEXT COLLATE "C" NOT NULL REFERENCES metadef_resource_types(name),
            prefix TEXT,
            properties_target TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (namespace, resource_type)
        )
        """,
        "CREATE TABLE metadef_sets_loaded (name TEXT COLLATE \"C\" PRIMARY KEY, loaded_at BIGINT NOT NULL)",
    ]

    static let namespaceColumns = "namespace, display_name, description, visibility, protected, owner, created_at, updated_at"
    static let itemColumns = "namespace, kind, name, document, created_at, updated_at"
    static let associationColumns = "namespace, resource_type, prefix, properties_target, created_at, updated_at"

    static func metadefNamespace(_ row: PostgresRow) throws -> MetadefNamespace {
        let (n, display, description, visibility, protected, owner, created, updated) =
            try row.decode((String, String?, String?, String, Bool, String?, Int64, Int64).self)
        return MetadefNamespace(namespace: n, displayName: display, description: description, visibility: visibility,
                                isProtected: protected, owner: owner, createdAt: created, updatedAt: updated)
    }

    static func namespaceValues(_ n: MetadefNamespace) -> [SQLValue] {
        [.text(n.namespace), SQLValue(n.displayName), SQLValue(n.description), .text(n.visibility), .bool(n.isProtected),
         SQLValue(n.owner), .int(n.createdAt), .int(n.updatedAt)]
    }

    static func metadefItem(_ row: PostgresRow) throws -> MetadefItem {
        let (n, kind, name, document, created, updated) = try row.decode((String, String, String, String, Int64, Int64).self)
        return MetadefItem(namespace: n, kind: MetadefKind(rawValue: kind) ?? .tag, name: name,
                           document: (try? JSONValue.parse(document)) ?? .object([]), createdAt: created, updatedAt: updated)
    }

    static func association(_ row: PostgresRow) throws -> MetadefAssociation {
        let (n, type, prefix, target, created, updated) = try row.decode((String, String, String?, String?, Int64, Int64).self)
        return MetadefAssociation(namespace: n, resourceType: type, prefix: prefix, propertiesTarget: target, createdAt: created, updatedAt: updated)
    }

    func clashing<T>(_ work: () async throws -> T) async throws -> T {
        do { return try await work() } catch is UniqueViolation { throw MetadefClash() }
    }

    public func metadefNamespaces() async throws -> [MetadefNamespace] {
        try await rows("SELECT \(Self.namespaceColumns) FROM metadef_namespaces ORDER BY namespace").map(Self.metadefNamespace)
    }

    public func metadefNamespace(_ name: String) async throws -> MetadefNamespace? {
        try await rows("SELECT \(Self.namespaceColumns) FROM metadef_namespaces WHERE namespace = $1", [.text(name)]).first.map(Self.metadefNamespace)
    }

    public func insertMetadefNamespace(_ namespace: MetadefNamespace, associations: [MetadefAssociation], items: [MetadefItem]) async throws {
        try await clashing {
            try await transaction { c in
                _ = try await rows("INSERT INTO metadef_namespaces (\(Self.namespaceColumns)) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                                   Self.namespaceValues(namespace), on: c)
                for a in associations { try await insertAssociation(a, on: c) }
                for i in items { try await insertItem(i, on: c) }
            }
        }
    }

    public func updateMetadefNamespace(_ name: String, to n: MetadefNamespace) async throws -> Bool {
        try await clashing {
            try await !rows("""
                UPDATE metadef_namespaces SET namespace = $1, display_name = $2, description = $3, visibility = $4, protected = $5,
                    owner = $6, created_at = $7, updated_at = $8 WHERE namespace = $9 RETURNING 1
                """, Self.namespaceValues(n) + [.text(name)]).isEmpty
        }
    }

    public func deleteMetadefNamespace(_ name: String) async throws -> Bool {
        try await !rows("DELETE FROM metadef_namespaces WHERE namespace = $1 RETURNING 1", [.text(name)]).isEmpty
    }

    public func metadefItems(namespace: String, kind: MetadefKind) async throws -> [MetadefItem] {
        try await rows("SELECT \(Self.itemColumns) FROM metadef_items WHERE namespace = $1 AND kind = $2 ORDER BY created_at, name",
                       [.text(namespace), .text(kind.rawValue)]).map(Self.metadefItem)
    }

    public func metadefItem(namespace: String, kind: MetadefKind, name: String) async throws -> MetadefItem? {
        try await rows("SELECT \(Self.itemColumns) FROM metadef_items WHERE namespace = $1 AND kind = $2 AND name = $3",
                       [.text(namespace), .text(kind.rawValue), .text(name)]).first.map(Self.metadefItem)
    }

    func insertItem(_ i: MetadefItem, on c: PostgresConnection) async throws {
        _ = try await rows("INSERT INTO metadef_items (\(Self.itemColumns)) VALUES ($1,$2,$3,$4,$5,$6)",
                           [.text(i.namespace), .text(i.kind.rawValue), .text(i.name), .text(i.document.serialized),
                            .int(i.createdAt), .int(i.updatedAt)], on: c)
    }

    func insertAssociation(_ a: MetadefAssociation, on c: PostgresConnection) async throws {
        _ = try await rows("INSERT INTO metadef_resource_types (name, created_at, updated_at) VALUES ($1,$2,$2) ON CONFLICT DO NOTHING",
                           [.text(a.resourceType), .int(a.createdAt)], on: c)
        _ = try await rows("INSERT INTO metadef_associations (\(Self.associationColumns)) VALUES ($1,$2,$3,$4,$5,$6)",
                           [.text(a.namespace), .text(a.resourceType), SQLValue(a.prefix), SQLValue(a.propertiesTarget),
                            .int(a.createdAt), .int(a.updatedAt)], on: c)
    }

    public func insertMetadefItems(_ items: [MetadefItem], namespace: String, kind: MetadefKind, replacing: Bool) async throws {
        try await clashing {
            try await transaction { c in
                if replacing {
                    _ = try await rows("DELETE FROM metadef_items WHERE namespace = $1 AND kind = $2", [.text(namespace), .text(kind.rawValue)], on: c)
                }
                for i in items { try await insertItem(i, on: c) }
            }
        }
    }

    public func updateMetadefItem(namespace: String, kind: MetadefKind, name: String, to i: MetadefItem) async throws -> Bool {
        try await clashing {
            try await !rows("""
                UPDATE metadef_items SET name = $1, document = $2, created_at = $3, updated_at = $4
                WHERE namespace = $5 AND kind = $6 AND name = $7 RETURNING 1
                """, [.text(i.name), .text(i.document.serialized), .int(i.createdAt), .int(i.updatedAt),
                      .text(namespace), .text(kind.rawValue), .text(name)]).isEmpty
        }
    }

    public func deleteMetadefItems(namespace: String, kind: MetadefKind, name: String?) async throws -> Int {
        if let name {
            return try await rows("DELETE FROM metadef_items WHERE namespace = $1 AND kind = $2 AND name = $3 RETURNING 1",
                                  [.text(namespace), .text(kind.rawValue), .text(name)]).count
        }
        return try await rows("DELETE FROM metadef_items WHERE namespace = $1 AND kind = $2 RETURNING 1",
                              [.text(namespace), .text(kind.rawValue)]).count
    }

    public func metadefResourceTypes() async throws -> [MetadefResourceType] {
        try await rows("SELECT name, created_at, updated_at FROM metadef_resource_types ORDER BY name").map { row in
            let (name, created, updated) = try row.decode((String, Int64, Int64).self)
            return MetadefResourceType(name: name, createdAt: created, updatedAt: updated)
        }
    }

    public func ensureMetadefResourceTypes(_ names: [String], at now: Int64) async throws {
        for n in names {
            _ = try await rows("INSERT INTO metadef_resource_types (name, created_at, updated_at) VALUES ($1,$2,$2) ON CONFLICT DO NOTHING",
                               [.text(n), .int(now)])
        }
    }

    public func metadefAssociations(namespace: String?) async throws -> [MetadefAssociation] {
        if let namespace {
            return try await rows("SELECT \(Self.associationColumns) FROM metadef_associations WHERE namespace = $1 ORDER BY created_at, resource_type",
                                  [.text(namespace)]).map(Self.association)
        }
        return try await rows("SELECT \(Self.associationColumns) FROM metadef_associations ORDER BY namespace, created_at, resource_type")
            .map(Self.association)
    }

    public func insertMetadefAssociation(_ association: MetadefAssociation) async throws {
        try await clashing { try await transaction { c in try await insertAssociation(association, on: c) } }
    }

    public func deleteMetadefAssociation(namespace: String, resourceType: String) async throws -> Bool {
        try await !rows("DELETE FROM metadef_associations WHERE namespace = $1 AND resource_type = $2 RETURNING 1",
                        [.text(namespace), .text(resourceType)]).isEmpty
    }

    public func metadefSetLoaded(_ key: String) async throws -> Bool {
        try await !rows("SELECT 1 FROM metadef_sets_loaded WHERE name = $1", [.text(key)]).isEmpty
    }

    public func markMetadefSetLoaded(_ key: String, at now: Int64) async throws {
        _ = try await rows("INSERT INTO metadef_sets_loaded (name, loaded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", [.text(key), .int(now)])
    }
}
