import Crypto
import Foundation
import ImageCore
import ImageData

/// A task's `cb_url` (reference §3): when the task has finished, its status JSON
/// (`task_id`, `status`, `result`) is POSTed there with `random_token` and
/// `security_token = md5(random_token + callback_key)`. Danube's `callback_key` is a secret the user
/// shares with the server; imaged uses the credential the request was made with (the API key's
/// secret, or the login token), which the caller knows and nobody else does.
struct DanubeCallback: Sendable {
    var url: String
    var method: String
    var key: String

    static let methods = ["GET", "POST", "PUT", "DELETE"]

    /// `cb_url`/`cb_method` of a request, checked (a refused URL names the URL guard's rule); nil when absent.
    static func from(_ data: [(String, JSONValue)], key: String, sender: (any CallbackSender)?, _ p: Principal,
                     _ v: inout DanubeValidation) async -> DanubeCallback? {
        let params = JSONValue.object(data)
        let method = (params["cb_method"].flatMap(ZValue.text) ?? "POST").uppercased()
        if !methods.contains(method) {
            v.add("cb_method", "\"\(params["cb_method"].map(DanubeText.of) ?? "")\" is not a valid choice.")
        } else if method != "POST" {
            v.add("cb_method", "Only POST callbacks are supported by this server.")
        }
        guard let given = params["cb_url"], given != .null else { return nil }
        guard let url = given.stringValue, url.count <= 1024, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            v.add("cb_url", "Enter a valid URL.")
            return nil
        }
        guard let sender else {
            v.add("cb_url", "Callbacks are not available on this server.")
            return nil
        }
        do { try await sender.vet(url, by: p) } catch {
            v.add("cb_url", (error as? ImageError)?.message ?? "Callback URL is not allowed.")
            return nil
        }
        return DanubeCallback(url: url, method: method, key: key)
    }

    /// What the task row keeps of it (never the key).
    var json: JSONValue { .object([("url", .string(url)), ("method", .string(method))]) }

    static func md5(_ s: String) -> String {
        Insecure.MD5.hash(data: Array(s.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The body Danube sends: the task status JSON plus the two tokens.
    func body(_ envelope: JSONValue) -> [UInt8] {
        let random = ImageID.generate().replacingOccurrences(of: "-", with: "")
        let fields = envelope.objectMembers + [("random_token", .string(random)), ("security_token", .string(Self.md5(random + key)))]
        return Array(JSONValue.object(fields).serialized.utf8)
    }

    /// Sends it once, never throwing: a receiver that is down costs the task nothing.
    func send(_ envelope: JSONValue, via sender: any CallbackSender, asAdmin: Bool) async {
        await sender.post(url, body: body(envelope), headers: [("Content-Type", "application/json")], asAdmin: asAdmin)
    }
}
