#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore

/// The audit file: each line appended whole with one `write(2)` on an `O_APPEND` descriptor, so lines
/// from concurrent requests (or two processes) never interleave and nothing waits in a buffer. The
/// actor serialises the writes off the event loops.
public actor AuditLog {
    let fd: Int32
    let ownsDescriptor: Bool

    /// `path` "-" is stdout; a file is created (0640) when missing and appended to.
    public init(path: String) throws {
        if path == "-" {
            fd = 1
            ownsDescriptor = false
        } else {
            let opened = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard opened >= 0 else { throw ConfigError("--audit-log: cannot open \(path) for appending (errno \(errno))") }
            fd = opened
            ownsDescriptor = true
        }
    }

    deinit { if ownsDescriptor { close(fd) } }

    public func write(_ line: AuditLine) {
        var bytes = Array(line.encoded().utf8)
        bytes.append(0x0A)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }  // a full disk loses the line; the request is not failed for it
            offset += n
        }
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#else
private let systemWrite = Darwin.write
#endif

/// Which requests are audited: anything but GET, HEAD and OPTIONS, plus logins and logouts whatever
/// their method; and the action of a request the core did not name (a login, a refusal before any
/// service call).
enum AuditScope {
    static func audits(method: HTTPRequest.Method, action: String?) -> Bool {
        action == "login" || action == "logout" || ![.get, .head, .options].contains(method)
    }

    /// Logins and logouts, recognised by each API's path (they happen before the core is asked).
    static func sessionAction(api: String, method: HTTPRequest.Method, path: String) -> String? {
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        switch api {
        case "avi":
            if path == "/login" { return "login" }
            if path == "/logout" { return "logout" }
        case "zstack":
            if path == "/zstack/v1/accounts/login" { return "login" }
            if method == .delete, path.hasPrefix("/zstack/v1/accounts/sessions/") { return "logout" }
        case "danube":
            if path.hasSuffix("/accounts/login") { return "login" }
            if path.hasSuffix("/accounts/logout") { return "logout" }
        default: break
        }
        return nil
    }

    /// `image.post`-like fallback when nothing named the request (refused before the core saw it).
    static func fallbackAction(method: HTTPRequest.Method) -> String {
        "request." + method.rawValue.lowercased()
    }
}
