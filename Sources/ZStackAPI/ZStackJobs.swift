import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// ZStack's api-job protocol: an async API answers 202 with the job's location and `apiTimeout`;
/// polling the location answers 202 while it runs, then 200 with the result or 503 with the
/// error, until the job expires (404). A job is a catalog task row, so it survives restarts and
/// every node answers it: APIs that finish within their request store their outcome as a
/// finished row; AddImage from a URL is the import task itself. The job id is the client's
/// `X-Job-UUID` (else a new one); polling needs the caller's session or key too, and answers only
/// ZStack jobs of the caller's project, so another API's tasks stay out of reach.
struct ZStackJobs {
    let service: ImageService
    /// How long a finished job's result can be fetched.
    let lifetime: Int64
    /// At most this many live jobs per project (`--zstack-max-jobs`); 0: unbounded.
    var maxLive: Int = 0

    /// Task rows of jobs that finish within their request (everything but AddImage from a URL).
    static let type = "zstack_api_job"
    /// `apiTimeout` of AddImage (72 h) and of the other APIs (30 min), in ms.
    static let addImageTimeout: Int64 = 259_200_000
    static let defaultTimeout: Int64 = 1_800_000

    /// The marker an AddImage import carries in its request, telling ZStack's imports from others.
    static let importMarker = ("job_api", JSONValue.string("zstack"))

    /// The job id: `X-Job-UUID` (32 hex, not the nil uuid, never seen before) or a new one.
    func newJob(_ request: Request) async throws -> String {
        guard let given = request.headers[.jobUUID] else { return ZStackImage.uuid(ImageID.generate()) }
        guard Self.isJobUUID(given), let coreId = ZStackImage.coreId(given) else {
            throw ZStackHTTPError(.badRequest, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
        }
        if try await service.taskExists(id: coreId) {
            throw ZStackHTTPError(.badRequest, "Duplicate job uuid[\(given)]")
        }
        return given.lowercased()
    }

    /// 32 hex digits that are not all zero (the nil uuid would be every client's default).
    static func isJobUUID(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return u.count == 32 && u.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }
            && u.contains { $0 != UInt8(ascii: "0") }
    }

    /// Refuses a new job, in ZStack's error format (ID.1003, quota exceeded), when the caller's
    /// project already holds `maxLive` live jobs; called before any work, so nothing is stored.
    func admit(_ p: Principal) async throws {
        let types = [Self.type, ImageImports.taskType]
        guard try await service.mayStartJob(types: types, limit: maxLive, by: p) else {
            throw ZStackError("ID.1003", "quota exceeding: the account already has \(maxLive) unexpired api jobs; wait for some to expire")
        }
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

    /// 404 (`the job has been expired`) when unknown, expired, another project's, or not a ZStack
    /// job (an OpenStack or Danube task with the same id looks unknown).
    func lookup(_ job: String, by p: Principal) async throws -> Lookup {
        guard Self.isJobUUID(job), let id = ZStackImage.coreId(job), let task = try await service.job(id: id, by: p) else {
            throw ZStackHTTPError(.notFound, "the job has been expired")
        }
        if task.type == Self.type {
            return .finished(try task.result.map { try JSONValue.parse($0) } ?? .object([]), ok: task.status == .success)
        }
        guard task.type == ImageImports.taskType, task.imageId != nil, Self.isZStackImport(task) else {
            throw ZStackHTTPError(.notFound, "the job has been expired")
        }
        switch task.status {
        case .pending, .processing: return .running
        case .success: return .imported(task)
        case .failure: return .importFailed(task)
        }
    }

    static func isZStackImport(_ task: ImageTask) -> Bool {
        (try? JSONValue.parse(task.input))?["import_req"]?[importMarker.0] == importMarker.1
    }
}
