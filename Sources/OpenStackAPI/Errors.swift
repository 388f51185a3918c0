import Foundation
import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore

/// An error rendered the way Glance (WebOb) renders it: HTML, JSON or text, chosen from `Accept`.
struct GlanceError: Error {
    var status: HTTPResponse.Status
    var message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status; self.message = message; self.headers = headers
    }

    static func from(_ error: any Error) -> GlanceError? {
        switch error {
        case let e as GlanceError: return e
        case let e as ImageError: return GlanceError(e.kind.httpStatus, e.message)
        case is JSONParseError: return GlanceError(.badRequest, "Malformed JSON in request body.")
        case let e as HTTPError:
            switch e.status {
            case .contentTooLarge: return GlanceError(.contentTooLarge, "Request body is larger than the limit of \(OpenStackAPILimits.maxJSONBody) bytes.")
            case .notFound: return GlanceError(.notFound, "The resource could not be found.")
            default: return GlanceError(e.status, e.body ?? e.status.reasonPhrase)
            }
        default: return nil
        }
    }

    /// WebOb's titles (the reason phrases Glance shows, some older than today's names).
    static func title(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 300: return "Multiple Choices"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 413: return "Request Entity Too Large"
        case 415: return "Unsupported Media Type"
        case 416: return "Requested Range Not Satisfiable"
        case 423: return "Locked"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return status.reasonPhrase
        }
    }

    enum Format { case html, json, text }

    /// First acceptable of text/html and application/json in `Accept` order; `*/*` means HTML
    /// (glanceclient sends it); no or unmatched Accept gives plain text.
    static func format(accept: String?) -> Format {
        guard let accept, !accept.isEmpty else { return .text }
        for part in accept.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmingSpaces.lowercased() }
            guard let type = fields.first else { continue }
            if fields.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "q=0" }) { continue }
            switch type {
            case "application/json": return .json
            case "text/html", "text/*", "*/*": return .html
            default: continue
            }
        }
        return .text
    }

    func response(accept: String?) -> Response {
        let statusLine = "\(status.code) \(Self.title(status))"
        var headers = self.headers
        let body: String
        switch Self.format(accept: accept) {
        case .json:
            var w = JSONWriter(capacity: 256)
            w.raw("{")
            w.key("message"); w.string(message + "<br /><br />\n\n\n")
            w.raw(","); w.key("code"); w.string(statusLine)
            w.raw(","); w.key("title"); w.string(Self.title(status))
            w.raw("}")
            body = w.text
            headers[.contentType] = "application/json"
        case .html:
            body = "<html>\n <head>\n  <title>\(statusLine)</title>\n </head>\n <body>\n  <h1>\(statusLine)</h1>\n  \(htmlEscape(message))<br /><br />\n\n\n\n </body>\n</html>"
            headers[.contentType] = "text/html; charset=UTF-8"
        case .text:
            body = "\(statusLine)\n\n\(message)\n\n   "
            headers[.contentType] = "text/plain; charset=UTF-8"
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

func htmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s {
        switch c {
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "&": out += "&amp;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

public enum OpenStackAPILimits {
    /// Glance's `max_request_body_size` default (112 KiB) for JSON bodies.
    public static let maxJSONBody = 114_688
}
