/// Secrets that travel in URL paths, masked before a path is written to any log or audit line:
/// ZStack's session ids (`/zstack/v1/accounts/sessions/<id>[/valid]`), its upload tokens
/// (`/zstack/v1/uploads/<uuid>/<token>`) and export tokens (`/zstack/v1/exports/<bs>/<image>/<token>/<file>`).
/// One function, so the request log and the audit log cannot disagree about what is secret.
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
}
