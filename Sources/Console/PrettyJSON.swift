import ImageCore

/// JSON text indented for reading (the API views on an image's page); text that is not JSON is shown as it is.
enum PrettyJSON {
    static func format(_ text: String) -> String {
        guard let value = try? JSONValue.parse(text) else { return text }
        var out = ""
        write(value, indent: "", into: &out)
        return out
    }

    static func write(_ v: JSONValue, indent: String, into out: inout String) {
        let inner = indent + "  "
        switch v {
        case .array(let items) where !items.isEmpty:
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += inner
                write(item, indent: inner, into: &out)
                out += i + 1 < items.count ? ",\n" : "\n"
            }
            out += indent + "]"
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            for (i, (key, value)) in members.enumerated() {
                out += inner + JSONValue.string(key).serialized + ": "
                write(value, indent: inner, into: &out)
                out += i + 1 < members.count ? ",\n" : "\n"
            }
            out += indent + "}"
        default:
            out += v.serialized
        }
    }
}
