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
}
