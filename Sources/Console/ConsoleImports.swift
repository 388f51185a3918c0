import Hummingbird
import HTTPTypes
import ImageCore
import ImageData
import NIOCore

/// Import from a URL (`web-download`, the same `ImageImports.start` as `POST /v2/images/{id}/import`),
/// a task's live progress for the page's script, and cancelling an import or copy.
extension WebConsole {
    func startImport(id: String, form: [String: String], _ session: Session) async throws -> Response {
        let url = String((form["url"] ?? "").trimmingSpacesForConsole)
        var method: [(String, JSONValue)] = [("name", .string("web-download")), ("uri", .string(url))]
        let checksumURL = String((form["checksum_url"] ?? "").trimmingSpacesForConsole)
        if !checksumURL.isEmpty { method.append(("checksum_url", .string(checksumURL))) }
        var body: [(String, JSONValue)] = [("method", .object(method))]
        let expected = String((form["expected_hash"] ?? "").trimmingSpacesForConsole)
        if !expected.isEmpty { body.append(("expected_hash", .string(expected))) }
        do {
            guard !url.isEmpty else { throw ImageError.badRequest("Enter the URL to import from.") }
            _ = try await imports.start(id: id, method: "web-download", uri: url, requestBody: .object(body), requestId: nil,
                                        by: session.principal)
            return Self.redirect("/console/images/\(id)?done=import-started")
        } catch let error as ImageError where error.kind != .notFound {
            return try await imagePage(id: id, session, message: .init(error: error.message), status: ConsoleRefusal(error).status)
        }
    }

    func cancelTask(imageId: String, taskId: String, _ session: Session) async throws -> Response {
        do {
            // The task must be this image's (the page's), checked before anything is cancelled.
            guard let task = try await service.task(id: taskId, by: session.principal), task.imageId == imageId.lowercased() else {
                throw ImageError.notFound("No task found with ID \(taskId).")
            }
            _ = try await imports.cancel(taskId: task.id, by: session.principal)
            return Self.redirect("/console/images/\(imageId)?done=task-cancelled")
        } catch let error as ImageError where error.kind != .notFound {
            return try await imagePage(id: imageId, session, message: .init(error: error.message), status: ConsoleRefusal(error).status)
        }
    }

    /// `GET /console/tasks/{id}`: what the page's script polls (JSON, same-origin, session cookie).
    func taskProgress(id: String, _ session: Session) async throws -> Response {
        guard let task = try await service.task(id: id, by: session.principal) else {
            throw ConsoleRefusal(.notFound, "There is no such task.")
        }
        let body = JSONValue.object([
            ("id", .string(task.id)),
            ("status", .string(task.status.rawValue)),
            ("cancelled", .bool(ImageService.wasCancelled(task))),
            ("bytes_done", .int(task.bytesDone)),
            ("bytes_total", task.bytesTotal.map { .int($0) } ?? .null),
            ("message", .string(task.message)),
            ("updated_at", .string(Timestamp.formatSpaced(task.updatedAt))),
        ])
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: body.serialized)))
    }
}
