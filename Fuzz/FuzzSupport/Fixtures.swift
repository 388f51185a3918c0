import ImageCore

/// Callers and stored images the front-end targets decode requests for.
public enum Fixtures {
    public static let project = "p1"
    public static let now: Int64 = 1_700_000_000

    /// An admin, a member of `project`, a reader of `project`, a member without a project.
    public static func principal(_ choice: UInt8) -> Principal {
        switch choice % 4 {
        case 0: return Principal(userId: "admin", projectId: "p-admin", roles: ["admin"], userName: "admin")
        case 1: return Principal(userId: "alice", projectId: project, roles: ["member"], userName: "alice")
        case 2: return Principal(userId: "rita", projectId: project, roles: ["reader"], userName: "rita")
        default: return Principal(userId: "nobody", projectId: nil, roles: ["member"])
        }
    }

    /// An image of `project` in the status `choice` picks, with properties, tags and vendor documents.
    public static func image(_ choice: UInt8, extensions: [String: JSONValue] = [:]) -> Image {
        let statuses: [ImageStatus] = [.queued, .active, .deactivated, .importing, .pendingDelete, .killed]
        return Image(id: "11111111-2222-4333-8444-555555555555", name: "cirros", status: statuses[Int(choice) % statuses.count],
                     visibility: choice & 0x40 == 0 ? .shared : .public, owner: project, containerFormat: "bare", diskFormat: "qcow2",
                     size: 13_267_968, virtualSize: 117_440_512, checksum: "443b7623e27ecf03dc9e01ee93f67afe",
                     osHashAlgo: "sha512", osHashValue: String(repeating: "ab", count: 64), createdAt: now - 86_400,
                     updatedAt: now, tags: ["a", "b"], properties: ["architecture": "x86_64", "os_distro": "cirros", "stores": "default"],
                     version: 3, extensions: extensions)
    }
}
