/// The rules for writing image attributes, shared by create and update and by every front-end
/// (each maps its own field names onto these OpenStack attribute names first).
public enum ImageAttributes {
    /// Base attributes a caller may write.
    public static let writable: Set<String> = [
        "name", "visibility", "protected", "os_hidden", "min_disk", "min_ram",
        "container_format", "disk_format", "owner", "tags",
    ]
    /// Base attributes only the service writes.
    public static let readOnly: Set<String> = [
        "id", "status", "checksum", "size", "virtual_size", "os_hash_algo", "os_hash_value",
        "created_at", "updated_at", "direct_url", "self", "file", "schema", "stores",
    ]
    /// Names that are neither attributes nor allowed as properties.
    /// (`imaged_pinned_digest` is written only by an ingest that checked it: a client cannot claim it.)
    public static let reserved: Set<String> = ["location", "locations", "deleted", "deleted_at", PinnedDigest.propertyKey,
                                                 ImageService.sourceCompressionKey, ImageService.sourceFormatKey]
    public static let reservedPrefix = "os_glance"
    public static let maxNameLength = 255
    /// Glance keeps property values in a 64 KiB TEXT column.
    public static let maxPropertyValueBytes = 65_535
    /// Declared (non-base) properties whose values the image schema constrains.
    static let uuidProperties: Set<String> = ["kernel_id", "ramdisk_id"]
    static let declaredEnums: [String: [String]] = [
        "cinder_encryption_key_deletion_policy": ["on_image_deletion", "do_not_delete"],
    ]

    public static func isReserved(_ key: String) -> Bool {
        reserved.contains(key) || key.hasPrefix(reservedPrefix)
    }

    public static func isBase(_ key: String) -> Bool {
        writable.contains(key) || readOnly.contains(key)
    }

    /// Sets one writable base attribute or extra property, validating the value's type.
    /// Policy (who may set what) is checked by the service, not here.
    static func set(_ key: String, _ value: JSONValue, on image: inout Image, config: ImageServiceConfig) throws(ImageError) {
        func bad(_ why: String) -> ImageError { .badRequest("Invalid value for '\(key)': \(why)") }
        func optionalString(maxLength: Int = maxNameLength) throws(ImageError) -> String? {
            switch value {
            case .null: return nil
            case .string(let s):
                guard s.unicodeScalars.count <= maxLength else { throw bad("longer than \(maxLength) characters") }
                return s
            default: throw bad("\(value.typeName) is not a string or null")
            }
        }
        func boolean() throws(ImageError) -> Bool {
            guard case .bool(let b) = value else { throw bad("\(value.typeName) is not a boolean") }
            return b
        }
        func nonNegative() throws(ImageError) -> Int64 {
            guard case .int(let v) = value else { throw bad("\(value.typeName) is not an integer") }
            guard v >= 0 else { throw bad("\(v) is less than the minimum of 0") }
            guard v <= Int64(Int32.max) else { throw bad("\(v) is greater than the maximum of \(Int32.max)") }
            return v
        }
        func format(_ allowed: [String]) throws(ImageError) -> String? {
            let s = try optionalString()
            if let s, !allowed.contains(s) {
                throw bad("'\(s)' is not one of \(allowed.joined(separator: ", "))")
            }
            return s
        }
        switch key {
        case "name": image.name = try optionalString()
        case "visibility":
            guard case .string(let s) = value, let v = Visibility(rawValue: s) else {
                throw bad("must be one of public, community, shared, private")
            }
            image.visibility = v
        case "protected": image.isProtected = try boolean()
        case "os_hidden": image.osHidden = try boolean()
        case "min_disk": image.minDisk = try nonNegative()
        case "min_ram": image.minRam = try nonNegative()
        case "container_format": image.containerFormat = try format(config.containerFormats)
        case "disk_format": image.diskFormat = try format(config.diskFormats)
        case "owner": image.owner = try optionalString()
        case "tags":
            guard case .array(let items) = value else { throw bad("\(value.typeName) is not an array") }
            var tags: [String] = []
            for item in items {
                guard case .string(let t) = item else { throw bad("tags must be strings") }
                tags.append(try validTag(t))
            }
            image.tags = normalizedTags(tags)
        default:
            guard case .string(let s) = value else {
                throw bad("\(value.typeName) is not a string (extra properties are strings)")
            }
            guard s.utf8.count <= maxPropertyValueBytes else { throw bad("longer than \(maxPropertyValueBytes) bytes") }
            if let allowed = declaredEnums[key], !allowed.contains(s) {
                throw bad("'\(s)' is not one of \(allowed.joined(separator: ", "))")
            }
            if uuidProperties.contains(key), !ImageID.isValid(s) { throw bad("'\(s)' is not a UUID") }
            image.properties[key] = s
        }
    }

    public static func validTag(_ tag: String) throws(ImageError) -> String {
        guard tag.unicodeScalars.count <= maxNameLength else {
            throw .badRequest("Tag '\(tag.prefix(40))…' is longer than \(maxNameLength) characters")
        }
        return tag
    }

    static func normalizedTags(_ tags: [String]) -> [String] { Array(Set(tags)).sorted() }

    /// Extra property key rules: 400 for a bad key, 403 for a reserved one.
    static func checkPropertyKey(_ key: String) throws(ImageError) {
        guard !key.isEmpty, key.unicodeScalars.count <= maxNameLength else {
            throw .badRequest("Property name '\(key.prefix(40))' must be 1 to \(maxNameLength) characters")
        }
        if isReserved(key) { throw .forbidden("Attribute '\(key)' is reserved.") }
    }
}
