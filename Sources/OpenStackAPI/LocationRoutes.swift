import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// The locations API (v2.17) and the store endpoints: `POST/GET /v2/images/{id}/locations`,
/// `GET /v2/info/stores/detail` (v2.15) and `DELETE /v2/stores/{store}/{image}` (v2.10).
struct LocationRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let imports: ImageImports

    var data: ImageDataService { imports.data }

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        routes.route(router, "/v2/images/{id}/locations", [.post: addLocation, .get: locations])
        routes.route(router, "/v2/info/stores/detail", [.get: storesDetail])
        routes.route(router, "/v2/stores/{store}/{id}", [.delete: deleteFromStore])
    }

    /// 202 with no body; the `location_import` task (`GET /v2/images/{id}/tasks`) tells the outcome.
    var addLocation: Handler {
        { [imports] request, context in
            let p = try R.principal(context)
            guard let body = try await R.readJSON(request), case .object(let members) = body else {
                throw GlanceError(.badRequest, "Add location request body must be a JSON object.")
            }
            for (key, _) in members where key != "url" && key != "validation_data" {
                throw GlanceError(.badRequest, "Additional properties are not allowed ('\(key)' was unexpected).")
            }
            guard let urlValue = body["url"] else { throw GlanceError(.badRequest, "'url' is a required property.") }
            guard case .string(let url) = urlValue, !url.isEmpty else { throw GlanceError(.badRequest, "'url' must be a non-empty string.") }
            try await imports.addLocation(id: try R.parameter(context, "id"), url: url, validationData: body["validation_data"],
                                          requestId: context.requestId, by: p)
            return Response(status: .accepted)
        }
    }

    /// A bare JSON list `[{"url", "metadata"}]`, as Glance answers it.
    var locations: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            let list = try await data.images.imageLocations(id: try R.parameter(context, "id"), by: p)
            var w = JSONWriter(capacity: 128 * (list.count + 1))
            Views.locations(list, into: &w)
            return Views.json(w)
        }
    }

    /// The stores with their driver type, settings and weight (admin or service role).
    var storesDetail: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            guard data.stores.multiple else { throw GlanceError(.notFound, "Multi backend is not supported at this site.") }
            try data.images.requireStoresDetail(by: p)
            var w = JSONWriter(capacity: 512)
            w.raw("{\"stores\":[")
            w.elements(data.stores.all) { w, store in
                w.raw("{\"id\":"); w.string(store.id)
                w.raw(",\"description\":"); w.string(store.description)
                if store.id == data.blobs.id { w.raw(",\"default\":true") }
                let details = store as? any BlobStoreDetails
                w.raw(",\"type\":"); w.string(details?.storeType ?? "unknown")
                w.raw(",\"properties\":"); w.value(.object(details?.storeProperties ?? []))
                w.raw(",\"weight\":0}")
            }
            w.raw("]}")
            return Views.json(w)
        }
    }

    var deleteFromStore: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            try await data.deleteFromStore(id: try R.parameter(context, "id"), store: try R.parameter(context, "store"), by: p)
            return Response(status: .noContent)
        }
    }
}

extension Views {
    static func locations(_ list: [ImageLocation], into w: inout JSONWriter) {
        w.raw("[")
        w.elements(list) { w, l in
            w.raw("{\"url\":"); w.string(l.url)
            w.raw(",\"metadata\":"); w.value(l.metadata)
            w.raw("}")
        }
        w.raw("]")
    }
}

/// `direct_url` and `locations` in image views, as Glance's `show_image_direct_url` and
/// `show_multiple_locations` define them: the external locations, else one per store holding the
/// data (with `{"store": id}` when stores are named); only for callers `get_image_location` allows.
struct LocationDisplay: Sendable {
    let showDirectURL: Bool
    let showLocations: Bool
    let stores: BlobStores

    init(options: OpenStackAPIOptions, stores: BlobStores) {
        showDirectURL = options.showImageDirectURL
        showLocations = options.showMultipleLocations
        self.stores = stores
    }

    /// What one caller sees; nil when both options are off.
    func viewer(_ p: Principal) -> Viewer? {
        showDirectURL || showLocations ? Viewer(display: self, principal: p) : nil
    }

    func locations(of image: Image) -> [ImageLocation] {
        let external = image.locations
        if !external.isEmpty || !(image.status == .active || image.status == .deactivated) { return external }
        return stores.holding(image).compactMap { store in
            guard let url = (store as? any BlobStoreDetails)?.locationURL(key: BlobKey.image(image.id)) else { return nil }
            return ImageLocation(url: url, metadata: stores.multiple ? .object([("store", .string(store.id))]) : .object([]))
        }
    }

    struct Viewer: Sendable {
        let display: LocationDisplay
        let principal: Principal

        func write(_ image: Image, into w: inout JSONWriter) {
            // Glance's view shows [] (and no direct_url) to a caller the location policy refuses.
            let allowed = Policy.allows(.getImageLocation, principal, PolicyTarget(image))
            let list = allowed ? display.locations(of: image) : []
            if display.showDirectURL, let first = list.first { w.raw(",\"direct_url\":"); w.string(first.url) }
            if display.showLocations { w.raw(",\"locations\":"); Views.locations(list, into: &w) }
        }
    }
}
