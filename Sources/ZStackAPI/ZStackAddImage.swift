import ImageCore

/// AddImage's parameters, checked as ZStack checks them (`APIAddImageMsg`, `ImageApiInterceptor`).
package struct AddImageSpec {
    static let message = "org.zstack.header.image.APIAddImageMsg"

    var name: String
    var url: String
    var format: String
    var mediaType: String
    var platform: String
    var architecture: String
    /// Core id chosen by the caller.
    var resourceUuid: String?
    var stores: [String]
    var document: JSONValue
    /// `upload://`: no fetch; the bytes come to the upload URL shown in the ref's installPath.
    var isUpload = false

    package init(params: [(String, JSONValue)], body: JSONValue, storages: ZStackBackupStorages) throws {
        func value(_ key: String) -> JSONValue? {
            guard let v = params.first(where: { $0.0 == key })?.1 else { return nil }
            if case .null = v { return nil }
            return v
        }
        /// Optional strings; "" counts as absent (the Go SDK sends every field).
        func optional(_ key: String, max: Int? = nil) throws -> String? {
            guard let v = value(key) else { return nil }
            let s = try ZStackFields.string(v, key, Self.message, max: max)
            return s.isEmpty ? nil : s
        }
        func required(_ key: String, max: Int) throws -> String {
            guard let s = try optional(key, max: max) else {
                throw ZStackError.invalidArgument("field[\(key)] of message[\(Self.message)] is mandatory, can not be null")
            }
            return s
        }
        func oneOf(_ s: String, _ allowed: [String], _ key: String) throws -> String {
            try ZStackFields.oneOf(s, allowed, key, Self.message)
        }

        name = try required("name", max: 255)
        let description = try value("description").map { try ZStackFields.string($0, "description", Self.message, max: 2048) } ?? ""
        url = try required("url", max: 1024)
        let lower = url.lowercased()
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            // fetched by the import task, through the URL guard
        } else if lower.hasPrefix("upload://") {
            isUpload = true  // the client pushes the bytes to the upload URL of the ref
        } else if lower.hasPrefix("file://") || url.hasPrefix("/") || lower.hasPrefix("ftp://") || lower.hasPrefix("sftp://")
                    || lower.hasPrefix("zstore://") {
            throw ZStackError.invalidArgument("url[\(url)]: imaged adds images from 'http://', 'https://' and 'upload://' URLs; server-local files, ftp, sftp and zstore are not offered")
        } else {
            throw ZStackError.invalidArgument("url must starts with 'file:///', 'http://', 'https://'， 'ftp://', 'sftp://' or '/'")
        }
        mediaType = try oneOf(try optional("mediaType") ?? "RootVolumeTemplate", ZStackImage.mediaTypes, "mediaType")
        // ZStack forces iso on ISO media, so an ISO needs no format; any other medium does.
        let givenFormat = try optional("format")
        guard let givenFormat = givenFormat ?? (mediaType == "ISO" ? "iso" : nil) else { throw ZStackError.invalidArgument("unknown format[null]") }
        guard ZStackImage.formats.contains(givenFormat) else { throw ZStackError.invalidArgument("unknown format[\(givenFormat)]") }
        format = givenFormat
        // ZStack's fix-ups: ISO media are iso; an iso file is an ISO; a qcow2 is never an ISO.
        if mediaType == "ISO" && format != "qcow2" { format = "iso" }
        if format == "iso" { mediaType = "ISO" }
        if format == "qcow2" && mediaType == "ISO" { mediaType = "RootVolumeTemplate" }
        var platform = try oneOf(try optional("platform") ?? "Linux", ZStackImage.platforms, "platform")
        if platform == "Paravirtualization" { platform = "Other" }
        if platform == "WindowsVirtio" { platform = "Windows" }
        self.platform = platform
        let guestOsType = try optional("guestOsType", max: 255) ?? ZStackImage.guestOsType(platform: platform)
        architecture = try oneOf(try optional("architecture", max: 32) ?? "x86_64", ZStackImage.architectures, "architecture")
        let system = value("system").map(ZStackFields.boolean) ?? false
        let virtio = value("virtio").map(ZStackFields.boolean) ?? true
        if system && mediaType == "ISO" { throw ZStackError.invalidArgument("ISO cannot be used as system image") }
        if let type = try optional("type"), type != "zstack" {
            throw ZStackError.invalidArgument("unknown image type[\(type)]")
        }
        if let given = try optional("resourceUuid") {
            guard let id = ZStackImage.coreId(given) else {
                throw ZStackError.invalidArgument("resourceUuid[\(given)] is not a valid uuid (32 hex characters)")
            }
            resourceUuid = id
        }
        guard let uuids = value("backupStorageUuids")?.arrayItems, !uuids.isEmpty else {
            throw ZStackError.invalidArgument("field[backupStorageUuids] must be a nonempty list")
        }
        var stores: [String] = []
        for item in uuids {
            guard let uuid = item.stringValue, let id = storages.storeId(ofUUID: uuid) else {
                throw ZStackError.notFound("invalid field[backupStorageUuids], resource[uuid:\(ZStackMatcher.text(item)), type:BackupStorageVO] not found")
            }
            if !stores.contains(id) { stores.append(id) }
        }
        self.stores = stores
        if isUpload, stores.count != 1 {
            throw ZStackError.invalidArgument("an upload:// image is added to one backup storage; copy it to others once it is Ready")
        }

        // Tags: top level wins over the copies the SDKs put inside params.
        func tags(_ key: String) throws -> [JSONValue] {
            guard let v = body[key] ?? value(key) else { return [] }
            guard case .array(let items) = v, items.allSatisfy({ $0.stringValue != nil }) else {
                throw ZStackError.invalidArgument("field[\(key)] must be a list of strings")
            }
            return items
        }
        var systemTags = try tags("systemTags")
        if architecture == "aarch64", !systemTags.contains(.string("bootMode::UEFI")) { systemTags.append(.string("bootMode::UEFI")) }
        var members: [(String, JSONValue)] = [
            ("description", .string(description)), ("url", .string(url)), ("mediaType", .string(mediaType)),
            ("guestOsType", .string(guestOsType)), ("platform", .string(platform)), ("system", .bool(system)),
            ("virtio", .bool(virtio)), ("systemTags", .array(systemTags)),
        ]
        // userTags become user tags of the image (each with its uuid, as CreateUserTag makes them).
        var records: [JSONValue] = []
        for tag in try tags("userTags").compactMap(\.stringValue) where !records.contains(where: { $0["tag"]?.stringValue == tag }) {
            try ZStackTags.checkText(tag, field: "userTags", message: Self.message)
            records.append(ZStackTags.record(tag))
        }
        if !records.isEmpty { members.append((ZStackTags.key, .array(records))) }
        if let tagUuids = value("tagUuids")?.arrayItems { members.append(("tagUuids", .array(tagUuids))) }
        document = .object(members)
    }

    /// The core image: private, bare, the declared format (checked against the data by the import).
    package var coreAttributes: [(String, JSONValue)] {
        var a: [(String, JSONValue)] = [("name", .string(name)), ("disk_format", .string(format)), ("container_format", .string("bare")),
                                        ("visibility", .string("private")), ("architecture", .string(architecture))]
        if let resourceUuid { a.append(("id", .string(resourceUuid))) }
        return a
    }
}

/// Field checks shared by the ZStack APIs.
package enum ZStackFields {

    /// Booleans may be JSON booleans or the strings true/false; anything else is refused by the
    /// REST layer, before the API runs (400, plain text).
    package static func checkBooleans(_ params: [(String, JSONValue)], _ names: [String]) throws {
        for (key, value) in params where names.contains(key) {
            switch value {
            case .bool, .null: continue
            case .string(let s) where s == "true" || s == "false" || s.isEmpty: continue
            default:
                throw ZStackHTTPError(.badRequest, "Invalid value for boolean field [\(key)], [\(ZStackMatcher.text(value))] is not a valid boolean string[true, false].")
            }
        }
    }

    static func boolean(_ value: JSONValue) -> Bool {
        if case .bool(let b) = value { return b }
        return value.stringValue == "true"
    }

    static func string(_ value: JSONValue, _ field: String, _ message: String, max: Int? = nil) throws -> String {
        let s: String
        switch value {
        case .string(let t): s = t
        case .int(let n): s = String(n)
        default: throw ZStackError.invalidArgument("field[\(field)] of message[\(message)] must be a string, but \(value.typeName) found")
        }
        if let max, s.count > max {
            throw ZStackError.invalidArgument("field[\(field)] of message[\(message)] exceeds max length of string. expected was <= \(max), actual was \(s.count)")
        }
        return s
    }

    static func oneOf(_ s: String, _ allowed: [String], _ field: String, _ message: String, max: Int? = nil) throws -> String {
        guard allowed.contains(s) else {
            throw ZStackError.invalidArgument("valid value for field[\(field)] of message[\(message)] are [\(allowed.joined(separator: ", "))], but \(s) found")
        }
        return s
    }

}
