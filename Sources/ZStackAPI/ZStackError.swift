import Foundation
import HTTPTypes
import Hummingbird
import Identity
import ImageCore

/// ZStack's `ErrorCode`: `{"error": {"code", "description", "details", "cause"?}}`, 503 for every
/// API-level failure (as a job result for async APIs). Nulls are left out, as Gson does.
struct ZStackError: Error, Equatable {
    let code: String
    let details: String
    var cause: ZStackCause?
    /// Seconds for a `Retry-After` header (throttled or busy logins).
    var retryAfter: Int?

    init(_ code: String, _ details: String, cause: ZStackCause? = nil, retryAfter: Int? = nil) {
        self.code = code; self.details = details; self.cause = cause; self.retryAfter = retryAfter
    }

    /// The fixed text of each code (`conf/errorCodes/*.xml`).
    static let descriptions: [String: String] = [
        "SYS.1000": "An internal error happened in system",
        "SYS.1001": "A message or a operation timeout",
        "SYS.1002": "Unable to create a resource",
        "SYS.1003": "A resource can not be found",
        "SYS.1006": "An operation failed",
        "SYS.1007": "One or more API argument is invalid",
        "SYS.1014": "The operation is not implemented or not supported yet",
        "ID.1000": "Unable to authenticate a user",
        "ID.1001": "The session is invalid, either wrong session id or the session has been expired",
        "ID.1002": "The user doesn't have permission to perform the operation",
        "ID.1003": "The user exceeds a quota of a resource",
    ]

    static func invalidArgument(_ details: String) -> ZStackError { ZStackError("SYS.1007", details) }
    static func notFound(_ details: String) -> ZStackError { ZStackError("SYS.1003", details) }
    static func failed(_ details: String) -> ZStackError { ZStackError("SYS.1006", details) }
    static let sessionExpired = ZStackError("ID.1001", "Session expired")

    var json: JSONValue {
        var members: [(String, JSONValue)] = [("code", .string(code)), ("description", .string(Self.descriptions[code] ?? code)),
                                             ("details", .string(details))]
        if let cause { members.append(("cause", cause.error.json)) }
        return .object(members)
    }

    var body: JSONValue { .object([("error", json)]) }

    /// Core errors in ZStack's codes; nil for what is ours (internal, logged).
    static func from(_ error: any Error) -> ZStackError? {
        if let e = error as? ZStackError { return e }
        if let r = error as? LoginRefused {
            // A throttled login is still "unable to authenticate" to ZStack's clients; a full password
            // pool is the operation not done in time.
            switch r.reason {
            case .throttled:
                return ZStackError("ID.1000", "too many failed logins, retry after \(r.retryAfter) seconds", retryAfter: r.retryAfter)
            case .busy:
                return ZStackError("SYS.1001", "too many logins in progress, retry after \(r.retryAfter) seconds", retryAfter: r.retryAfter)
            }
        }
        guard let e = error as? ImageError else { return nil }
        switch e.kind {
        case .badRequest, .unsupportedMediaType, .rangeNotSatisfiable: return .invalidArgument(e.message)
        case .unauthorized: return .sessionExpired
        case .forbidden: return ZStackError("ID.1002", e.message)
        case .notFound, .gone: return .notFound(e.message)
        case .payloadTooLarge: return ZStackError("ID.1003", e.message)
        case .conflict, .duplicate, .inUse, .insufficientStorage: return .failed(e.message)
        // ZStack answers every failure 503; a passing outage also says when to retry.
        case .unavailable: return ZStackError("SYS.1006", e.message, retryAfter: 5)
        case .internal: return ZStackError("SYS.1000", "internal error")
        }
    }
}

/// A nested root cause (a class, so `ZStackError` may hold one).
final class ZStackCause: Sendable, Equatable {
    let error: ZStackError
    init(_ error: ZStackError) { self.error = error }
    static func == (a: ZStackCause, b: ZStackCause) -> Bool { a.error == b.error }
}

/// A framework-level refusal: plain text with its own status (400 bad header or body, 404 unknown
/// path or expired job, 405 wrong method), never JSON.
struct ZStackHTTPError: Error {
    let status: HTTPResponse.Status
    let text: String
    /// The methods a 405 names in `Allow`.
    var allow: String?
    init(_ status: HTTPResponse.Status, _ text: String, allow: String? = nil) { self.status = status; self.text = text; self.allow = allow }

    var response: Response {
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        if let allow { headers[.allow] = allow }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
