import Foundation
import ImageCore

/// The two shapes an event leaves in: oslo.messaging's notification envelope (what Ceilometer
/// reads from RabbitMQ) and a CloudEvents 1.0 structured JSON document (webhooks).
public enum Envelopes {
    /// oslo.messaging's message (`message_id`, `publisher_id`, `event_type`, `priority`, `payload`,
    /// `timestamp` as Python's `str(datetime.utcnow())`).
    public static func osloMessage(_ e: ImageEvent, publisherId: String, messageId: String) -> JSONValue {
        .object([
            ("message_id", .string(messageId)),
            ("publisher_id", .string(publisherId)),
            ("event_type", .string(e.type)),
            ("priority", .string(e.priority.rawValue)),
            ("payload", e.payload),
            ("timestamp", .string(pythonTimestamp(e.time))),
        ])
    }

    /// The AMQP body: the message serialized once more inside `oslo.message` (envelope version 2.0).
    public static func oslo(_ e: ImageEvent, publisherId: String, messageId: String = newId()) -> [UInt8] {
        let inner = osloMessage(e, publisherId: publisherId, messageId: messageId).serialized
        return Array(JSONValue.object([("oslo.version", .string("2.0")), ("oslo.message", .string(inner))]).serialized.utf8)
    }

    /// The routing key: `<topic>.<priority>` in lower case (`notifications.info`, `notifications.error`).
    public static func routingKey(topic: String, _ e: ImageEvent) -> String {
        topic + "." + e.priority.rawValue.lowercased()
    }

    /// CloudEvents 1.0, structured mode: `type` is `org.openstack.` + the event type.
    public static func cloudEvent(_ e: ImageEvent, source: String, id: String = newId()) -> [UInt8] {
        Array(JSONValue.object([
            ("specversion", .string("1.0")),
            ("id", .string(id)),
            ("source", .string(source)),
            ("type", .string("org.openstack." + e.type)),
            ("time", .string(rfc3339(e.time))),
            ("datacontenttype", .string("application/json")),
            ("data", e.payload),
        ]).serialized.utf8)
    }

    public static func newId() -> String { ImageID.generate() }

    /// `2026-12-03 23:40:12.123456` (UTC).
    static func pythonTimestamp(_ date: Date) -> String {
        let (seconds, micros) = split(date)
        var text = Timestamp.format(seconds)  // 2026-12-03T23:40:12Z
        text.removeLast()
        return text.replacingOccurrences(of: "T", with: " ") + "." + pad(micros, 6)
    }

    /// `2026-12-03T23:40:12.123456Z`.
    static func rfc3339(_ date: Date) -> String {
        let (seconds, micros) = split(date)
        var text = Timestamp.format(seconds)
        text.removeLast()
        return text + "." + pad(micros, 6) + "Z"
    }

    private static func split(_ date: Date) -> (Int64, Int) {
        let t = date.timeIntervalSince1970
        let seconds = Int64(t.rounded(.down))
        return (seconds, min(999_999, Int(((t - Double(seconds)) * 1_000_000).rounded(.down))))
    }

    private static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
