import Foundation

/// Secrets that travel in URLs, masked before a path or query is written to any log or audit line:
/// ZStack's session ids (`/zstack/v1/accounts/sessions/<id>[/valid]`), its upload tokens
/// (`/zstack/v1/uploads/<uuid>/<token>`) and export tokens (`/zstack/v1/exports/<bs>/<image>/<token>/<file>`),
/// and query parameters that carry a credential (`token=`, `signature=`, `X-Amz-Signature=`,
/// `sessionid=`…). One function, so the request log and the audit log cannot disagree about what is
/// secret. (Danube, IMGAPI, Avi, Scalr and OpenStack carry their credentials in headers, never in paths.)
public enum LogRedaction {
    public static let mask = "<redacted>"

    public static func path(_ path: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // ["", "zstack", "v1", ...]
        guard parts.count > 3, parts[1] == "zstack", parts[2] == "v1" else { return path }
        let rest = Array(parts[3...])
        if rest.count >= 3, rest[0] == "accounts", rest[1] == "sessions" { parts[5] = mask }
        if rest.count >= 3, rest[0] == "uploads" { parts[5] = mask }
        if rest.count >= 4, rest[0] == "exports" { parts[6] = mask }
        return parts.joined(separator: "/")
    }

    /// Query parameter names (compared without case, `-`/`_` ignored) whose values are credentials.
    static let secretParameters: Set<String> = [
        "token", "authtoken", "accesstoken", "securitytoken", "uploadtoken", "sessionid", "session", "sid",
        "signature", "xamzsignature", "xamzcredential", "xamzsecuritytoken", "password", "secret", "apikey", "key",
        "csrftoken", "temp_url_sig".replacingOccurrences(of: "_", with: ""),
    ]

    static func isSecret(_ name: Substring) -> Bool {
        let plain = name.lowercased().filter { $0 != "-" && $0 != "_" }
        return secretParameters.contains(plain)
    }

    /// A query string with the values of credential parameters masked; names and other values kept.
    public static func query(_ query: String) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let eq = pair.firstIndex(of: "=") else { return String(pair) }
            let name = String(pair[..<eq])
            return isSecret(Substring(RequestReading.percentDecoded(name))) ? "\(name)=\(mask)" : String(pair)
        }.joined(separator: "&")
    }

    /// `path[?query]` as a log line may show it.
    public static func target(path: String, query: String?) -> String {
        guard let query, !query.isEmpty else { return self.path(path) }
        return self.path(path) + "?" + self.query(query)
    }
}
