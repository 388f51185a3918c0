import Foundation
import ImageCore

/// Glance's JSON for metadefs: unset fields are left out (WSME), times as `YYYY-MM-DDThh:mm:ssZ`.
enum MetadefViews {
    static func namespaceHref(_ name: String) -> String { "/v2/metadefs/namespaces/" + pathEncode(name) }

    static func namespace(_ d: MetadefService.Detail, into w: inout JSONWriter) {
        let n = d.namespace
        w.raw("{\"namespace\":"); w.string(n.namespace)
        if let v = n.displayName { w.raw(",\"display_name\":"); w.string(v) }
        if let v = n.description { w.raw(",\"description\":"); w.string(v) }
        w.raw(",\"visibility\":"); w.string(n.visibility)
        w.raw(",\"protected\":"); w.bool(n.isProtected)
        if let v = n.owner { w.raw(",\"owner\":"); w.string(v) }
        w.raw(",\"created_at\":"); w.timestamp(n.createdAt)
        w.raw(",\"updated_at\":"); w.timestamp(n.updatedAt)
        if !d.associations.isEmpty {
            w.raw(",\"resource_type_associations\":[")
            w.elements(d.associations) { w, a in association(a, into: &w) }
            w.raw("]")
        }
        if !d.properties.isEmpty {
            w.raw(",\"properties\":")
            properties(d.properties, into: &w)
        }
        if !d.objects.isEmpty {
            w.raw(",\"objects\":[")
            w.elements(d.objects) { w, o in item(o, into: &w) }
            w.raw("]")
        }
        if !d.tags.isEmpty {
            w.raw(",\"tags\":")
            tagNames(d.tags, into: &w)
        }
        w.raw(",\"self\":"); w.string(namespaceHref(n.namespace))
        w.raw(",\"schema\":\"/v2/schemas/metadefs/namespace\"}")
    }

    static func association(_ a: MetadefAssociation, into w: inout JSONWriter) {
        w.raw("{\"name\":"); w.string(a.resourceType)
        if let v = a.prefix { w.raw(",\"prefix\":"); w.string(v) }
        if let v = a.propertiesTarget { w.raw(",\"properties_target\":"); w.string(v) }
        w.raw(",\"created_at\":"); w.timestamp(a.createdAt)
        w.raw(",\"updated_at\":"); w.timestamp(a.updatedAt)
        w.raw("}")
    }

    /// `{"<name>": <property>, …}`: properties keyed by their names.
    static func properties(_ list: [MetadefItem], into w: inout JSONWriter) {
        w.raw("{")
        w.elements(list) { w, p in w.key(p.name); property(p, named: false, into: &w) }
        w.raw("}")
    }

    /// `[{"name": …}, …]`: tags by name only.
    static func tagNames(_ tags: [MetadefItem], into w: inout JSONWriter) {
        w.raw("[")
        w.elements(tags) { w, t in w.raw("{\"name\":"); w.string(t.name); w.raw("}") }
        w.raw("]")
    }

    /// A property's schema; with `named`, its name first (a property shown alone).
    static func property(_ p: MetadefItem, named: Bool, into w: inout JSONWriter) {
        var members: [(String, JSONValue)] = named ? [("name", .string(p.name))] : []
        if case .object(let doc) = p.document { members += doc }
        w.value(.object(members))
    }

    static func item(_ item: MetadefItem, into w: inout JSONWriter) {
        switch item.kind {
        case .property:
            property(item, named: true, into: &w)
        case .tag:
            w.raw("{\"name\":"); w.string(item.name)
            w.raw(",\"created_at\":"); w.timestamp(item.createdAt)
            w.raw(",\"updated_at\":"); w.timestamp(item.updatedAt)
            w.raw("}")
        case .object:
            w.raw("{\"name\":"); w.string(item.name)
            if case .object(let doc) = item.document {
                for (key, value) in doc { w.raw(","); w.key(key); w.value(value) }
            }
            w.raw(",\"created_at\":"); w.timestamp(item.createdAt)
            w.raw(",\"updated_at\":"); w.timestamp(item.updatedAt)
            w.raw(",\"self\":"); w.string(namespaceHref(item.namespace) + "/objects/" + pathEncode(item.name))
            w.raw(",\"schema\":\"/v2/schemas/metadefs/object\"}")
        }
    }

    /// Path segments as Glance writes them in `self` links (names like `OS::Compute::Hardware` stay as they are).
    static func pathEncode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? s
    }

    static func formEncode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: formAllowed)?.replacingOccurrences(of: "%20", with: "+") ?? s
    }

    static let pathAllowed: CharacterSet = {
        var c = CharacterSet.alphanumerics
        c.insert(charactersIn: "-._~:@!$&'()*+,;=")
        return c
    }()

    static let formAllowed: CharacterSet = {
        var c = CharacterSet.alphanumerics
        c.insert(charactersIn: "-._~")
        return c
    }()
}
