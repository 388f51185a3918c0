import Foundation
import Identity
import ImageCore

/// An Avi object reference (`tenant_ref`, `controller_patch_ref`, `se_patch_ref`) as clients write
/// them: a URL (`https://host/api/image/<uuid>`, `#name` allowed), the path alone (`/api/image/<uuid>`),
/// or by name (`/api/image?name=<name>`, `/api/image/?name=<name>`).
package enum AviRef: Equatable, Sendable {
    case uuid(String)
    case name(String)

    package static func parse(_ text: String, type: String) -> AviRef? {
        var s = Substring(text)
        if let hash = s.firstIndex(of: "#") { s = s[..<hash] }
        if let scheme = s.range(of: "://") {
            let rest = s[scheme.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            s = rest[slash...]
        }
        let prefix = "/api/\(type)"
        guard s.hasPrefix(prefix) else { return nil }
        var rest = s.dropFirst(prefix.count)
        if rest.hasPrefix("/?") { rest = rest.dropFirst() }
        if rest.hasPrefix("?") {
            guard let items = URLComponents(string: "http://h/?" + rest.dropFirst())?.queryItems, items.count == 1,
                  items[0].name == "name", let name = items[0].value, !name.isEmpty else { return nil }
            return .name(name)
        }
        guard rest.hasPrefix("/") else { return nil }
        rest = rest.dropFirst()
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("?"),
              let uuid = String(rest).removingPercentEncoding, !uuid.isEmpty else { return nil }
        return .uuid(uuid)
    }
}

/// `tenant_ref`, `uuid`, `_last_modified` as a client sends them back in an Image body: `url` is
/// ignored, the others are checked against the image rather than stored.
package struct AviIdentity: Sendable {
    package var uuid: String?
    package var lastModified: String?
    package var tenantRef: String?

    static let keys: Set<String> = ["uuid", "url", "_last_modified", "tenant_ref"]

    /// Takes an identity field; false for other keys.
    mutating func take(_ key: String, _ value: JSONValue) throws -> Bool {
        switch key {
        case "url": return true
        case "uuid":
            guard case .string(let s) = value else { throw AviError(.badRequest, "Field 'uuid' must be a string.") }
            uuid = s
        case "_last_modified":
            // Not skipped when mistyped: a number here would silently drop the lost-update check.
            guard case .string(let s) = value else { throw AviError(.badRequest, "Field '_last_modified' must be a string.") }
            lastModified = s
        case "tenant_ref":
            guard case .string(let s) = value else { throw AviError(.badRequest, "Field 'tenant_ref' must be a string.") }
            guard AviRef.parse(s, type: "tenant") != nil else {
                throw AviError(.badRequest, "Field 'tenant_ref' must reference a tenant (…/api/tenant/<uuid> or /api/tenant?name=<name>), got '\(s)'.")
            }
            tenantRef = s
        default: return false
        }
        return true
    }
}

extension AviImageAPI {
    /// The project a `tenant_ref` names, when the caller may act in it: its own tenant (the one the
    /// request acts in); an admin any tenant. Tenants are projects, uuid and name alike.
    func tenant(_ ref: String, _ caller: Principal) throws -> String {
        let project = try Self.tenantProject(ref)
        guard project == caller.projectId || (caller.isAdmin && (try? LocalAccounts.validName(project, "tenant")) != nil) else {
            throw AviError(.forbidden, "Tenant '\(project)' does not exist!")
        }
        return project
    }

    /// The project a `tenant_ref` names (uuid and name are the same for a project).
    static func tenantProject(_ ref: String) throws -> String {
        switch AviRef.parse(ref, type: "tenant") {
        case .uuid(let u)?: return u
        case .name(let n)?: return n
        case nil: throw AviError(.badRequest, "Field 'tenant_ref' must reference a tenant (…/api/tenant/<uuid> or /api/tenant?name=<name>), got '\(ref)'.")
        }
    }

    /// An image reference resolved to the image it names (one the caller can see), in its stored
    /// form; a reference to no image is refused.
    func resolveImageRef(_ key: String, _ ref: String, _ caller: Principal) async throws -> String {
        guard let parsed = AviRef.parse(ref, type: "image") else {
            throw AviError(.badRequest, "Field '\(key)' must reference an image (…/api/image/<uuid> or /api/image?name=<name>), got '\(ref)'.")
        }
        switch parsed {
        case .uuid(let uuid):
            guard let id = AviImage.coreId(uuid), let image = try await service.visibleImageIfAny(id: id, by: caller) else {
                throw AviError(.badRequest, "Field '\(key)' references an Image that does not exist: '\(uuid)'.")
            }
            return AviImage.storedRef(image.id)
        case .name(let name):
            var listing = ImageListRequest()
            listing.filters = [.oneOf(.name, [name])]
            listing.limit = 20
            let found = try await service.listImages(listing, by: caller)
            let own = found.filter { $0.owner == caller.projectId }
            let candidates = own.isEmpty ? found : own
            guard candidates.count == 1 else {
                throw AviError(.badRequest, candidates.isEmpty ? "Field '\(key)' references an Image that does not exist: name '\(name)'."
                                                               : "Field '\(key)' references more than one Image named '\(name)'; use its uuid.")
            }
            return AviImage.storedRef(candidates[0].id)
        }
    }

    /// The document with every image reference resolved (a dangling one refused).
    func resolvingRefs(_ document: [(String, JSONValue)], _ caller: Principal) async throws -> [(String, JSONValue)] {
        var out = document
        for i in out.indices where AviImage.imageRefFields.contains(out[i].0) {
            if case .string(let ref) = out[i].1 { out[i].1 = .string(try await resolveImageRef(out[i].0, ref, caller)) }
        }
        return out
    }

    /// `json_patch` operations with the values they write into reference fields resolved.
    func resolvingRefs(ops: JSONValue, _ caller: Principal) async throws -> JSONValue {
        guard case .array(let items) = ops else { return ops }
        var out: [JSONValue] = []
        for item in items {
            guard case .object(var members) = item, case .string(let op)? = item["op"], op == "add" || op == "replace",
                  case .string(let path)? = item["path"], let key = AviImage.imageRefFields.first(where: { "/" + $0 == path }),
                  let at = members.firstIndex(where: { $0.0 == "value" }), case .string(let ref) = members[at].1 else {
                out.append(item); continue
            }
            members[at].1 = .string(try await resolveImageRef(key, ref, caller))
            out.append(.object(members))
        }
        return .array(out)
    }

    /// Names of the images a document references, for the `#name` of refs.
    func refNames(_ image: Image, _ caller: Principal) async -> [String: String] {
        guard case .object(let doc)? = image.extensions[AviImage.vendor] else { return [:] }
        var names: [String: String] = [:]
        for (key, value) in doc where AviImage.imageRefFields.contains(key) {
            if case .string(let stored) = value, let id = AviImage.storedRefId(stored),
               let target = try? await service.visibleImageIfAny(id: id, by: caller) {
                names[id] = target.name ?? ""
            }
        }
        return names
    }
}
