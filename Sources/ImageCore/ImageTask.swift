/// A background job (an import, later copies and conversions) kept as a catalog row, so it
/// survives restarts: a node runs a task while it holds the task's lease; a lease that is not
/// renewed expires and another run resumes the task or fails it cleanly.
public struct ImageTask: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        case pending, processing, success, failure
        public var isFinished: Bool { self == .success || self == .failure }
    }

    public var id: String
    /// OpenStack's task type: `api_image_import` for `POST /import`.
    public var type: String
    public var status: Status
    public var owner: String?
    public var imageId: String?
    public var userId: String?
    public var requestId: String?
    /// The task's input as JSON text (for `api_image_import`: image_id, import_req, backend).
    public var input: String
    /// JSON text, set on success.
    public var result: String?
    /// Why it failed, or progress notes; empty otherwise.
    public var message: String
    public var bytesDone: Int64
    public var bytesTotal: Int64?
    /// How many runs started; a task interrupted too often fails instead of looping.
    public var attempts: Int
    public var leaseOwner: String?
    public var leaseExpiresAt: Int64?
    public var createdAt: Int64
    public var updatedAt: Int64
    /// Finished tasks expire (Glance's `task_time_to_live`, 48 h).
    public var expiresAt: Int64?

    public init(id: String, type: String, status: Status = .pending, owner: String?, imageId: String?,
                userId: String?, requestId: String?, input: String, result: String? = nil, message: String = "",
                bytesDone: Int64 = 0, bytesTotal: Int64? = nil, attempts: Int = 0, leaseOwner: String? = nil,
                leaseExpiresAt: Int64? = nil, createdAt: Int64, updatedAt: Int64, expiresAt: Int64? = nil) {
        self.id = id; self.type = type; self.status = status; self.owner = owner; self.imageId = imageId
        self.userId = userId; self.requestId = requestId; self.input = input; self.result = result
        self.message = message; self.bytesDone = bytesDone; self.bytesTotal = bytesTotal; self.attempts = attempts
        self.leaseOwner = leaseOwner; self.leaseExpiresAt = leaseExpiresAt; self.createdAt = createdAt
        self.updatedAt = updatedAt; self.expiresAt = expiresAt
    }
}

/// Task rows. Part of every catalog; a separate protocol so tests and tools can ask for just this.
public protocol TaskCatalog: Sendable {
    func insertTask(_ task: ImageTask) async throws
    func task(id: String) async throws -> ImageTask?
    /// Tasks of one image, newest first.
    func tasks(imageId: String) async throws -> [ImageTask]
    /// Every task, newest first, at most `limit`.
    func listTasks(limit: Int) async throws -> [ImageTask]
    /// How many tasks of `owner` with one of `types` are live at `now` (not yet expired).
    func countLiveTasks(owner: String, types: [String], now: Int64) async throws -> Int
    /// Applies `change` inside one write transaction; nil when the id is unknown.
    func updateTask(id: String, _ change: @escaping @Sendable (inout ImageTask) throws -> Void) async throws -> ImageTask?
    /// Takes the lease of one runnable task (pending, or processing with an expired lease), oldest
    /// first: status becomes processing, `attempts` grows by one. nil when there is none.
    func claimTask(owner: String, now: Int64, leaseSeconds: Int64) async throws -> ImageTask?
    /// Removes finished tasks whose `expiresAt` is before `time`; returns how many.
    func deleteTasks(expiredBefore time: Int64) async throws -> Int
}
