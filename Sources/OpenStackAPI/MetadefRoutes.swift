import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore

extension HTTPField.Name {
    static let openstackAppend = HTTPField.Name("x-openstack-append")!
}

/// Metadata definitions (`/v2/metadefs/…`) and their schemas, in Glance's shapes and codes; every
/// rule is `MetadefService`'s.
struct MetadefRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let metadefs: MetadefService

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        let ns = "/v2/metadefs/namespaces/{ns}"
        routes.route(router, "/v2/metadefs/namespaces", [.get: listNamespaces, .post: createNamespace])
        routes.route(router, RouterPath(ns), [.get: showNamespace, .put: updateNamespace, .delete: deleteNamespace])
        for kind in MetadefKind.allCases {
            let plural = Self.plural(kind)
            var collection: [HTTPRequest.Method: Handler] = [.get: listItems(kind), .delete: deleteItems(kind)]
            collection[.post] = kind == .tag ? createTags : createItem(kind)
            routes.route(router, RouterPath("\(ns)/\(plural)"), collection)
            var one: [HTTPRequest.Method: Handler] = [.get: showItem(kind), .put: updateItem(kind), .delete: deleteItem(kind)]
            if kind == .tag { one[.post] = createTag }
            routes.route(router, RouterPath("\(ns)/\(plural)/{name}"), one)
        }
        routes.route(router, RouterPath("\(ns)/resource_types"), [.get: listAssociations, .post: associate])
        routes.route(router, RouterPath("\(ns)/resource_types/{rt}"), [.delete: deassociate])
        routes.route(router, "/v2/metadefs/resource_types", [.get: listResourceTypes])
        for (name, body) in MetadefSchemas.documents {
            routes.route(router, RouterPath("/v2/schemas/metadefs/\(name)"), [.get: { request, _ in
                try await R.requireNoBody(request)
                return Views.json(body)
            }])
        }
    }

    static func plural(_ kind: MetadefKind) -> String {
        switch kind {
        case .object: "objects"
        case .property: "properties"
        case .tag: "tags"
        }
    }

    /// The caller and the (percent-decoded) namespace of the path.
    static func call(_ context: Context) throws -> (Principal, String) {
        (try R.principal(context), try R.parameter(context, "ns"))
    }

    static func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map { RequestReading.percentDecoded($0) }
    }

    // MARK: Namespaces

    var listNamespaces: Handler {
        { [metadefs] request, context in
            let p = try R.principal(context)
            var q = MetadefService.ListQuery()
            if let limit = Self.query(request, "limit") {
                guard let n = Int(limit) else { throw GlanceError(.badRequest, "limit param must be an integer") }
                guard n >= 0 else { throw GlanceError(.badRequest, "limit param must be positive") }
                q.limit = n
            }
            q.marker = Self.query(request, "marker")
            q.sortKey = Self.query(request, "sort_key") ?? "created_at"
            let dir = Self.query(request, "sort_dir") ?? "desc"
            guard dir == "asc" || dir == "desc" else { throw GlanceError(.badRequest, "Invalid sort direction: \(dir)") }
            q.ascending = dir == "asc"
            q.visibility = Self.query(request, "visibility").flatMap { $0.isEmpty ? nil : $0 }
            q.resourceTypes = (Self.query(request, "resource_types") ?? "").split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
            let (page, next) = try await metadefs.listNamespaces(q, by: p)
            // Glance's links repeat the query (the marker replaced).
            let kept = RequestReading.formPairs(request.uri.query).filter { $0.0 != "marker" }
            func link(_ pairs: [(String, String)]) -> String {
                pairs.isEmpty ? "/v2/metadefs/namespaces"
                    : "/v2/metadefs/namespaces?" + pairs.map { "\(MetadefViews.formEncode($0.0))=\(MetadefViews.formEncode($0.1))" }.joined(separator: "&")
            }
            var w = JSONWriter(capacity: 4096)
            w.raw("{\"namespaces\":[")
            w.elements(page) { w, d in MetadefViews.namespace(d, into: &w) }
            w.raw("],\"first\":"); w.string(link(kept))
            w.raw(",\"schema\":\"/v2/schemas/metadefs/namespaces\"")
            if let next { w.raw(",\"next\":"); w.string(link(kept + [("marker", next)])) }
            w.raw("}")
            return Views.json(w)
        }
    }

    var createNamespace: Handler {
        { [metadefs] request, context in
            let d = try await metadefs.createNamespace(try await R.readJSON(request), by: try R.principal(context))
            var w = JSONWriter(capacity: 2048)
            MetadefViews.namespace(d, into: &w)
            return Views.json(w, status: .created, headers: [.location: MetadefViews.namespaceHref(d.namespace.namespace)])
        }
    }

    var showNamespace: Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let d = try await metadefs.namespace(name, resourceType: Self.query(request, "resource_type"), by: p)
            var w = JSONWriter(capacity: 4096)
            MetadefViews.namespace(d, into: &w)
            return Views.json(w)
        }
    }

    var updateNamespace: Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let ns = try await metadefs.updateNamespace(name, try await R.readJSON(request), by: p)
            var w = JSONWriter(capacity: 1024)
            MetadefViews.namespace(.init(namespace: ns, associations: [], objects: [], properties: [], tags: []), into: &w)
            return Views.json(w)
        }
    }

    var deleteNamespace: Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            try await metadefs.deleteNamespace(name, by: p)
            return R.noContent
        }
    }

    // MARK: Objects, properties, tags

    func listItems(_ kind: MetadefKind) -> Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            let items = try await metadefs.items(kind, namespace: name, by: p)
            var w = JSONWriter(capacity: 2048)
            switch kind {
            case .property:
                w.raw("{\"properties\":")
                MetadefViews.properties(items, into: &w)
                w.raw("}")
            case .object, .tag:
                w.raw(kind == .object ? "{\"objects\":[" : "{\"tags\":[")
                w.elements(items) { w, item in MetadefViews.item(item, into: &w) }
                w.raw(kind == .object ? "],\"schema\":\"v2/schemas/metadefs/objects\"}" : "]}")
            }
            return Views.json(w)
        }
    }

    static func itemResponse(_ item: MetadefItem, status: HTTPResponse.Status = .ok) -> Response {
        var w = JSONWriter(capacity: 1024)
        MetadefViews.item(item, into: &w)
        return Views.json(w, status: status)
    }

    func createItem(_ kind: MetadefKind) -> Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let item = try await metadefs.createItem(kind, namespace: name, body: try await R.readJSON(request), by: p)
            return Self.itemResponse(item, status: .created)
        }
    }

    var createTag: Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            let tag = try await metadefs.createTag(namespace: name, name: try R.parameter(context, "name"), by: p)
            return Self.itemResponse(tag, status: .created)
        }
    }

    var createTags: Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let append = ["true", "1", "yes", "y", "on", "t"].contains((request.headers[.openstackAppend] ?? "").trimmingSpaces.lowercased())
            let tags = try await metadefs.createTags(namespace: name, body: try await R.readJSON(request), append: append, by: p)
            var w = JSONWriter(capacity: 512)
            w.raw("{\"tags\":")
            MetadefViews.tagNames(tags, into: &w)
            w.raw("}")
            return Views.json(w, status: .created)
        }
    }

    func showItem(_ kind: MetadefKind) -> Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let item = try await metadefs.item(kind, namespace: name, name: try R.parameter(context, "name"),
                                               resourceType: Self.query(request, "resource_type"), by: p)
            return Self.itemResponse(item)
        }
    }

    func updateItem(_ kind: MetadefKind) -> Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let item = try await metadefs.updateItem(kind, namespace: name, name: try R.parameter(context, "name"),
                                                     body: try await R.readJSON(request), by: p)
            return Self.itemResponse(item)
        }
    }

    func deleteItem(_ kind: MetadefKind) -> Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            try await metadefs.deleteItem(kind, namespace: name, name: try R.parameter(context, "name"), by: p)
            return R.noContent
        }
    }

    func deleteItems(_ kind: MetadefKind) -> Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            try await metadefs.deleteItems(kind, namespace: name, by: p)
            return R.noContent
        }
    }

    // MARK: Resource types

    var listResourceTypes: Handler {
        { [metadefs] _, context in
            let types = try await metadefs.resourceTypes(by: try R.principal(context))
            var w = JSONWriter(capacity: 1024)
            w.raw("{\"resource_types\":[")
            w.elements(types) { w, t in
                w.raw("{\"name\":"); w.string(t.name)
                w.raw(",\"created_at\":"); w.timestamp(t.createdAt)
                w.raw(",\"updated_at\":"); w.timestamp(t.updatedAt)
                w.raw("}")
            }
            w.raw("]}")
            return Views.json(w)
        }
    }

    var listAssociations: Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            let list = try await metadefs.associations(namespace: name, by: p)
            var w = JSONWriter(capacity: 1024)
            w.raw("{\"resource_type_associations\":[")
            w.elements(list) { w, a in MetadefViews.association(a, into: &w) }
            w.raw("]}")
            return Views.json(w)
        }
    }

    var associate: Handler {
        { [metadefs] request, context in
            let (p, name) = try Self.call(context)
            let a = try await metadefs.associate(namespace: name, body: try await R.readJSON(request), by: p)
            var w = JSONWriter(capacity: 256)
            MetadefViews.association(a, into: &w)
            return Views.json(w, status: .created)
        }
    }

    var deassociate: Handler {
        { [metadefs] _, context in
            let (p, name) = try Self.call(context)
            try await metadefs.deassociate(namespace: name, resourceType: try R.parameter(context, "rt"), by: p)
            return R.noContent
        }
    }
}
