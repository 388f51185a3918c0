import Foundation
import ImageCore
import NIOCore

/// The upload bookkeeping Avi shows on an image: `img_state`, times, `events`, progress.
enum AviUpload {
    /// `ImageUploadOpsStatus`.
    static func state(_ state: String, reason: String = "", at time: Date) -> JSONValue {
        let micros = Int64(time.timeIntervalSince1970 * 1_000_000)
        return .object([("state", .string(state)), ("reason", .string(reason)),
                        ("last_changed_time", .object([("secs", .int(micros / 1_000_000)), ("usecs", .int(micros % 1_000_000))]))])
    }

    /// `YYYY-MM-DD HH:MM:SS` in UTC, as the reference's example.
    static func time(_ date: Date) -> String {
        Timestamp.formatSpaced(Int64(date.timeIntervalSince1970.rounded(.down)))
    }

    /// The fields a finished upload sets: state, end time, duration, task counters, one event.
    static func finished(ok: Bool, reason: String, started: Date, ended: Date = Date()) -> [(String, JSONValue)] {
        let end = ended
        let duration = Int64(max(0, end.timeIntervalSince(started)).rounded())
        let event: JSONValue = .object([
            ("task_name", .string("ImageUpload")),
            ("nodes_events", .array([.object([
                ("start_time", .string(time(started))), ("end_time", .string(time(end))), ("duration", .int(duration)),
                ("status", .string(ok ? "SYSERR_SUCCESS" : "SYSERR_FAILURE")), ("message", .string(reason)),
                ("sub_tasks", .array([])),
            ])])),
        ])
        return [("img_state", state(ok ? "IMAGE_FSM_COMPLETED" : "IMAGE_FSM_FAILED", reason: reason, at: end)),
                ("end_time", .string(time(end))), ("duration", .int(duration)),
                ("tasks_completed", .int(ok ? 1 : 0)), ("total_tasks", .int(1)), ("events", .array([event]))]
    }

    /// `fields` set on the stored document (replacing same-named ones, others kept in order).
    static func merge(_ doc: JSONValue?, _ fields: [(String, JSONValue)]) -> JSONValue { JSONValue.merging(doc, fields) }

    /// Counts the bytes pulled through it and reports the running total about once a second.
    struct Counting<Base: AsyncSequence>: AsyncSequence where Base.Element == ByteBuffer {
        typealias Element = ByteBuffer
        let base: Base
        let report: (Int64) async -> Void

        struct AsyncIterator: AsyncIteratorProtocol {
            var base: Base.AsyncIterator
            let report: (Int64) async -> Void
            var bytes: Int64 = 0
            var lastReport = ContinuousClock.now

            mutating func next() async throws -> ByteBuffer? {
                guard let chunk = try await base.next() else { return nil }
                bytes += Int64(chunk.readableBytes)
                if ContinuousClock.now - lastReport >= .seconds(1) {
                    lastReport = ContinuousClock.now
                    await report(bytes)
                }
                return chunk
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), report: report) }
    }
}
