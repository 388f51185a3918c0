import Foundation
import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

extension HTTPField.Name {
    static let webHook = HTTPField.Name("x-web-hook")!
}

/// `X-Web-Hook: <url>` on an async API: the job's result is POSTed there once it is final, with the
/// headers ZStack sends (`X-Job-UUID`, `X-Job-Success: true|false`) and the body a poll would answer
/// (the result, or `{"error": …}`); the 202 is still returned and the job can still be polled. The
/// URL is vetted by the URL guard for the caller when the request arrives (a refused one is a plain
/// 400 and nothing is done); the POST goes through the guard too and never blocks or fails the job.
/// Jobs that end within their request are reported at once; an AddImage import is followed by the
/// node that accepted it until it ends (a restart of that node loses the callback, not the job).
extension ZStackImageAPI {
    /// The request's `X-Web-Hook`, vetted; nil when absent.
    func webHook(_ request: Request, _ p: Principal) async throws -> String? {
        guard let url = request.headers[.webHook]?.trimmingCharacters(in: .whitespaces) else { return nil }
        let lower = url.lowercased()
        guard url.count <= 2048, lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw ZStackHTTPError(.badRequest, "Invalid header[X-Web-Hook], [\(url)] is not an http:// or https:// URL")
        }
        do { try await imports.callbacks.vet(url, by: p) } catch let e as ImageError {
            throw ZStackHTTPError(.badRequest, "Invalid header[X-Web-Hook], the URL is not allowed: \(e.message)")
        }
        return url
    }

    /// Posts a final outcome to the hook, off the request (a receiver that is down costs nothing).
    func notify(_ hook: String?, job: String, _ outcome: Result<JSONValue, ZStackError>, _ p: Principal) {
        guard let hook else { return }
        switch outcome {
        case .success(let body): post(hook, job: job, body: body, ok: true, p)
        case .failure(let e): post(hook, job: job, body: e.body, ok: false, p)
        }
    }

    func post(_ hook: String, job: String, body: JSONValue, ok: Bool, _ p: Principal) {
        let sender = imports.callbacks, bytes = Array(body.serialized.utf8), admin = p.isAdmin
        let headers = [("Content-Type", "application/json; charset=utf-8"), ("X-Job-UUID", job), ("X-Job-Success", ok ? "true" : "false")]
        Task { await sender.post(hook, body: bytes, headers: headers, asAdmin: admin) }
    }

    /// Follows an AddImage import to its end (or its 72 h timeout), then reports it once.
    func follow(_ job: String, hook: String, _ p: Principal) {
        let api = self
        Task {
            let deadline = Date().addingTimeInterval(Double(Self.addImageTimeout) / 1000)
            var pause: UInt64 = 100_000_000
            while Date() < deadline {
                do {
                    if let (body, ok) = try await api.outcome(job, by: p) {
                        api.post(hook, job: job, body: body, ok: ok, p)
                        return
                    }
                } catch is ZStackHTTPError {
                    return  // the job is gone (expired): nothing to report
                } catch let e as ZStackError {
                    api.post(hook, job: job, body: e.body, ok: false, p)
                    return
                } catch {
                    // the catalog did not answer this time: try again
                }
                try? await Task.sleep(nanoseconds: pause)
                pause = min(pause * 2, 2_000_000_000)
            }
        }
    }
}
