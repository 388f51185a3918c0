import CoreMetrics
import Synchronization

/// The data path's metrics (through swift-metrics; the server picks the backend): bytes in and out,
/// uploads in flight, store errors, the task queue.
enum DataMetrics {
    private static let inFlight = Mutex(0)

    static func bytesIn(_ n: Int) { Counter(label: "imaged_image_bytes_in_total").increment(by: Int64(n)) }
    static func bytesOut(_ n: Int) { Counter(label: "imaged_image_bytes_out_total").increment(by: Int64(n)) }

    /// Runs one upload, staging or import counted in `imaged_uploads_in_flight`.
    static func upload<T>(_ work: () async throws -> T) async rethrows -> T {
        Gauge(label: "imaged_uploads_in_flight").record(inFlight.withLock { $0 += 1; return $0 })
        defer { Gauge(label: "imaged_uploads_in_flight").record(inFlight.withLock { $0 -= 1; return $0 }) }
        return try await work()
    }

    static func storeError(_ operation: String) {
        Counter(label: "imaged_store_errors_total", dimensions: [("operation", operation)]).increment()
    }

    static func tasks(pending: Int, processing: Int, oldestPendingAge: Int64) {
        Gauge(label: "imaged_tasks", dimensions: [("state", "pending")]).record(pending)
        Gauge(label: "imaged_tasks", dimensions: [("state", "processing")]).record(processing)
        Gauge(label: "imaged_task_oldest_pending_seconds").record(oldestPendingAge)
    }
}
