import Foundation

/// Something the core changed, told to the outside world after the write (Glance's notifications):
/// Glance's event type (`image.create`, `image.member.update`, `task.success`…), a priority and
/// Glance's payload for it. Emitted once, by the core, whatever API made the change.
public struct ImageEvent: Sendable, Equatable {
    public enum Priority: String, Sendable {
        case info = "INFO", error = "ERROR"
    }

    public var type: String
    public var priority: Priority
    public var payload: JSONValue
    /// When the change happened (the envelope's timestamp).
    public var time: Date

    public init(_ type: String, priority: Priority = .info, payload: JSONValue, time: Date = Date()) {
        self.type = type; self.priority = priority; self.payload = payload; self.time = time
    }
}

/// Where the core's events go (the Notifications target publishes them to RabbitMQ and webhooks).
/// `emit` must return at once — queue or drop, never wait — because it runs inside API requests.
public protocol EventSink: Sendable {
    func emit(_ event: ImageEvent)
}

/// No notifications configured (the default).
public struct NoEvents: EventSink {
    public init() {}
    public func emit(_ event: ImageEvent) {}
}

/// Glance's payloads (glance/notifier.py), field for field.
public enum EventPayload {
    /// `format_image_notification`: never the locations (they may hold credentials).
    public static func image(_ image: Image, extra: [(String, JSONValue)] = []) -> JSONValue {
        let properties = image.properties.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }
        var fields: [(String, JSONValue)] = [
            ("id", .string(image.id)),
            ("name", image.name.map(JSONValue.string) ?? .null),
            ("status", .string(image.status.rawValue)),
            ("created_at", .string(Timestamp.format(image.createdAt))),
            ("updated_at", .string(Timestamp.format(image.updatedAt))),
            ("min_disk", .int(image.minDisk)),
            ("min_ram", .int(image.minRam)),
            ("protected", .bool(image.isProtected)),
            ("checksum", image.checksum.map(JSONValue.string) ?? .null),
            ("owner", image.owner.map(JSONValue.string) ?? .null),
            ("disk_format", image.diskFormat.map(JSONValue.string) ?? .null),
            ("container_format", image.containerFormat.map(JSONValue.string) ?? .null),
            ("size", image.size.map(JSONValue.int) ?? .null),
            ("virtual_size", image.virtualSize.map(JSONValue.int) ?? .null),
            ("is_public", .bool(image.visibility == .public)),
            ("visibility", .string(image.visibility.rawValue)),
            ("properties", .object(properties)),
            ("tags", .array(image.tags.map(JSONValue.string))),
            ("deleted", .bool(false)),
            ("deleted_at", .null),
        ]
        for (key, value) in extra {
            if let i = fields.firstIndex(where: { $0.0 == key }) { fields[i].1 = value } else { fields.append((key, value)) }
        }
        return .object(fields)
    }

    /// `image.delete`'s extra fields.
    public static func deleted(at seconds: Int64) -> [(String, JSONValue)] {
        [("deleted", .bool(true)), ("deleted_at", .string(Timestamp.format(seconds)))]
    }

    /// `_format_import_properties`: the import's target and failed stores as lists (image.prepare, image.upload).
    public static func importStores(_ image: Image) -> [(String, JSONValue)] {
        func list(_ key: String) -> JSONValue {
            .array((image.properties[key] ?? "").split(separator: ",").map { .string(String($0)) })
        }
        return [("os_glance_importing_to_stores", list(ImageService.importingToStoresKey)),
                ("os_glance_failed_import", list(ImageService.failedImportKey))]
    }

    /// `format_image_member_notification`.
    public static func member(_ m: ImageMember, deletedAt: Int64? = nil) -> JSONValue {
        .object([
            ("image_id", .string(m.imageId)),
            ("member_id", .string(m.memberId)),
            ("status", .string(m.status.rawValue)),
            ("created_at", .string(Timestamp.format(m.createdAt))),
            ("updated_at", .string(Timestamp.format(m.updatedAt))),
            ("deleted", .bool(deletedAt != nil)),
            ("deleted_at", deletedAt.map { .string(Timestamp.format($0)) } ?? .null),
        ])
    }

    /// `format_task_notification` (result and message are always null there).
    public static func task(_ t: ImageTask) -> JSONValue {
        .object([
            ("id", .string(t.id)),
            ("type", .string(t.type)),
            ("status", .string(t.status.rawValue)),
            ("result", .null),
            ("owner", t.owner.map(JSONValue.string) ?? .null),
            ("message", .null),
            ("expires_at", t.expiresAt.map { .string(Timestamp.format($0)) } ?? .null),
            ("created_at", .string(Timestamp.format(t.createdAt))),
            ("updated_at", .string(Timestamp.format(t.updatedAt))),
            ("deleted", .bool(false)),
            ("deleted_at", .null),
        ])
    }

    /// `image.send` (`_format_image_send`): who received how many bytes of whose image.
    public static func send(image: Image, bytesSent: Int64, receiverProject: String?, receiverUser: String?) -> JSONValue {
        .object([
            ("bytes_sent", .int(bytesSent)),
            ("image_id", .string(image.id)),
            ("owner_id", image.owner.map(JSONValue.string) ?? .null),
            ("receiver_tenant_id", receiverProject.map(JSONValue.string) ?? .null),
            ("receiver_user_id", receiverUser.map(JSONValue.string) ?? .null),
        ])
    }
}

extension ImageService {
    /// Hands an event to the configured sink (returns at once).
    package func emit(_ type: String, _ payload: JSONValue, priority: ImageEvent.Priority = .info) {
        config.events.emit(ImageEvent(type, priority: priority, payload: payload))
    }

    package func emit(_ type: String, image: Image, extra: [(String, JSONValue)] = []) {
        emit(type, EventPayload.image(image, extra: extra))
    }

    /// Task events (`task.create|run|processing|success|failure`), for the task runner and imports.
    public func emitTask(_ type: String, _ task: ImageTask) {
        emit(type, EventPayload.task(task))
    }

    /// `image.send` after a download to `receiver` (nil: a download no caller asked for).
    public func emitSend(_ image: Image, bytesSent: Int64, to receiver: Principal?) {
        emit("image.send", EventPayload.send(image: image, bytesSent: bytesSent,
                                             receiverProject: receiver?.projectId, receiverUser: receiver?.userId))
    }
}
