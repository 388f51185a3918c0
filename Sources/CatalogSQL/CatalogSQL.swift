import Foundation
import ImageCore
import Synchronization

/// A value bound to a statement, whatever the engine. Each catalog turns these into its own bindings.
public enum SQLValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int64)
    case bool(Bool)

    public init(_ s: String?) { self = s.map(SQLValue.text) ?? .null }
    public init(_ i: Int64?) { self = i.map(SQLValue.int) ?? .null }
}

/// Where the SQL of the two catalogs differs.
public enum SQLDialect: Sendable {
    /// `?` placeholders, JSON text documents searched with `json_each`; NULLs sort first ascending.
    case sqlite
    /// `$n` placeholders, JSONB documents searched with `@>`; NULL order is spelled out to match SQLite's.
    case postgres
}

/// SQL text with its bound values, built left to right so placeholders and values stay in order.
public struct SQLStatement: Sendable {
    public let dialect: SQLDialect
    public private(set) var sql = ""
    public private(set) var values: [SQLValue] = []

    public init(_ dialect: SQLDialect, _ sql: String = "") { self.dialect = dialect; self.sql = sql }

    public mutating func append(_ text: String) { sql += text }

    /// Binds a value and returns its placeholder text. PostgreSQL's placeholders carry their type, so
    /// a statement prepared from the text alone (`PostgresCatalog.preparedRows`) types its parameters
    /// as the values bound now do.
    public mutating func bind(_ value: SQLValue) -> String {
        values.append(value)
        guard dialect == .postgres else { return "?" }
        switch value {
        case .null: return "$\(values.count)"
        case .text: return "$\(values.count)::text"
        case .int: return "$\(values.count)::bigint"
        case .bool: return "$\(values.count)::boolean"
        }
    }

    public mutating func bindList(_ values: [SQLValue]) -> String {
        values.map { bind($0) }.joined(separator: ",")
    }
}

/// The column lists of both catalogs' tables, in the order rows are encoded and decoded.
public enum CatalogColumns {
    public static let imageNames = [
        "id", "name", "status", "visibility", "protected", "os_hidden", "owner", "container_format", "disk_format",
        "size", "virtual_size", "min_disk", "min_ram", "checksum", "os_hash_algo", "os_hash_value", "created_at",
        "updated_at", "deleted_at", "tags", "properties", "version", "extensions", "name_rule", "writer_node",
    ]
    public static let images = imageNames.joined(separator: ", ")

    public static let taskNames = [
        "id", "type", "status", "owner", "image_id", "user_id", "request_id", "input", "result", "message", "bytes_done",
        "bytes_total", "attempts", "lease_owner", "lease_expires_at", "created_at", "updated_at", "expires_at",
    ]
    public static let tasks = taskNames.joined(separator: ", ")

    public static let accounts = "name, user_id, project_id, roles, password_hash, created_at, updated_at"
    public static let apiKeys = "key_id, account_name, secret_hash, created_at"
    public static let sessions = "id_hash, account_name, csrf_token, created_at, expires_at"
    public static let members = "image_id, member_id, status, created_at, updated_at"
    public static let quotas = "image_count_total, image_size_total, image_stage_total, image_count_uploading"

    /// One value per image column, in `imageNames` order. Tags and properties are JSON text.
    public static func values(_ i: Image) -> [SQLValue] {
        [.text(i.id), SQLValue(i.name), .text(i.status.rawValue), .text(i.visibility.rawValue), .bool(i.isProtected),
         .bool(i.osHidden), SQLValue(i.owner), SQLValue(i.containerFormat), SQLValue(i.diskFormat), SQLValue(i.size),
         SQLValue(i.virtualSize), .int(i.minDisk), .int(i.minRam), SQLValue(i.checksum), SQLValue(i.osHashAlgo),
         SQLValue(i.osHashValue), .int(i.createdAt), .int(i.updatedAt), SQLValue(i.deletedAt),
         .text(DocumentColumns.encodeTags(i.tags)), .text(DocumentColumns.encodeProperties(i.properties)), .int(i.version),
         .text(DocumentColumns.encodeExtensions(i.extensions)), SQLValue(i.nameRule?.rawValue), SQLValue(i.writerNode)]
    }

    /// One value per task column, in `taskNames` order.
    public static func values(_ t: ImageTask) -> [SQLValue] {
        [.text(t.id), .text(t.type), .text(t.status.rawValue), SQLValue(t.owner), SQLValue(t.imageId), SQLValue(t.userId),
         SQLValue(t.requestId), .text(t.input), SQLValue(t.result), .text(t.message), .int(t.bytesDone),
         SQLValue(t.bytesTotal), .int(Int64(t.attempts)), SQLValue(t.leaseOwner), SQLValue(t.leaseExpiresAt),
         .int(t.createdAt), .int(t.updatedAt), SQLValue(t.expiresAt)]
    }
}

/// Tags and properties as JSON text (a TEXT column in SQLite, JSONB in PostgreSQL).
public enum DocumentColumns {
    public static func encodeTags(_ tags: [String]) -> String {
        JSONValue.array(tags.map { .string($0) }).serialized
    }

    public static func encodeProperties(_ p: [String: String]) -> String {
        JSONValue.object(p.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized
    }

    public static func decodeTags(_ text: String) throws -> [String] {
        if text == "[]" { return [] }
        if let tags = text.utf8.withContiguousStorageIfAvailable(FlatJSON.strings), let tags { return tags }
        guard case .array(let items) = try JSONValue.parse(text) else { throw ImageError(.internal, "corrupt tags") }
        return items.compactMap(\.stringValue)
    }

    /// Tags from a column's bytes (invalid UTF-8 is repaired, as `String(decoding:)` does).
    public static func decodeTags(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [String] {
        if let tags = FlatJSON.strings(bytes) { return tags }
        return try decodeTags(String(decoding: bytes, as: UTF8.self))
    }

    /// Properties from a column's bytes.
    public static func decodeProperties(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [String: String] {
        if let p = FlatJSON.stringObject(bytes) { return p }
        return try decodeProperties(String(decoding: bytes, as: UTF8.self))
    }

    /// Extensions from a column's bytes: nearly always the empty object.
    public static func decodeExtensions(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [String: JSONValue] {
        if bytes.count == 2, bytes[0] == UInt8(ascii: "{"), bytes[1] == UInt8(ascii: "}") { return [:] }
        return try decodeExtensions(String(decoding: bytes, as: UTF8.self))
    }

    public static func encodeExtensions(_ e: [String: JSONValue]) -> String {
        JSONValue.object(e.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).serialized
    }

    public static func decodeExtensions(_ text: String) throws -> [String: JSONValue] {
        if text == "{}" { return [:] }
        guard case .object(let members) = try JSONValue.parse(text) else { throw ImageError(.internal, "corrupt extensions") }
        return Dictionary(members, uniquingKeysWith: { $1 })
    }

    public static func decodeProperties(_ text: String) throws -> [String: String] {
        if text == "{}" { return [:] }
        if let p = text.utf8.withContiguousStorageIfAvailable(FlatJSON.stringObject), let p { return p }
        guard case .object(let members) = try JSONValue.parse(text) else { throw ImageError(.internal, "corrupt properties") }
        var out: [String: String] = [:]
        for (k, v) in members { if let s = v.stringValue { out[k] = s } }
        return out
    }
}

/// A project's usage in one pass over its rows (status sets from `ProjectUsage`). Portable SQL:
/// CAST because PostgreSQL's SUM of BIGINT is NUMERIC.
public enum UsageSQL {
    static func statusList(_ statuses: [ImageStatus]) -> String {
        statuses.map { "'\($0.rawValue)'" }.joined(separator: ",")
    }

    static func sum(_ statuses: [ImageStatus], _ value: String) -> String {
        "CAST(COALESCE(SUM(CASE WHEN status IN (\(statusList(statuses))) THEN \(value) ELSE 0 END), 0) AS BIGINT)"
    }

    public static func select(_ dialect: SQLDialect) -> String {
        """
        SELECT \(sum(ProjectUsage.countedStatuses, "1")), \(sum(ProjectUsage.storedStatuses, "COALESCE(size, 0)")),
               \(sum(ProjectUsage.stagedStatuses, "COALESCE(size, 0)")), \(sum(ProjectUsage.uploadingStatuses, "1"))
        FROM images WHERE owner = \(dialect == .sqlite ? "?" : "$1")
        """
    }

    /// Owner and the four usage figures per project; `one`: of the project bound to the first placeholder.
    public static func byProject(_ dialect: SQLDialect, one: Bool) -> String {
        """
        SELECT owner, \(sum(ProjectUsage.countedStatuses, "1")), \(sum(ProjectUsage.storedStatuses, "COALESCE(size, 0)")),
               \(sum(ProjectUsage.stagedStatuses, "COALESCE(size, 0)")), \(sum(ProjectUsage.uploadingStatuses, "1"))
        FROM images WHERE owner IS NOT NULL AND status IN (\(statusList(ProjectUsage.countedStatuses)))\(one ? " AND owner = " + (dialect == .sqlite ? "?" : "$1") : "")
        GROUP BY owner
        """
    }

    /// Owner, disk format, `stores` property, image count and bytes of images holding data, largest first.
    public static func storedShares(_ dialect: SQLDialect, one: Bool) -> String {
        let stores = dialect == .sqlite ? "COALESCE(json_extract(properties, '$.\(ImageService.storesKey)'), '')"
            : "COALESCE(properties->>'\(ImageService.storesKey)', '')"
        return """
        SELECT owner, disk_format, \(stores) AS stores, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(COALESCE(size, 0)), 0) AS BIGINT)
        FROM images WHERE status IN (\(statusList(ProjectUsage.storedStatuses)))\(one ? " AND owner = " + (dialect == .sqlite ? "?" : "$1") : "")
        GROUP BY owner, disk_format, \(stores)
        ORDER BY 5 DESC
        LIMIT 10000
        """
    }
}

/// Values remembered for a fixed time (bounded: cleared when it grows past `capacity`).
public final class TTLCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    let seconds: Double
    let capacity: Int
    let entries = Mutex<[Key: (value: Value, until: Double)]>([:])

    public init(seconds: Double, capacity: Int = 10_000) { self.seconds = seconds; self.capacity = capacity }

    public func get(_ key: Key) -> Value? {
        let now = Date().timeIntervalSince1970
        return entries.withLock { m in m[key].flatMap { $0.until > now ? $0.value : nil } }
    }

    public func set(_ key: Key, _ value: Value) {
        let until = Date().timeIntervalSince1970 + seconds
        entries.withLock { m in
            if m.count >= capacity { m.removeAll(keepingCapacity: true) }
            m[key] = (value, until)
        }
    }

    public func remove(_ key: Key) { _ = entries.withLock { $0.removeValue(forKey: key) } }
}
