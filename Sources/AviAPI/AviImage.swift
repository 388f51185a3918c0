import ImageCore

/// The Avi `image` object and how it maps onto the core image: `uuid` is `image-<core id>`, `name`
/// and the owning tenant are core fields, everything else Avi has lives in the image's `avi`
/// extension document, in the order the client sent it.
enum AviImage {
    static let uuidPrefix = "image-"
    static let vendor = "avi"

    /// Fields the client may write, with the type each must have, and the version that introduced it.
    enum Kind { case string, bool, integer(ClosedRange<Int64>), typeEnum, shape(AviShape), imageRef }
    static let fields: [String: (kind: Kind, since: AviVersion)] = [
        "type": (.typeEnum, "18.2.6"),
        "controller_info": (.shape(AviShape.packageDetails), "18.2.6"),
        "se_info": (.shape(AviShape.packageDetails), "18.2.6"),
        "migrations": (.shape(AviShape.supportedMigrations), "18.2.6"),
        "cloud_info_values": (.shape(.list(AviShape.imageCloudData)), "20.1.1"),
        "uber_bundle": (.bool, "18.2.8"),
        "controller_patch_ref": (.imageRef, "18.2.8"),
        "se_patch_ref": (.imageRef, "18.2.8"),
        "controller_patch_name": (.string, "18.2.10"),
        "se_patch_name": (.string, "18.2.10"),
        "progress": (.integer(0...100), "21.1.3"),
        "img_state": (.shape(AviShape.uploadOpsStatus), "21.1.3"),
        "events": (.shape(.list(AviShape.imageEventMap)), "21.1.3"),
        "start_time": (.string, "21.1.3"),
        "end_time": (.string, "21.1.3"),
        "duration": (.integer(0...Int64(UInt32.max)), "21.1.3"),
        "tasks_completed": (.integer(Int64(Int32.min)...Int64(Int32.max)), "21.1.3"),
        "total_tasks": (.integer(Int64(Int32.min)...Int64(Int32.max)), "21.1.3"),
        "fips_mode_transition_applicable": (.bool, "30.1.1"),
    ]
    /// The fields that reference another image (stored as `/api/image/image-<id>`, rendered as URLs).
    static let imageRefFields = ["controller_patch_ref", "se_patch_ref"]
    static let types = ["IMAGE_TYPE_PATCH", "IMAGE_TYPE_SYSTEM", "IMAGE_TYPE_MUST_CHECK"]
    static let imageStates = ["IMAGE_FSM_STARTED", "IMAGE_FSM_IN_PROGRESS", "IMAGE_FSM_COMPLETED", "IMAGE_FSM_FAILED"]
    /// Read-only or identity fields a client sends back on PUT (the SDKs GET, change, PUT): ignored.
    static let ignoredOnInput: Set<String> = ["uuid", "url", "_last_modified", "tenant_ref"]

    /// How a resolved image reference is stored.
    static func storedRef(_ id: String) -> String { "/api/image/\(uuidPrefix)\(id)" }

    /// The image id of a stored (resolved) reference; nil for other strings.
    static func storedRefId(_ stored: String) -> String? {
        let prefix = "/api/image/"
        guard stored.hasPrefix(prefix) else { return nil }
        let uuid = String(stored.dropFirst(prefix.count))
        guard uuid.hasPrefix(uuidPrefix), let id = coreId(uuid), storedRef(id) == stored else { return nil }
        return id
    }

    static func coreId(_ uuid: String) -> String? {
        let raw = uuid.hasPrefix(uuidPrefix) ? String(uuid.dropFirst(uuidPrefix.count)) : uuid
        return ImageID.isValid(raw) ? raw.lowercased() : nil
    }

    /// Checks one written field; returns the value to store.
    static func validate(_ key: String, _ value: JSONValue, version: AviVersion) throws -> JSONValue {
        guard let field = fields[key] else { throw AviError(.badRequest, "Unknown field '\(key)' in Image.") }
        guard field.since <= version else {
            throw AviError(.badRequest, "Field '\(key)' was introduced in \(field.since) and is not accepted with version \(version).")
        }
        if case .null = value { throw AviError(.badRequest, "Field '\(key)' may not be null.") }
        switch (field.kind, value) {
        case (.string, .string), (.bool, .bool):
            return value
        case (.shape(let shape), _):
            try shape.check(value, at: key, version: version)
            return value
        case (.imageRef, .string(let s)):
            guard AviRef.parse(s, type: "image") != nil else {
                throw AviError(.badRequest, "Field '\(key)' must reference an image (…/api/image/<uuid> or /api/image?name=<name>), got '\(s)'.")
            }
            return value
        case (.integer(let range), .int(let n)):
            guard range.contains(n) else { throw AviError(.badRequest, "Field '\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(n).") }
            return value
        case (.typeEnum, .string(let s)):
            guard types.contains(s) else { throw AviError(.badRequest, "Field 'type' must be one of \(types.joined(separator: ", ")), got '\(s)'.") }
            return value
        default:
            throw AviError(.badRequest, "Field '\(key)' has the wrong type (\(value.typeName)).")
        }
    }

    /// The Avi document of an image as the client should see it at `version`.
    /// `refNames` maps the ids of referenced images to their names, for the `#name` of `withName`.
    static func render(_ image: Image, base: String, withName: Bool, version: AviVersion, refNames: [String: String] = [:]) -> JSONValue {
        let suffix = withName ? "#" + (image.name ?? "") : ""
        let uuid = uuidPrefix + image.id
        var members: [(String, JSONValue)] = [
            ("url", .string("\(base)/api/image/\(uuid)\(suffix)")),
            ("uuid", .string(uuid)),
            ("name", .string(image.name ?? "")),
            ("_last_modified", .string(lastModified(image))),
        ]
        if let owner = image.owner {
            members.append(("tenant_ref", .string("\(base)/api/tenant/\(owner)" + (withName ? "#\(owner)" : ""))))
        }
        var document: [(String, JSONValue)] = []
        if case .object(let stored)? = image.extensions[vendor] { document = stored }
        if !document.contains(where: { $0.0 == "fips_mode_transition_applicable" }) {
            document.append(("fips_mode_transition_applicable", .bool(true)))  // the schema's default
        }
        for (key, value) in document {
            // Fields newer than the version asked for are left out.
            if let since = fields[key]?.since, since > version { continue }
            if imageRefFields.contains(key), case .string(let stored) = value, let id = storedRefId(stored) {
                // Stored resolved (`/api/image/image-<id>`): a URL at the host the client used.
                let name = withName ? refNames[id].map { "#" + $0 } ?? "" : ""
                members.append((key, .string(base + stored + name)))
                continue
            }
            members.append((key, value))
        }
        return .object(members)
    }

    /// Microseconds since the epoch; changes on every write (seconds from `updated_at`, the row
    /// version below them).
    static func lastModified(_ image: Image) -> String {
        String(image.updatedAt * 1_000_000 + image.version % 1_000_000)
    }
}

/// A dotted Avi version (`22.1.3`); suffixes such as `-2p3` are ignored.
package struct AviVersion: Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    let parts: [Int]
    package let description: String

    package init?(parsing text: String) {
        let core = text.split(separator: "-").first.map(String.init) ?? ""
        let parts = core.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 4, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        self.parts = parts.map { $0! }
        description = core
    }

    package init(stringLiteral value: String) { self = AviVersion(parsing: value)! }

    package static func < (a: AviVersion, b: AviVersion) -> Bool {
        for i in 0..<max(a.parts.count, b.parts.count) {
            let x = i < a.parts.count ? a.parts[i] : 0, y = i < b.parts.count ? b.parts[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    package static func == (a: AviVersion, b: AviVersion) -> Bool { !(a < b) && !(b < a) }

    /// The data model this front-end implements (the reference's spec version).
    package static let current: AviVersion = "30.2.1"
}
