import Foundation
import Synchronization

/// What one request did, as far as the core and identity know it: the front door opens a record per
/// request (`AuditTrail.$current`), the service's write methods and the identity checks fill it, and the
/// front door writes it as one audit line with the status. Because the core is the one door, every
/// front-end's writes are recorded without the front-end doing anything.
public final class AuditRecord: Sendable {
    public struct Facts: Sendable, Equatable {
        public var action: String?
        public var imageId: String?
        public var imageName: String?
        public var user: String?
        public var project: String?
        public var keyId: String?
        public init(action: String? = nil, imageId: String? = nil, imageName: String? = nil,
                    user: String? = nil, project: String? = nil, keyId: String? = nil) {
            self.action = action; self.imageId = imageId; self.imageName = imageName
            self.user = user; self.project = project; self.keyId = keyId
        }
    }

    private let state = Mutex(Facts())
    public init() {}

    public var facts: Facts { state.withLock { $0 } }

    /// The first action noted is the request's (a Danube import creates, then imports: it is a create);
    /// the image of that action likewise; later notes only fill what is still unknown.
    func note(action: String?, imageId: String?) {
        state.withLock { f in
            if f.action == nil, let action {
                f.action = action
                if let imageId { f.imageId = imageId.lowercased() }
            } else if f.imageId == nil, let imageId {
                f.imageId = imageId.lowercased()
            }
        }
    }

    /// The image as loaded or written: its id when none is known yet, its (latest) name when it is the
    /// request's image.
    func note(image: Image) {
        state.withLock { f in
            if f.imageId == nil { f.imageId = image.id }
            if f.imageId == image.id, let name = image.name { f.imageName = name }
        }
    }

    /// The caller: the authenticated principal replaces a name only attempted.
    func note(principal p: Principal) {
        state.withLock { f in
            f.user = p.userName ?? p.userId
            f.project = p.projectName ?? p.projectId
        }
    }

    func note(attemptedUser name: String) {
        state.withLock { f in if f.user == nil { f.user = name } }
    }

    func note(keyId: String) {
        state.withLock { f in f.keyId = keyId }
    }
}

/// The task-local record of the request being served (nil outside a request: tools, background tasks
/// started detached). Notes outside a request are dropped.
public enum AuditTrail {
    @TaskLocal public static var current: AuditRecord?

    public static func note(_ action: String? = nil, imageId: String? = nil, by p: Principal? = nil) {
        guard let record = current else { return }
        record.note(action: action, imageId: imageId)
        if let p { record.note(principal: p) }
    }

    public static func note(image: Image) { current?.note(image: image) }
    public static func note(principal p: Principal) { current?.note(principal: p) }
    /// A user name presented with a password (a failed login is audited under the name tried).
    public static func note(attemptedUser name: String) { current?.note(attemptedUser: name) }
    /// The API key / access key id of a signed or key-authenticated request (never its secret).
    public static func note(keyId: String) { current?.note(keyId: keyId) }
}

/// One audit line: the record's facts plus what the front door knows (time, request id, client, API,
/// method, redacted path, status).
public struct AuditLine: Sendable, Equatable, Codable {
    public var time: String
    public var requestId: String
    public var client: String?
    public var api: String
    public var method: String
    public var path: String
    public var user: String?
    public var project: String?
    public var keyId: String?
    public var action: String
    public var imageId: String?
    public var imageName: String?
    public var status: Int
    public var result: String

    enum CodingKeys: String, CodingKey {
        case time, client, api, method, path, user, project, action, status, result
        case requestId = "request_id", keyId = "key_id", imageId = "image_id", imageName = "image_name"
    }

    public init(time: String, requestId: String, client: String?, api: String, method: String, path: String,
                facts: AuditRecord.Facts, action: String, status: Int) {
        self.time = time; self.requestId = requestId; self.client = client; self.api = api
        self.method = method; self.path = path
        self.user = facts.user; self.project = facts.project; self.keyId = facts.keyId
        self.action = action; self.imageId = facts.imageId; self.imageName = facts.imageName
        self.status = status
        self.result = status < 400 ? "ok" : "error"
    }

    /// Every field present (null when unknown) in a fixed order, so a line reads the same each time.
    public func encoded() -> String {
        func s(_ v: String?) -> String { v.map(Self.quote) ?? "null" }
        return "{\"time\":\(s(time)),\"request_id\":\(s(requestId)),\"client\":\(s(client)),\"api\":\(s(api)),"
            + "\"method\":\(s(method)),\"path\":\(s(path)),\"user\":\(s(user)),\"project\":\(s(project)),"
            + "\"key_id\":\(s(keyId)),\"action\":\(s(action)),\"image_id\":\(s(imageId)),"
            + "\"image_name\":\(s(imageName)),\"status\":\(status),\"result\":\(s(result))}"
    }

    /// A JSON string literal: quotes, backslashes and every control character escaped, so a name with a
    /// newline cannot split or forge a line.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}", "\u{2029}": out += String(format: "\\u%04x", scalar.value)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// RFC 3339 UTC with milliseconds.
    public static func timestamp(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}

extension PolicyAction {
    /// The audit action of a write checked under this policy action; nil for reads.
    public var auditAction: String? {
        switch self {
        case .addImage: "image.create"
        case .modifyImage, .publicizeImage, .communitizeImage: "image.update"
        case .deleteImage: "image.delete"
        case .uploadImage: "image.upload"
        case .deactivate: "image.deactivate"
        case .reactivate: "image.reactivate"
        case .copyImage: "image.copy"
        case .addMember: "member.create"
        case .deleteMember: "member.delete"
        case .modifyMember: "member.update"
        case .getImages, .getImage, .downloadImage, .getMember, .getMembers, .getUsage, .tasksAPIAccess: nil
        case .addImageLocation: "image.location_add"
        case .deleteImageLocation: "image.store_delete"
        case .fetchImageLocation, .getImageLocation, .storesInfoDetail: nil
        case .cacheImage, .cacheList, .cacheDelete, .cacheClean, .cachePrune, .listCachedNodes: nil  // this node's cache, not the image
        }
    }
}

/// What `imaged audit` keeps of an audit file: lines matching every filter given.
public struct AuditFilter: Sendable {
    public var imageId: String?
    public var user: String?
    public var project: String?
    public var since: Date?

    public init(imageId: String? = nil, user: String? = nil, project: String? = nil, since: Date? = nil) {
        // The id as any front-end shows it: Avi's `image-<uuid>`, ZStack's uuid without dashes.
        self.imageId = imageId.map { id in
            var id = id.lowercased()
            if id.hasPrefix("image-") { id.removeFirst(6) }
            if id.count == 32, !id.contains("-") {
                let c = Array(id)
                id = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(c[$0]) }.joined(separator: "-")
            }
            return id
        }
        self.user = user; self.project = project; self.since = since
    }

    public func matches(_ line: AuditLine) -> Bool {
        if let imageId, line.imageId?.lowercased() != imageId { return false }
        if let user, line.user != user { return false }
        if let project, line.project != project { return false }
        if let since {
            guard let time = AuditLine.date(line.time), time >= since else { return false }
        }
        return true
    }

    /// `--since`: RFC 3339 (`2026-12-03T19:00:00Z`), a day (`2026-12-03`), or an age (`90s`, `30m`, `2h`, `7d`).
    public static func since(_ text: String, now: Date = Date()) -> Date? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last, let scale = units[unit], let n = Double(text.dropLast()), n >= 0 {
            return now.addingTimeInterval(-n * scale)
        }
        if let date = AuditLine.date(text) { return date }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        return day.date(from: text)
    }
}

extension AuditLine {
    /// An audit time back to a date (with or without fractional seconds).
    public static func date(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }
}
