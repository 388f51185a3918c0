import Foundation
import Metrics
import Prometheus

/// The process's metrics: swift-metrics backed by one Prometheus registry, exposed at `/metrics`.
/// Bootstrapped once per process (several servers in one test process share it).
public enum Observability {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return true
    }()

    public static func bootstrap() { _ = bootstrapped }

    /// The Prometheus text exposition of every metric.
    public static func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return buffer
    }

    /// One request: counted by front-end, method and status, timed by front-end.
    static func record(frontend: String, method: String, status: Int, since start: ContinuousClock.Instant) {
        Counter(label: "imaged_http_requests_total", dimensions: [("frontend", frontend), ("method", method), ("status", String(status))]).increment()
        let elapsed = ContinuousClock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        Metrics.Timer(label: "imaged_http_request_duration_seconds", dimensions: [("frontend", frontend)], preferredDisplayUnit: .seconds)
            .recordNanoseconds(nanos)
    }
}
