import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData
import NIOCore

/// Danube's tasks over the catalog's task rows. Imports are the core's import tasks (`danube: true`
/// in their request); PUT and DELETE do their work within the request (one atomic catalog write each)
/// and keep the outcome as a finished row of `jobType`, so they are answered like every Danube task:
/// 201 PENDING with a real id, pollable at `/task/<id>/status/`, streamed to clients sending
/// `ES-STREAM`, and reported to `cb_url`.
struct DanubeTasks {
    let service: ImageService
    let data: ImageDataService

    static let jobType = "danube_image_task"
    /// How long a finished PUT/DELETE task can be polled (Glance's task time to live).
    static let lifetime: Int64 = 48 * 3600

    /// Records the outcome of a PUT/DELETE whose work is done; returns its real task id.
    func record(_ p: Principal, method: String, image: Image, message: String, callback: DanubeCallback?) async throws -> String {
        let coreId = ImageID.generate()
        var input: [(String, JSONValue)] = [("danube", .bool(true)), ("method", .string(method)),
                                            ("image", .string(image.name ?? "")), ("image_uuid", .string(image.id))]
        if let callback { input.append(("callback", callback.json)) }
        let result: JSONValue = .object([("returncode", .int(0)), ("message", .string(message))])
        try await service.recordJob(id: coreId, type: Self.jobType, imageId: image.id, input: JSONValue.object(input).serialized,
                                    status: .success, result: result.serialized, message: "", lifetime: Self.lifetime, by: p)
        return DanubeTaskID.real(coreId)
    }

    static func isDanube(_ t: ImageTask) -> Bool {
        if t.type == jobType { return true }
        return t.type == ImageImports.taskType && (try? JSONValue.parse(t.input))?["import_req"]?["danube"]?.boolValue == true
    }

    /// The request a task was made for: `cb_url`/`cb_method` and the import's after-steps.
    static func input(_ t: ImageTask) -> JSONValue? {
        guard let parsed = try? JSONValue.parse(t.input) else { return nil }
        return t.type == jobType ? parsed : parsed["import_req"]
    }

    static func method(_ t: ImageTask) -> String {
        t.type == jobType ? input(t)?["method"]?.stringValue ?? "PUT" : "POST"
    }

    /// A Danube task the caller may see, by its real id.
    func task(_ id: String, by p: Principal) async throws -> ImageTask? {
        guard let coreId = DanubeTaskID.coreId(id), let t = try await service.task(id: coreId, by: p), Self.isDanube(t) else { return nil }
        return t
    }

    /// `/task/<id>/status/`: the status word, its HTTP status and `result`.
    static func status(_ t: ImageTask) -> (word: String, status: HTTPResponse.Status, result: JSONValue) {
        switch t.status {
        case .pending, .processing:
            return ("PENDING", .created, .null)
        case .success:
            if t.type == jobType, let stored = t.result.flatMap({ try? JSONValue.parse($0) }) { return ("SUCCESS", .ok, stored) }
            return ("SUCCESS", .ok, .object([("returncode", .int(0)), ("message", .string("Successfully imported image \(t.imageId ?? "")"))]))
        case .failure:
            if ImageService.wasCancelled(t) {
                return ("REVOKED", .gone, .object([("message", .string(t.message)), ("detail", .string(t.message))]))
            }
            return ("FAILURE", .badRequest, .object([("returncode", .int(1)), ("message", .string(t.message)),
                                                     ("detail", .string("Got bad return code (1). Error: \(t.message)"))]))
        }
    }

    static func envelope(_ id: String, _ t: ImageTask) -> (HTTPResponse.Status, JSONValue) {
        let (word, status, result) = status(t)
        return (status, .object([("task_id", .string(id)), ("status", .string(word)), ("result", result)]))
    }

    /// A finished import whose request asked for access 4 has its image deactivated (the flag gone in
    /// the same write) before anyone is told it succeeded; whoever sees the end first does it.
    func settled(_ t: ImageTask, by p: Principal) async throws -> ImageTask {
        guard t.type == ImageImports.taskType, t.status == .success, let imageId = t.imageId,
              let image = try await service.visibleImageIfAny(id: imageId, by: p),
              DanubeImage.int(image, DanubeImage.importAccessKey) == 4 else { return t }
        struct Settled: Error {}
        do {
            _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [DanubeImage.vendor: { stored in
                .object((stored?.objectMembers ?? []).filter { $0.0 != DanubeImage.importAccessKey })
            }], activate: false, expect: { current in
                // Another reader settled it, or a PUT gave another access meanwhile.
                guard case .int(4)? = current.extensions[DanubeImage.vendor]?[DanubeImage.importAccessKey] else { throw Settled() }
            }, by: p)
        } catch is Settled {
        } catch let e as ImageError where e.kind == .forbidden {
            // A reader of the project polling: the importer's own follow-up settles it.
        }
        return t
    }

    static let cancelledMessage = "Task was cancelled"

    /// `PUT /task/<id>/cancel/`: a running import is revoked and its image removed (Danube's rollback
    /// of a POST); a finished task cannot be cancelled (406).
    func cancel(_ id: String, by p: Principal) async throws -> ImageTask {
        let refused = DanubeError(.notAcceptable, "Task cannot be canceled")
        guard let t = try await task(id, by: p) else { throw DanubeError.taskGone }
        guard !t.status.isFinished, t.type == ImageImports.taskType else { throw refused }
        let cancelled: ImageTask
        do {
            // Only a catalog failure is an error here: a task that finished meanwhile is Danube's 406.
            guard let row = try await service.cancelTask(id: t.id, message: Self.cancelledMessage, by: p) else { throw DanubeError.taskGone }
            cancelled = row
        } catch let e as ImageError where e.kind == .conflict {
            throw refused
        }
        // Danube's rollback of a POST. Already gone (the runner's own rollback raced it) is fine.
        if let imageId = t.imageId {
            do { try await data.deleteImage(id: imageId, by: p) } catch let e as ImageError where e.kind == .notFound || e.kind == .gone {}
        }
        return cancelled
    }

    /// Waits for a task to finish (or `deadline`), calling `tick` between looks; the last row seen.
    func wait(_ coreId: String, by p: Principal, until deadline: ContinuousClock.Instant,
              tick: () async throws -> Void = {}) async throws -> ImageTask? {
        var delay = Duration.milliseconds(50)
        while true {
            let t = try await service.task(id: coreId, by: p)
            guard let t, !t.status.isFinished, ContinuousClock.now < deadline else { return t }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(500))
            try await tick()
        }
    }
}

/// Streamed task answers (`ES-STREAM: es`, reference §3): the 201 goes out at once with `es_stream`,
/// then a space now and then while the task runs, then `<final status code>\n<task status JSON>`,
/// which esdc-api reads instead of the HTTP status. A task still running after `timeout` ends the
/// stream with its 201 PENDING status, and the client polls.
struct DanubeStream {
    let tasks: DanubeTasks
    var keepAlive: Duration = .seconds(2)
    var timeout: Duration = .seconds(3600)

    func response(taskId: String, _ p: Principal, headers: HTTPFields) -> Response {
        var fields = headers
        fields[.contentLength] = nil  // the 201's own body is not what is sent
        fields[.contentType] = "application/json"
        fields[.esStreamResponse] = "True"
        fields[.esTaskID] = taskId
        fields[.esTaskResponse] = "true"
        let tasks = self.tasks, keepAlive = self.keepAlive, timeout = self.timeout
        return Response(status: .created, headers: fields, body: ResponseBody { writer in
            // A first keep-alive byte sends the headers now.
            try await writer.write(ByteBuffer(string: " "))
            var lastSpace = ContinuousClock.now
            let deadline = ContinuousClock.now + timeout
            var final: (HTTPResponse.Status, JSONValue) = (.created, .object([("task_id", .string(taskId)), ("status", .string("PENDING")),
                                                                             ("result", .null)]))
            if let coreId = DanubeTaskID.coreId(taskId) {
                let seen = try await tasks.wait(coreId, by: p, until: deadline) {
                    if ContinuousClock.now - lastSpace >= keepAlive {
                        try await writer.write(ByteBuffer(string: " "))
                        lastSpace = ContinuousClock.now
                    }
                }
                if let seen {
                    final = DanubeTasks.envelope(taskId, try await tasks.settled(seen, by: p))
                } else {
                    final = (.notFound, .object([("detail", .string(DanubeError.taskGone.detail))]))
                }
            }
            try await writer.write(ByteBuffer(string: "\(final.0.code)\n\(final.1.serialized)"))
            try await writer.finish(nil)
        })
    }
}
