import ImageCore
import ImageData
import Logging

/// POSTs each event as a CloudEvent to one URL, in order, through the URL guard's client (short
/// timeouts, no redirects). Three attempts, then the event is counted as failed and skipped.
final class WebhookPublisher: Sendable {
    let url: String
    let options: NotificationOptions
    let queue: EventQueue
    let logger: Logger
    static let target = "webhook"

    init(url: String, options: NotificationOptions, logger: Logger) {
        self.url = url; self.options = options; self.logger = logger
        queue = EventQueue(target: Self.target, limit: options.queueLimit)
    }

    func run(poster: any CallbackSender) async {
        for await event in queue.events {
            let body = Envelopes.cloudEvent(event, source: options.source)
            var delivered = false
            for attempt in 0..<3 where !delivered {
                if attempt > 0 { try? await Task.sleep(for: .seconds(0.5 * Double(attempt))) }
                delivered = await poster.post(url, body: body,
                                              headers: [("Content-Type", "application/cloudevents+json; charset=utf-8")],
                                              asAdmin: true)
            }
            if delivered {
                NotificationMetrics.sent(Self.target)
            } else {
                NotificationMetrics.failed(Self.target)
                logger.warning("notifications: webhook did not take an event", metadata: ["url": .string(url), "event": .string(event.type)])
            }
        }
    }
}
