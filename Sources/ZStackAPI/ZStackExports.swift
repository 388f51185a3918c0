import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData

/// ExportImageFromBackupStorage and DeleteExportedImageFromBackupStorage: an export is a download
/// URL served by imaged itself, `<base>/zstack/v1/exports/<bs uuid>/<image uuid>/<token>/image-<uuid>.<format>`.
/// The random token is the credential (as a backup storage's export URL is); it is kept, with its
/// expiry and the exporter, in the image's `zstack` document under `exports.<bs uuid>`, and the ref of
/// that backup storage shows `exportUrl`/`exportMd5Sum` while it lives. The bytes stream through the
/// ordinary guarded download (as the exporter), so a deleted, expunged or unexported image serves nothing.
package enum ZStackExports {
    static let key = "exports"

    /// A live export of `image` on the backup storage `bsUuid`: its record, or nil when none or expired.
    static func record(_ image: Image, bsUuid: String, now: Int64 = Timestamp.now()) -> JSONValue? {
        guard let r = image.extensions[ZStackImage.vendor]?[key]?[bsUuid], let expires = r["expiresAt"]?.int64Value,
              expires > now else { return nil }
        return r
    }

    /// The vendor document with `record` as the export on `bsUuid` (nil removes it).
    static func setting(_ doc: JSONValue?, bsUuid: String, _ record: JSONValue?) -> JSONValue {
        var exports: [(String, JSONValue)] = []
        if case .object(let m)? = doc?[key] { exports = m }
        exports.removeAll { $0.0 == bsUuid }
        if let record { exports.append((bsUuid, record)) }
        return JSONValue.merging(doc, [(key, .object(exports))])
    }
}

extension JSONValue {
    var int64Value: Int64? { if case .int(let n) = self { return n } else { return nil } }
}

extension ZStackImageAPI {
    /// `PUT /backup-storage/{uuid}/actions`: `exportImageFromBackupStorage {imageUuid, exportFormat?}`.
    func backupStorageAction(_ request: Request, bsUuid: String) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let body = try await Self.body(request)
        guard case .object(let params)? = body["exportImageFromBackupStorage"] else {
            throw ZStackHTTPError(.badRequest, "the body doesn't contain action mapping to the URL[/v1/backup-storage/\(bsUuid)/actions]")
        }
        let p = try await jobCaller(request)
        let imageUuid = params.first { $0.0 == "imageUuid" }?.1.stringValue ?? ""
        return try await runJob(job, request, p, api: "ExportImageFromBackupStorage", imageId: ZStackImage.coreId(imageUuid)) {
            let message = "org.zstack.header.storage.backup.APIExportImageFromBackupStorageMsg"
            guard !imageUuid.isEmpty else { throw ZStackError.invalidArgument("field[imageUuid] of message[\(message)] is mandatory, can not be null") }
            guard let storeId = storages.storeId(ofUUID: bsUuid) else {
                throw ZStackError.notFound("invalid value[\(bsUuid)] of field [backupStorageUuid], resource[type:BackupStorageVO] not found")
            }
            let image = try await exportable(imageUuid, p)
            guard storages.ids(of: image).contains(storeId) else {
                throw ZStackError.failed("image[uuid:\(ZStackImage.uuid(image.id))] is not on the backup storage[uuid:\(bsUuid)]")
            }
            guard !ZStackImage.deletedOn(image).contains(storeId) else {
                throw ZStackError.failed("image[uuid:\(ZStackImage.uuid(image.id))]'s status[Deleted] on the backup storage[uuid:\(bsUuid)] cannot be exported")
            }
            let format = image.diskFormat ?? "raw"
            if let given = params.first(where: { $0.0 == "exportFormat" })?.1.stringValue, !given.isEmpty {
                _ = try ZStackFields.oneOf(given, ["raw", "qcow2"], "exportFormat", message)
                guard given == format else {
                    throw ZStackError("SYS.1014", "exporting image[uuid:\(ZStackImage.uuid(image.id))] in \(given) is not supported: imaged exports the image as stored (\(format))")
                }
            }
            guard let md5 = image.checksum else { throw ZStackError.failed("image[uuid:\(ZStackImage.uuid(image.id))] has no data to export") }
            let token = Secrets.hex(try Secrets.randomBytes(16))
            let uuid = ZStackImage.uuid(image.id)
            let url = "\(baseURL(request))\(Self.prefix)/exports/\(bsUuid.lowercased())/\(uuid)/\(token)/image-\(uuid).\(format)"
            let record: JSONValue = .object([
                ("token", .string(token)), ("url", .string(url)), ("md5", .string(md5)),
                ("expiresAt", .int(Timestamp.now() + options.exportLifetime)),
                ("userId", .string(p.userId)), ("projectId", p.projectId.map { .string($0) } ?? .null),
                ("roles", .array(p.roles.sorted().map { .string($0) })),
            ])
            let bs = bsUuid.lowercased()
            _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                ZStackExports.setting(doc, bsUuid: bs, record)
            }], by: p)
            return .object([("imageUrl", .string(url)), ("exportMd5Sum", .string(md5))])
        }
    }

    /// A Ready image the caller may change (exports are written into the image), or the ZStack error.
    func exportable(_ imageUuid: String, _ p: Principal) async throws -> Image {
        guard let coreId = ZStackImage.coreId(imageUuid) else { throw ZStackError.notFound("invalid value[\(imageUuid)] of field [imageUuid]") }
        let image: Image
        do { image = try await service.visibleImageOrSoftDeleted(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
            throw ZStackError.notFound("resource[uuid:\(imageUuid), type:ImageVO] not found")
        }
        guard image.status == .active || image.status == .deactivated else {
            throw ZStackError.failed("image[uuid:\(imageUuid)] is \(ZStackImage.status(image)), only Ready images can be exported")
        }
        return image
    }

    /// `DELETE /backup-storage/{bs}/exported-images/{imageUuid}`: the export URL stops working at once.
    func deleteExport(_ request: Request, bsUuid: String, imageUuid: String) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let p = try await jobCaller(request)
        return try await runJob(job, request, p, api: "DeleteExportedImageFromBackupStorage", imageId: ZStackImage.coreId(imageUuid)) {
            guard storages.storeId(ofUUID: bsUuid) != nil else {
                throw ZStackError.notFound("invalid value[\(bsUuid)] of field [backupStorageUuid], resource[type:BackupStorageVO] not found")
            }
            guard let coreId = ZStackImage.coreId(imageUuid) else { throw ZStackError.notFound("invalid value[\(imageUuid)] of field [imageUuid]") }
            let image: Image
            do { image = try await service.visibleImageOrSoftDeleted(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
                throw ZStackError.notFound("resource[uuid:\(imageUuid), type:ImageVO] not found")
            }
            let bs = bsUuid.lowercased()
            guard image.extensions[ZStackImage.vendor]?[ZStackExports.key]?[bs] != nil else { return .object([]) }  // nothing exported: done
            _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                ZStackExports.setting(doc, bsUuid: bs, nil)
            }], by: p)
            return .object([])
        }
    }

    /// `GET`/`HEAD /exports/<bs>/<image>/<token>/<file>`: the exported bytes (ranges allowed), while the
    /// export lives. No session: the token is the credential. Anything else is a plain 404.
    func serveExport(_ request: Request, bsUuid: String, imageUuid: String, token: String) async throws -> Response {
        let gone = ZStackHTTPError(.notFound, "no exported image at this URL")
        let bs = bsUuid.lowercased()
        guard let coreId = ZStackImage.coreId(imageUuid), let storeId = storages.storeId(ofUUID: bs),
              let image = try await service.imageForCapability(imageId: coreId, vendor: ZStackImage.vendor, holds: { doc in
                  guard let r = doc[ZStackExports.key]?[bs], let expected = r["token"]?.stringValue,
                        let expires = r["expiresAt"]?.int64Value, expires > Timestamp.now() else { return false }
                  return ConstantTime.equal(Array(expected.utf8), Array(token.utf8))
              }),
              storages.ids(of: image).contains(storeId), !ZStackImage.deletedOn(image).contains(storeId),
              let record = ZStackExports.record(image, bsUuid: bs) else { throw gone }
        let exporter = Principal(userId: record["userId"]?.stringValue ?? "zstack-export", projectId: record["projectId"]?.stringValue,
                                 roles: record["roles"]?.arrayItems?.compactMap(\.stringValue) ?? ["member"])
        let range: ByteRangeRequest?
        do { range = try request.headers[.range].map { try ByteRangeRequest.parse($0) } } catch let e as ImageError {
            throw ZStackHTTPError(e.kind == .rangeNotSatisfiable ? .rangeNotSatisfiable : .badRequest, e.message)
        }
        let outcome: GuardedDownload.Outcome
        do { outcome = try await GuardedDownload.prepare(data, id: image.id, range: range, by: exporter) } catch let e as ImageError {
            switch e.kind {
            case .rangeNotSatisfiable: throw ZStackHTTPError(.rangeNotSatisfiable, e.message)
            case .unavailable: throw ZStackHTTPError(.serviceUnavailable, e.message)
            default: throw gone  // the exporter lost access, or the image went: the URL names nothing
            }
        }
        guard case .bytes(_, let r, let total, let partial, let body) = outcome else { throw gone }
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: "bytes",
                                   .contentLength: String(r.count)]
        if let md5 = record["md5"]?.stringValue { headers[HTTPField.Name("x-export-md5sum")!] = md5 }
        if partial { headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(total)" }
        if request.method == .head { return Response(status: partial ? .partialContent : .ok, headers: headers) }
        return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
    }
}
