import HTTPTypes
import Hummingbird
import NIOCore

/// The console's stylesheet and script, compiled into the binary (`Assets/`): no build step, no CDN.
enum ConsoleAssets {
    static let files: [String: (type: String, bytes: [UInt8])] = [
        "console.css": ("text/css; charset=utf-8", PackageResources.console_css),
        "console.js": ("text/javascript; charset=utf-8", PackageResources.console_js),
    ]

    static func respond(path: String, method: HTTPRequest.Method) -> Response {
        guard method == .get || method == .head else {
            return Response(status: .methodNotAllowed, headers: [.allow: "GET, HEAD"])
        }
        guard let file = files[String(path.dropFirst("/console/static/".count))] else {
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "no such file\n")))
        }
        // An hour: a new binary's files reach browsers soon after an upgrade.
        return Response(status: .ok, headers: [.contentType: file.type, .cacheControl: "public, max-age=3600"],
                        body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }
}
