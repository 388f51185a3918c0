import Foundation

/// The lifecycle the core keeps for every image (OpenStack's, which other front-ends map).
public enum ImageStatus: String, Sendable, CaseIterable, Codable {
    case queued, saving, uploading, importing, active, killed, deleted
    case pendingDelete = "pending_delete"
    case deactivated

    /// Statuses that never appear in lists nor to non-admin readers.
    public var isGone: Bool { self == .deleted || self == .killed || self == .pendingDelete }
}

public enum Visibility: String, Sendable, CaseIterable, Codable {
    case `public`, community, shared, `private`
}

public enum MemberStatus: String, Sendable, CaseIterable, Codable {
    case pending, accepted, rejected
}

/// One catalog entry. Timestamps are whole seconds since the epoch (what the APIs show).
public struct Image: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var status: ImageStatus
    public var visibility: Visibility
    public var isProtected: Bool
    public var osHidden: Bool
    public var owner: String?
    public var containerFormat: String?
    public var diskFormat: String?
    public var size: Int64?
    public var virtualSize: Int64?
    public var minDisk: Int64
    public var minRam: Int64
    public var checksum: String?
    public var osHashAlgo: String?
    public var osHashValue: String?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var deletedAt: Int64?
    /// A set: kept sorted and without duplicates.
    public var tags: [String]
    /// Extra (free-form) properties, always strings.
    public var properties: [String: String]
    /// Optimistic-concurrency counter, bumped by every catalog update.
    public var version: Int64
    /// Per-vendor documents (`avi`, `zstack`, `danube`, `scalr`): fields a vendor API has and the core
    /// has no meaning for, stored and returned untouched so nothing a client sent is lost.
    public var extensions: [String: JSONValue]
    /// The uniqueness the image claims among live images (set by the front-end that created it,
    /// enforced by the catalog on every write that could break it). nil: none, as in Glance.
    public var nameRule: NameRule?
    /// The node writing the image's data while it is `saving` or `uploading` (nil otherwise): on a
    /// shared catalog, an upload whose node stopped beating is requeued by another node's reaper.
    public var writerNode: String?

    public init(
        id: String, name: String? = nil, status: ImageStatus = .queued, visibility: Visibility = .shared,
        isProtected: Bool = false, osHidden: Bool = false, owner: String? = nil,
        containerFormat: String? = nil, diskFormat: String? = nil, size: Int64? = nil, virtualSize: Int64? = nil,
        minDisk: Int64 = 0, minRam: Int64 = 0, checksum: String? = nil, osHashAlgo: String? = nil,
        osHashValue: String? = nil, createdAt: Int64, updatedAt: Int64, deletedAt: Int64? = nil,
        tags: [String] = [], properties: [String: String] = [:], version: Int64 = 0,
        extensions: [String: JSONValue] = [:], nameRule: NameRule? = nil, writerNode: String? = nil
    ) {
        self.id = id; self.name = name; self.status = status; self.visibility = visibility
        self.isProtected = isProtected; self.osHidden = osHidden; self.owner = owner
        self.containerFormat = containerFormat; self.diskFormat = diskFormat; self.size = size
        self.virtualSize = virtualSize; self.minDisk = minDisk; self.minRam = minRam; self.checksum = checksum
        self.osHashAlgo = osHashAlgo; self.osHashValue = osHashValue; self.createdAt = createdAt
        self.updatedAt = updatedAt; self.deletedAt = deletedAt; self.tags = tags; self.properties = properties
        self.version = version; self.extensions = extensions; self.nameRule = nameRule
        self.writerNode = writerNode
    }
}

/// A project an image is shared with.
public struct ImageMember: Sendable, Equatable {
    public var imageId: String
    public var memberId: String
    public var status: MemberStatus
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(imageId: String, memberId: String, status: MemberStatus, createdAt: Int64, updatedAt: Int64) {
        self.imageId = imageId; self.memberId = memberId; self.status = status
        self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

/// Who is calling. Roles are lower-cased and already include implied ones (admin ⇒ member ⇒ reader).
/// Who is calling, whatever proved it (static token, Keystone token, local account or API key).
public struct Principal: Sendable, Equatable {
    public var userId: String
    /// The project the credential is scoped to; image ownership and policy are per project.
    public var projectId: String?
    public var roles: Set<String>
    public var userName: String?
    public var projectName: String?
    /// The user's domain (Keystone), nil for local credentials.
    public var domainId: String?

    public init(userId: String, projectId: String?, roles: some Sequence<String>,
                userName: String? = nil, projectName: String? = nil, domainId: String? = nil) {
        self.userId = userId
        self.projectId = projectId
        self.roles = Principal.expand(roles)
        self.userName = userName
        self.projectName = projectName
        self.domainId = domainId
    }

    public var isAdmin: Bool { roles.contains("admin") }
    public var isMember: Bool { roles.contains("member") }
    public var isReader: Bool { roles.contains("reader") }

    /// Keystone's default implied roles: admin ⇒ member ⇒ reader.
    static func expand(_ roles: some Sequence<String>) -> Set<String> {
        var set = Set(roles.map { $0.lowercased() })
        if set.contains("admin") { set.insert("member") }
        if set.contains("member") { set.insert("reader") }
        return set
    }
}

/// A failure the caller can act on. Each front-end renders it in its own format.
public struct ImageError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case badRequest, unauthorized, forbidden, notFound, conflict, payloadTooLarge
        case unsupportedMediaType, gone, rangeNotSatisfiable, unavailable, `internal`
        /// The store has no room for the data (disk full): 507, or the API's equivalent.
        case insufficientStorage
        /// Another live image already holds a value the image's `NameRule` keeps unique.
        case duplicate
        /// VMs are recorded against the image: it cannot be deleted.
        case inUse
    }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }

    public static func badRequest(_ m: String) -> ImageError { .init(.badRequest, m) }
    public static func forbidden(_ m: String) -> ImageError { .init(.forbidden, m) }
    public static func notFound(_ m: String) -> ImageError { .init(.notFound, m) }
    public static func conflict(_ m: String) -> ImageError { .init(.conflict, m) }
    public static func tooLarge(_ m: String) -> ImageError { .init(.payloadTooLarge, m) }
    public var description: String { "\(kind): \(message)" }
}

public enum ImageID {
    /// Caller-chosen ids must look like a UUID (any case, hyphenated); stored lower-case.
    public static func isValid(_ s: String) -> Bool {
        guard s.utf8.count == 36 else { return false }
        var i = 0
        for c in s.utf8 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !Self.isHex(c) { return false }
            i += 1
        }
        return true
    }

    static func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
    }

    /// A new random (version 4) UUID, lower-case. Not Foundation's `UUID()`, which on Linux opens,
    /// reads and closes `/dev/urandom` for each one (~3 % of a GET, which makes a request id): the
    /// 16 bytes come from the system generator (`getrandom`) through `RandomBytes`, with no file.
    public static func generate() -> String {
        let (high, low) = RandomBytes.shared.next128()
        return format(high: high, low: low)
    }

    /// The UUID of 128 random bits, with the version and variant bits set.
    static func format(high randomHigh: UInt64, low randomLow: UInt64) -> String {
        let high = randomHigh & ~0xF000 | 0x4000                        // version 4
        let low = randomLow & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000  // variant 10
        return String(unsafeUninitializedCapacity: 36) { out in
            let digits: StaticString = "0123456789abcdef"
            var i = 0
            for byte in 0..<16 {
                let word = byte < 8 ? high : low
                let b = Int(truncatingIfNeeded: word >> UInt64(56 - 8 * (byte % 8)))
                out[i] = digits.utf8Start[(b >> 4) & 0xF]
                out[i + 1] = digits.utf8Start[b & 0xF]
                i += 2
                if byte == 3 || byte == 5 || byte == 7 || byte == 9 {
                    out[i] = UInt8(ascii: "-")
                    i += 1
                }
            }
            return i
        }
    }
}

extension Image {
    /// Hosts recorded as using the image (the Danube front-end's admin endpoint keeps them in its
    /// document). `ImageService` refuses to delete an image while any is recorded, whatever the API.
    public var recordedVMs: [String] {
        extensions["danube"]?["vms"]?.arrayItems?.compactMap(\.stringValue) ?? []
    }
}
