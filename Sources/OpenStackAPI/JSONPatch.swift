import HTTPTypes
import Foundation
import ImageCore

/// Both PATCH dialects Glance accepts, turned into `ImageChange`s:
/// v2.1 `{"op": "add", "path": "/name", "value": …}` and draft-04 `{"add": "/name", "value": …}`.
package enum JSONPatch {
    package static func changes(from body: JSONValue, draft04: Bool) throws -> [ImageChange] {
        guard case .array(let ops) = body else {
            throw GlanceError(.badRequest, "Request body must be a JSON array of operation objects.")
        }
        return try ops.map { op in
            guard case .object(let fields) = op else {
                throw GlanceError(.badRequest, "Operations must be JSON objects.")
            }
            let name: String
            let pathValue: JSONValue
            if draft04 {
                let present = ["add", "replace", "remove"].filter { key in fields.contains { $0.0 == key } }
                guard present.count == 1, let p = op[present[0]] else {
                    throw GlanceError(.badRequest, "Operation objects must contain exactly one of \"add\", \"remove\", or \"replace\".")
                }
                name = present[0]
                pathValue = p
            } else {
                guard let o = op["op"] else { throw GlanceError(.badRequest, "Unable to find 'op' in JSON Schema change") }
                guard case .string(let s) = o, ["add", "replace", "remove"].contains(s) else {
                    throw GlanceError(.badRequest, "Invalid operation: \(o.serialized). Allowed: add, remove, replace.")
                }
                guard let p = op["path"] else { throw GlanceError(.badRequest, "Unable to find 'path' in JSON Schema change") }
                name = s
                pathValue = p
            }
            guard case .string(let path) = pathValue else {
                throw GlanceError(.badRequest, "Pointer must be a string.")
            }
            let attribute = try attributeName(path)
            let value = op["value"]
            if name != "remove", value == nil {
                throw GlanceError(.badRequest, "Operation \"\(name)\" requires a member named \"value\".")
            }
            let operation: ImageChange.Operation = switch name {
            case "add": .add(strict: draft04)
            case "replace": .replace
            default: .remove
            }
            return ImageChange(operation, attribute, name == "remove" ? nil : value)
        }
    }

    /// A JSON pointer of exactly one segment, unescaped and trimmed.
    static func attributeName(_ pointer: String) throws -> String {
        guard pointer.hasPrefix("/") else { throw GlanceError(.badRequest, "Pointer `\(pointer)` does not start with \"/\".") }
        guard !pointer.contains("//") else { throw GlanceError(.badRequest, "Pointer `\(pointer)` contains adjacent \"/\".") }
        guard !pointer.hasSuffix("/") || pointer == "/" else { throw GlanceError(.badRequest, "Pointer `\(pointer)` end with \"/\".") }
        var chars = Array(pointer.dropFirst())
        var k = 0
        while k < chars.count {
            if chars[k] == "~" {
                guard k + 1 < chars.count, chars[k + 1] == "0" || chars[k + 1] == "1" else {
                    throw GlanceError(.badRequest, "Pointer `\(pointer)` contains \"~\" not part of a recognized escape sequence.")
                }
                k += 1
            }
            k += 1
        }
        let segments = pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if segments.first == "locations" || segments.first == "location" {
            throw GlanceError(.forbidden, "It's not allowed to update locations if locations are invisible.")
        }
        guard segments.count == 1 else {
            throw GlanceError(.badRequest, "Invalid JSON pointer for this resource: '\(pointer)'")
        }
        chars = Array(String(segments[0]).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~"))
        let name = String(chars).trimmingSpaces
        guard !name.isEmpty else { throw GlanceError(.badRequest, "Invalid JSON pointer for this resource: '\(pointer)'") }
        return name
    }
}
