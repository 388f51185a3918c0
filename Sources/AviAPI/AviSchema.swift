import ImageCore

/// The shapes of the Image object's nested types (swagger 30.2.1 and the seed pages): every key and
/// its type is checked, unknown keys are refused, as the controller refuses them.
indirect enum AviShape: Sendable {
    case string
    case bool
    case number
    case integer(ClosedRange<Int64>)
    /// A string from a fixed set.
    case oneOf([String])
    /// A `SYSERR_*` status code (the controller's list is long and grows; the form is checked).
    case syserr
    case list(AviShape)
    /// Keys with their shapes and, for keys added later, the version that introduced them.
    case object(name: String, [String: (shape: AviShape, since: AviVersion?)])

    static let int32 = AviShape.integer(Int64(Int32.min)...Int64(Int32.max))
    static let uint32 = AviShape.integer(0...Int64(UInt32.max))
    static let int64 = AviShape.integer(Int64.min...Int64.max)

    static func object(_ name: String, _ keys: [String: AviShape], since: [String: AviVersion] = [:]) -> AviShape {
        .object(name: name, Dictionary(uniqueKeysWithValues: keys.map { ($0.key, (shape: $0.value, since: since[$0.key])) }))
    }

    static let buildInfo = object("BuildInfo", [
        "build_no": int32, "date": .string, "min_version": .string, "patch_version": .string, "product": .string,
        "product_name": .string, "remote_image_ref": .string, "tag": .string, "version": .string,
    ], since: ["remote_image_ref": "30.1.1"])
    static let patchInfo = object("PatchInfo", [
        "patch_type": .string, "reboot": .bool,
        "reboot_list": .list(object("RebootData", ["patch_version": .string, "reboot": .bool])),
    ])
    /// `controller_info`, `se_info`.
    static let packageDetails = object("PackageDetails", ["build": buildInfo, "hash": .string, "patch": patchInfo, "path": .string])
    /// `migrations`. The `dryrun_*` keys are the seed page's (31.1.1); accepted as it documents them.
    static let supportedMigrations = object("SupportedMigrations", [
        "api_version": .string, "min_supported_api_version": .string, "controller_min_docker_version": .string,
        "versions": .list(.string),
        "max_active_versions": int32, "controller_min_cores": int32, "controller_min_memory": int32,
        "controller_min_total_disk": int32, "controller_min_free_disk_size": int32, "controller_host_min_free_disk_size": int32,
        "podman_controller_host_min_free_disk_size": int32, "podman_se_host_min_free_disk_size": int32,
        "rollback_controller_disk_space": int32, "rollback_se_disk_space": int32, "se_min_cores": int32,
        "se_min_memory": int32, "se_min_total_disk": int32, "se_min_free_disk_size": int32, "se_host_min_free_disk_size": int32,
        "dryrun_min_cores": int32, "dryrun_min_free_disk_size": int32, "dryrun_min_memory": .number,
    ])
    /// `cloud_info_values` entries.
    static let imageCloudData = object("ImageCloudData", [
        "cloud_name": .string,
        "cloud_data_values": .list(object("ImageCloudGenericData", ["key": .string, "values": .list(.string)])),
    ])
    static let imageEvent = object("ImageEvent", [
        "start_time": .string, "end_time": .string, "duration": uint32,
        "ip": object("IpAddr", ["addr": .string, "type": .oneOf(["V4", "V6", "DNS"])]),
        "message": .string, "status": .syserr, "sub_tasks": .list(.string),
    ])
    /// `events` entries.
    static let imageEventMap = object("ImageEventMap", [
        "task_name": .string, "nodes_events": .list(imageEvent), "sub_events": .list(imageEvent),
    ])
    /// `img_state`.
    static let uploadOpsStatus = object("ImageUploadOpsStatus", [
        "state": .oneOf(AviImage.imageStates), "reason": .string,
        "last_changed_time": object("TimeStamp", ["secs": int64, "usecs": int64]),
    ])

    /// Checks `value` against the shape; `path` names the field in errors (`controller_info.build.build_no`).
    func check(_ value: JSONValue, at path: String, version: AviVersion) throws {
        if case .null = value { throw AviError(.badRequest, "Field '\(path)' may not be null.") }
        switch (self, value) {
        case (.string, .string), (.bool, .bool), (.number, .int), (.number, .double):
            return
        case (.integer(let range), .int(let n)):
            guard range.contains(n) else {
                throw AviError(.badRequest, "Field '\(path)' must be between \(range.lowerBound) and \(range.upperBound), got \(n).")
            }
        case (.oneOf(let allowed), .string(let s)):
            guard allowed.contains(s) else {
                throw AviError(.badRequest, "Field '\(path)' must be one of \(allowed.joined(separator: ", ")), got '\(s)'.")
            }
        case (.syserr, .string(let s)):
            let rest = s.dropFirst("SYSERR_".count)
            guard s.hasPrefix("SYSERR_"), !rest.isEmpty,
                  rest.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
                throw AviError(.badRequest, "Field '\(path)' must be a SYSERR_* status code, got '\(s)'.")
            }
        case (.list(let element), .array(let items)):
            for (i, item) in items.enumerated() { try element.check(item, at: "\(path)[\(i)]", version: version) }
        case (.object(let name, let keys), .object(let members)):
            var seen = Set<String>()
            for (key, member) in members {
                guard seen.insert(key).inserted else { throw AviError(.badRequest, "Field '\(path).\(key)' is given twice.") }
                guard let field = keys[key] else { throw AviError(.badRequest, "Unknown field '\(path).\(key)' in \(name).") }
                if let since = field.since, since > version {
                    throw AviError(.badRequest, "Field '\(path).\(key)' was introduced in \(since) and is not accepted with version \(version).")
                }
                try field.shape.check(member, at: "\(path).\(key)", version: version)
            }
        default:
            throw AviError(.badRequest, "Field '\(path)' has the wrong type (\(value.typeName)), \(expected) expected.")
        }
    }

    var expected: String {
        switch self {
        case .string, .oneOf, .syserr: return "a string"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .integer: return "an integer"
        case .list: return "a list"
        case .object(let name, _): return "an object (\(name))"
        }
    }
}
