import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData
import NIOCore
import Foundation

extension HTTPField.Name {
    static let imageSize = HTTPField.Name("x-openstack-image-size")!
    static let contentMD5 = HTTPField.Name("content-md5")!
    static let importMethods = HTTPField.Name("openstack-image-import-methods")!
    static let imageMetaStore = HTTPField.Name("x-image-meta-store")!
}

/// Image data (`/file`, `/stage`), imports, discovery and tasks (reference §6.7–6.15).
struct DataRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let data: ImageDataService
    let imports: ImageImports

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        routes.route(router, "/v2/images/{id}/file", [.put: upload, .get: download])
        routes.route(router, "/v2/images/{id}/stage", [.put: stage])
        routes.route(router, "/v2/images/{id}/import", [.post: startImport])
        routes.route(router, "/v2/images/{id}/tasks", [.get: imageTasks])
        routes.route(router, "/v2/info/import", [.get: importInfo])
        routes.route(router, "/v2/info/stores", [.get: storesInfo])
        routes.route(router, "/v2/info/usage", [.get: usageInfo])
    }

    /// Upload preconditions shared by `/file` and `/stage`: octet-stream body and a sane size header.
    static func uploadRequest(_ request: Request) throws -> Int64? {
        let mediaType = R.mediaType(request)
        guard mediaType == "application/octet-stream" else {
            throw GlanceError(.unsupportedMediaType,
                "The request media type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported by this server: image data must be application/octet-stream.")
        }
        if let s = request.headers[.imageSize] {
            guard let n = Int64(s.trimmingSpaces), n >= 0 else {
                throw GlanceError(.badRequest, "x-openstack-image-size must be a non-negative integer, not '\(s)'.")
            }
            return n
        }
        if let s = request.headers[.contentLength] {
            guard let n = Int64(s), n >= 0 else { throw GlanceError(.badRequest, "Invalid Content-Length '\(s)'.") }
            return n
        }
        return nil
    }

    /// A request `Content-MD5` (RFC 1864 base64, or the hex digest Glance itself returns). Glance
    /// ignores it; we check the data against it, so a client that states a digest gets 400 and
    /// nothing stored when the bytes were damaged on the way.
    static func expectedMD5(_ request: Request) throws -> String? {
        guard let raw = request.headers[.contentMD5]?.trimmingSpaces, !raw.isEmpty else { return nil }
        let hexDigits = raw.lowercased()
        if hexDigits.utf8.count == 32, hexDigits.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
            return hexDigits
        }
        if let bytes = Data(base64Encoded: raw).map(Array.init), bytes.count == 16 {
            return bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        throw GlanceError(.badRequest, "Content-MD5 must be the MD5 of the data, in base64 or hex: '\(raw)'.")
    }

    var upload: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let declared = try Self.uploadRequest(request)
            let md5 = try Self.expectedMD5(request)
            let pinned = try PinnedDigestHeaders.read(request.headers)
            // Glance's multi-store upload names its store in a header; a single-store Glance refuses it.
            let store = request.headers[.imageMetaStore].map { $0.trimmingSpaces }
            if store != nil, !data.stores.multiple {
                throw GlanceError(.badRequest, "Multi backend is not supported at this site: X-Image-Meta-Store is not accepted.")
            }
            _ = try await data.upload(id: try R.parameter(context, "id"), declaredSize: declared, expectedMD5: md5,
                                      pinned: pinned, store: store, body: request.body, by: p)
            return Response(status: .noContent)
        }
    }

    var stage: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let declared = try Self.uploadRequest(request)
            let pinned = try PinnedDigestHeaders.read(request.headers)
            try await data.stage(id: try R.parameter(context, "id"), declaredSize: declared, pinned: pinned, body: request.body, by: p)
            return Response(status: .noContent)
        }
    }

    var download: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            var range: ByteRangeRequest?
            let id = try R.parameter(context, "id")
            do {
                if let h = request.headers[.range] {
                    range = try ByteRangeRequest.parse(h)
                } else if let h = request.headers[.contentRange] {
                    range = try ByteRangeRequest.parseContentRange(h)
                }
            } catch {
                // The image comes first: a bad range on an image that isn't there (or isn't yours) is still 404.
                _ = try await data.prepareDownload(id: id, range: nil, by: p)
                throw error
            }
            switch try await GuardedDownload.prepare(data, id: id, range: range, by: p) {
            case .noData:
                return Response(status: .noContent)
            case .bytes(let image, let r, let total, let partial, let body):
                var headers: HTTPFields = [.contentType: "application/octet-stream"]
                if let md5 = image.checksum { headers[.contentMD5] = md5 }
                if partial { headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(total)" }
                return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
            }
        }
    }

    var startImport: Handler {
        { [imports] request, context in
            let p = try R.principal(context)
            guard let body = try await R.readJSON(request), case .object = body else {
                throw GlanceError(.badRequest, "Import request body must be a JSON object.")
            }
            guard let method = body["method"], case .object = method else {
                throw GlanceError(.badRequest, "'method' is a required property.")
            }
            guard let nameValue = method["name"] else { throw GlanceError(.badRequest, "'method.name' is a required property.") }
            guard case .string(let name) = nameValue else { throw GlanceError(.badRequest, "'method.name' must be a string.") }
            var uri: String?
            if let u = method["uri"] {
                guard case .string(let s) = u else { throw GlanceError(.badRequest, "'method.uri' must be a string.") }
                uri = s
            }
            var flags: [String: Bool] = [:]
            for key in ["all_stores", "all_stores_must_succeed"] {
                if let v = body[key] {
                    guard case .bool(let b) = v else { throw GlanceError(.badRequest, "'\(key)' must be a boolean.") }
                    flags[key] = b
                }
            }
            if flags["all_stores_must_succeed"] == false, !imports.data.stores.multiple {
                throw GlanceError(.badRequest, "all_stores_must_succeed can only be false with multiple stores.")
            }
            if let stores = body["stores"] {
                guard case .array(let items) = stores else { throw GlanceError(.badRequest, "'stores' must be a list.") }
                for item in items where item.stringValue.flatMap(imports.data.stores.store) == nil
                    || (!imports.data.stores.multiple && item.stringValue != imports.data.blobs.id) {
                    throw GlanceError(.conflict, "Unknown store '\(item.stringValue ?? item.typeName)'.")
                }
                if flags["all_stores"] == true, !items.isEmpty {
                    throw GlanceError(.badRequest, "'stores' and 'all_stores' exclude each other.")
                }
            }
            let id = try R.parameter(context, "id")
            _ = try await imports.start(id: id, method: name, uri: uri, requestBody: body,
                                        requestId: context.requestId, credential: request.headers[.authToken], by: p)
            return Response(status: .accepted)
        }
    }

    var importInfo: Handler {
        { [data] request, context in
            _ = try R.principal(context)
            try await R.requireNoBody(request)
            var w = JSONWriter(capacity: 256)
            w.raw("{\"import-methods\":{\"description\":\"Import methods available.\",\"type\":\"array\",\"value\":")
            w.strings(data.importMethods)
            w.raw("}}")
            return Views.json(w)
        }
    }

    /// The configured stores (only when the operator named them, as Glance with `enabled_backends`).
    var storesInfo: Handler {
        { [data] request, context in
            _ = try R.principal(context)
            try await R.requireNoBody(request)
            guard data.stores.multiple else { throw GlanceError(.notFound, "Multi backend is not supported at this site.") }
            var w = JSONWriter(capacity: 256)
            w.raw("{\"stores\":[")
            w.elements(data.stores.all) { w, store in
                w.raw("{\"id\":"); w.string(store.id)
                w.raw(",\"description\":"); w.string(store.description)
                if store.id == data.blobs.id { w.raw(",\"default\":true") }
                w.raw("}")
            }
            w.raw("]}")
            return Views.json(w)
        }
    }

    /// Glance's unified-limits shape; sizes in MiB (usage rounded up, so a byte used shows), -1 = no limit.
    /// A sibling key Glance clients ignore, `imaged_storage`, gives the project's stored image bytes
    /// exactly: `logical_bytes` (what `image_size_total` counts) and `physical_bytes` (what they take
    /// in the stores, less where the file store left holes; counted once per store holding them).
    var usageInfo: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            let (usage, limits) = try await data.images.usage(by: p)
            let space = try await data.storedSpace(by: p)
            let mib: Int64 = 1 << 20
            var w = JSONWriter(capacity: 256)
            w.raw("{\"usage\":{")
            for (i, r) in QuotaResource.allCases.enumerated() {
                if i > 0 { w.raw(",") }
                let used = r.isBytes ? (usage[r] + mib - 1) / mib : usage[r]
                let limit = limits[r].map { r.isBytes ? $0 / mib : $0 } ?? -1
                w.key(r.rawValue)
                w.raw("{\"limit\":"); w.int(limit)
                w.raw(",\"usage\":"); w.int(used); w.raw("}")
            }
            w.raw("},\"imaged_storage\":{\"logical_bytes\":"); w.int(usage[.imageSizeTotal])
            w.raw(",\"physical_bytes\":"); w.int(space.physical); w.raw("}}")
            return Views.json(w)
        }
    }

    // MARK: Tasks

    var imageTasks: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            try await R.requireNoBody(request)
            let tasks = try await data.images.tasks(imageId: try R.parameter(context, "id"), by: p).filter(Self.isGlanceTask)
            return Self.tasksResponse(tasks, rawDatabaseShape: true)
        }
    }

    /// `{"tasks": [...]}`: the image's tasks in Glance's raw DB shape, or the admin list of stubs with its links.
    static func tasksResponse(_ tasks: [ImageTask], stub: Bool = false, rawDatabaseShape: Bool = false) -> Response {
        var w = JSONWriter(capacity: 512 * (tasks.count + 1))
        w.raw("{\"tasks\":[")
        for (i, t) in tasks.enumerated() {
            if i > 0 { w.raw(",") }
            Views.task(t, into: &w, stub: stub, rawDatabaseShape: rawDatabaseShape)
        }
        w.raw("]")
        if stub { w.raw(",\"first\":\"/v2/tasks\",\"schema\":\"/v2/schemas/tasks\"") }
        w.raw("}")
        return Views.json(w)
    }

    /// Task rows other front-ends keep for their own jobs (ZStack's api-jobs) are not Glance tasks.
    static func isGlanceTask(_ t: ImageTask) -> Bool { t.type == ImageImports.taskType || t.type == LocationImport.taskType }
}
