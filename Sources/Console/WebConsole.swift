import Foundation
import FrontEndSupport
import HTTPTypes
import Hummingbird
import Identity
import ImageCore
import ImageData
import NIOCore

/// How one API shows an image, for the console's side-by-side view. The composition root hands the
/// console one per front-end (the console does not link the front-ends).
public struct ConsoleAPIView: Sendable {
    public let name: String
    /// Where that API serves the image (shown, not fetched).
    public let path: @Sendable (Image) -> String
    /// The image as that API renders it (JSON text).
    public let render: @Sendable (Image) -> String
    public init(name: String, path: @escaping @Sendable (Image) -> String, render: @escaping @Sendable (Image) -> String) {
        self.name = name; self.path = path; self.render = render
    }
}

public struct ConsoleOptions: Sendable {
    /// Cookies get `Secure` (set when the node serves TLS).
    public var secureCookies = false
    /// Seconds a console session lives after its login.
    public var sessionLifetime: Int64 = 8 * 3600
    /// Each front-end's view of an image, in the order shown.
    public var apiViews: [ConsoleAPIView] = []
    /// Browser uploads' sessions (`--upload-session-ttl`), as the OpenStack API's.
    public var uploadSessions = ResumableUploadConfig()
    /// The store an image without a `stores` property is in (the usage charts name it).
    public var defaultStore = "default"
    /// This node's id and its `/readyz` check, shown to admins on the usage page.
    public var nodeId = ""
    public var readiness: (@Sendable () async -> (Bool, JSONValue))?
    /// Keystone sign-in (Keystone mode): the login form offers it first, local accounts second.
    public var keystone: ConsoleKeystone?
    public init() {}
}

/// The web console at `/console/`: server-rendered pages over the same `ImageService` calls and policy
/// as the APIs. Sessions are cookie sessions over the local accounts (scope `console`, so an API's
/// session is no console session); every form carries the session's CSRF token; every page is sent
/// with a Content-Security-Policy that allows only the console's own script and style files.
public struct WebConsole<Context: RequestContext>: HTTPResponder {
    let imports: ImageImports
    let sessions: LoginSessions
    let administration: AccountAdministration
    let options: ConsoleOptions
    var service: ImageService { imports.data.images }

    static var cookieName: String { "imaged_console" }
    /// Login CSRF: a random value in a cookie and in the login form (double submit), before any session.
    static var loginCookieName: String { "imaged_console_login" }
    static var maxFormBody: Int { 64 << 10 }

    public init(imports: ImageImports, accounts: LocalAccounts, options: ConsoleOptions = .init()) {
        self.imports = imports
        self.sessions = LoginSessions(accounts: accounts, scope: .console, lifetime: options.sessionLifetime)
        self.administration = AccountAdministration(accounts: accounts)
        self.options = options
    }

    /// `/console` and below; `/` too when a browser asks for HTML (API clients get the version document).
    public static func claims(_ request: Request) -> Bool {
        let path = request.uri.path
        if path == "/console" || path.hasPrefix("/console/") { return true }
        if path == "/", request.method == .get, let accept = request.headers[.accept], accept.contains("text/html") { return true }
        return false
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        var response: Response
        do {
            response = try await route(request, context: context)
        } catch let refusal as ConsoleRefusal {
            response = refusal.response(options: options)
        } catch let error as ImageError {
            response = ConsoleRefusal(error).response(options: options)
        } catch let refused as LoginRefused {
            response = ConsoleRefusal(.tooManyRequests, "Too many attempts. Try again in \(refused.retryAfter) s.",
                                      retryAfter: refused.retryAfter).response(options: options)
        } catch is RequestReading.BodyTooLarge {
            response = ConsoleRefusal(.contentTooLarge, "The form is too large.").response(options: options)
        } catch {
            context.logger.error("console request failed", metadata: ["error": "\(error)"])
            response = ConsoleRefusal(.internalServerError, "Something went wrong on the server.").response(options: options)
        }
        ConsolePage.secure(&response.headers)
        return response
    }

    func route(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        if path == "/" || path == "/console" || path == "/console/" { return Self.redirect("/console/images") }
        if path.hasPrefix("/console/static/") { return ConsoleAssets.respond(path: path, method: request.method) }
        switch (path, request.method) {
        case ("/console/login", .get), ("/console/login", .head): return try loginPage(request, message: nil, status: .ok)
        case ("/console/login", .post): return try await login(request, context: context)
        case ("/console/logout", .post): return try await logout(request)
        case ("/console/login", _), ("/console/logout", _): throw ConsoleRefusal(.methodNotAllowed, "Method not allowed.")
        default: break
        }
        guard let session = try await session(request) else {
            // A page asked for without a session: log in, then back to it.
            if request.method == .get || request.method == .head {
                let back = request.uri.query.map { path + "?" + $0 } ?? path
                return Self.redirect("/console/login?" + HTML.query([("next", back)]))
            }
            throw ConsoleRefusal(.unauthorized, "Your session has ended. Log in again.")
        }
        let parts = path.dropFirst("/console/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if let upload = Self.uploadRoute(parts) { return try await self.upload(upload, request, session) }
        // A POST's form is read once, here: its CSRF token is checked before anything else looks at it.
        var form: [String: String] = [:]
        if request.method == .post {
            form = try await Self.form(request)
            try Self.checkCSRF(request, form: form, session)
        }
        switch (parts.first ?? "", request.method) {
        case ("images", .get) where parts.count == 1:
            return try await imagesPage(request, session)
        case ("images", .post) where parts.count == 1:
            return try await createImage(form: form, session)
        case ("images", .get) where parts.count == 2 && parts[1] == "new":
            return newImagePage(session)
        case ("images", .get) where parts.count == 2 && !parts[1].isEmpty:
            return try await imagePage(id: parts[1], session, message: ConsoleMessage.done(Self.queryValues(request)["done"]))
        case ("images", .post) where parts.count == 3 && parts[2] == "import" && !parts[1].isEmpty:
            return try await startImport(id: parts[1], form: form, session)
        case ("images", .post) where parts.count == 3 && !parts[1].isEmpty:
            return try await imageAction(id: parts[1], action: parts[2], form: form, session)
        case ("images", .post) where parts.count == 5 && parts[2] == "tasks" && parts[4] == "cancel" && !parts[1].isEmpty:
            return try await cancelTask(imageId: parts[1], taskId: parts[3], session)
        case ("tasks", .get) where parts.count == 2 && !parts[1].isEmpty:
            return try await taskProgress(id: parts[1], session)
        case ("usage", .get) where parts.count == 1:
            return try await usagePage(session)
        case ("admin", .get) where parts.count == 1:
            return try await adminPage(session, message: ConsoleMessage.done(Self.queryValues(request)["done"]))
        case ("admin", .post) where parts.count >= 2:
            return try await adminAction(parts, form: form, session)
        default:
            throw ConsoleRefusal(.notFound, "There is no such page.")
        }
    }

    // MARK: Sessions

    struct Session: Sendable {
        let id: String
        let principal: Principal
        let csrf: String
        /// A Keystone sign-in's token (revoked at logout); nil for a local account's session.
        var keystoneToken: String? = nil
    }

    static func cookies(_ request: Request) -> [String: String] { RequestReading.cookies(request.headers[values: .cookie]) }

    func session(_ request: Request) async throws -> Session? {
        guard let id = Self.cookies(request)[Self.cookieName] else { return nil }
        if id.hasPrefix(ConsoleKeystone.cookiePrefix) {
            guard let keystone = options.keystone else { return nil }
            return try await keystoneSession(keystone, cookie: id)
        }
        guard let live = try await sessions.resume(sessionId: id) else { return nil }
        return Session(id: id, principal: live.principal, csrf: live.csrfToken)
    }

    /// The form's `csrf` must be the session's; a browser that says where the request comes from
    /// must say this origin (a cross-site form post is refused even before the token is read).
    static func checkCSRF(_ request: Request, form: [String: String], _ session: Session) throws {
        try Self.checkSameOrigin(request)
        guard LoginSessions.csrfMatches(form["csrf"], session.csrf) else {
            throw ConsoleRefusal(.forbidden, "The form is out of date or came from another site (CSRF check failed). Reload the page and try again.")
        }
    }

    static func checkSameOrigin(_ request: Request) throws {
        if request.headers[HTTPField.Name("sec-fetch-site")!] == "cross-site" {
            throw ConsoleRefusal(.forbidden, "Cross-site requests are refused (CSRF check failed).")
        }
        if let origin = request.headers[HTTPField.Name("origin")!], origin != "null", let host = request.head.authority {
            let bare = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
            if bare != host { throw ConsoleRefusal(.forbidden, "Cross-site requests are refused (CSRF check failed).") }
        }
    }

    /// The URL's query, decoded; the first value of each name.
    static func queryValues(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in RequestReading.formPairs(request.uri.query) where out[k] == nil { out[k] = v }
        return out
    }

    static func form(_ request: Request) async throws -> [String: String] {
        let body = try await RequestReading.body(request, limit: maxFormBody)
        var out: [String: String] = [:]
        for (k, v) in RequestReading.formPairs(String(buffer: body)) where out[k] == nil { out[k] = v }
        return out
    }

    func cookie(_ name: String, _ value: String, maxAge: Int64) -> String {
        "\(name)=\(value); Path=/console; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (options.secureCookies ? "; Secure" : "")
    }

    func loginPage(_ request: Request, message: String?, status: HTTPResponse.Status, name: String = "", source: String = "",
                   project: String = "", domain: String = "") throws -> Response {
        let token = try Self.cookies(request)[Self.loginCookieName].flatMap { $0.count == 32 ? $0 : nil } ?? Secrets.base64url(Secrets.randomBytes(24))
        let next = Self.safeNext(Self.queryValues(request)["next"])
        let form = ConsolePages.LoginForm(keystoneDomain: options.keystone?.defaultDomain, source: source, project: project, domain: domain)
        var response = ConsolePage.html(ConsolePages.login(csrf: token, next: next, name: name, message: message, form: form), status: status)
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.loginCookieName, token, maxAge: 3600)))
        return response
    }

    func login(_ request: Request, context: Context) async throws -> Response {
        try Self.checkSameOrigin(request)
        let form = try await Self.form(request)
        let presented = Self.cookies(request)[Self.loginCookieName]
        guard let presented, LoginSessions.csrfMatches(form["csrf"], presented) else {
            throw ConsoleRefusal(.forbidden, "The login form is out of date or came from another site. Reload the page and try again.")
        }
        let name = form["username"] ?? "", password = form["password"] ?? ""
        let source = options.keystone != nil && form["source"] != "local" ? "keystone" : "local"
        let project = form["project"] ?? "", domain = form["domain"] ?? ""
        func again(_ message: String, _ status: HTTPResponse.Status) throws -> Response {
            try loginPage(request, message: message, status: status, name: name, source: source, project: project, domain: domain)
        }
        guard !name.isEmpty, !password.isEmpty else { return try again("Enter your user name and password.", .badRequest) }
        let session: (cookie: String, maxAge: Int64)
        if source == "keystone", let keystone = options.keystone {
            guard !project.trimmingSpacesForConsole.isEmpty else { return try again("Enter the project to work in.", .badRequest) }
            guard let opened = try await keystoneLogin(keystone, form: form, client: ClientAddress.of(context)) else {
                return try again("Keystone refused these credentials (user name, password, project or domain).", .unauthorized)
            }
            session = opened
        } else {
            guard let opened = try await sessions.login(name: name, password: password, client: ClientAddress.of(context)) else {
                return try again("Wrong user name or password.", .unauthorized)
            }
            session = (opened.sessionId, options.sessionLifetime)
        }
        var response = Self.redirect(Self.safeNext(form["next"]) ?? "/console/images")
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.cookieName, session.cookie, maxAge: session.maxAge)))
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.loginCookieName, "", maxAge: 0)))
        return response
    }

    func logout(_ request: Request) async throws -> Response {
        if let session = try await session(request) {
            try Self.checkCSRF(request, form: try await Self.form(request), session)
            if let token = session.keystoneToken {
                await options.keystone?.authenticator.revokeUserToken(token)
            } else {
                try await sessions.logout(sessionId: session.id)
            }
        }
        var response = Self.redirect("/console/login")
        response.headers.append(HTTPField(name: .setCookie, value: cookie(Self.cookieName, "", maxAge: 0)))
        return response
    }

    /// Only a path of the console itself: never another site (`//evil`, `https://…`) after a login.
    static func safeNext(_ next: String?) -> String? {
        guard let next, next.hasPrefix("/console/"), !next.hasPrefix("//"), !next.contains("\\"),
              !next.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return nil }
        return next
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    // MARK: Pages

    func imagesPage(_ request: Request, _ session: Session) async throws -> Response {
        let query = ImagesQuery(Self.queryValues(request), isAdmin: session.principal.isAdmin)
        var list = ImageListRequest()
        list.filters = query.filters
        list.sort = [query.sort]
        list.visibility = query.visibilityFilter
        list.limit = query.limit + 1  // one more: is there a next page?
        list.marker = query.marker
        var images: [Image]
        do {
            images = try await service.listImages(list, by: session.principal)
        } catch let error as ImageError where error.kind == .badRequest && query.marker != nil {
            // A bookmarked page whose marker image is gone: its first page instead.
            list.marker = nil
            images = try await service.listImages(list, by: session.principal)
            _ = error
        }
        let hasNext = images.count > query.limit
        if hasNext { images.removeLast() }
        let page = ConsolePages.images(images, query: query, hasNext: hasNext, session: session.view,
                                       message: ConsoleMessage.done(Self.queryValues(request)["done"]),
                                       mayCreate: Policy.allows(.addImage, session.principal, PolicyTarget(owner: session.principal.projectId)))
        return ConsolePage.html(page)
    }

    func imagePage(id: String, _ session: Session, message: ConsoleMessage? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let p = session.principal
        let image = try await service.showImage(id: id, by: p)
        let members = (try? await service.listMembers(imageId: id, by: p)) ?? []
        let tasks = (try? await service.tasks(imageId: id, by: p)) ?? []
        let views = options.apiViews.map { (name: $0.name, path: $0.path(image), json: PrettyJSON.format($0.render(image))) }
        let target = PolicyTarget(image)
        let may = ConsoleAbilities(
            edit: Policy.allows(.modifyImage, p, target),
            upload: Policy.allows(.uploadImage, p, target),
            publicize: Policy.allows(.publicizeImage, p, target),
            delete: Policy.allows(.deleteImage, p, target),
            deactivate: Policy.allows(.deactivate, p, target),
            reactivate: Policy.allows(.reactivate, p, target),
            share: Policy.allows(.addMember, p, target) && image.visibility == .shared,
            membership: members.first { $0.memberId == p.projectId && image.owner != p.projectId })
        return ConsolePage.html(ConsolePages.image(image, members: members, tasks: tasks, views: views, may: may,
                                                   session: session.view, message: message), status: status)
    }
}

extension WebConsole.Session {
    var view: ConsoleSessionView {
        ConsoleSessionView(user: principal.userName ?? principal.userId, project: principal.projectName ?? principal.projectId ?? "",
                           isAdmin: principal.isAdmin, csrf: csrf)
    }
}

/// What every page's header needs of the session.
struct ConsoleSessionView: Sendable {
    let user: String
    let project: String
    let isAdmin: Bool
    let csrf: String
}

/// What the caller may do to one image (policy, asked of the core), so the page offers only that.
struct ConsoleAbilities: Sendable {
    let edit, upload, publicize, delete, deactivate, reactivate, share: Bool
    /// The caller's project's membership of another project's image, if any (accept / reject).
    let membership: ImageMember?
}

extension LoginSessions.Scope {
    /// The web console's sessions: no API's cookie or token opens them.
    public static let console = LoginSessions.Scope("console")
}
