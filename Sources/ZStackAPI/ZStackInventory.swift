import Crypto
import Foundation
import ImageCore

/// How the core's images look to ZStack: `ImageInventory` with its backup storage refs. What has
/// no core attribute (description, url, mediaType, guestOsType, platform, system, virtio, tags) is
/// kept in the image's `zstack` extension document; name, format, architecture, sizes, checksum,
/// dates and status come from the core, so changes made through other APIs show here.
package enum ZStackImage {
    static let vendor = "zstack"
    static let inventoryClass = "org.zstack.header.image.ImageInventory"
    static let refClass = "org.zstack.header.image.ImageBackupStorageRefInventory"

    static let mediaTypes = ["RootVolumeTemplate", "ISO", "DataVolumeTemplate"]
    static let formats = ["qcow2", "raw", "iso", "vmdk"]
    static let platforms = ["Linux", "Windows", "Other", "Paravirtualization", "WindowsVirtio"]
    static let architectures = ["x86_64", "aarch64", "mips64el", "loongarch64"]

    /// ZStack uuids are the core's without dashes.
    static func uuid(_ coreId: String) -> String { coreId.replacingOccurrences(of: "-", with: "") }

    /// The core id of a ZStack uuid (32 hex, or already dashed); nil when it is neither.
    static func coreId(_ uuid: String) -> String? {
        if ImageID.isValid(uuid) { return uuid.lowercased() }
        let u = Array(uuid.lowercased().utf8)
        guard u.count == 32, u.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        let s = String(decoding: u, as: UTF8.self)
        func part(_ a: Int, _ b: Int) -> Substring { s[s.index(s.startIndex, offsetBy: a)..<s.index(s.startIndex, offsetBy: b)] }
        return "\(part(0, 8))-\(part(8, 12))-\(part(12, 16))-\(part(16, 20))-\(part(20, 32))"
    }

    /// The ZStack status of a core status. Images being filled are Downloading; created without
    /// data yet (through another API) Creating; softly deleted Deleted (recoverable).
    static func status(_ image: Image) -> String {
        switch image.status {
        case .queued: return image.extensions[vendor]?["url"] != nil ? "Downloading" : "Creating"
        case .saving, .uploading, .importing: return "Downloading"
        case .active, .deactivated: return "Ready"
        case .killed: return "Error"
        case .pendingDelete, .deleted: return "Deleted"
        }
    }

    /// Enabled/Disabled: the core's deactivation, or what it was when deleted softly.
    static func state(_ image: Image) -> String {
        switch image.status {
        case .deactivated: return "Disabled"
        case .pendingDelete: return image.extensions[vendor]?["state"]?.stringValue ?? "Enabled"
        default: return "Enabled"
        }
    }

    static func string(_ image: Image, _ key: String) -> String? { image.extensions[vendor]?[key]?.stringValue }
    static func bool(_ image: Image, _ key: String) -> Bool? { image.extensions[vendor]?[key]?.boolValue }
    static func tags(_ image: Image, _ key: String) -> [String] {
        image.extensions[vendor]?[key]?.arrayItems?.compactMap(\.stringValue) ?? []
    }

    /// Stores the image was deleted from while it stays Ready on others (DeleteImage with some
    /// `backupStorageUuids`): their refs show Deleted until recovered or expunged there.
    static let deletedOnKey = "deletedOn"
    static func deletedOn(_ image: Image) -> [String] { tags(image, deletedOnKey) }

    static func guestOsType(platform: String) -> String { platform == "Windows" ? "Windows" : platform == "Other" ? "Other" : "Linux" }

    /// The inventory, fields in ZStack's order. `stores` describes the backup storages; `pending`
    /// are the stores an AddImage still fills (their refs show Downloading).
    package static func inventory(_ image: Image, stores: ZStackBackupStorages, pending: [String], uploadURL: String? = nil) -> [(String, JSONValue)] {
        let platform = string(image, "platform") ?? "Linux"
        var fields: [(String, JSONValue)] = [
            ("uuid", .string(uuid(image.id))),
            ("name", .string(image.name ?? "")),
            ("description", .string(string(image, "description") ?? "")),
            ("state", .string(state(image))),
            ("status", .string(status(image))),
            ("size", .int(image.virtualSize ?? image.size ?? 0)),
            ("actualSize", .int(image.size ?? 0)),
        ]
        if let md5 = image.checksum { fields.append(("md5Sum", .string(md5))) }
        if let url = string(image, "url") { fields.append(("url", .string(url))) }
        fields += [
            ("mediaType", .string(string(image, "mediaType") ?? (image.diskFormat == "iso" ? "ISO" : "RootVolumeTemplate"))),
            ("guestOsType", .string(string(image, "guestOsType") ?? guestOsType(platform: platform))),
            ("type", .string("zstack")),
            ("platform", .string(platform)),
            ("architecture", .string(image.properties["architecture"] ?? "x86_64")),
        ]
        if let format = image.diskFormat { fields.append(("format", .string(format))) }
        fields += [
            ("system", .bool(bool(image, "system") ?? false)),
            ("virtio", .bool(bool(image, "virtio") ?? true)),
            ("createDate", .string(GsonDate.format(image.createdAt))),
            ("lastOpDate", .string(GsonDate.format(image.updatedAt))),
            ("backupStorageRefs", .array(refs(image, stores: stores, pending: pending, uploadURL: uploadURL).map { .object($0) })),
        ]
        return fields
    }

    /// `uploadURL`: where an `upload://` image waits for its bytes (the ref's installPath meanwhile).
    static func refs(_ image: Image, stores: ZStackBackupStorages, pending: [String], uploadURL: String? = nil) -> [[(String, JSONValue)]] {
        let held: [String]
        let refStatus: String
        switch image.status {
        case .active, .deactivated: (held, refStatus) = (stores.ids(of: image), "Ready")
        case .pendingDelete: (held, refStatus) = (stores.ids(of: image), "Deleted")
        case .queued, .saving, .uploading, .importing: (held, refStatus) = (pending, "Downloading")
        case .killed, .deleted: return []
        }
        let now = Timestamp.now()
        let deletedOn = refStatus == "Ready" ? Set(self.deletedOn(image)) : []
        return held.compactMap { id in
            guard let bs = stores.byStoreId(id) else { return nil }
            let refStatus = deletedOn.contains(id) ? "Deleted" : refStatus
            var ref: [(String, JSONValue)] = [
                ("imageUuid", .string(uuid(image.id))),
                ("backupStorageUuid", .string(bs.uuid)),
                ("installPath", .string(refStatus == "Downloading" ? uploadURL ?? "" : "imaged://\(bs.storeId)/\(BlobKey.image(image.id))")),
                ("status", .string(refStatus)),
            ]
            if refStatus == "Ready", let export = ZStackExports.record(image, bsUuid: bs.uuid, now: now),
               let url = export["url"]?.stringValue, let md5 = export["md5"]?.stringValue {
                ref += [("exportUrl", .string(url)), ("exportMd5Sum", .string(md5))]
            }
            ref += [
                ("createDate", .string(GsonDate.format(image.createdAt))),
                ("lastOpDate", .string(GsonDate.format(image.updatedAt))),
            ]
            return ref
        }
    }
}

/// imaged's blob stores as ZStack backup storages. A store's uuid is derived from its name, so
/// every node of a cluster shows the same uuid without storing it.
public struct ZStackBackupStorages: Sendable {
    public struct Storage: Sendable {
        public let storeId: String
        public let uuid: String
        public let description: String
        public let capacity: BlobStoreCapacity?
    }

    let stores: BlobStores
    let started: Int64

    /// Every node must describe a backup storage alike (a client may ask any of them), so its dates are one fixed
    /// instant rather than the answering node's start time: 2026-01-01T00:00:00Z.
    public static let fixedDate: Int64 = 1_767_225_600

    public init(stores: BlobStores, started: Int64 = ZStackBackupStorages.fixedDate) {
        self.stores = stores; self.started = started
    }

    static func uuid(ofStore id: String) -> String {
        Insecure.MD5.hash(data: Array("imaged-store:\(id)".utf8)).map { String(format: "%02x", $0) }.joined()
    }

    func all() async -> [Storage] {
        var out: [Storage] = []
        for store in stores.all {
            let capacity = await (store as? any BlobStoreCapacityReporting)?.capacity()
            out.append(Storage(storeId: store.id, uuid: Self.uuid(ofStore: store.id), description: store.description, capacity: capacity))
        }
        return out
    }

    func byStoreId(_ id: String) -> Storage? {
        guard stores.store(id) != nil else { return nil }
        return Storage(storeId: id, uuid: Self.uuid(ofStore: id), description: "", capacity: nil)
    }

    func storeId(ofUUID uuid: String) -> String? {
        stores.all.first { Self.uuid(ofStore: $0.id) == uuid.lowercased() }?.id
    }

    func ids(of image: Image) -> [String] { stores.ids(of: image) }

    /// `BackupStorageInventory`; capacities are left out (null) when a store cannot tell (S3).
    func inventory(_ s: Storage) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("uuid", .string(s.uuid)), ("name", .string(s.storeId)), ("url", .string("imaged://\(s.storeId)")),
            ("description", .string(s.description)),
        ]
        if let c = s.capacity {
            fields += [("totalCapacity", .int(c.total)), ("availableCapacity", .int(c.available))]
        }
        fields += [("type", .string("Addon")), ("state", .string("Enabled")), ("status", .string("Connected")),
                   ("createDate", .string(GsonDate.format(started))), ("lastOpDate", .string(GsonDate.format(started))),
                   ("attachedZoneUuids", .array([]))]
        return .object(fields)
    }
}

/// Gson's default date form, `Jan 6, 2017 3:51:16 AM` (the Java SDK parses exactly this), in UTC.
enum GsonDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func format(_ seconds: Int64) -> String {
        let c = Timestamp.components(seconds)
        let h12 = c.hour % 12 == 0 ? 12 : c.hour % 12
        return "\(months[c.month - 1]) \(c.day), \(c.year) \(h12):\(pad(c.minute)):\(pad(c.second)) \(c.hour < 12 ? "AM" : "PM")"
    }

    /// Seconds since 1970 of a query value: Gson's form, `yyyy-MM-dd HH:mm:ss`, or epoch milliseconds.
    static func parse(_ text: String) -> Int64? {
        if let ms = Int64(text) { return ms / 1000 }
        let s = text.trimmingCharacters(in: .whitespaces)
        // yyyy-MM-dd[ HH:mm:ss]
        let iso = s.split(whereSeparator: { $0 == "-" || $0 == " " || $0 == ":" || $0 == "T" }).map(String.init)
        if iso.count == 3 || iso.count == 6, let y = Int(iso[0]), iso[0].count == 4 {
            let n = iso.compactMap(Int.init)
            guard n.count == iso.count else { return nil }
            return Timestamp.seconds(year: y, month: n[1], day: n[2], hour: n.count > 3 ? n[3] : 0,
                                     minute: n.count > 4 ? n[4] : 0, second: n.count > 5 ? n[5] : 0)
        }
        // MMM d, yyyy h:mm:ss a
        let words = s.replacingOccurrences(of: ",", with: "").split(separator: " ").map(String.init)
        guard words.count == 5, let month = months.firstIndex(of: words[0]), let day = Int(words[1]), let year = Int(words[2]) else { return nil }
        let hms = words[3].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3, words[4] == "AM" || words[4] == "PM" else { return nil }
        let hour = hms[0] % 12 + (words[4] == "PM" ? 12 : 0)
        return Timestamp.seconds(year: year, month: month + 1, day: day, hour: hour, minute: hms[1], second: hms[2])
    }

    static func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
