import ImageCore

/// The writable image fields of POST/PUT, checked as Danube's serializer checks them.
struct DanubeFields {
    var alias: String?
    var access: Int64?
    var owner: String?
    var desc: String?
    var version: String?
    var resize: Bool?
    var deploy: Bool?
    var tags: [String]?
    var dcBound: Bool?
    var dc: String?

    /// The keys PUT may change.
    static let writable: Set<String> = ["alias", "access", "owner", "desc", "version", "resize", "deploy", "tags", "dc_bound"]

    static let tagCharacters = Set(" :/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

    init(_ data: [(String, JSONValue)], _ v: inout DanubeValidation) {
        for (key, value) in data {
            if case .null = value { continue }
            switch key {
            case "alias": alias = Self.text(value, key, max: 32, &v)
            case "desc": desc = Self.text(value, key, max: 128, allowBlank: true, &v)
            case "version": version = Self.text(value, key, max: 16, &v)
            case "owner":
                guard let s = value.stringValue, !s.isEmpty else { v.add(key, "This field may not be blank."); continue }
                owner = s
            case "access":
                let n: Int64? = switch value { case .int(let i): i; case .string(let s): Int64(s); default: nil }
                guard let n, [1, 3, 4].contains(n) else { v.add(key, "\"\(DanubeText.of(value))\" is not a valid choice."); continue }
                access = n
            case "resize": resize = Self.boolean(value, key, &v)
            case "deploy": deploy = Self.boolean(value, key, &v)
            case "dc_bound": dcBound = Self.boolean(value, key, &v)
            case "dc":
                guard let s = value.stringValue else { v.add(key, "Not a valid string."); continue }
                dc = s
            case "tags":
                var items: [String] = []
                switch value {
                case .array(let a):
                    for item in a {
                        guard let s = item.stringValue else { v.add(key, "Not a valid string."); continue }
                        items.append(s)
                    }
                case .string(let s): items = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                default: v.add(key, "Expected a list of items but got type \"\(value.typeName)\"."); continue
                }
                if items.contains(where: { $0.isEmpty || !$0.allSatisfy(Self.tagCharacters.contains) }) {
                    v.add(key, "Invalid tag: use letters, digits, spaces and : / _ - only.")
                    continue
                }
                tags = items
            default: break  // other keys are not image fields (manifest_url, disk_id…, handled by their callers)
            }
        }
    }

    static func text(_ value: JSONValue, _ key: String, max: Int, allowBlank: Bool = false, _ v: inout DanubeValidation) -> String? {
        guard let s = ZValue.text(value) else { v.add(key, "Not a valid string."); return nil }
        if s.isEmpty && !allowBlank { v.add(key, "This field may not be blank."); return nil }
        if s.count > max { v.add(key, "Ensure this field has no more than \(max) characters."); return nil }
        if !DanubeImage.isSafe(s) { v.add(key, "Enter a valid value."); return nil }
        return s
    }

    /// Danube's lenient booleans: t/T/true/True/TRUE/1 and f/F/false/False/FALSE/0.
    static func boolean(_ value: JSONValue, _ key: String, _ v: inout DanubeValidation) -> Bool? {
        switch value {
        case .bool(let b): return b
        case .int(1): return true
        case .int(0): return false
        case .string(let s):
            if let b = lenient(s) { return b }
        default: break
        }
        v.add(key, "Must be a valid boolean.")
        return nil
    }

    static func lenient(_ s: String) -> Bool? {
        if ["t", "T", "true", "True", "TRUE", "1"].contains(s) { return true }
        if ["f", "F", "false", "False", "FALSE", "0"].contains(s) { return false }
        return nil
    }

    /// The fields as extension-document members.
    var documentFields: [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        if let alias { out.append(("alias", .string(alias))) }
        if let desc { out.append(("desc", .string(desc))) }
        if let version { out.append(("version", .string(version))) }
        if let resize { out.append(("resize", .bool(resize))) }
        if let deploy { out.append(("deploy", .bool(deploy))) }
        if let tags { out.append(("tags", .array(tags.map { .string($0) }))) }
        if let dcBound { out.append(("dc_bound", .bool(dcBound))) }
        return out
    }
}

enum DanubeText {
    static func of(_ v: JSONValue) -> String { ZValue.text(v) ?? v.serialized }
}
