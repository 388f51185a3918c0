import ImageCore
import Logging
import NIOCore

/// Publishes events to RabbitMQ in oslo.messaging's envelope, one connection, in order. While the
/// broker is away the event in hand is kept and retried after a back-off (0.25 s doubling to 2 s);
/// the queue meanwhile fills and drops what does not fit.
final class AMQPPublisher: Sendable {
    let endpoint: AMQPEndpoint
    let options: NotificationOptions
    let queue: EventQueue
    let logger: Logger
    static let target = "amqp"

    init(endpoint: AMQPEndpoint, options: NotificationOptions, logger: Logger) {
        self.endpoint = endpoint; self.options = options; self.logger = logger
        queue = EventQueue(target: Self.target, limit: options.queueLimit)
    }

    func run() async {
        var events = queue.events.makeAsyncIterator()
        var pending: ImageEvent?
        var backoff = 0.25
        NotificationMetrics.connected(Self.target, false)
        while !Task.isCancelled {
            let connection: AMQPConnection
            var replies: AMQPConnection.Replies
            do {
                (connection, replies) = try await AMQPConnection.open(endpoint, exchange: options.exchange, durable: options.durable,
                                                           timeout: .seconds(5))
            } catch {
                NotificationMetrics.failed(Self.target)
                logger.warning("notifications: cannot connect to the broker", metadata: ["broker": "\(endpoint)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 2)
                continue
            }
            logger.info("notifications: connected to the broker", metadata: ["broker": "\(endpoint)", "exchange": .string(options.exchange)])
            NotificationMetrics.connected(Self.target, true)
            backoff = 0.25
            do {
                while true {
                    if pending == nil { pending = await events.next() }
                    guard let event = pending else { connection.close(); return }  // shut down
                    try await connection.publish(routingKey: Envelopes.routingKey(topic: options.topic, event),
                                                 body: Envelopes.oslo(event, publisherId: options.publisherId),
                                                 durable: options.durable, replies: &replies)
                    pending = nil
                    NotificationMetrics.sent(Self.target)
                }
            } catch {
                NotificationMetrics.failed(Self.target)
                NotificationMetrics.connected(Self.target, false)
                logger.warning("notifications: lost the broker, reconnecting", metadata: ["broker": "\(endpoint)", "error": "\(error)"])
                connection.close()
            }
        }
    }
}
