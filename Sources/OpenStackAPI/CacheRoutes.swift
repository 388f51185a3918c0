import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

extension HTTPField.Name {
    static let cacheClearTarget = HTTPField.Name("x-image-cache-clear-target")!
}

/// The cache API (Glance v2.14, clean and prune v2.18): this node's image cache and its
/// pre-caching queue. The rules (admin by default, 404 without a cache) live in `ImageDataService`.
struct CacheRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let data: ImageDataService

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        routes.route(router, "/v2/cache", [.get: state, .delete: clear])
        routes.route(router, "/v2/cache/clean", [.post: clean])
        routes.route(router, "/v2/cache/prune", [.post: prune])
        routes.route(router, "/v2/cache/{id}", [.put: queue, .delete: remove])
        routes.route(router, "/v2/cache/nodes/{id}", [.get: nodes])
    }

    /// `{"cached_images": [{image_id, hits, last_accessed, last_modified, size, checksum}], "queued_images": [ids]}`.
    var state: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            let state = try await data.cacheState(by: p)
            var w = JSONWriter(capacity: 256 + 192 * state.cached.count + 40 * state.queued.count)
            w.raw("{\"cached_images\":[")
            w.elements(state.cached) { w, e in
                w.raw("{\"image_id\":"); w.string(e.imageId)
                w.raw(",\"hits\":"); w.int(Int64(e.hits))
                w.raw(",\"last_accessed\":"); w.value(.double(e.lastAccessed))
                w.raw(",\"last_modified\":"); w.value(.double(e.lastModified))
                w.raw(",\"size\":"); w.int(e.size)
                w.raw(",\"checksum\":"); w.string(e.checksum)
                w.raw("}")
            }
            w.raw("],\"queued_images\":")
            w.strings(state.queued)
            w.raw("}")
            return Views.json(w)
        }
    }

    var clear: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let target = try CacheClearTarget(header: request.headers[.cacheClearTarget])
            _ = try await data.clearCache(target, by: p)
            return Response(status: .noContent)
        }
    }

    var queue: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await data.queueForCache(id: try R.parameter(context, "id"), by: p)
            return Response(status: .accepted)
        }
    }

    var remove: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await data.removeFromCache(id: try R.parameter(context, "id"), by: p)
            return Response(status: .noContent)
        }
    }

    var nodes: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            let urls = try await data.cachedNodes(id: try R.parameter(context, "id"), by: p)
            var w = JSONWriter(capacity: 64)
            w.strings(urls)
            return Views.json(w)
        }
    }

    var clean: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await data.cleanCache(by: p)
            return Response(status: .ok)
        }
    }

    var prune: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let (files, bytes) = try await data.pruneCache(by: p)
            var w = JSONWriter(capacity: 64)
            w.raw("{\"total_files_pruned\":"); w.int(Int64(files))
            w.raw(",\"total_bytes_pruned\":"); w.int(bytes)
            w.raw("}")
            return Views.json(w)
        }
    }
}
