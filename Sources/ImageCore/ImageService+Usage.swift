/// When an image was last put to use, the core's rule for every API: recording a VM against the
/// image (Danube's `PUT /image/<name>/vm/<host>/`, or any write that adds a host to the recorded VMs)
/// is a use, and the image's last-used time becomes the time of that write. Kept in the image's
/// `usage` document (`{"lastUsed": <epoch seconds>}`), not a column: no catalog migration.
extension Image {
    static let usageKey = "usage"

    /// Seconds since the epoch of the last use (nil: never used).
    public var lastUsedAt: Int64? {
        if case .int(let t)? = extensions[Self.usageKey]?["lastUsed"] { return t }
        return nil
    }
}

extension ImageService {
    /// Applied inside every write (`mutate`): a host recorded now that was not before is a use.
    static func noteUse(_ image: inout Image, before: Image, now: Int64) {
        let added = Set(image.recordedVMs).subtracting(before.recordedVMs)
        guard !added.isEmpty else { return }
        image.extensions[Image.usageKey] = JSONValue.merging(image.extensions[Image.usageKey], [("lastUsed", .int(max(now, before.lastUsedAt ?? now)))])
    }
}
