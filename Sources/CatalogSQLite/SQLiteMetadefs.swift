import GRDB
import ImageCore

/// Metadata definitions in SQLite: one table per kind of row; objects, properties and tags share
/// one table of named JSON documents.
extension SQLiteCatalog {
    static let metadefSchema = """
        CREATE TABLE metadef_namespaces (
            namespace TEXT PRIMARY KEY NOT NULL,
            display_name TEXT,
            description TEXT,
            visibility TEXT NOT NULL,
            protected INTEGER NOT NULL,
            owner TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE metadef_items (
            namespace TEXT NOT NULL REFERENCES metadef_namespaces(namespace) ON DELETE CASCADE ON UPDATE CASCADE,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (namespace, kind, name)
        );
        CREATE TABLE metadef_resource_types (
            name TEXT PRIMARY KEY NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE metadef_associations (
            namespace TEXT NOT NULL REFERENCES metadef_namespaces(namespace) ON DELETE CASCADE ON UPDATE CASCADE,
            resource_type TEXT NOT NULL REFERENCES metadef_resource_types(name),
            prefix TEXT,
            properties_target TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (namespace, resource_type)
        );
        CREATE TABLE metadef_sets_loaded (name TEXT PRIMARY KEY NOT NULL, loaded_at INTEGER NOT NULL);
        """

    static let namespaceColumns = "namespace, display_name, description, visibility, protected, owner, created_at, updated_at"

    static func metadefNamespace(_ row: Row) -> MetadefNamespace {
        MetadefNamespace(namespace: row["namespace"], displayName: row["display_name"], description: row["description"],
                         visibility: row["visibility"], isProtected: row["protected"], owner: row["owner"],
                         createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    static func namespaceArguments(_ n: MetadefNamespace) -> StatementArguments {
        [n.namespace, n.displayName, n.description, n.visibility, n.isProtected, n.owner, n.createdAt, n.updatedAt]
    }

    static func metadefItem(_ row: Row) -> MetadefItem {
        let text: String = row["document"]
        return MetadefItem(namespace: row["namespace"], kind: MetadefKind(rawValue: row["kind"]) ?? .tag, name: row["name"],
                           document: (try? JSONValue.parse(text)) ?? .object([]), createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    static func association(_ row: Row) -> MetadefAssociation {
        MetadefAssociation(namespace: row["namespace"], resourceType: row["resource_type"], prefix: row["prefix"],
                           propertiesTarget: row["properties_target"], createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    /// A unique-key violation is the caller's clash; other constraint failures (a namespace deleted
    /// meanwhile) are errors as they are.
    func clashing<T>(_ work: () async throws -> T) async throws -> T {
        do { return try await work() } catch let e as DatabaseError where e.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
            || e.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw MetadefClash()
        }
    }

    public func metadefNamespaces() async throws -> [MetadefNamespace] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.namespaceColumns) FROM metadef_namespaces ORDER BY namespace").map(Self.metadefNamespace)
        }
    }

    public func metadefNamespace(_ name: String) async throws -> MetadefNamespace? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.namespaceColumns) FROM metadef_namespaces WHERE namespace = ?", arguments: [name])
                .map(Self.metadefNamespace)
        }
    }

    public func insertMetadefNamespace(_ namespace: MetadefNamespace, associations: [MetadefAssociation], items: [MetadefItem]) async throws {
        try await clashing {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO metadef_namespaces (\(Self.namespaceColumns)) VALUES (?,?,?,?,?,?,?,?)",
                               arguments: Self.namespaceArguments(namespace))
                for a in associations { try Self.insertAssociation(db, a) }
                for i in items { try Self.insertItem(db, i) }
            }
        }
    }

    public func updateMetadefNamespace(_ name: String, to n: MetadefNamespace) async throws -> Bool {
        try await clashing {
            try await pool.write { db in
                try db.execute(sql: """
                    UPDATE metadef_namespaces SET namespace = ?, display_name = ?, description = ?, visibility = ?, protected = ?,
                        owner = ?, created_at = ?, updated_at = ? WHERE namespace = ?
                    """, arguments: Self.namespaceArguments(n) + [name])
                return db.changesCount > 0
            }
        }
    }

    public func deleteMetadefNamespace(_ name: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM metadef_namespaces WHERE namespace = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    public func metadefItems(namespace: String, kind: MetadefKind) async throws -> [MetadefItem] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM metadef_items WHERE namespace = ? AND kind = ? ORDER BY created_at, name",
                             arguments: [namespace, kind.rawValue]).map(Self.metadefItem)
        }
    }

    public func metadefItem(namespace: String, kind: MetadefKind, name: String) async throws -> MetadefItem? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM metadef_items WHERE namespace = ? AND kind = ? AND name = ?",
                             arguments: [namespace, kind.rawValue, name]).map(Self.metadefItem)
        }
    }

    static func insertItem(_ db: Database, _ i: MetadefItem) throws {
        try db.execute(sql: "INSERT INTO metadef_items (namespace, kind, name, document, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                       arguments: [i.namespace, i.kind.rawValue, i.name, i.document.serialized, i.createdAt, i.updatedAt])
    }

    static func insertAssociation(_ db: Database, _ a: MetadefAssociation) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO metadef_resource_types (name, created_at, updated_at) VALUES (?,?,?)",
                       arguments: [a.resourceType, a.createdAt, a.createdAt])
        try db.execute(sql: """
            INSERT INTO metadef_associations (namespace, resource_type, prefix, properties_target, created_at, updated_at)
            VALUES (?,?,?,?,?,?)
            """, arguments: [a.namespace, a.resourceType, a.prefix, a.propertiesTarget, a.createdAt, a.updatedAt])
    }

    public func insertMetadefItems(_ items: [MetadefItem], namespace: String, kind: MetadefKind, replacing: Bool) async throws {
        try await clashing {
            try await pool.write { db in
                if replacing {
                    try db.execute(sql: "DELETE FROM metadef_items WHERE namespace = ? AND kind = ?", arguments: [namespace, kind.rawValue])
                }
                for i in items { try Self.insertItem(db, i) }
            }
        }
    }

    public func updateMetadefItem(namespace: String, kind: MetadefKind, name: String, to i: MetadefItem) async throws -> Bool {
        try await clashing {
            try await pool.write { db in
                try db.execute(sql: """
                    UPDATE metadef_items SET name = ?, document = ?, created_at = ?, updated_at = ?
                    WHERE namespace = ? AND kind = ? AND name = ?
                    """, arguments: [i.name, i.document.serialized, i.createdAt, i.updatedAt, namespace, kind.rawValue, name])
                return db.changesCount > 0
            }
        }
    }

    public func deleteMetadefItems(namespace: String, kind: MetadefKind, name: String?) async throws -> Int {
        try await pool.write { db in
            if let name {
                try db.execute(sql: "DELETE FROM metadef_items WHERE namespace = ? AND kind = ? AND name = ?", arguments: [namespace, kind.rawValue, name])
            } else {
                try db.execute(sql: "DELETE FROM metadef_items WHERE namespace = ? AND kind = ?", arguments: [namespace, kind.rawValue])
            }
            return db.changesCount
        }
    }

    public func metadefResourceTypes() async throws -> [MetadefResourceType] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, created_at, updated_at FROM metadef_resource_types ORDER BY name").map {
                MetadefResourceType(name: $0["name"], createdAt: $0["created_at"], updatedAt: $0["updated_at"])
            }
        }
    }

    public func ensureMetadefResourceTypes(_ names: [String], at now: Int64) async throws {
        try await pool.write { db in
            for n in names {
                try db.execute(sql: "INSERT OR IGNORE INTO metadef_resource_types (name, created_at, updated_at) VALUES (?,?,?)", arguments: [n, now, now])
            }
        }
    }

    public func metadefAssociations(namespace: String?) async throws -> [MetadefAssociation] {
        try await pool.read { db in
            if let namespace {
                return try Row.fetchAll(db, sql: "SELECT * FROM metadef_associations WHERE namespace = ? ORDER BY created_at, resource_type",
                                        arguments: [namespace]).map(Self.association)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM metadef_associations ORDER BY namespace, created_at, resource_type").map(Self.association)
        }
    }

    public func insertMetadefAssociation(_ association: MetadefAssociation) async throws {
        try await clashing { try await pool.write { db in try Self.insertAssociation(db, association) } }
    }

    public func deleteMetadefAssociation(namespace: String, resourceType: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM metadef_associations WHERE namespace = ? AND resource_type = ?", arguments: [namespace, resourceType])
            return db.changesCount > 0
        }
    }

    public func metadefSetLoaded(_ key: String) async throws -> Bool {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT 1 FROM metadef_sets_loaded WHERE name = ?", arguments: [key]) != nil }
    }

    public func markMetadefSetLoaded(_ key: String, at now: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO metadef_sets_loaded (name, loaded_at) VALUES (?, ?)", arguments: [key, now])
        }
    }
}
