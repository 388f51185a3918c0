import ImageCore

/// How `/v2` handlers decode their request bodies: pure functions (the fuzzer calls them too).
package enum OpenStackRequests {
    /// A JSON body: an object or an array; nil when the body is empty.
    package static func json(_ bytes: some Collection<UInt8>) throws -> JSONValue? {
        guard !bytes.isEmpty else { return nil }
        let value = try JSONValue.parse(bytes)
        switch value {
        case .object, .array: return value
        default: throw GlanceError(.badRequest, "Malformed JSON in request body: expected an object or an array.")
        }
    }

    /// `POST /v2/images`: the attributes, in the order sent; the service validates them.
    package static func createAttributes(_ body: JSONValue?) throws -> [(String, JSONValue)] {
        guard let body else { throw GlanceError(.badRequest, "Body expected in request.") }
        guard case .object(let members) = body else { throw GlanceError(.badRequest, "Image body must be a JSON object.") }
        for (key, _) in members where ["direct_url", "self", "file", "schema", "stores"].contains(key) {
            throw GlanceError(.forbidden, "Attribute '\(key)' is read-only.")
        }
        return members
    }

    /// The one string member of a members call (`member`, `status`).
    package static func stringField(_ body: JSONValue?, _ key: String) throws -> String {
        guard case .object = body else { throw GlanceError(.badRequest, "Body must be a JSON object with '\(key)'.") }
        guard let value = body?[key] else { throw GlanceError(.badRequest, "'\(key)' is a required property.") }
        guard case .string(let s) = value else { throw GlanceError(.badRequest, "'\(key)' must be a string, not \(value.typeName).") }
        return s
    }
}
