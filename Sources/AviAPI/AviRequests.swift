import FrontEndSupport
import Foundation
import Hummingbird
import HummingbirdCore
import ImageCore

/// How the Avi handlers decode requests: pure functions (the fuzzer calls them too).
package enum AviRequests {
    /// `X-Avi-Version`: the data model to speak; absent means the current one.
    package static func version(_ header: String?) throws -> AviVersion {
        guard let text = header else { return .current }
        guard let v = AviVersion(parsing: text.trimmingCharacters(in: .whitespaces)), v <= .current else {
            throw AviError(.badRequest, "Invalid version \(text)")
        }
        return v
    }

    /// Unreserved characters and `,` (Avi's `fields=a,b`) stay as they are in a query; everything else is escaped.
    static let queryAllowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~,")

    /// A query key or value as it must appear in a URL (none of `& = + # %` left bare).
    static func queryEncoded(_ text: Substring) -> String {
        String(text).addingPercentEncoding(withAllowedCharacters: queryAllowed) ?? String(text)
    }

    /// `GET /api/image`: paging, the name filter and the sort.
    package struct Listing {
        package var request: ImageListRequest
        package var page: Int
        package var pageSize: Int

        var window: PageWindow { PageWindow(page: page, size: pageSize) }
        /// Rows before the page; `listing` bounds `page` so this stays below 2^31.
        package var offset: Int { window.offset ?? Int(Int32.max) }

        /// Whether rows follow the page, of `total`.
        package func hasNext(total: Int) -> Bool { window.hasNext(total: total) }
    }

    package static func listing(_ query: FlatDictionary<Substring, Substring>, defaultPageSize: Int, maxPageSize: Int) throws -> Listing {
        var pageSize = defaultPageSize
        if let s = query["page_size"].map(String.init) {
            guard let n = Int(s), n >= 1 else { throw AviError(.badRequest, "page_size must be a positive integer, got '\(s)'.") }
            pageSize = PageWindow.cappedSize(n, max: maxPageSize)
        }
        var page = 1
        if let s = query["page"].map(String.init) {
            // Bounded so offsets stay below 2^31, far past any real catalog (a huge page once trapped the process).
            let maxPage = Int(Int32.max) / maxPageSize
            guard let n = Int(s), n >= 1, n <= maxPage else {
                throw AviError(.badRequest, "page must be an integer from 1 to \(maxPage), got '\(s)'.")
            }
            page = n
        }
        var listing = ImageListRequest()
        if let name = query["name"].map(String.init) { listing.filters.append(.oneOf(.name, [name])) }
        listing.sort = try sort(query["sort"].map(String.init))
        return Listing(request: listing, page: page, pageSize: pageSize)
    }

    static func sort(_ text: String?) throws -> [ImageListQuery.Sort] {
        guard let text, !text.isEmpty else { return [.init(.name, .asc)] }
        let descending = text.hasPrefix("-")
        let field = descending ? String(text.dropFirst()) : text
        let keys: [String: ImageListQuery.SortKey] = ["name": .name, "uuid": .id, "_last_modified": .updatedAt]
        guard let key = keys[field] else { throw AviError(.badRequest, "Cannot sort by '\(field)'.") }
        return [.init(key, descending ? .desc : .asc)]
    }

    /// `POST /api/image` with a JSON Image object.
    package struct Creation {
        package var name: String
        /// Where to fetch the package from (a `url` that is not an image's own link).
        package var source: String?
        package var document: [(String, JSONValue)]
        /// The tenant to create the image in (`tenant_ref`), unresolved.
        package var tenantRef: String?
    }

    package static func creation(_ body: JSONValue, version: AviVersion) throws -> Creation {
        guard case .object(let members) = body else {
            throw AviError(.badRequest, "An Image object is expected.")
        }
        var name: String?
        var source: String?
        var document: [(String, JSONValue)] = []
        var identity = AviIdentity()
        for (key, value) in members {
            if key == "name" {
                guard case .string(let s) = value, !s.isEmpty else { throw AviError(.badRequest, "Field 'name' must be a non-empty string.") }
                name = s
            } else if key == "url", case .string(let s) = value, s.contains("://"), !s.contains("/api/image/") {
                // A URL that is not an image's own link (which the schema's read-only `url` would be):
                // where to fetch the package from.
                source = s
            } else if try !identity.take(key, value) {
                document.append((key, try AviImage.validate(key, value, version: version)))
            }
        }
        guard let name else { throw AviError(.badRequest, "Field 'name' is required.") }
        // `uuid` and `_last_modified` of a new object are the server's (`Slug` chooses the uuid).
        return Creation(name: name, source: source, document: document, tenantRef: identity.tenantRef)
    }

    /// `PUT /api/image/<uuid>`: the whole object.
    package struct Replacement {
        package var name: String
        package var lastModified: String?
        package var document: [(String, JSONValue)]
        /// Checked against the image, not stored: a `uuid` naming another image and a `tenant_ref`
        /// naming another tenant are refused.
        package var identity = AviIdentity()
    }

    package static func replacement(_ body: JSONValue, version: AviVersion) throws -> Replacement {
        guard case .object(let members) = body else {
            throw AviError(.badRequest, "An Image object is expected.")
        }
        var name: String?
        var document: [(String, JSONValue)] = []
        var identity = AviIdentity()
        for (key, value) in members {
            if key == "name" {
                guard case .string(let s) = value, !s.isEmpty else { throw AviError(.badRequest, "Field 'name' must be a non-empty string.") }
                name = s
            } else if try !identity.take(key, value) {
                document.append((key, try AviImage.validate(key, value, version: version)))
            }
        }
        guard let name else { throw AviError(.badRequest, "Field 'name' is required.") }
        return Replacement(name: name, lastModified: identity.lastModified, document: document, identity: identity)
    }

    /// `PATCH /api/image/<uuid>`: RFC 6902 operations, or Avi's add/replace/delete of fields.
    package enum Patch {
        case jsonPatch(JSONValue)
        case fields(AviPatch.Operation, name: String?, [(String, JSONValue)])
    }

    package static func patch(_ body: JSONValue, version: AviVersion) throws -> Patch {
        if case .object(let members) = body, members.count == 1, members[0].0 == "json_patch" {
            return .jsonPatch(members[0].1)
        }
        let (op, fields) = try AviPatch.parse(body)
        var name: String?
        var checked: [(String, JSONValue)] = []
        for (key, value) in fields {
            if key == "name" {
                guard op != .delete else { throw AviError(.badRequest, "Field 'name' is required and cannot be deleted.") }
                guard case .string(let s) = value, !s.isEmpty else { throw AviError(.badRequest, "Field 'name' must be a non-empty string.") }
                name = s
            } else if AviIdentity.keys.contains(key) {
                // What a client sends back of a read object: checked by `patchIdentity`, never stored.
                guard op != .delete else { throw AviError(.badRequest, "Field '\(key)' is read-only.") }
            } else if op == .delete {
                guard AviImage.fields[key] != nil else { throw AviError(.badRequest, "Unknown field '\(key)' in Image.") }
                checked.append((key, value))
            } else {
                checked.append((key, try AviImage.validate(key, value, version: version)))
            }
        }
        return .fields(op, name: name, checked)
    }

    /// The identity fields of an Avi PATCH body (`uuid`, `_last_modified`, `tenant_ref`; `url` ignored),
    /// checked against the image like a PUT's. None for `json_patch`, `delete` and an empty body.
    package static func patchIdentity(_ body: JSONValue) throws -> AviIdentity {
        var identity = AviIdentity()
        guard case .object(let members) = body, !(members.count == 1 && members[0].0 == "json_patch") else { return identity }
        let (op, fields) = try AviPatch.parse(body)
        guard op != .delete else { return identity }
        for (key, value) in fields { _ = try identity.take(key, value) }
        return identity
    }

    /// RFC 6902 ops on `{name, …avi fields}`; the result is validated like a PUT body.
    package static func patched(_ doc: JSONValue, _ ops: JSONValue, version: AviVersion) throws -> (name: String, fields: [(String, JSONValue)]) {
        guard case .object(let members) = try AviJSONPatch.apply(ops, to: doc) else { throw AviError(.badRequest, "json_patch must leave an object.") }
        var name: String?
        var fields: [(String, JSONValue)] = []
        for (key, value) in members {
            if key == "name" {
                guard case .string(let s) = value, !s.isEmpty else { throw AviError(.badRequest, "Field 'name' must be a non-empty string.") }
                name = s
            } else if AviImage.ignoredOnInput.contains(key) {
                throw AviError(.badRequest, "Field '\(key)' is read-only.")
            } else {
                fields.append((key, try AviImage.validate(key, value, version: version)))
            }
        }
        guard let name else { throw AviError(.badRequest, "Field 'name' is required and cannot be removed.") }
        return (name, fields)
    }
}

extension AviRequests {
    /// `POST /login`: a JSON object or `application/x-www-form-urlencoded` fields.
    package static func loginFields(_ body: [UInt8], contentType: String?) throws -> [String: String] {
        var fields: [String: String] = [:]
        if contentType?.lowercased().hasPrefix("application/json") == true {
            guard case .object(let members) = try JSONValue.parse(body) else {
                throw AviError(.badRequest, "Login expects username and password.")
            }
            for (k, v) in members { if let s = v.stringValue { fields[k] = s } }
        } else {
            fields = formFields(String(decoding: body, as: UTF8.self))
        }
        return fields
    }

    /// `application/x-www-form-urlencoded`.
    static func formFields(_ text: String) -> [String: String] {
        Dictionary(RequestReading.formPairs(text), uniquingKeysWith: { _, last in last })
    }
}
