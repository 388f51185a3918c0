/// The two flat shapes the catalog writes its tags and properties in, read straight from a column's
/// bytes: an array of strings, and an object whose values are strings. A list at a large catalog
/// decodes nearly every row it returns, and the general parser's tree (an array of members, a
/// dictionary of key positions, a `JSONValue` per value) was most of that decoding.
///
/// Only the common case is handled: a string with an escape or a control character, a BOM, a value
/// of another type, or anything malformed returns nil, and the caller parses the text with the
/// general parser, which keeps the one definition of what the documents mean.
enum FlatJSON {
    static func strings(_ b: UnsafeBufferPointer<UInt8>) -> [String]? {
        var i = 0
        skipWhitespace(b, &i)
        guard i < b.count, b[i] == UInt8(ascii: "[") else { return nil }
        i += 1
        skipWhitespace(b, &i)
        var out: [String] = []
        if i < b.count, b[i] == UInt8(ascii: "]") {
            i += 1
        } else {
            while true {
                guard let s = string(b, &i) else { return nil }
                out.append(s)
                skipWhitespace(b, &i)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: "]") { i += 1; break }
                guard b[i] == UInt8(ascii: ",") else { return nil }
                i += 1
                skipWhitespace(b, &i)
            }
        }
        skipWhitespace(b, &i)
        return i == b.count ? out : nil
    }

    /// A repeated key keeps its last value, as the general parser does.
    static func stringObject(_ b: UnsafeBufferPointer<UInt8>) -> [String: String]? {
        var i = 0
        skipWhitespace(b, &i)
        guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipWhitespace(b, &i)
        // Sized once: every member has a colon (strings may hold more), where growing from empty
        // rehashed the members at each doubling.
        var out = [String: String](minimumCapacity: b.reduce(0) { $0 + ($1 == UInt8(ascii: ":") ? 1 : 0) })
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                guard let key = string(b, &i) else { return nil }
                skipWhitespace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                skipWhitespace(b, &i)
                guard let value = string(b, &i) else { return nil }
                out[key] = value
                skipWhitespace(b, &i)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: "}") { i += 1; break }
                guard b[i] == UInt8(ascii: ",") else { return nil }
                i += 1
                skipWhitespace(b, &i)
            }
        }
        skipWhitespace(b, &i)
        return i == b.count ? out : nil
    }

    /// A string without escapes or control characters, in valid UTF-8; nil otherwise.
    private static func string(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> String? {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        var j = start
        var ascii = true
        while j < b.count {
            let c = b[j]
            if c == UInt8(ascii: "\"") {
                i = j + 1
                let text = UnsafeBufferPointer(rebasing: b[start..<j])
                // ASCII is valid UTF-8, and `decoding` copies it without a second pass.
                return ascii ? String(decoding: text, as: UTF8.self) : String(validating: text, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            ascii = ascii && c < 0x80
            j += 1
        }
        return nil
    }

    private static func skipWhitespace(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }
}
