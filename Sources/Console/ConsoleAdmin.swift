import Hummingbird
import HTTPTypes
import Identity
import ImageCore

/// `/console/admin`, for admins: local accounts and their API keys (a new key's secret is shown once,
/// on the answer to the POST that made it, never again), and per-project quotas. Every change is an
/// `AccountAdministration` or `ImageService` call that checks the caller is an admin itself.
extension WebConsole {
    func adminPage(_ session: Session, message: ConsoleMessage? = nil, newKey: ConsoleAdminPage.NewKey? = nil,
                   status: HTTPResponse.Status = .ok) async throws -> Response {
        let p = session.principal
        guard p.isAdmin else { throw ConsoleRefusal(.forbidden, "Only an admin may open the admin pages.") }
        let accounts = try await administration.list(by: p)
        let overrides = try await service.quotaOverrides(by: p)
        var response = ConsolePage.html(ConsoleAdminPage.page(accounts: accounts, overrides: overrides, defaults: service.defaultQuota,
                                                              newKey: newKey, session: session.view, message: message), status: status)
        if newKey != nil { response.headers[.cacheControl] = "no-store, private" }
        return response
    }

    func adminAction(_ parts: [String], form: [String: String], _ session: Session) async throws -> Response {
        let p = session.principal
        guard p.isAdmin else { throw ConsoleRefusal(.forbidden, "Only an admin may change accounts and quotas.") }
        func field(_ name: String) -> String { String((form[name] ?? "").trimmingSpacesForConsole) }
        do {
            switch parts.dropFirst().joined(separator: "/") {
            case "accounts":
                let password = form["password"] ?? ""
                let account = try await administration.create(name: field("name"), project: field("project"), role: field("role"),
                                                               password: password.isEmpty ? nil : password, by: p)
                return Self.redirect("/console/admin?done=account-created#account-\(account.name)")
            case "quotas":
                var limits = QuotaLimits()
                for r in QuotaResource.allCases {
                    let text = field(r.rawValue)
                    if text.isEmpty { continue }
                    guard let value = r.isBytes ? ByteSize.parse(text) : Int64(text), value >= 0 else {
                        throw ImageError.badRequest("'\(text)' is not a valid \(r.rawValue)\(r.isBytes ? " (examples: 4096, 512MiB, 10GiB)" : "").")
                    }
                    limits[r] = value
                }
                try await service.setQuotaOverride(project: field("project"), limits, by: p)
                return Self.redirect("/console/admin?done=quota-saved#quotas")
            default:
                break
            }
            // accounts/{name}/delete, accounts/{name}/keys, keys/{id}/delete, quotas/{project}/clear
            guard parts.count == 4 else { throw ConsoleRefusal(.notFound, "There is no such page.") }
            switch (parts[1], parts[3]) {
            case ("accounts", "delete"):
                try await administration.delete(name: parts[2], by: p)
                return Self.redirect("/console/admin?done=account-deleted")
            case ("accounts", "keys"):
                let key = try await administration.createKey(accountName: parts[2], by: p)
                // The secret is in this answer only: no redirect (a reload would not show it again).
                return try await adminPage(session, newKey: .init(account: parts[2], keyId: key.keyId, secret: key.secret), status: .created)
            case ("keys", "delete"):
                try await administration.deleteKey(id: parts[2], by: p)
                return Self.redirect("/console/admin?done=key-deleted")
            case ("quotas", "clear"):
                try await service.setQuotaOverride(project: parts[2], nil, by: p)
                return Self.redirect("/console/admin?done=quota-cleared#quotas")
            default:
                throw ConsoleRefusal(.notFound, "There is no such page.")
            }
        } catch let refused as AccountAdministration.Refused {
            return try await adminPage(session, message: .init(error: refused.description), status: .badRequest)
        } catch let error as ImageError {
            return try await adminPage(session, message: .init(error: error.message), status: ConsoleRefusal(error).status)
        }
    }
}

enum ConsoleAdminPage {
    struct NewKey: Sendable {
        let account: String
        let keyId: String
        let secret: String
    }

    static func page(accounts: [AccountAdministration.Listed], overrides: [String: QuotaLimits], defaults: QuotaLimits,
                     newKey: NewKey?, session: ConsoleSessionView, message: ConsoleMessage?) -> HTML {
        let csrf: HTML = "<input type=\"hidden\" name=\"csrf\" value=\"\(session.csrf)\">"
        func post(_ action: String, _ label: String, id: String, confirm: String? = nil, style: String = "") -> HTML {
            let ask: HTML = confirm.map { HTML(" data-confirm=\"\($0)\"") } ?? .empty
            return "<form method=\"post\" action=\"\(action)\" class=\"inline\"\(ask)>\(csrf)<button type=\"submit\" id=\"\(id)\" class=\"\(style)\">\(label)</button></form>"
        }
        let accountRows: [HTML] = accounts.map { listed in
            let a = listed.account
            let keys: [HTML] = listed.keys.map { k in
                """
                <li><code>\(k.keyId)</code> <span class="hint">\(ConsolePages.time(k.createdAt))</span> \
                \(post("/console/admin/keys/\(k.keyId)/delete", "revoke", id: "revoke-\(k.keyId)", confirm: "Revoke API key \(k.keyId)? Clients using it stop working.", style: "link"))</li>
                """
            }
            let mine = a.name == session.user
            return """
                <tr id="account-\(a.name)"><th scope="row">\(a.name)\(mine ? HTML(" <span class=\"hint\">(you)</span>") : .empty)</th>\
                <td><code>\(a.projectId)</code></td><td>\(a.roles.joined(separator: ", "))</td><td>\(listed.hasPassword ? "yes" : "no")</td>\
                <td>\(keys.isEmpty ? HTML("<span class=\"none\">none</span>") : HTML("<ul class=\"keys\">\(keys)</ul>"))</td>\
                <td class="actions">\(post("/console/admin/accounts/\(a.name)/keys", "New API key", id: "new-key-\(a.name)"))\
                \(mine ? HTML.empty : post("/console/admin/accounts/\(a.name)/delete", "Delete", id: "delete-account-\(a.name)", confirm: "Delete account \(a.name) and its API keys?", style: "danger"))</td></tr>
                """
        }
        let keyPanel: HTML = newKey.map { k in
            """
            <section class="panel secret" id="new-key" role="alert"><h2>New API key for \(k.account)</h2>
            <p><strong>Copy the secret now: it is shown only this once.</strong> imaged keeps only its hash.</p>
            <table class="facts"><tr><th scope="row">Key id</th><td><code id="new-key-id">\(k.keyId)</code></td></tr>
            <tr><th scope="row">Secret</th><td><code id="new-key-secret">\(k.secret)</code></td></tr>
            <tr><th scope="row">As a token</th><td><code id="new-key-token">X-Auth-Token: \(k.keyId):\(k.secret)</code></td></tr></table>
            </section>
            """
        } ?? .empty
        func limit(_ value: Int64?, _ r: QuotaResource) -> String {
            guard let value else { return "" }
            return r.isBytes ? ConsolePages.size(value) : String(value)
        }
        func shown(_ o: QuotaLimits, _ r: QuotaResource) -> HTML {
            if let v = o[r] { return "<td class=\"num\">\(limit(v, r))</td>" }
            return "<td class=\"num none\">default\(defaults[r].map { " (\(limit($0, r)))" } ?? " (none)")</td>"
        }
        let quotaRows: [HTML] = overrides.sorted { $0.key < $1.key }.map { project, o in
            """
            <tr data-project="\(project)"><th scope="row"><code>\(project)</code></th>\(QuotaResource.allCases.map { shown(o, $0) })\
            <td>\(post("/console/admin/quotas/\(project)/clear", "Clear", id: "clear-quota-\(project)", confirm: "Remove \(project)'s own limits (the defaults apply again)?", style: "link"))</td></tr>
            """
        }
        let defaultsLine: [HTML] = QuotaResource.allCases.map { r in
            "<li><code>\(r.rawValue)</code>: \(defaults[r].map { limit($0, r) } ?? "no limit")</li>"
        }
        let quotaFields: [HTML] = QuotaResource.allCases.map { r in
            "<label>\(r.rawValue) <input name=\"\(r.rawValue)\" id=\"quota-\(r.rawValue)\" size=\"9\" placeholder=\"\(r.isBytes ? "e.g. 100GiB" : "count")\"></label>"
        }
        let content: HTML = """
            \(message?.html ?? .empty)
            <div class="titlebar"><h1>Admin</h1><a class="button" href="/console/usage">Usage and health</a></div>
            \(keyPanel)
            <section class="panel" id="accounts"><h2>Local accounts</h2>
            <p class="hint">Who logs in to the console and the vendor APIs with a password, and who calls the APIs with an API key. Keystone users are managed in Keystone.</p>
            <div class="scroll"><table class="accounts"><thead><tr><th scope="col">Name</th><th scope="col">Project</th><th scope="col">Roles</th><th scope="col">Password</th><th scope="col">API keys</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>\(accountRows)</tbody></table></div>
            <h3>New account</h3>
            <form method="post" action="/console/admin/accounts" class="row">\(csrf)
            <label>Name <input name="name" id="account-name" required maxlength="64" pattern="[A-Za-z0-9._@-]+"></label>
            <label>Project <input name="project" id="account-project" required maxlength="64" pattern="[A-Za-z0-9._@-]+"></label>
            <label>Role <select name="role" id="account-role"><option value="member">member</option><option value="reader">reader</option><option value="admin">admin</option></select></label>
            <label>Password <input name="password" id="account-password" type="password" minlength="8" autocomplete="new-password" placeholder="none: API keys only"></label>
            <button type="submit" class="primary" id="account-create">Create</button>
            </form>
            </section>
            <section class="panel" id="quotas"><h2>Quotas</h2>
            <p class="hint">Each project gets the server's defaults (<code>--quota-*</code>) unless it has its own limits here. Lowering a limit stops growth; it deletes nothing.</p>
            <ul class="defaults">\(defaultsLine)</ul>
            \(quotaRows.isEmpty ? HTML("<p class=\"none\">No project has its own limits.</p>") : HTML("<div class=\"scroll\"><table class=\"quota-overrides\"><thead><tr><th scope=\"col\">Project</th>\(QuotaResource.allCases.map { HTML("<th scope=\"col\">\($0.rawValue)</th>") })<th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>\(quotaRows)</tbody></table></div>"))
            <h3>Set a project's limits <span class="hint">(blank: the default)</span></h3>
            <form method="post" action="/console/admin/quotas" class="row">\(csrf)
            <label>Project <input name="project" id="quota-project" required maxlength="255"></label>
            \(quotaFields)
            <button type="submit" class="primary" id="quota-save">Save</button>
            </form>
            </section>
            """
        return ConsolePage.layout(title: "Admin", session: session, active: "admin", content: content)
    }
}
