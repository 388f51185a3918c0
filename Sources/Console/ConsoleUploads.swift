import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData
import NIOCore

/// Browser uploads: the tus 1.0 calls the OpenStack API offers (`POST …/uploads`, `HEAD`/`PATCH`/`DELETE`
/// `…/uploads/{id}`), under `/console/images/{id}/uploads` with the console's session instead of a token, so
/// the page's script can send a file in pieces, show its progress and continue after a drop or a reload.
/// Every call is the same `ImageDataService` resumable-upload call as the API's. Being `fetch` calls, they
/// carry the CSRF token in `X-CSRF-Token` (a form field would be inside the bytes).
extension WebConsole {
    static var csrfHeader: HTTPField.Name { HTTPField.Name("x-csrf-token")! }
    static var uploadOffsetHeader: HTTPField.Name { HTTPField.Name("upload-offset")! }
    static var uploadLengthHeader: HTTPField.Name { HTTPField.Name("upload-length")! }

    /// `images/{id}/uploads[/{upload}]`, or nil when the path is another page.
    static func uploadRoute(_ parts: [String]) -> (image: String, upload: String?)? {
        guard parts.count >= 3, parts.count <= 4, parts[0] == "images", parts[2] == "uploads", !parts[1].isEmpty else { return nil }
        if parts.count == 4 { return parts[3].isEmpty ? nil : (parts[1], parts[3]) }
        return (parts[1], nil)
    }

    func upload(_ route: (image: String, upload: String?), _ request: Request, _ session: Session) async throws -> Response {
        try Self.checkSameOrigin(request)
        if request.method != .head {
            guard LoginSessions.csrfMatches(request.headers[Self.csrfHeader], session.csrf) else {
                throw ConsoleRefusal(.forbidden, "The upload came without this page's CSRF token.")
            }
        }
        let p = session.principal
        let data = imports.data
        do {
            switch (route.upload, request.method) {
            case (nil, .post):
                guard let length = request.headers[Self.uploadLengthHeader].flatMap({ Int64($0) }), length >= 0 else {
                    throw ImageError.badRequest("Upload-Length is required: the size of the file.")
                }
                let created = try await data.createUploadSession(imageId: route.image, length: length, target: .file, store: nil,
                                                                 pinned: [], settings: options.uploadSessions, by: p)
                return Response(status: .created, headers: [
                    .location: "/console/images/\(route.image)/uploads/\(created.id)", Self.uploadOffsetHeader: String(created.offset),
                    .cacheControl: "no-store",
                ])
            case (let upload?, .head):
                let (_, current) = try await data.images.uploadSession(imageId: route.image, sessionId: upload, by: p)
                return Response(status: .ok, headers: [Self.uploadOffsetHeader: String(current.offset),
                                                       Self.uploadLengthHeader: String(current.length), .cacheControl: "no-store"])
            case (let upload?, .patch):
                guard let offset = request.headers[Self.uploadOffsetHeader].flatMap({ Int64($0) }) else {
                    throw ImageError.badRequest("Upload-Offset is required.")
                }
                let declared = request.headers[.contentLength].flatMap { Int64($0) }
                let progress = try await data.appendToUploadSession(imageId: route.image, sessionId: upload, offset: offset,
                                                                   declaredBytes: declared, body: request.body,
                                                                   settings: options.uploadSessions, by: p)
                var headers: HTTPFields = [Self.uploadOffsetHeader: String(progress.session.offset), .cacheControl: "no-store"]
                if let image = progress.completed { headers[HTTPField.Name("x-image-status")!] = image.status.rawValue }
                return Response(status: .noContent, headers: headers)
            case (let upload?, .delete):
                try await data.terminateUploadSession(imageId: route.image, sessionId: upload, by: p)
                return Response(status: .noContent)
            default:
                throw ConsoleRefusal(.methodNotAllowed, "Method not allowed.")
            }
        } catch let e as UploadOffsetMismatch {
            return Response(status: .conflict, headers: [Self.uploadOffsetHeader: String(e.current)],
                            body: .init(byteBuffer: ByteBuffer(string: e.description)))
        } catch is UploadSessionLocked {
            return Response(status: HTTPResponse.Status(code: 423, reasonPhrase: "Locked"),
                            body: .init(byteBuffer: ByteBuffer(string: "Another request is writing this upload.")))
        } catch let e as ImageError {
            return Response(status: ConsoleRefusal(e).status, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: e.message)))
        }
    }
}
