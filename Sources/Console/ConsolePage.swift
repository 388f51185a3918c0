import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore
import NIOCore

/// What every console answer carries, and the page frame.
enum ConsolePage {
    /// Only the console's own files: no inline script or style, no other origin, no framing.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func secure(_ headers: inout HTTPFields) {
        headers[HTTPField.Name("content-security-policy")!] = contentSecurityPolicy
        headers[HTTPField.Name("x-content-type-options")!] = "nosniff"
        headers[HTTPField.Name("x-frame-options")!] = "DENY"
        headers[HTTPField.Name("referrer-policy")!] = "same-origin"
        headers[HTTPField.Name("cross-origin-opener-policy")!] = "same-origin"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }

    static func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: page.text)))
    }

    /// The frame of every page: header with the navigation and the user, then `content`.
    static func layout(title: String, session: ConsoleSessionView?, active: String = "", content: HTML) -> HTML {
        var nav = HTML.empty
        if let session {
            func link(_ href: String, _ label: String, _ key: String) -> HTML {
                key == active ? "<a href=\"\(href)\" aria-current=\"page\">\(label)</a>" : "<a href=\"\(href)\">\(label)</a>"
            }
            nav = """
                <nav aria-label="Main">\(link("/console/images", "Images", "images"))\(link("/console/usage", "Usage", "usage"))\(session.isAdmin ? link("/console/admin", "Admin", "admin") : .empty)</nav>
                <div class="who"><span class="user" title="user">\(session.user)</span><span class="project" title="project">\(session.project)</span>\(session.isAdmin ? HTML("<span class=\"badge\">admin</span>") : .empty)
                <form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="\(session.csrf)"><button type="submit" class="link">Log out</button></form></div>
                """
        }
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · imaged</title>
            <link rel="stylesheet" href="/console/static/console.css">
            <script type="module" src="/console/static/console.js"></script>
            </head>
            <body>
            <a class="skip" href="#main">Skip to content</a>
            <header class="top"><a class="brand" href="/console/images">imaged</a>\(nav)</header>
            <main id="main" tabindex="-1">
            \(content)
            </main>
            </body>
            </html>

            """
    }
}

/// An answer that is a page with a message (and the right status): refusals, missing pages, errors.
struct ConsoleRefusal: Error {
    let status: HTTPResponse.Status
    let message: String
    var retryAfter: Int? = nil

    init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status; self.message = message; self.retryAfter = retryAfter
    }

    init(_ error: ImageError) {
        // A deleted image is simply not found here, as in the image list.
        self.init(error.kind == .gone ? .notFound : error.kind.httpStatus, error.message)
    }

    func response(options: ConsoleOptions) -> Response {
        let title = "\(status.code) \(status.reasonPhrase)"
        let content: HTML = """
            <section class="panel narrow">
            <h1>\(title)</h1>
            <p class="message error" role="alert">\(message)</p>
            <p><a href="/console/images">Back to the images</a></p>
            </section>
            """
        var response = ConsolePage.html(ConsolePage.layout(title: title, session: nil, content: content), status: status)
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}
