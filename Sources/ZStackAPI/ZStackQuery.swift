import FrontEndSupport
import Foundation
import ImageCore

/// ZStack's query language for `GET` collections: `q=<field><op><value>` conditions (AND-ed),
/// `limit`, `start`, `count`, `replyWithCount`, `sort`, `fields`.
package struct ZStackQuery: Sendable {
    package enum Op: String, Sendable, CaseIterable {
        case notEqual = "!=", greaterOrEqual = ">=", lessOrEqual = "<=", notIn = "!?=", notLike = "!~="
        case like = "~=", inList = "?=", equal = "=", greater = ">", less = "<"
        case isNull = " is null", notNull = " not null"
    }

    package struct Condition: Sendable, Equatable {
        var field: String
        var op: Op
        var value: String
    }

    package var conditions: [Condition] = []
    /// The documented (and default) most rows a query answers; a bigger `limit` is served this many.
    static let maxLimit = 1000
    var limit = maxLimit
    var start = 0
    var count = false
    var replyWithCount = false
    package var sort: (field: String, descending: Bool)?
    var fields: [String]?

    /// The operators in ZStack's detection order: the first one found in the text wins.
    static let detectionOrder: [Op] = [.notEqual, .greaterOrEqual, .lessOrEqual, .notIn, .notLike, .like, .inList, .equal, .greater, .less, .isNull, .notNull]

    static func condition(_ text: String) throws -> Condition {
        for op in detectionOrder {
            guard let range = text.range(of: op.rawValue) else { continue }
            let field = String(text[..<range.lowerBound])
            let value = String(text[range.upperBound...])
            if op == .isNull || op == .notNull {
                guard value.isEmpty else { continue }
            }
            guard !field.isEmpty else { break }
            return Condition(field: field, op: op, value: value)
        }
        throw ZStackHTTPError(.badRequest, "Invalid query parameter. The '\(text)' in the parameter[q] doesn't contain any query operator. Valid query operators are [\(detectionOrder.map { $0.rawValue.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))]")
    }

    /// From the raw query string: repeated `q`, and the first of every other parameter.
    package init(parameters: [(String, String)]) throws {
        var seen = Set<String>()
        for (key, value) in parameters {
            if key == "q" { conditions.append(try Self.condition(value)); continue }
            guard !seen.contains(key) else { continue }
            seen.insert(key)
            switch key {
            case "limit", "start":
                guard let n = Int(value), n >= 0 else { throw ZStackHTTPError(.badRequest, "Invalid query parameter. '\(key)' must be an integer") }
                if key == "limit" { limit = PageWindow.cappedSize(n, max: Self.maxLimit) } else { start = n }
            case "count": count = value.lowercased() == "true"
            case "replyWithCount": replyWithCount = value.lowercased() == "true"
            case "sort", "sortBy":
                guard !value.isEmpty else { continue }
                // An unencoded `+name` arrives as ` name` (form decoding turns `+` into a space).
                let value = value.hasPrefix(" ") ? "+" + value.dropFirst() : value
                if value.hasPrefix("-") { sort = (String(value.dropFirst()), true) }
                else if value.hasPrefix("+") { sort = (String(value.dropFirst()), false) }
                else { sort = (value, sort?.descending ?? false) }
            case "sortDirection": if let s = sort { sort = (s.field, value.lowercased() == "desc") } else { sort = ("createDate", value.lowercased() == "desc") }
            case "fields": fields = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            default: break  // unknown parameters are ignored, as ZStack does
            }
        }
    }

    /// `a=b&c=d` with percent-decoding where it is well-formed: the Python SDK sends `%` raw.
    /// A query endpoint's question: `GET /x/{uuid}` is the query `uuid=<uuid>` (other parameters
    /// ignored), `GET /x` reads ZStack's query parameters.
    package static func forRequest(query: String?, uuid: String?) throws -> ZStackQuery {
        guard let uuid else { return try ZStackQuery(parameters: parameters(query)) }
        var q = try ZStackQuery(parameters: [])
        q.conditions = [.init(field: "uuid", op: .equal, value: uuid)]
        return q
    }

    package static func parameters(_ query: String?) -> [(String, String)] {
        RequestReading.formPairs(query)
    }
}

/// Conditions evaluated on images: every inventory field, the refs' fields as
/// `backupStorageRefs.<field>` (true when any ref matches), `backupStorage.uuid|name`,
/// `__systemTag__` and `__userTag__`.
package struct ZStackMatcher {
    enum Kind { case text, number, boolean, date }

    static let fields: [String: Kind] = [
        "uuid": .text, "name": .text, "description": .text, "state": .text, "status": .text, "size": .number,
        "actualSize": .number, "md5Sum": .text, "url": .text, "mediaType": .text, "guestOsType": .text, "type": .text,
        "platform": .text, "architecture": .text, "format": .text, "system": .boolean, "virtio": .boolean,
        "createDate": .date, "lastOpDate": .date,
    ]
    static let refFields: [String: Kind] = [
        "imageUuid": .text, "backupStorageUuid": .text, "installPath": .text, "status": .text, "exportUrl": .text, "exportMd5Sum": .text,
        "createDate": .date, "lastOpDate": .date,
    ]

    /// Refuses unknown fields and operands their field cannot hold before anything is read (SYS.1007), so the
    /// answer to a malformed query does not depend on which images exist.
    package static func check(_ conditions: [ZStackQuery.Condition]) throws {
        for c in conditions {
            let kind = try kind(of: c.field)
            // The negative operators are matched as their positive forms; patterns and null tests take any text.
            let positive: ZStackQuery.Op? = switch c.op {
            case .notEqual: .equal
            case .notIn: .inList
            case .like, .notLike, .isNull, .notNull: nil
            default: c.op
            }
            guard let positive else { continue }
            let probe: JSONValue = switch kind {
            case .boolean: .bool(false)
            case .number, .date: .int(0)
            case .text: .string("")
            }
            _ = try compare(probe, positive, c.value, kind, c.field)
        }
    }

    package static func checkSortable(_ field: String) throws {
        guard fields[field] != nil else {
            throw ZStackError.invalidArgument("sort field[\(field)] is not a field of \(ZStackImage.inventoryClass)")
        }
    }

    static func kind(of field: String) throws -> Kind {
        if let k = fields[field] { return k }
        if field == "__systemTag__" || field == "__userTag__" { return .text }
        if field.hasPrefix("backupStorageRefs."), let k = refFields[String(field.dropFirst("backupStorageRefs.".count))] { return k }
        if field == "backupStorage.uuid" || field == "backupStorage.name" { return .text }
        throw ZStackError.invalidArgument("condition name[\(field)] is invalid, no such field on inventory class[\(ZStackImage.inventoryClass)]")
    }

    /// The values a field has on one inventory (several for refs and tags; empty when null).
    static func values(_ field: String, _ image: Image, _ inventory: [(String, JSONValue)]) -> [JSONValue] {
        func lookup(_ members: [(String, JSONValue)], _ key: String) -> JSONValue? { members.first { $0.0 == key }?.1 }
        switch field {
        case "createDate": return [.int(image.createdAt)]
        case "lastOpDate": return [.int(image.updatedAt)]
        case "__systemTag__": return ZStackImage.tags(image, "systemTags").map { .string($0) }
        case "__userTag__": return (ZStackImage.tags(image, "userTags") + ZStackTags.texts(image)).map { .string($0) }
        default: break
        }
        let refs: [[(String, JSONValue)]] = lookup(inventory, "backupStorageRefs")?.arrayItems?.compactMap {
            if case .object(let m) = $0 { return m } else { return nil }
        } ?? []
        if field.hasPrefix("backupStorageRefs.") {
            let sub = String(field.dropFirst("backupStorageRefs.".count))
            if sub == "createDate" { return refs.isEmpty ? [] : [.int(image.createdAt)] }
            if sub == "lastOpDate" { return refs.isEmpty ? [] : [.int(image.updatedAt)] }
            return refs.compactMap { lookup($0, sub) }
        }
        if field == "backupStorage.uuid" { return refs.compactMap { lookup($0, "backupStorageUuid") } }
        if field == "backupStorage.name" {
            return refs.compactMap { lookup($0, "installPath")?.stringValue }.compactMap { path in
                path.hasPrefix("imaged://") ? .string(String(path.dropFirst("imaged://".count).split(separator: "/").first ?? "")) : nil
            }
        }
        return lookup(inventory, field).map { [$0] } ?? []
    }

    package static func matches(_ c: ZStackQuery.Condition, _ image: Image, _ inventory: [(String, JSONValue)]) throws -> Bool {
        let kind = try kind(of: c.field)
        let values = values(c.field, image, inventory)
        switch c.op {
        case .isNull: return values.isEmpty
        case .notNull: return !values.isEmpty
        case .notEqual, .notIn, .notLike:
            // Negations hold when no value matches the positive form.
            let positive: ZStackQuery.Op = c.op == .notEqual ? .equal : c.op == .notIn ? .inList : .like
            return try !values.contains { try compare($0, positive, c.value, kind, c.field) }
        default:
            return try values.contains { try compare($0, c.op, c.value, kind, c.field) }
        }
    }

    static func compare(_ value: JSONValue, _ op: ZStackQuery.Op, _ operand: String, _ kind: Kind, _ field: String) throws -> Bool {
        switch op {
        case .inList: return try operand.split(separator: ",", omittingEmptySubsequences: false).contains { try compare(value, .equal, String($0), kind, field) }
        case .like:
            return like(text(value), pattern: operand)
        default: break
        }
        switch kind {
        case .text:
            let a = text(value)
            switch op {
            case .equal: return a == operand
            case .greater: return a > operand
            case .less: return a < operand
            case .greaterOrEqual: return a >= operand
            case .lessOrEqual: return a <= operand
            default: return false
            }
        case .boolean:
            guard let b = Bool(operand.lowercased()) else { throw ZStackError.invalidArgument("value[\(operand)] of field[\(field)] is not a boolean") }
            guard op == .equal else { throw ZStackError.invalidArgument("operator[\(op.rawValue)] cannot be used on the boolean field[\(field)]") }
            return value.boolValue == b
        case .number, .date:
            guard case .int(let a) = value else { return false }
            let parsed = kind == .date ? GsonDate.parse(operand) : Int64(operand)
            guard let b = parsed else { throw ZStackError.invalidArgument("value[\(operand)] of field[\(field)] is not a \(kind == .date ? "date" : "number")") }
            switch op {
            case .equal: return a == b
            case .greater: return a > b
            case .less: return a < b
            case .greaterOrEqual: return a >= b
            case .lessOrEqual: return a <= b
            default: return false
            }
        }
    }

    static func text(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .int(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        default: return ""
        }
    }

    /// SQL LIKE: `%` any run, `_` one character.
    static func like(_ text: String, pattern: String) -> Bool {
        let t = Array(text), p = Array(pattern)
        var row = [Bool](repeating: false, count: t.count + 1)
        row[0] = true
        for pc in p {
            var next = [Bool](repeating: false, count: t.count + 1)
            if pc == "%" {
                var any = false
                for i in 0...t.count { any = any || row[i]; next[i] = any }
            } else {
                for i in 0..<t.count where row[i] && (pc == "_" || pc == t[i]) { next[i + 1] = true }
            }
            row = next
        }
        return row[t.count]
    }

    /// Orders inventories by one field (`createDate` by default), ties by uuid.
    package static func sort(_ items: inout [(Image, [(String, JSONValue)])], by field: String, descending: Bool) {
        items.sort { a, b in
            let va = values(field, a.0, a.1).first, vb = values(field, b.0, b.1).first
            let ordered: Bool
            switch (va, vb) {
            case (.int(let x)?, .int(let y)?) where x != y: ordered = x < y
            case (let x?, let y?) where text(x) != text(y): ordered = text(x) < text(y)
            case (nil, _?): ordered = true
            case (_?, nil): ordered = false
            default: return a.0.id < b.0.id
            }
            return descending ? !ordered : ordered
        }
    }
}
