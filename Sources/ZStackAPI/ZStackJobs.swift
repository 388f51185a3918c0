import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// ZStack's api-job protocol: an async API answers 202 with the job's location and `apiTimeout`;
/// polling the location answers 202 while it runs, then 200 with the result or 503 with the
/// error, until the job expires (404). A job is a catalog task row, so it survives restarts and
/// every node answers it: APIs that finish within their request store their outcome as a
/// finished row; AddImage from a URL is the import task itself. The job id (the client's
/// `X-Job-UUID`, else a new one) is the capability that reads it.
struct ZStackJobs {
    let service: ImageService
    /// How long a finished job's result can be fetched.
    let lifetime: Int64

    /// Task rows of jobs that finish within their request (everything but AddImage from a URL).
    static let type = "zstack_api_job"
    /// `apiTimeout` of AddImage (72 h) and of the other APIs (30 min), in ms.
    static let addImageTimeout: Int64 = 259_200_000
    static let defaultTimeout: Int64 = 1_800_000

    /// The job id: `X-Job-UUID` (32 hex, never seen before) or a new one.
    func newJob(_ request: Request) async throws -> String {
        guard let given = request.headers[.jobUUID] else { return ZStackImage.uuid(ImageID.generate()) }
        guard given.utf8.count == 32, let coreId = ZStackImage.coreId(given) else {
            throw ZStackHTTPError(.badRequest, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
        }
        if try await service.taskExists(id: coreId) {
            throw ZStackHTTPError(.badRequest, "Duplicate job uuid[\(given)]")
        }
        return given.lowercased()
    }

    /// The 202 of an async API.
    static func accepted(_ job: String, base: String, timeout: Int64) -> Response {
        ZStackReply.json(.object([("location", .string("\(base)\(ZStackReply.prefix)/api-jobs/\(job)")), ("apiTimeout", .int(timeout))]),
                         status: .accepted)
    }

    /// Runs an API whose work ends within the request and keeps its outcome as a finished row.
    /// Framework-level refusals (`ZStackHTTPError`) are answered at once, not stored.
    @discardableResult
    func run(_ job: String, _ p: Principal, api: String, imageId: String?, _ work: () async throws -> JSONValue) async throws
        -> Result<JSONValue, ZStackError> {
        let outcome: Result<JSONValue, ZStackError>
        do {
            outcome = .success(try await work())
        } catch let e as ZStackHTTPError {
            throw e
        } catch {
            outcome = .failure(ZStackError.from(error) ?? ZStackError("SYS.1000", "internal error"))
        }
        try await store(job, p, api: api, imageId: imageId, outcome)
        return outcome
    }

    func store(_ job: String, _ p: Principal, api: String, imageId: String?, _ outcome: Result<JSONValue, ZStackError>) async throws {
        let (status, result, message): (ImageTask.Status, JSONValue, String) = switch outcome {
        case .success(let r): (.success, r, "")
        case .failure(let e): (.failure, e.body, e.details)
        }
        do {
            try await service.recordJob(id: ZStackImage.coreId(job)!, type: Self.type, imageId: imageId,
                                        input: JSONValue.object([("api", .string(api))]).serialized, status: status,
                                        result: result.serialized, message: message, lifetime: lifetime, by: p)
        } catch let e as ImageError where e.kind == .conflict {
            throw ZStackHTTPError(.badRequest, "Duplicate job uuid[\(job)]")
        }
    }

    enum Lookup {
        /// A stored outcome: the body to answer, 200 when `ok`, else 503.
        case finished(JSONValue, ok: Bool)
        case running
        /// An AddImage import that finished: the caller renders the image.
        case imported(ImageTask)
        case importFailed(ImageTask)
    }

    /// 404 (`the job has been expired`) when unknown, expired or not a job.
    func lookup(_ job: String) async throws -> Lookup {
        guard let id = ZStackImage.coreId(job), let task = try await service.job(id: id) else {
            throw ZStackHTTPError(.notFound, "the job has been expired")
        }
        if task.type == Self.type {
            return .finished(try task.result.map { try JSONValue.parse($0) } ?? .object([]), ok: task.status == .success)
        }
        guard task.type == ImageImports.taskType, task.imageId != nil else { throw ZStackHTTPError(.notFound, "the job has been expired") }
        switch task.status {
        case .pending, .processing: return .running
        case .success: return .imported(task)
        case .failure: return .importFailed(task)
        }
    }
}
