/// Cancelling a task (Danube's `PUT /task/<id>/cancel/`): one rule for every API that offers it.
extension ImageService {
    /// What a cancelled task's row holds as `result`.
    public static let cancelledTaskResult = #"{"cancelled":true}"#

    /// Whether a finished row is a cancelled task rather than a failed one.
    public static func wasCancelled(_ task: ImageTask) -> Bool {
        task.status == .failure && task.result == cancelledTaskResult
    }

    /// Cancels a task the caller may see that has not finished: the row is failed at once (its
    /// `result` says cancelled) and its lease dropped, so no node claims it again and the node running
    /// it stops at its next lease renewal, leaving the image to the canceller. nil when the task is
    /// unknown or not the caller's; `.conflict` when it has already finished.
    public func cancelTask(id: String, message: String, keepFor: Int64 = 48 * 3600, by p: Principal) async throws -> ImageTask? {
        AuditTrail.note("task.cancel", by: p)
        guard try await task(id: id, by: p) != nil else { return nil }
        let now = Timestamp.now()
        return try await catalog.updateTask(id: id.lowercased()) { t in
            guard !t.status.isFinished else { throw ImageError.conflict("Task \(t.id) has already finished.") }
            t.status = .failure
            t.result = Self.cancelledTaskResult
            t.message = message
            t.leaseOwner = nil
            t.leaseExpiresAt = nil
            t.updatedAt = now
            t.expiresAt = now + keepFor
        }
    }

    /// Cancels an import or copy the caller may change the image of: the task is cancelled as
    /// `cancelTask` does and, in the same breath, the image is released: an import goes back to
    /// `queued` (ready for another try), a copy leaves the image as it was. The image write checks
    /// that this task still holds the import lock, so a newer import is never undone. The run stops
    /// at its next lease renewal and publishes nothing (`finishData(importTask:)`).
    /// Returns the cancelled task and the image afterwards.
    public func cancelImport(taskId: String, by p: Principal) async throws -> (task: ImageTask, image: Image?) {
        guard let task = try await task(id: taskId, by: p), let imageId = task.imageId else {
            throw ImageError.notFound("No task found with ID \(taskId).")
        }
        // Cancelling changes the image: only who may change it (a reader of the project may not).
        _ = try await authorizedImage(id: imageId, by: p, for: .modifyImage, verb: "cancel the import of")
        let who = p.userName ?? p.userId
        guard let cancelled = try await cancelTask(id: task.id, message: "Cancelled by \(who).", by: p) else {
            throw ImageError.notFound("No task found with ID \(taskId).")
        }
        let lock = cancelled.id
        let image = try await catalog.updateImage(id: imageId) { image in
            guard image.properties[Self.importLockKey] == lock else { return }
            if image.status == .importing { image.requeue() }
            image.finishImport()
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        if let image { emit("image.update", image: image) }
        return (cancelled, image)
    }
}
