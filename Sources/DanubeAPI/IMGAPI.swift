import Foundation
import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// A read-only IMGAPI (SmartOS/Triton's image API) over the public images, so one imaged can be
/// another's Danube imagestore: `GET /imgapi/images` (`name`, `version`, `os`, `type`, `limit`),
/// `/imgapi/images/<uuid>` (the manifest), `/imgapi/images/<uuid>/file` (the bytes). No
/// authentication: it answers what any anonymous reader may see, as an IMGAPI server does.
struct IMGAPI {
    let service: ImageService
    let data: ImageDataService

    static var oldestFirst: ImageListRequest {
        var request = ImageListRequest()
        request.sort = [.init(.createdAt, .asc)]
        return request
    }

    func respond(to request: Request, context: some RequestContext) async -> Response {
        func failure(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
            JSONResponse.make(.object([("code", .string(code)), ("message", .string(message))]), status: status)
        }
        guard request.method == .get || request.method == .head else { return failure(.methodNotAllowed, "BadMethod", "\(request.method) is not allowed") }
        // ["images"], ["images", uuid] or ["images", uuid, "file"] below /imgapi.
        let s = request.uri.path.dropFirst("/imgapi".count).split(separator: "/").map(String.init)
        let anonymous = Principal(userId: "imgapi", projectId: nil, roles: ["member", "reader"])
        do {
            if s.count == 1 {
                let q = request.uri.queryParameters
                var images = try await service.listAllImages(Self.oldestFirst, by: anonymous).filter { $0.visibility == .public && $0.status == .active }
                if let name = q["name"].map(String.init) { images = images.filter { (DanubeImage.string($0, "alias") ?? $0.name) == name } }
                var manifests = images.map(DanubeImage.manifest)
                for key in ["version", "os", "type"] {
                    if let wanted = q[Substring(key)].map(String.init) { manifests = manifests.filter { $0[key]?.stringValue == wanted } }
                }
                var limit = 1000
                if let given = q["limit"] {
                    guard let n = Int(given), (1...1000).contains(n) else {
                        return failure(HTTPResponse.Status(code: 422, reasonPhrase: "Unprocessable Entity"), "InvalidParameter",
                                       "limit must be an integer from 1 to 1000")
                    }
                    limit = n
                }
                return JSONResponse.make(.array(Array(manifests.prefix(limit))))
            }
            guard s.count == 2 || (s.count == 3 && s[2] == "file"), ImageID.isValid(s[1]),
                  let image = try await service.visibleImageIfAny(id: s[1], by: anonymous), image.visibility == .public,
                  image.status == .active || image.status == .deactivated else {
                return failure(.notFound, "ResourceNotFound", "image \(s.count > 1 ? s[1] : "") not found")
            }
            if s.count == 2 {
                return JSONResponse.make(DanubeImage.manifest(image))
            }
            // A disabled image (access 4) keeps its manifest but serves no file.
            guard image.status == .active,
                  case .bytes(let shown, _, _, _, let body)? = try? await GuardedDownload.prepare(data, id: image.id, range: nil, by: anonymous)
            else {
                return failure(.notFound, "ResourceNotFound", "image \(s[1]) has no file")
            }
            var headers: HTTPFields = [.contentType: "application/octet-stream"]
            if let md5 = shown.checksum, let bytes = Self.hexBytes(md5) { headers[.contentMD5] = Data(bytes).base64EncodedString() }
            if let sha1 = DanubeImage.manifest(shown)["files"]?.arrayItems?.first?["sha1"]?.stringValue { headers[.eTag] = sha1 }
            return Response(status: .ok, headers: headers, body: body)
        } catch {
            context.logger.error("imgapi request failed", metadata: ["error": "\(error)"])
            return failure(.internalServerError, "InternalError", "internal error")
        }
    }

    static func hexBytes(_ hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let b = UInt8(String(decoding: u[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }
}
