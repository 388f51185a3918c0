import ImageCore

/// Avi's PATCH: `{"add"|"replace"|"delete": {field: value, …}}` on top-level fields. `add` and
/// `replace` set scalars and objects; on list fields `add` appends the entries and `replace` swaps
/// the list; `delete` unsets a field, or on a list removes the entries equal to those given.
package enum AviPatch {
    package enum Operation: String { case add, replace, delete }

    static let listFields: Set<String> = ["events", "cloud_info_values"]

    /// The operation and its fields; a plain object (no wrapper key) is a `replace`.
    static func parse(_ body: JSONValue) throws -> (Operation, [(String, JSONValue)]) {
        guard case .object(let members) = body else {
            throw AviError(.badRequest, "PATCH expects {\"add\"|\"replace\"|\"delete\": {…}}.")
        }
        // The body is optional (seed page): `{}` changes nothing.
        if members.isEmpty { return (.replace, []) }
        let wrappers = members.filter { Operation(rawValue: $0.0) != nil }
        if wrappers.isEmpty {
            if let odd = members.first(where: { $0.0.lowercased() != $0.0 && Operation(rawValue: $0.0.lowercased()) != nil }) {
                throw AviError(.badRequest, "Unknown PATCH method '\(odd.0)' (methods are lowercase).")
            }
            return (.replace, members)
        }
        guard wrappers.count == 1, members.count == 1, let op = Operation(rawValue: wrappers[0].0) else {
            throw AviError(.badRequest, "PATCH takes exactly one of add, replace, delete.")
        }
        guard case .object(let fields) = wrappers[0].1 else {
            throw AviError(.badRequest, "PATCH '\(op.rawValue)' expects an object of fields.")
        }
        return (op, fields)
    }

    /// The new document; `fields` are already validated (except for `delete`, which takes any value).
    package static func apply(_ op: Operation, _ fields: [(String, JSONValue)], to document: [(String, JSONValue)]) throws -> [(String, JSONValue)] {
        var doc = document
        for (key, value) in fields {
            let at = doc.firstIndex { $0.0 == key }
            switch op {
            case .add where listFields.contains(key):
                guard case .array(let added) = value else { throw AviError(.badRequest, "Field '\(key)' is a list.") }
                if let at, case .array(let current) = doc[at].1 { doc[at].1 = .array(current + added) } else { set(key, value, &doc) }
            case .add, .replace:
                set(key, value, &doc)
            case .delete:
                guard let at else { continue }
                if listFields.contains(key), case .array(let removed) = value, case .array(let current) = doc[at].1 {
                    doc[at].1 = .array(current.filter { !removed.contains($0) })
                } else {
                    doc.remove(at: at)
                }
            }
        }
        return doc
    }

    static func set(_ key: String, _ value: JSONValue, _ doc: inout [(String, JSONValue)]) {
        if let at = doc.firstIndex(where: { $0.0 == key }) { doc[at].1 = value } else { doc.append((key, value)) }
    }
}

/// The JSON-Patch variant of Avi's PATCH (`{"json_patch": [{"op", "path", "value"}]}`, RFC 6902
/// `add`, `replace`, `remove`, `test`) applied to the image's writable document.
enum AviJSONPatch {
    static func apply(_ ops: JSONValue, to document: JSONValue) throws -> JSONValue {
        guard case .array(let items) = ops, !items.isEmpty else { throw AviError(.badRequest, "json_patch must be a non-empty list of operations.") }
        var doc = document
        for item in items {
            guard case .string(let op)? = item["op"], case .string(let path)? = item["path"] else {
                throw AviError(.badRequest, "Each json_patch operation needs 'op' and 'path'.")
            }
            let tokens = try pointer(path)
            guard !tokens.isEmpty else { throw AviError(.badRequest, "json_patch cannot replace the whole object.") }
            switch op {
            case "add", "replace":
                guard let value = item["value"] else { throw AviError(.badRequest, "json_patch '\(op)' needs a value.") }
                doc = try set(doc, tokens[...], value, insert: op == "add")
            case "remove":
                doc = try remove(doc, tokens[...])
            case "test":
                guard let value = item["value"], try get(doc, tokens[...]) == value else {
                    throw AviError(.conflict, "json_patch test failed at \(path).")
                }
            default:
                throw AviError(.badRequest, "Unsupported json_patch op '\(op)'.")
            }
        }
        return doc
    }

    /// RFC 6901: `/a/b~1c/0` → ["a", "b/c", "0"].
    static func pointer(_ path: String) throws -> [String] {
        guard path.hasPrefix("/") else { throw AviError(.badRequest, "json_patch path must start with '/': \(path)") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~") }
    }

    static func get(_ doc: JSONValue, _ tokens: ArraySlice<String>) throws -> JSONValue {
        guard let first = tokens.first else { return doc }
        switch doc {
        case .object(let members):
            guard let v = members.last(where: { $0.0 == first })?.1 else { throw AviError(.badRequest, "json_patch path not found: \(first)") }
            return try get(v, tokens.dropFirst())
        case .array(let items):
            guard let i = Int(first), items.indices.contains(i) else { throw AviError(.badRequest, "json_patch index out of range: \(first)") }
            return try get(items[i], tokens.dropFirst())
        default:
            throw AviError(.badRequest, "json_patch path goes through a scalar at \(first)")
        }
    }

    static func set(_ doc: JSONValue, _ tokens: ArraySlice<String>, _ value: JSONValue, insert: Bool) throws -> JSONValue {
        let key = tokens.first!
        let last = tokens.count == 1
        switch doc {
        case .object(var members):
            let at = members.lastIndex { $0.0 == key }
            if last {
                if let at { members[at].1 = value } else if insert { members.append((key, value)) } else {
                    throw AviError(.badRequest, "json_patch replace of a missing member: \(key)")
                }
            } else {
                guard let at else { throw AviError(.badRequest, "json_patch path not found: \(key)") }
                members[at].1 = try set(members[at].1, tokens.dropFirst(), value, insert: insert)
            }
            return .object(members)
        case .array(var items):
            if last, insert, key == "-" { items.append(value); return .array(items) }
            guard let i = Int(key), i >= 0, i <= items.count, insert && last || i < items.count else {
                throw AviError(.badRequest, "json_patch index out of range: \(key)")
            }
            if last {
                if insert { items.insert(value, at: i) } else { items[i] = value }
            } else {
                items[i] = try set(items[i], tokens.dropFirst(), value, insert: insert)
            }
            return .array(items)
        default:
            throw AviError(.badRequest, "json_patch path goes through a scalar at \(key)")
        }
    }

    static func remove(_ doc: JSONValue, _ tokens: ArraySlice<String>) throws -> JSONValue {
        let key = tokens.first!
        switch doc {
        case .object(var members):
            guard let at = members.lastIndex(where: { $0.0 == key }) else { throw AviError(.badRequest, "json_patch path not found: \(key)") }
            if tokens.count == 1 { members.remove(at: at) } else { members[at].1 = try remove(members[at].1, tokens.dropFirst()) }
            return .object(members)
        case .array(var items):
            guard let i = Int(key), items.indices.contains(i) else { throw AviError(.badRequest, "json_patch index out of range: \(key)") }
            if tokens.count == 1 { items.remove(at: i) } else { items[i] = try remove(items[i], tokens.dropFirst()) }
            return .array(items)
        default:
            throw AviError(.badRequest, "json_patch path goes through a scalar at \(key)")
        }
    }
}
