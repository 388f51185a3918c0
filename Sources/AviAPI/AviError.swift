import Foundation
import FrontEndSupport
import HTTPTypes
import Hummingbird
import Identity
import ImageCore

/// An error in Avi's shape: `{"error": "…"}` with the controller's status codes.
struct AviError: Error {
    let status: HTTPResponse.Status
    let message: String
    /// The CSRF refusal is plain text, as the controller's (20.1.1); labelled text/plain, not as JSON it is not.
    var plainText = false
    /// The methods a 405 names in `Allow`.
    var allow: String?
    /// Seconds for `Retry-After` (throttled or busy logins).
    var retryAfter: Int?

    init(_ status: HTTPResponse.Status, _ message: String, plainText: Bool = false, allow: String? = nil, retryAfter: Int? = nil) {
        self.status = status; self.message = message; self.plainText = plainText; self.allow = allow; self.retryAfter = retryAfter
    }

    static let csrf = AviError(.unauthorized, "CSRF token missing or incorrect.", plainText: true)

    /// Core errors in Avi's codes; nil for what is ours (500, logged, not shown).
    static func from(_ error: any Error) -> AviError? {
        if let e = error as? AviError { return e }
        if let r = error as? LoginRefused {
            switch r.reason {
            case .throttled:
                return AviError(.tooManyRequests, "Too many failed login attempts, try again in \(r.retryAfter) seconds.", retryAfter: r.retryAfter)
            case .busy:
                return AviError(.serviceUnavailable, "Too many logins in progress, try again shortly.", retryAfter: r.retryAfter)
            }
        }
        if let e = error as? JSONParseError { return AviError(.badRequest, "Malformed JSON: \(e)") }
        guard let e = error as? ImageError else { return nil }
        switch e.kind {
        case .notFound, .gone: return AviError(.notFound, "Image object not found!")
        case .internal: return nil
        default: return AviError(e.kind.httpStatus, e.message)
        }
    }

    var response: Response {
        let body = plainText ? message : JSONValue.object([("error", .string(message))]).serialized
        var headers: HTTPFields = [.contentType: plainText ? "text/plain; charset=utf-8" : "application/json"]
        if let allow { headers[.allow] = allow }
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
