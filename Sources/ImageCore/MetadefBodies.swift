/// Glance's metadef documents (the API's request bodies and the files of `glance/etc/metadefs`,
/// which have the same shape) checked against Glance's schemas and turned into catalog rows.
public enum MetadefBodies {
    /// Members a client may never send (Glance: 403 "Attribute '…' is read-only.").
    static let readOnly = ["self", "schema", "created_at", "updated_at"]

    static let namespaceKeys: Set<String> = ["namespace", "display_name", "description", "visibility", "protected", "owner",
                                             "resource_type_associations", "properties", "objects", "tags"]
    static let objectKeys: Set<String> = ["name", "description", "required", "properties"]
    static let associationKeys: Set<String> = ["name", "prefix", "properties_target"]
    /// Glance's `definitions.property` members (plus `confidential`, which its model carries).
    static let propertyKeys: Set<String> = ["name", "title", "description", "operators", "type", "required", "minimum", "maximum",
                                            "maxLength", "minLength", "pattern", "enum", "readonly", "default", "items",
                                            "maxItems", "minItems", "uniqueItems", "additionalItems", "confidential"]
    static let propertyTypes: Set<String> = ["array", "boolean", "integer", "number", "object", "string"]

    /// A whole namespace: the row, its associations and its objects, properties and tags.
    public static func namespace(_ body: JSONValue?, owner: String?, now: Int64) throws
        -> (MetadefNamespace, [MetadefAssociation], [MetadefItem]) {
        let m = try members(body, allowed: namespaceKeys)
        let name = try string(m, "namespace", required: true, maxLength: 80)!
        var ns = MetadefNamespace(namespace: name, createdAt: now, updatedAt: now)
        try fill(&ns, m, owner: owner)
        var associations: [MetadefAssociation] = []
        for a in try array(m, "resource_type_associations") {
            associations.append(try association(a, namespace: name, now: now))
        }
        var items: [MetadefItem] = []
        if let props = m["properties"] {
            guard case .object(let pairs) = props else { throw bad("properties must be an object, not \(props.typeName)") }
            for (key, doc) in pairs { items.append(try property(doc, namespace: name, name: key, now: now)) }
        }
        for o in try array(m, "objects") { items.append(try object(o, namespace: name, now: now)) }
        for t in try array(m, "tags") { items.append(try tag(t, namespace: name, now: now)) }
        try unique(associations.map(\.resourceType), "resource type association")
        for kind in MetadefKind.allCases { try unique(items.filter { $0.kind == kind }.map(\.name), kind.rawValue) }
        return (ns, associations, items)
    }

    /// The fields a PUT replaces (Glance resets what the body leaves out).
    public static func namespaceUpdate(_ body: JSONValue?, current: MetadefNamespace, owner: String?, now: Int64) throws -> MetadefNamespace {
        let m = try members(body, allowed: namespaceKeys)
        var ns = current
        ns.namespace = try string(m, "namespace", required: true, maxLength: 80)!
        try fill(&ns, m, owner: owner)
        ns.updatedAt = now
        return ns
    }

    static func fill(_ ns: inout MetadefNamespace, _ m: [String: JSONValue], owner: String?) throws {
        ns.displayName = try string(m, "display_name", maxLength: 80)
        ns.description = try string(m, "description", maxLength: 500)
        ns.visibility = try string(m, "visibility") ?? "private"
        guard ["public", "private"].contains(ns.visibility) else {
            throw bad("'\(ns.visibility)' is not one of ['public', 'private']")
        }
        ns.isProtected = try bool(m, "protected") ?? false
        ns.owner = try string(m, "owner", maxLength: 255) ?? owner
    }

    public static func association(_ body: JSONValue?, namespace: String, now: Int64) throws -> MetadefAssociation {
        let m = try members(body, allowed: associationKeys)
        return MetadefAssociation(namespace: namespace, resourceType: try string(m, "name", required: true, maxLength: 80)!,
                                  prefix: try string(m, "prefix", maxLength: 80),
                                  propertiesTarget: try string(m, "properties_target", maxLength: 80), createdAt: now, updatedAt: now)
    }

    public static func object(_ body: JSONValue?, namespace: String, now: Int64) throws -> MetadefItem {
        let m = try members(body, allowed: objectKeys)
        let name = try string(m, "name", required: true, maxLength: 80)!
        var doc: [(String, JSONValue)] = []
        if let d = try string(m, "description") { doc.append(("description", .string(d))) }
        let required = try array(m, "required")
        if !required.isEmpty {
            guard required.allSatisfy({ $0.stringValue != nil }) else { throw bad("required must be an array of strings") }
            doc.append(("required", .array(required)))
        }
        if let props = m["properties"] {
            guard case .object(let pairs) = props else { throw bad("properties must be an object, not \(props.typeName)") }
            var checked: [(String, JSONValue)] = []
            for (key, p) in pairs { checked.append((key, try property(p, namespace: namespace, name: key, now: now).document)) }
            doc.append(("properties", .object(checked)))
        }
        return MetadefItem(namespace: namespace, kind: .object, name: name, document: .object(doc), createdAt: now, updatedAt: now)
    }

    /// A property: `name` comes from the body (`POST …/properties`) or from its key in a namespace
    /// or object document; the stored document leaves the name out.
    public static func property(_ body: JSONValue?, namespace: String, name given: String? = nil, now: Int64) throws -> MetadefItem {
        let m = try members(body, allowed: propertyKeys)
        let name = try given ?? string(m, "name", required: true, maxLength: 80)!
        guard name.count <= 80, !name.isEmpty else { throw bad("The property name must be 1 to 80 characters: '\(name)'") }
        _ = try string(m, "title", required: true)
        let type = m["type"]
        switch type {
        case nil: throw bad("'type' is a required property")
        case .string(let t)? where propertyTypes.contains(t): break
        case .null?: break
        default: throw bad("\(type!.serialized) is not one of \(propertyTypes.sorted())")
        }
        _ = try string(m, "description")
        _ = try string(m, "pattern")
        for key in ["enum", "operators", "required"] where m[key] != nil && m[key]?.arrayItems == nil {
            throw bad("\(key) must be an array, not \(m[key]!.typeName)")
        }
        for key in ["readonly", "uniqueItems", "additionalItems", "confidential"] { _ = try bool(m, key) }
        for key in ["minimum", "maximum", "maxLength", "minLength", "maxItems", "minItems"] {
            switch m[key] {
            case nil, .int?, .double?: continue
            default: throw bad("\(key) must be a number, not \(m[key]!.typeName)")
            }
        }
        if let items = m["items"], case .object = items {} else if m["items"] != nil { throw bad("items must be an object") }
        guard case .object(let pairs)? = body else { throw bad("A property must be an object") }
        return MetadefItem(namespace: namespace, kind: .property, name: name, document: .object(pairs.filter { $0.0 != "name" }),
                           createdAt: now, updatedAt: now)
    }

    public static func tag(_ body: JSONValue?, namespace: String, now: Int64) throws -> MetadefItem {
        let m = try members(body, allowed: ["name"])
        return tag(named: try string(m, "name", required: true, maxLength: 255)!, namespace: namespace, now: now)
    }

    public static func tag(named name: String, namespace: String, now: Int64) -> MetadefItem {
        MetadefItem(namespace: namespace, kind: .tag, name: name, createdAt: now, updatedAt: now)
    }

    // MARK: Checks

    static func bad(_ message: String) -> ImageError { .badRequest(message) }

    /// The object's members, refusing read-only and unknown ones (Glance's schemas forbid additional properties).
    static func members(_ body: JSONValue?, allowed: Set<String>) throws -> [String: JSONValue] {
        guard let body else { throw bad("Body expected in request.") }
        guard case .object(let pairs) = body else { throw bad("The body must be a JSON object, not \(body.typeName)") }
        var out: [String: JSONValue] = [:]
        for (key, value) in pairs {
            if readOnly.contains(key) { throw ImageError.forbidden("Attribute '\(key)' is read-only.") }
            guard allowed.contains(key) else { throw bad("Additional properties are not allowed ('\(key)' was unexpected)") }
            out[key] = value
        }
        return out
    }

    static func string(_ m: [String: JSONValue], _ key: String, required: Bool = false, maxLength: Int? = nil) throws -> String? {
        switch m[key] {
        case nil, .null?:
            if required { throw bad("'\(key)' is a required property") }
            return nil
        case .string(let s)?:
            if let maxLength, s.count > maxLength { throw bad("'\(key)' is too long (at most \(maxLength) characters)") }
            if required, s.isEmpty { throw bad("'\(key)' must not be empty") }
            return s
        case let other?:
            throw bad("\(other.serialized) is not of type 'string' ('\(key)')")
        }
    }

    static func bool(_ m: [String: JSONValue], _ key: String) throws -> Bool? {
        switch m[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw bad("\(other.serialized) is not of type 'boolean' ('\(key)')")
        }
    }

    static func array(_ m: [String: JSONValue], _ key: String) throws -> [JSONValue] {
        switch m[key] {
        case nil, .null?: return []
        case .array(let a)?: return a
        case let other?: throw bad("\(other.serialized) is not of type 'array' ('\(key)')")
        }
    }

    static func unique(_ names: [String], _ what: String) throws {
        var seen = Set<String>()
        for n in names where !seen.insert(n).inserted { throw ImageError.conflict("Duplicate \(what) '\(n)' in the request.") }
    }
}
