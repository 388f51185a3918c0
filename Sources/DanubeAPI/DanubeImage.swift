import Foundation
import ImageCore

/// How the core's images look to Danube. Its own fields (alias, version, desc, ostype, size in MB,
/// resize, deploy, tags, dc_bound, owner's user name, the manifest, the VMs using the image) live in
/// the image's `danube` extension document; name, uuid, access and status come from the core, so
/// images made through other APIs are shown too.
enum DanubeImage {
    static let vendor = "danube"
    static let mib: Int64 = 1 << 20

    /// URL segments Danube routes at all (`[A-Za-z0-9._-]+`).
    static func routable(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }
    }

    /// The serializer's rule: `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most 32 characters.
    static func nameErrors(_ name: String) -> [String] {
        var errors: [String] = []
        if name.count > 32 { errors.append("Ensure this field has no more than 32 characters.") }
        if let first = name.utf8.first, !isAlnum(first) || !routable(name) { errors.append("Enter a valid value.") }
        return errors
    }

    static func isAlnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }

    /// Danube's "safe" text: none of `< > % $ & ; ' "`.
    static func isSafe(_ s: String) -> Bool { !s.contains { "<>%$&;'\"".contains($0) } }

    static func doc(_ image: Image) -> JSONValue? { image.extensions[vendor] }
    static func string(_ image: Image, _ key: String) -> String? { doc(image)?[key]?.stringValue }
    static func bool(_ image: Image, _ key: String) -> Bool? { doc(image)?[key]?.boolValue }
    static func int(_ image: Image, _ key: String) -> Int64? {
        if case .int(let n)? = doc(image)?[key] { return n }
        return nil
    }

    /// An import asked for access 4: the image is deactivated once its data is in, and shows 4 meanwhile.
    static let importAccessKey = "import_access"

    /// 1 Public, 3 Private, 4 Deleted (= deactivated in the core: kept, not usable).
    static func access(_ image: Image) -> Int64 {
        if image.status == .deactivated || int(image, importAccessKey) == 4 { return 4 }
        return image.visibility == .public ? 1 : 3
    }

    /// 1 ok, 2 pending (a task is filling or changing it).
    static func status(_ image: Image) -> Int64 { image.status == .active || image.status == .deactivated ? 1 : 2 }

    /// Disk size in MB: the manifest's `image_size`, else the virtual size rounded up.
    static func sizeMB(_ image: Image) -> Int64 {
        if let n = int(image, "size") { return n }
        let bytes = image.virtualSize ?? image.size ?? 0
        return (bytes + mib - 1) / mib
    }

    static func tags(_ image: Image) -> [String] { doc(image)?["tags"]?.arrayItems?.compactMap(\.stringValue) ?? [] }
    static func vms(_ image: Image) -> [String] { image.recordedVMs }

    static func iso(_ seconds: Int64) -> String { Timestamp.format(seconds) }

    /// The datacenters the image is attached to (`dcs` of its document); images made elsewhere, or
    /// before datacenters were kept, are in the default one.
    static func dcs(_ image: Image, default dc: String) -> [String] {
        doc(image)?["dcs"]?.arrayItems?.compactMap(\.stringValue) ?? [string(image, "dc") ?? dc]
    }

    /// The full form (key order as Danube's serializer), plus `dcs` when extended.
    static func render(_ image: Image, extended: Bool, defaultDC: String) -> JSONValue {
        let name = image.name ?? ""
        var fields: [(String, JSONValue)] = [
            ("dc_bound", .bool(bool(image, "dc_bound") ?? (image.visibility != .public))),
            ("name", .string(name)),
            ("uuid", .string(image.id)),
            ("alias", .string(string(image, "alias") ?? name)),
            ("version", .string(string(image, "version") ?? "1.0")),
            ("owner", .string(string(image, "owner") ?? image.owner ?? "")),
            ("access", .int(access(image))),
            ("desc", .string(string(image, "desc") ?? "")),
            ("ostype", .int(int(image, "ostype") ?? 1)),
            ("size", .int(sizeMB(image))),
            ("resize", .bool(bool(image, "resize") ?? false)),
            ("deploy", .bool(bool(image, "deploy") ?? false)),
            ("tags", .array(tags(image).map { .string($0) })),
            ("status", .int(status(image))),
            ("created", .string(iso(image.createdAt))),
        ]
        if extended { fields.append(("dcs", .array(dcs(image, default: defaultDC).map { .string($0) }))) }
        return .object(fields)
    }

    // MARK: Manifests (SmartOS/Triton IMGAPI, v2)

    static let osOfType: [Int64: String] = [1: "linux", 2: "illumos", 3: "bsd", 4: "windows", 5: "smartos", 6: "linux"]

    /// What an import reads from a manifest (reference §8.2).
    struct Manifest {
        var uuid: String
        var version: String
        var ostype: Int64
        var sizeMB: Int64
        var description: String?
        var tags: [String]?
        var resize: Bool?
        var deploy: Bool?
        var fileSize: Int64?
        var sha1: String?
        var raw: JSONValue

        init(_ raw: JSONValue) throws(DanubeValidation) {
            var v = DanubeValidation()
            guard case .object = raw, let uuid = raw["uuid"]?.stringValue, ImageID.isValid(uuid),
                  let version = raw["version"].flatMap(ZValue.text), raw["type"] != nil || raw["os"] != nil,
                  let files = raw["files"]?.arrayItems, !files.isEmpty else {
                v.add("manifest_url", "Invalid image manifest.")
                throw v
            }
            guard files.count == 1 else {
                v.add("manifest_url", "Multiple files inside manifest are not supported.")
                throw v
            }
            self.raw = raw
            self.uuid = uuid.lowercased()
            self.version = version
            let type = raw["type"]?.stringValue ?? ""
            let os = (raw["os"]?.stringValue ?? "").lowercased()
            ostype = type == "zone-dataset" ? 5 : type == "lx-dataset" ? 6
                : os == "smartos" ? 2 : ["linux": 1, "illumos": 2, "bsd": 3, "windows": 4][os] ?? 1
            if case .int(let n)? = raw["image_size"], n > 0 { sizeMB = n } else { sizeMB = 1024 }
            description = raw["description"]?.stringValue.map { String($0.prefix(128)) }
            let tagDoc = raw["tags"]
            tags = tagDoc?["erigones"]?.arrayItems?.compactMap(\.stringValue)
            resize = tagDoc?["resize"]?.boolValue ?? ((ostype == 5 || ostype == 6) ? true : nil)
            deploy = tagDoc?["deploy"]?.boolValue
            if case .int(let n)? = files[0]["size"], n >= 0 { fileSize = n }
            if let s = files[0]["sha1"]?.stringValue, s.utf8.count == 40 { sha1 = s.lowercased() }
        }
    }

    /// The manifest imaged serves for an image (its IMGAPI, reference §8.1/§9): the stored one (when
    /// the image came from a manifest) overlaid with the image's current facts.
    static func manifest(_ image: Image) -> JSONValue {
        var base: [(String, JSONValue)] = [("v", .int(2)), ("owner", .string("00000000-0000-0000-0000-000000000000"))]
        if case .object(let stored)? = doc(image)?["manifest"] { base = JSONValue.merging(.object(base), stored).objectMembers }
        let ostype = int(image, "ostype") ?? 1
        let storedFile = doc(image)?["manifest"]?["files"]?.arrayItems?.first
        var file: [(String, JSONValue)] = []
        if let sha1 = storedFile?["sha1"]?.stringValue { file.append(("sha1", .string(sha1))) }
        file.append(("size", .int(image.size ?? 0)))
        file.append(("compression", .string(storedFile?["compression"]?.stringValue ?? "none")))
        var type = doc(image)?["manifest"]?["type"]?.stringValue ?? (ostype == 5 ? "zone-dataset" : ostype == 6 ? "lx-dataset" : "zvol")
        if type != "other", ostype <= 4 { type = "zvol" }
        var fields: [(String, JSONValue)] = [
            ("uuid", .string(image.id)), ("name", .string(string(image, "alias") ?? image.name ?? "")),
            ("version", .string(string(image, "version") ?? "1.0")),
            ("state", .string(image.status == .deactivated ? "disabled" : "active")),
            ("disabled", .bool(image.status == .deactivated)), ("public", .bool(image.visibility == .public)),
            ("published_at", .string(doc(image)?["manifest"]?["published_at"]?.stringValue ?? iso(image.createdAt))),
            ("type", .string(type)), ("os", .string(osOfType[ostype] ?? "linux")),
            ("description", .string(string(image, "desc") ?? "")),
            ("tags", .object([("erigones", .array(tags(image).map { .string($0) })), ("resize", .bool(bool(image, "resize") ?? false)),
                              ("deploy", .bool(bool(image, "deploy") ?? false)), ("internal", .bool(false))])),
            ("files", .array([.object(file)])),
        ]
        if ostype <= 4 { fields += [("image_size", .int(sizeMB(image))), ("cpu_type", .string("qemu64"))] }
        return JSONValue.merging(.object(base), fields)
    }
}

/// Scalars as text (a manifest's version may be a number).
enum ZValue {
    static func text(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .int(let n): return String(n)
        case .double(let d): return String(d)
        default: return nil
        }
    }
}

extension JSONValue {
    var objectMembers: [(String, JSONValue)] {
        if case .object(let m) = self { return m }
        return []
    }
}
