import CoreMetrics
import ImageCore

/// One target's bounded queue: `offer` never waits; when the queue is full the new event is
/// dropped and counted, so a slow or absent receiver costs requests nothing.
final class EventQueue: Sendable {
    let target: String
    let events: AsyncStream<ImageEvent>
    private let input: AsyncStream<ImageEvent>.Continuation

    init(target: String, limit: Int) {
        self.target = target
        (events, input) = AsyncStream.makeStream(of: ImageEvent.self, bufferingPolicy: .bufferingOldest(max(1, limit)))
    }

    func offer(_ event: ImageEvent) {
        if case .dropped = input.yield(event) { NotificationMetrics.dropped(target) }
    }

    func finish() { input.finish() }
}

/// `imaged_notifications_{sent,failed,dropped}_total{target}` and `imaged_notifications_connected{target}`.
enum NotificationMetrics {
    static func sent(_ target: String) { Counter(label: "imaged_notifications_sent_total", dimensions: [("target", target)]).increment() }
    static func failed(_ target: String) { Counter(label: "imaged_notifications_failed_total", dimensions: [("target", target)]).increment() }
    static func dropped(_ target: String) { Counter(label: "imaged_notifications_dropped_total", dimensions: [("target", target)]).increment() }
    static func connected(_ target: String, _ up: Bool) {
        Gauge(label: "imaged_notifications_connected", dimensions: [("target", target)]).record(up ? 1 : 0)
    }
}
