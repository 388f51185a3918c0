import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore

extension HTTPField.Name {
    // Danube's response headers are spelled with underscores; the client reads exactly these.
    static let esVersion = HTTPField.Name("es_version")!
    static let esUsername = HTTPField.Name("es_username")!
    static let esDC = HTTPField.Name("es_dc")!
    static let esTaskID = HTTPField.Name("es_task_id")!
    static let esTaskResponse = HTTPField.Name("es_task_response")!
    static let esAPIKey = HTTPField.Name("es-api-key")!
    static let esStream = HTTPField.Name("es-stream")!
    /// The streamed answer's marker (with an underscore, unlike the request's `ES-STREAM`).
    static let esStreamResponse = HTTPField.Name("es_stream")!
    static let contentMD5 = HTTPField.Name("content-md5")!
}

/// A refusal outside the task envelope: `{"detail": "…"}` with Danube's status (401, 403, 404, 406,
/// 412, 417, 423, 428…).
struct DanubeError: Error, Equatable {
    let status: HTTPResponse.Status
    let detail: String
    /// Seconds for `Retry-After` (throttled or busy logins).
    var retryAfter: Int?
    init(_ status: HTTPResponse.Status, _ detail: String, retryAfter: Int? = nil) {
        self.status = status; self.detail = detail; self.retryAfter = retryAfter
    }

    static let notAuthenticated = DanubeError(.unauthorized, "Authentication credentials were not provided.")
    static let forbidden = DanubeError(.forbidden, "You do not have permission to perform this action.")
    static let imageNotFound = DanubeError(.notFound, "Image not found")
    static let exists = DanubeError(.notAcceptable, "Image already exists")
    static let statusNotOK = DanubeError(.expectationFailed, "Image status is not OK")
    static let usedByVMs = DanubeError(HTTPResponse.Status(code: 428, reasonPhrase: "Precondition Required"), "Image is used by some VMs")
    static let noImageServer = DanubeError(HTTPResponse.Status(code: 428, reasonPhrase: "Precondition Required"), "Image server is not available")
    static let taskGone = DanubeError(.notFound, "Task does not exist (anymore)")
    static let locked = DanubeError(HTTPResponse.Status(code: 423, reasonPhrase: "Locked"), "Task is already running")

    /// Core errors in Danube's statuses; nil for what is ours (500, logged).
    static func from(_ error: any Error) -> DanubeError? {
        if let e = error as? DanubeError { return e }
        if let r = error as? LoginRefused {
            // Django REST framework's own words for a throttled request and an unavailable service.
            switch r.reason {
            case .throttled:
                return DanubeError(.tooManyRequests, "Request was throttled. Expected available in \(r.retryAfter) seconds.", retryAfter: r.retryAfter)
            case .busy:
                return DanubeError(.serviceUnavailable, "Service temporarily unavailable, try again later.", retryAfter: r.retryAfter)
            }
        }
        guard let e = error as? ImageError else { return nil }
        switch e.kind {
        case .badRequest, .unsupportedMediaType, .rangeNotSatisfiable: return DanubeError(.badRequest, e.message)
        case .unauthorized: return .notAuthenticated
        case .forbidden: return .forbidden
        case .notFound, .gone: return .imageNotFound
        case .conflict: return DanubeError(.expectationFailed, e.message)
        case .duplicate: return .exists
        case .inUse: return .usedByVMs
        case .payloadTooLarge, .unavailable, .insufficientStorage: return DanubeError(e.kind.httpStatus, e.message)
        case .internal: return nil
        }
    }
}

/// Serializer refusals: the task envelope with FAILURE, HTTP 400, `result` = field → messages.
struct DanubeValidation: Error {
    var fields: [(String, [String])] = []
    var isEmpty: Bool { fields.isEmpty }
    mutating func add(_ field: String, _ message: String) {
        if let i = fields.firstIndex(where: { $0.0 == field }) { fields[i].1.append(message) } else { fields.append((field, [message])) }
    }
    var result: JSONValue { .object(fields.map { ($0.0, .array($0.1.map { .string($0) })) }) }
}

/// Danube's task ids: `<user><type><owner><group><dc>-<uuid part>`. Real tasks (`1e1u1-<uuid>`) are
/// catalog task rows and can be polled; the dummy ids of synchronous answers (`1d1u1-…`) cannot.
enum DanubeTaskID {
    static let realPrefix = "1e1u1-"

    static func real(_ coreTaskId: String) -> String { realPrefix + coreTaskId }

    static func coreId(_ taskId: String) -> String? {
        guard taskId.hasPrefix(realPrefix) else { return nil }
        let rest = String(taskId.dropFirst(realPrefix.count)).lowercased()
        return ImageID.isValid(rest) ? rest : nil
    }

    static func dummy() -> String {
        let u = ImageID.generate().replacingOccurrences(of: "-", with: "")
        func part(_ a: Int, _ b: Int) -> Substring { u[u.index(u.startIndex, offsetBy: a)..<u.index(u.startIndex, offsetBy: b)] }
        return "1d1u1-\(part(0, 8))-\(part(8, 12))-\(part(12, 16))-\(part(16, 20))"
    }
}

/// Responses with Danube's headers: `es_version`, `es_username`, `es_dc` always; task envelopes add
/// `es_task_id`, real tasks `es_task_response`. JSON without a charset parameter, as Danube sends it.
struct DanubeReply {
    static let version = "4.6"
    var username: String
    /// The request's datacenter (`es_dc`): the default one, as Danube forces for the image API.
    var dc: String
    /// Who asked (set once authenticated): a streamed answer follows the task as this caller.
    var principal: Principal?
    /// The request carries `ES-STREAM`: a 201 PENDING answer is streamed until the task ends.
    var stream = false

    init(username: String, dc: String) { self.username = username; self.dc = dc }

    func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, taskId: String? = nil, taskResponse: Bool = false) -> Response {
        var headers: HTTPFields = [.esVersion: Self.version, .esUsername: username, .esDC: dc]
        if let taskId { headers[.esTaskID] = taskId }
        if taskResponse { headers[.esTaskResponse] = "true" }
        return JSONResponse.make(value, status: status, headers: headers)
    }

    func detail(_ e: DanubeError) -> Response {
        var response = json(.object([("detail", .string(e.detail))]), status: e.status)
        if let retryAfter = e.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }

    /// The task envelope of a synchronous answer.
    func success(_ result: JSONValue) -> Response {
        let id = DanubeTaskID.dummy()
        return json(.object([("task_id", .string(id)), ("status", .string("SUCCESS")), ("result", result)]), taskId: id)
    }

    func failure(_ v: DanubeValidation) -> Response {
        let id = DanubeTaskID.dummy()
        return json(.object([("task_id", .string(id)), ("status", .string("FAILURE")), ("result", v.result)]), status: .badRequest, taskId: id)
    }

    /// A started task: 201 PENDING.
    func pending(_ taskId: String) -> Response {
        json(.object([("task_id", .string(taskId)), ("status", .string("PENDING")), ("result", .null)]), status: .created,
             taskId: taskId, taskResponse: true)
    }
}
