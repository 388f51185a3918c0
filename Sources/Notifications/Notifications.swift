import Foundation
import ImageCore
import ImageData
import Logging

/// What `--notify-*` configure. Off unless a broker URL or a webhook is given.
public struct NotificationOptions: Sendable {
    /// `--notify-url amqp://user:pass@host:5672/vhost`.
    public var amqpURL: String?
    /// `--notify-webhook URL` (repeatable).
    public var webhooks: [String] = []
    /// `--notify-queue`: events waiting per target before new ones are dropped.
    public var queueLimit = 1000
    /// `--notify-exchange`: oslo.messaging's control_exchange (Glance's `glance`).
    public var exchange = "glance"
    /// oslo.messaging's notification topic: routing keys `notifications.info`, `notifications.error`.
    public var topic = "notifications"
    /// oslo.messaging's default (`amqp_durable_queues = False`): a durable declare of an exchange a
    /// Glance created would be refused by the broker.
    public var durable = false
    /// Glance's `default_publisher_id`: `image.<host>`.
    public var publisherId = "image." + ProcessInfo.processInfo.hostName
    /// CloudEvents `source`.
    public var source = "/imaged/" + ProcessInfo.processInfo.hostName

    public init() {}

    public var enabled: Bool { amqpURL != nil || !webhooks.isEmpty }

    /// For the configuration summary (no password).
    public var description: String {
        guard enabled else { return "off" }
        var parts: [String] = []
        if let amqpURL { parts.append((AMQPEndpoint(url: amqpURL)?.description ?? amqpURL) + " exchange \(exchange)") }
        parts += webhooks.map { "webhook \($0)" }
        return parts.joined(separator: ", ") + ", queue \(queueLimit)"
    }
}

/// The core's event sink when notifications are on: every event goes to each target's bounded
/// queue; each target publishes from its queue in its own task.
public final class Notifications: EventSink {
    let amqp: AMQPPublisher?
    let webhooks: [WebhookPublisher]

    /// nil when nothing is configured; throws on a broker URL that is not `amqp://host…`.
    public init?(_ options: NotificationOptions, logger: Logger) throws {
        guard options.enabled else { return nil }
        if let url = options.amqpURL {
            guard let endpoint = AMQPEndpoint(url: url) else {
                throw NotificationConfigError(description: "--notify-url: '\(url)' is not amqp://user:password@host:port/vhost")
            }
            amqp = AMQPPublisher(endpoint: endpoint, options: options, logger: logger)
        } else {
            amqp = nil
        }
        webhooks = options.webhooks.map { WebhookPublisher(url: $0, options: options, logger: logger) }
    }

    public func emit(_ event: ImageEvent) {
        amqp?.queue.offer(event)
        for w in webhooks { w.queue.offer(event) }
    }

    /// Starts the publishers (events emitted before wait in their queues). `poster` sends webhooks.
    public func start(poster: any CallbackSender) {
        if let amqp { Task { await amqp.run() } }
        for w in webhooks { Task { await w.run(poster: poster) } }
    }
}

public struct NotificationConfigError: Error, CustomStringConvertible {
    public var description: String
}
