import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// SetImageBootMode, SetImageQga / GetImageQga and CalculateImageHash. Boot mode and the guest agent
/// are the system tags ZStack keeps for them (`bootMode::<mode>`, `qemuga`) in the image's `zstack`
/// document, so `q=__systemTag__=…` finds them.
extension ZStackImageAPI {
    static var bootModes: [String] { ["Legacy", "UEFI", "UEFI_WITH_CSM"] }
    static var hashAlgorithms: [String] { ["MD5", "SHA1", "SHA256"] }

    /// The image's system tags with those `drop` says no to removed and `add` appended (once).
    static func systemTags(_ doc: JSONValue?, dropping drop: (String) -> Bool, adding add: String?) -> JSONValue {
        var tags = (doc?["systemTags"]?.arrayItems ?? []).filter { !drop($0.stringValue ?? "") }
        if let add, !tags.contains(.string(add)) { tags.append(.string(add)) }
        return JSONValue.merging(doc, [("systemTags", .array(tags))])
    }

    /// `setImageBootMode {bootMode}` → `{}`.
    func setBootMode(_ image: Image, _ params: [(String, JSONValue)], _ p: Principal) async throws -> JSONValue {
        let message = "org.zstack.header.image.APISetImageBootModeMsg"
        guard let v = params.first(where: { $0.0 == "bootMode" })?.1, v != .null,
              case let mode = try ZStackFields.string(v, "bootMode", message), !mode.isEmpty else {
            throw ZStackError.invalidArgument("field[bootMode] of message[\(message)] is mandatory, can not be null")
        }
        _ = try ZStackFields.oneOf(mode, Self.bootModes, "bootMode", message)
        if mode == "Legacy", image.properties["architecture"] == "aarch64" {
            throw ZStackError.invalidArgument("The aarch64 architecture does not support legacy.")
        }
        _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
            Self.systemTags(doc, dropping: { $0.hasPrefix("bootMode::") }, adding: "bootMode::\(mode)")
        }], by: p)
        return .object([])
    }

    /// `setImageQga {enable}` → `{}`: the `qemuga` system tag on or off.
    func setQga(_ image: Image, _ params: [(String, JSONValue)], _ p: Principal) async throws -> JSONValue {
        let message = "org.zstack.header.image.APISetImageQgaMsg"
        guard let v = params.first(where: { $0.0 == "enable" })?.1, v != .null else {
            throw ZStackError.invalidArgument("field[enable] of message[\(message)] is mandatory, can not be null")
        }
        let enable = ZStackFields.boolean(v)
        _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
            Self.systemTags(doc, dropping: { $0 == "qemuga" }, adding: enable ? "qemuga" : nil)
        }], by: p)
        return .object([])
    }

    /// `GET /images/{uuid}/qga` → `{"enable": bool}` (sync).
    func getQga(_ request: Request, uuid: String) async throws -> Response {
        let p = try await caller(request)
        guard let coreId = ZStackImage.coreId(uuid) else { throw ZStackError.notFound("invalid value[\(uuid)] of field [uuid]") }
        let image: Image
        do { image = try await service.visibleImageOrSoftDeleted(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
            throw ZStackError.notFound("resource[uuid:\(uuid), type:ImageVO] not found")
        }
        return Self.json(.object([("enable", .bool(ZStackImage.tags(image, "systemTags").contains("qemuga")))]))
    }

    /// `calculateImageHash {backupStorageUuid, algorithm}` → `{"inventory"}`: reads the copy on that
    /// backup storage again and hashes it. MD5 must equal the recorded `md5Sum` (a copy that differs
    /// fails the job and changes nothing); SHA1/SHA256 are kept as the system tag
    /// `<algorithm>::<hex>` (one per algorithm, replaced by a later calculation).
    func calculateHash(_ image: Image, _ params: [(String, JSONValue)], _ p: Principal) async throws -> JSONValue {
        let message = "org.zstack.header.image.APICalculateImageHashMsg"
        func field(_ key: String) throws -> String? {
            guard let v = params.first(where: { $0.0 == key })?.1, v != .null else { return nil }
            let s = try ZStackFields.string(v, key, message)
            return s.isEmpty ? nil : s
        }
        guard let bsUuid = try field("backupStorageUuid") else {
            throw ZStackError.invalidArgument("field[backupStorageUuid] of message[\(message)] is mandatory, can not be null")
        }
        let algorithm = try ZStackFields.oneOf(try field("algorithm") ?? "MD5", Self.hashAlgorithms, "algorithm", message)
        guard let storeId = storages.storeId(ofUUID: bsUuid) else {
            throw ZStackError.notFound("invalid field[backupStorageUuid], resource[uuid:\(bsUuid), type:BackupStorageVO] not found")
        }
        let uuid = ZStackImage.uuid(image.id)
        guard image.status == .active || image.status == .deactivated, let size = image.size else {
            throw ZStackError.failed("image[uuid:\(uuid)] is \(ZStackImage.status(image)), only Ready images can be hashed")
        }
        guard storages.ids(of: image).contains(storeId) else {
            throw ZStackError.failed("image[uuid:\(uuid)] is not on the backup storage[uuid:\(bsUuid)]")
        }
        let store = try data.store(named: storeId)
        var md5 = Insecure.MD5(), sha1 = Insecure.SHA1(), sha256 = SHA256()
        var read: Int64 = 0
        do {
            try await store.read(key: BlobKey.image(image.id), range: 0..<size, chunkSize: 1 << 20) { buffer in
                buffer.withUnsafeReadableBytes { bytes in
                    switch algorithm {
                    case "SHA1": sha1.update(bufferPointer: bytes)
                    case "SHA256": sha256.update(bufferPointer: bytes)
                    default: md5.update(bufferPointer: bytes)
                    }
                }
                read += Int64(buffer.readableBytes)
            }
        } catch {
            throw ZStackError.failed("the copy of image[uuid:\(uuid)] on backup storage[uuid:\(bsUuid)] cannot be read: \(error)")
        }
        guard read == size else {
            throw ZStackError.failed("the copy of image[uuid:\(uuid)] on backup storage[uuid:\(bsUuid)] has \(read) bytes, \(size) recorded")
        }
        func hex(_ d: some Sequence<UInt8>) -> String { d.map { String(format: "%02x", $0) }.joined() }
        let updated: Image
        switch algorithm {
        case "MD5":
            let digest = hex(md5.finalize())
            guard digest == image.checksum else {
                throw ZStackError.failed("the copy of image[uuid:\(uuid)] on backup storage[uuid:\(bsUuid)] has md5 \(digest), \(image.checksum ?? "none") recorded")
            }
            updated = image
        default:
            let digest = algorithm == "SHA1" ? hex(sha1.finalize()) : hex(sha256.finalize())
            let prefix = "\(algorithm)::"
            updated = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                Self.systemTags(doc, dropping: { $0.hasPrefix(prefix) }, adding: prefix + digest)
            }], by: p)
        }
        return .object([("inventory", .object(try await inventory(updated, by: p)))])
    }
}
