import Foundation

/// The `Origin` half of Avi's CSRF check (Django's `CsrfViewMiddleware`): a state-changing request
/// made with a session cookie that names where it comes from (`Origin`, else `Referer`) must come
/// from this server, else a page elsewhere that learnt the token could still ride the cookie.
/// Requests with Basic credentials carry no cookie, so they need no such check.
enum AviOrigin {
    /// `scheme://host:port`, lower-case, the port explicit; nil when `url` has no http(s) origin
    /// (`Origin: null` from a sandboxed page, a relative Referer).
    static func origin(of url: String) -> String? {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = c.host?.lowercased(), !host.isEmpty else { return nil }
        let port = c.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }

    /// Whether `given` (an Origin or a Referer) names one of `ours` (the base URLs this server is
    /// reached at: the request's own `Host`, and the configured public endpoint).
    static func matches(_ given: String, ours: [String]) -> Bool {
        guard let theirs = origin(of: given) else { return false }
        return ours.contains { origin(of: $0) == theirs }
    }

    /// The refusal, in Django's words and Avi's error shape, as 403.
    static func refusal(header: String, value: String) -> AviError {
        AviError(.forbidden, "\(header) checking failed - \(value.prefix(200)) does not match any trusted origins.")
    }
}
