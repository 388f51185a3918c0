import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData
import NIOCore

extension HTTPField.Name {
    static let tusResumable = HTTPField.Name("tus-resumable")!
    static let tusVersion = HTTPField.Name("tus-version")!
    static let tusExtension = HTTPField.Name("tus-extension")!
    static let tusMaxSize = HTTPField.Name("tus-max-size")!
    static let uploadOffset = HTTPField.Name("upload-offset")!
    static let uploadLength = HTTPField.Name("upload-length")!
    static let uploadMetadata = HTTPField.Name("upload-metadata")!
    static let uploadExpires = HTTPField.Name("upload-expires")!
}

/// Resumable uploads: the tus 1.0.0 core protocol with its creation, termination and expiration
/// extensions, on `/v2/images/{id}/uploads`. The data path and the rules are `ImageDataService`'s
/// and `UploadSession`'s; this file only speaks the protocol and Glance's error format.
struct UploadSessionRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let data: ImageDataService
    let settings: ResumableUploadConfig

    static var tusVersion: String { "1.0.0" }
    static var extensions: String { "creation,termination,expiration" }
    static var offsetMediaType: String { "application/offset+octet-stream" }

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        routes.route(router, "/v2/images/{id}/uploads", [.post: create, .get: list, .options: options])
        let one: RouterPath = "/v2/images/{id}/uploads/{upload}"
        router.on(one, method: .head, use: head)
        routes.route(router, one, [.patch: patch, .delete: terminate, .options: options])
    }

    /// The image id of the path: one that cannot be an image id is 404 before anything else is looked at.
    static func imageId(_ context: Context) throws -> String {
        let id = try R.parameter(context, "id")
        guard ImageID.isValid(id) else { throw GlanceError(.notFound, "No image found with ID \(id)") }
        return id
    }

    var options: Handler {
        { [data] _, context in
            _ = try R.principal(context)
            _ = try Self.imageId(context)
            return Response(status: .noContent, headers: [
                .tusResumable: Self.tusVersion, .tusVersion: Self.tusVersion, .tusExtension: Self.extensions,
                .tusMaxSize: String(data.config.imageSizeCap),
            ])
        }
    }

    /// A request that names another protocol version gets 412 with the one we speak (tus §Tus-Resumable).
    static func checkVersion(_ request: Request) throws {
        if let v = request.headers[.tusResumable]?.trimmingSpaces, v != tusVersion {
            throw GlanceError(.preconditionFailed, "Tus-Resumable \(v) is not supported: this server speaks \(tusVersion).",
                              headers: [.tusVersion: tusVersion, .tusResumable: tusVersion])
        }
    }

    static func integer(_ request: Request, _ name: HTTPField.Name) throws -> Int64? {
        guard let raw = request.headers[name] else { return nil }
        guard let n = Int64(raw.trimmingSpaces), n >= 0 else {
            throw GlanceError(.badRequest, "\(name.canonicalName) must be a non-negative integer, not '\(raw)'.")
        }
        return n
    }

    /// `Upload-Metadata`: comma-separated `key base64value` pairs; we read `target` (file or stage).
    static func target(_ request: Request) throws -> UploadSession.Target {
        guard let raw = request.headers[.uploadMetadata] else { return .file }
        for pair in raw.split(separator: ",") {
            let parts = pair.trimmingSpaces.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.first == "target" else { continue }
            guard parts.count == 2, let bytes = Data(base64Encoded: parts[1]),
                  let target = UploadSession.Target(rawValue: String(decoding: bytes, as: UTF8.self)) else {
                throw GlanceError(.badRequest, "Upload-Metadata target must be the base64 of 'file' or 'stage'.")
            }
            return target
        }
        return .file
    }

    /// RFC 9110's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    static func httpDate(_ seconds: Int64) -> String {
        let c = Timestamp.components(seconds)
        let days = Int((seconds - (seconds % 86400 + 86400) % 86400) / 86400)
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][((days % 7) + 7) % 7]
        let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][c.month - 1]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(c.day)) \(month) \(c.year) \(two(c.hour)):\(two(c.minute)):\(two(c.second)) GMT"
    }

    static func location(_ image: String, _ session: String) -> String { "/v2/images/\(image)/uploads/\(session)" }

    static func sessionHeaders(_ s: UploadSession) -> HTTPFields {
        [.tusResumable: tusVersion, .uploadOffset: String(s.offset), .uploadExpires: httpDate(s.expiresAt)]
    }

    /// The protocol's own conditions, in Glance's error format with tus's headers.
    static func translating<T>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let e as UploadOffsetMismatch {
            throw GlanceError(.conflict, e.description, headers: [.uploadOffset: String(e.current), .tusResumable: tusVersion])
        } catch let e as UploadSessionLocked {
            throw GlanceError(HTTPResponse.Status(code: 423, reasonPhrase: "Locked"), e.description, headers: [.tusResumable: tusVersion])
        }
    }

    var create: Handler {
        { [data, settings] request, context in
            let p = try R.principal(context)
            let id = try Self.imageId(context)
            try await R.requireNoBody(request)
            guard let length = try Self.integer(request, .uploadLength) else {
                throw GlanceError(.badRequest, "Upload-Length is required: the number of bytes the upload will send.")
            }
            try Self.checkVersion(request)
            let target = try Self.target(request)
            let pinned = try PinnedDigestHeaders.read(request.headers)
            let store = request.headers[.imageMetaStore].map { $0.trimmingSpaces }
            if store != nil, !data.stores.multiple {
                throw GlanceError(.badRequest, "Multi backend is not supported at this site: X-Image-Meta-Store is not accepted.")
            }
            let session = try await data.createUploadSession(imageId: id, length: length, target: target, store: store,
                                                             pinned: pinned, settings: settings, by: p)
            var headers = Self.sessionHeaders(session)
            headers[.location] = Self.location(id.lowercased(), session.id)
            headers[.contentType] = "application/json"
            return Response(status: .created, headers: headers, body: .init(byteBuffer: ByteBuffer(string: Self.json(session, image: id.lowercased()))))
        }
    }

    static func json(_ s: UploadSession, image: String) -> String {
        JSONValue.object([
            ("id", .string(s.id)), ("image_id", .string(image)), ("offset", .int(s.offset)), ("length", .int(s.length)),
            ("target", .string(s.target.rawValue)), ("expires_at", .string(Timestamp.format(s.expiresAt))),
        ]).serialized
    }

    var list: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let image = try await data.images.visibleImage(id: try Self.imageId(context), by: p)
            var uploads: [JSONValue] = []
            if let s = image.uploadSession, image.writerNode == s.writer, s.expiresAt > Timestamp.now() {
                uploads.append(try JSONValue.parse(Self.json(s, image: image.id)))
            }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: JSONValue.object([("uploads", .array(uploads))]).serialized)))
        }
    }

    var head: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let (_, session) = try await data.images.uploadSession(imageId: try Self.imageId(context),
                                                                   sessionId: try R.parameter(context, "upload"), by: p)
            var headers = Self.sessionHeaders(session)
            headers[.uploadLength] = String(session.length)
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers)
        }
    }

    var patch: Handler {
        { [data, settings] request, context in
            let p = try R.principal(context)
            let id = try Self.imageId(context)
            let mediaType = R.mediaType(request)
            guard mediaType == Self.offsetMediaType else {
                throw GlanceError(.unsupportedMediaType,
                    "The request media type \(mediaType.isEmpty ? "(none)" : mediaType) is not supported: upload bytes are \(Self.offsetMediaType).")
            }
            guard let offset = try Self.integer(request, .uploadOffset) else {
                throw GlanceError(.badRequest, "Upload-Offset is required: the offset the bytes start at (HEAD tells it).")
            }
            let declared = try Self.integer(request, .contentLength)
            try Self.checkVersion(request)
            let progress = try await Self.translating {
                try await data.appendToUploadSession(imageId: id, sessionId: try R.parameter(context, "upload"),
                                                     offset: offset, declaredBytes: declared, body: request.body, settings: settings, by: p)
            }
            return Response(status: .noContent, headers: Self.sessionHeaders(progress.session))
        }
    }

    var terminate: Handler {
        { [data] request, context in
            let p = try R.principal(context)
            let id = try Self.imageId(context)
            try Self.checkVersion(request)
            try await Self.translating {
                try await data.terminateUploadSession(imageId: id, sessionId: try R.parameter(context, "upload"), by: p)
            }
            return Response(status: .noContent, headers: [.tusResumable: Self.tusVersion])
        }
    }
}
