import Foundation
import ImageCore

/// A Scalr image is a registration of an image that lives in a cloud; imaged keeps it as a core image
/// without data (`queued`), visible by scope (global → public, account → community, environment →
/// private to the project), with `architecture`, `os_distro` and `scalr_*` properties for the other
/// APIs, and every Scalr field in its `scalr` extension document.
enum ScalrImage {
    static let vendor = "scalr"
    static let platforms = ["ec2", "gce", "azure", "cloudstack", "idcf", "openstack", "ocs", "rackspacenguk", "rackspacengus",
                            "hpcloud", "mirantis", "vio", "cisco", "otc", "vmware"]
    /// Platforms whose images have no region.
    static let locationless = ["gce", "azure"]
    static let filterable = ["id", "name", "scope", "os", "cloudPlatform", "cloudImageId", "architecture", "cloudLocation", "status",
                             "source", "deprecated", "scalrAgentInstalled", "cloudInitInstalled"]
    static let writable = ["name", "cloudPlatform", "cloudLocation", "cloudImageId", "architecture", "os", "scalrAgentInstalled",
                           "cloudInitInstalled", "cloudFeatures", "deprecated", "size", "type"]
    static let readOnly = ["id", "scope", "source", "status", "statusError", "added", "lastUsed"]
    static let alterable = ["name", "deprecated"]

    /// `^[A-Za-z0-9]+[A-Za-z0-9-]*[A-Za-z0-9]+$`.
    static func validName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard u.count >= 2, alnum(u.first!), alnum(u.last!) else { return false }
        return u.allSatisfy { alnum($0) || $0 == 45 }
    }

    static func validOS(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
    }

    /// Text that PHP's `strip_tags` would change (Scalr refuses it).
    static func hasTags(_ s: String) -> Bool { s.contains("<") && s.contains(">") }

    static func doc(_ image: Image) -> JSONValue? { image.extensions[vendor] }
    static func scope(_ image: Image) -> String? { doc(image)?["scope"]?.stringValue }

    static func iso(_ seconds: Int64) -> String { Timestamp.format(seconds) }

    /// The Image object (7.x member set).
    static func render(_ image: Image) -> JSONValue {
        let d = doc(image)
        func s(_ k: String) -> JSONValue { d?[k]?.stringValue.map { .string($0) } ?? .null }
        func b(_ k: String, _ def: Bool) -> JSONValue { .bool(d?[k]?.boolValue ?? def) }
        let platform = d?["cloudPlatform"]?.stringValue ?? ""
        return .object([
            ("id", .string(image.id)), ("name", .string(image.name ?? "")), ("cloudImageId", s("cloudImageId")),
            ("cloudLocation", s("cloudLocation")), ("cloudPlatform", s("cloudPlatform")),
            ("cloudFeatures", d?["cloudFeatures"] ?? .object([("type", .string(platform == "ec2" ? "AwsImageCloudFeatures" : "ImageCloudFeatures"))])),
            ("added", .string(iso(image.createdAt))), ("lastUsed", image.lastUsedAt.map { .string(iso($0)) } ?? .null),
            ("scalrAgentInstalled", b("scalrAgentInstalled", true)), ("cloudInitInstalled", b("cloudInitInstalled", false)),
            ("architecture", .string(image.properties["architecture"] ?? "x86_64")), ("size", { if case .int(let n)? = d?["size"] { return .int(n) } else { return .null } }()), ("deprecated", b("deprecated", false)),
            ("source", .string("Manual")), ("status", .string("active")), ("type", s("type")), ("statusError", .null),
            ("scope", s("scope")), ("os", .object([("id", s("os"))])),
        ])
    }

    /// A filter's value compared as Scalr does: exact text; booleans `false`/`0`/empty are false.
    static func matches(_ rendered: JSONValue, _ filter: String, _ wanted: String) -> Bool {
        let value = filter == "os" ? rendered["os"]?["id"] : rendered[filter]
        switch value {
        case .bool(let b)?:
            let w = !(wanted.isEmpty || wanted == "0" || wanted.lowercased() == "false")
            return b == w
        case .string(let s)?: return s == wanted
        default: return wanted.isEmpty
        }
    }
}
