import ImageCore

/// The console's pages as HTML. Every value from the catalog goes through `HTML` interpolation (escaped).
enum ConsolePages {
    // MARK: Login

    /// The Keystone part of the login form (Keystone mode only) and what was typed before a refusal.
    struct LoginForm: Sendable {
        /// nil: local accounts only.
        var keystoneDomain: String?
        var source = ""
        var project = ""
        var domain = ""
    }

    static func login(csrf: String, next: String?, name: String, message: String?, form: LoginForm = .init()) -> HTML {
        var keystone = HTML.empty
        if let defaultDomain = form.keystoneDomain {
            let local = form.source == "local"
            keystone = """
                <label for="source">Sign in with</label>
                <select id="source" name="source"><option value="keystone"\(local ? HTML.empty : " selected")>Keystone</option><option value="local"\(local ? " selected" : HTML.empty)>Local account</option></select>
                <div id="keystone-fields"\(local ? " hidden" : HTML.empty)>
                <label for="project">Project <span class="hint">(Keystone)</span></label>
                <input id="project" name="project" autocomplete="off" value="\(form.project)">
                <label for="domain">Domain <span class="hint">(Keystone)</span></label>
                <input id="domain" name="domain" autocomplete="off" value="\(form.domain.isEmpty ? defaultDomain : form.domain)">
                </div>
                """
        }
        let content: HTML = """
            <section class="panel narrow login">
            <h1>Log in</h1>
            \(message.map { HTML("<p class=\"message error\" role=\"alert\">\($0)</p>") } ?? .empty)
            <form method="post" action="/console/login">
            <input type="hidden" name="csrf" value="\(csrf)">
            \(next.map { HTML("<input type=\"hidden\" name=\"next\" value=\"\($0)\">") } ?? .empty)
            \(keystone)
            <label for="username">User name</label>
            <input id="username" name="username" autocomplete="username" required autofocus value="\(name)">
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required>
            <button type="submit" class="primary">Log in</button>
            </form>
            </section>
            """
        return ConsolePage.layout(title: "Log in", session: nil, content: content)
    }

    // MARK: Images

    static func images(_ images: [Image], query: ImagesQuery, hasNext: Bool, session: ConsoleSessionView, message: ConsoleMessage?,
                       mayCreate: Bool) -> HTML {
        func header(_ key: ImageListQuery.SortKey, _ label: String) -> HTML {
            let current = query.sort.key == key
            let next: SortDirection = current && query.sort.direction == .asc ? .desc : .asc
            let href = query.url(["sort": key.rawValue, "dir": next.rawValue])
            let aria = current ? (query.sort.direction == .asc ? "ascending" : "descending") : "none"
            let arrow: HTML = current ? (query.sort.direction == .asc ? " ▲" : " ▼") : .empty
            return "<th scope=\"col\" aria-sort=\"\(aria)\"><a href=\"\(href)\">\(label)\(arrow)</a></th>"
        }
        func option(_ value: String, _ label: String, _ selected: String) -> HTML {
            "<option value=\"\(value)\"\(value == selected ? HTML(" selected") : .empty)>\(label)</option>"
        }
        let rows: [HTML] = images.map { i in
            let tags: [HTML] = i.tags.sorted().map { "<span class=\"tag\">\($0)</span>" }
            return """
                <tr>
                <td class="name"><a href="/console/images/\(i.id)">\(i.name.flatMap { $0.isEmpty ? nil : $0 } ?? "(no name)")</a></td>
                <td><span class="status s-\(i.status.rawValue)">\(i.status.rawValue)</span></td>
                <td>\(i.diskFormat ?? "")</td>
                <td class="num">\(size(i.size))</td>
                <td>\(i.visibility.rawValue)</td>
                <td class="owner">\(i.owner ?? "")</td>
                <td class="time">\(time(i.createdAt))</td>
                <td class="tags">\(tags)</td>
                </tr>
                """
        }
        let statusOptions: [HTML] = [option("", "any status", query.status)] + ImagesQuery.statuses.map { option($0, $0, query.status) }
        let visibilityOptions: [HTML] = [option("", "default", query.visibility), option("all", "all", query.visibility)]
            + ImagesQuery.visibilities.map { option($0, $0, query.visibility) }
        let formats = ["", "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ploop", "ami", "aki", "ari"]
        let formatOptions: [HTML] = formats.map { option($0, $0.isEmpty ? "any format" : $0, query.diskFormat) }
        let ownerField: HTML = session.isAdmin ? """
            <label>Owner <input name="owner" value="\(query.owner)" placeholder="project id" size="12"></label>
            """ : .empty
        var pager: [HTML] = []
        if query.marker != nil { pager.append("<a class=\"button\" href=\"\(query.url())\">« First page</a>") }
        if hasNext, let last = images.last {
            pager.append("<a class=\"button\" rel=\"next\" href=\"\(query.url(["marker": last.id]))\">Next page »</a>")
        }
        let empty: HTML = images.isEmpty
            ? "<tr><td colspan=\"8\" class=\"empty\">\(query.isFiltered ? "No image matches these filters." : "No images yet.")</td></tr>"
            : .empty
        let content: HTML = """
            \(message?.html ?? .empty)
            <div class="titlebar"><h1>Images</h1>\(mayCreate ? HTML("<a class=\"button primary\" id=\"new-image\" href=\"/console/images/new\">New image</a>") : .empty)</div>
            <form class="filters" method="get" action="/console/images" role="search">
            <label>Name <input type="search" name="q" value="\(query.search)" placeholder="contains…"></label>
            <label>Status <select name="status">\(statusOptions)</select></label>
            <label>Visibility <select name="visibility">\(visibilityOptions)</select></label>
            <label>Format <select name="disk_format">\(formatOptions)</select></label>
            <label>Tag <input name="tag" value="\(query.tag)" size="10"></label>
            \(ownerField)
            \(query.sort.key != .createdAt || query.sort.direction != .desc ? HTML("<input type=\"hidden\" name=\"sort\" value=\"\(query.sort.key.rawValue)\"><input type=\"hidden\" name=\"dir\" value=\"\(query.sort.direction.rawValue)\">") : .empty)
            <button type="submit">Filter</button>
            \(query.isFiltered ? HTML("<a href=\"/console/images\">Clear</a>") : .empty)
            </form>
            <div class="scroll">
            <table class="images">
            <caption class="visually-hidden">Images you can see</caption>
            <thead><tr>\(header(.name, "Name"))\(header(.status, "Status"))\(header(.diskFormat, "Format"))\(header(.size, "Size"))<th scope="col">Visibility</th><th scope="col">Owner</th>\(header(.createdAt, "Created"))<th scope="col">Tags</th></tr></thead>
            <tbody>
            \(rows)\(empty)
            </tbody>
            </table>
            </div>
            <nav class="pager" aria-label="Pages">\(pager)</nav>
            """
        return ConsolePage.layout(title: "Images", session: session, active: "images", content: content)
    }

    // MARK: One image

    static func image(_ i: Image, members: [ImageMember], tasks: [ImageTask], views: [(name: String, path: String, json: String)],
                      may: ConsoleAbilities, session: ConsoleSessionView, message: ConsoleMessage?) -> HTML {
        let csrf: HTML = "<input type=\"hidden\" name=\"csrf\" value=\"\(session.csrf)\">"
        func action(_ name: String, _ label: String, confirm: String? = nil, style: String = "") -> HTML {
            let ask: HTML = confirm.map { HTML(" data-confirm=\"\($0)\"") } ?? .empty
            return "<form method=\"post\" action=\"/console/images/\(i.id)/\(name)\" class=\"inline\"\(ask)>\(csrf)<button type=\"submit\" id=\"action-\(name)\" class=\"\(style)\">\(label)</button></form>"
        }
        func row(_ label: String, _ value: HTML) -> HTML { "<tr><th scope=\"row\">\(label)</th><td>\(value)</td></tr>" }
        func text(_ s: String?) -> HTML { s.map { HTML("\($0)") } ?? "<span class=\"none\">—</span>" }
        let attributes: [HTML] = [
            row("ID", "<code>\(i.id)</code>"),
            row("Status", "<span class=\"status s-\(i.status.rawValue)\">\(i.status.rawValue)</span>"),
            row("Visibility", text(i.visibility.rawValue)),
            row("Protected", text(i.isProtected ? "yes" : "no")),
            row("Hidden", text(i.osHidden ? "yes" : "no")),
            row("Owner", text(i.owner)),
            row("Disk format", text(i.diskFormat)),
            row("Container format", text(i.containerFormat)),
            row("Size", text(i.size.map { "\(size($0)) (\($0) bytes)" })),
            row("Virtual size", text(i.virtualSize.map { "\(size($0)) (\($0) bytes)" })),
            row("Min disk / RAM", text("\(i.minDisk) GB / \(i.minRam) MB")),
            row("Stores", text(i.properties["stores"])),
            row("Created", text(time(i.createdAt))),
            row("Updated", text(time(i.updatedAt))),
        ]
        let digests: [HTML] = [
            row("MD5 (checksum)", i.checksum.map { HTML("<code class=\"digest\">\($0)</code>") } ?? text(nil)),
            row(i.osHashAlgo.map { "\($0) (os_hash_value)" } ?? "os_hash_value", i.osHashValue.map { HTML("<code class=\"digest\">\($0)</code>") } ?? text(nil)),
        ]
        let hiddenProperties: Set<String> = ["stores"]
        let properties: [HTML] = i.properties.sorted { $0.key < $1.key }.filter { !hiddenProperties.contains($0.key) }.map { kv in
            // Reserved properties (`os_glance_*`, the pinned digest…) are the service's own: shown, never removable.
            let remove: HTML = may.edit && !ImageAttributes.isReserved(kv.key) ? """
                <form method="post" action="/console/images/\(i.id)/property" class="inline">\(csrf)<input type="hidden" name="key" value="\(kv.key)"><button type="submit" name="remove" value="1" class="link" aria-label="Remove \(kv.key)">remove</button></form>
                """ : .empty
            return "<tr><th scope=\"row\"><code>\(kv.key)</code></th><td>\(kv.value)</td><td>\(remove)</td></tr>"
        }
        let tags: [HTML] = i.tags.sorted().map { "<span class=\"tag\">\($0)</span>" }
        let memberRows: [HTML] = members.map { m in
            let remove: HTML = may.share ? """
                <form method="post" action="/console/images/\(i.id)/members" class="inline">\(csrf)<input type="hidden" name="member" value="\(m.memberId)"><button type="submit" name="remove" value="1" class="link">Stop sharing</button></form>
                """ : .empty
            return "<tr><td><code>\(m.memberId)</code></td><td class=\"member-status\">\(m.status.rawValue)</td><td class=\"time\">\(time(m.updatedAt))</td><td>\(remove)</td></tr>"
        }
        let taskRows: [HTML] = tasks.map { t in
            let running = !t.status.isFinished
            // A running task's bar is there from the start (indeterminate until the size is known);
            // the page's script fills it from /console/tasks/{id}.
            let progress: HTML = running || (t.bytesTotal ?? 0) > 0
                ? HTML("<progress class=\"task-progress\"\(t.bytesTotal.map { $0 > 0 ? HTML(" max=\"\($0)\" value=\"\(min(t.bytesDone, $0))\"") : .empty } ?? .empty)></progress>")
                : .empty
            let cancel: HTML = running && may.edit ? """
                <form method="post" action="/console/images/\(i.id)/tasks/\(t.id)/cancel" class="inline" data-confirm="Cancel this task?">\(csrf)<button type="submit" class="danger" id="cancel-\(t.id)">Cancel</button></form>
                """ : .empty
            let status = ImageService.wasCancelled(t) ? "cancelled" : t.status.rawValue
            return """
                <tr id="task-\(t.id)"\(running ? HTML(" data-task=\"\(t.id)\"") : .empty)><td><code>\(t.id)</code></td><td>\(t.type)</td><td class="task-status">\(status)</td>\
                <td class="task-bytes">\(progress) <span class="task-done">\(size(t.bytesDone))\(t.bytesTotal.map { " of " + size($0) } ?? "")</span></td><td class="task-message">\(t.message)</td><td>\(cancel)</td></tr>
                """
        }
        let apiViews: [HTML] = views.map {
            """
            <section class="api-view" aria-label="\($0.name) view">
            <h3>\($0.name)</h3>
            <p class="path"><code>\($0.path)</code></p>
            <pre tabindex="0">\($0.json)</pre>
            </section>
            """
        }
        func option(_ v: Visibility) -> HTML {
            "<option value=\"\(v.rawValue)\"\(v == i.visibility ? HTML(" selected") : .empty)>\(v.rawValue)</option>"
        }
        let visibilities: [Visibility] = may.publicize ? [.private, .shared, .community, .public] : [.private, .shared, .community]
        let editPanel: HTML = may.edit ? """
            <section class="panel" id="edit"><h2>Edit</h2>
            <form method="post" action="/console/images/\(i.id)/edit" class="stacked">\(csrf)
            <label for="edit-name">Name</label><input id="edit-name" name="name" value="\(i.name ?? "")" maxlength="255">
            <label for="edit-visibility">Visibility</label><select id="edit-visibility" name="visibility">\(visibilities.map(option))</select>
            <label for="edit-tags">Tags <span class="hint">(comma separated)</span></label><input id="edit-tags" name="tags" value="\(i.tags.joined(separator: ", "))">
            <label class="check"><input type="checkbox" id="edit-protected" name="protected"\(i.isProtected ? HTML(" checked") : .empty)> Protected (cannot be deleted)</label>
            <button type="submit" class="primary" id="save">Save</button>
            </form>
            <h3>Add or change a property</h3>
            <form method="post" action="/console/images/\(i.id)/property" class="row">\(csrf)
            <label>Name <input name="key" id="property-key" required maxlength="255"></label>
            <label>Value <input name="value" id="property-value" maxlength="65535"></label>
            <button type="submit" id="property-save">Set</button>
            </form>
            </section>
            """ : .empty
        var stateButtons: [HTML] = []
        if may.deactivate && i.status == .active { stateButtons.append(action("deactivate", "Deactivate")) }
        if may.reactivate && i.status == .deactivated { stateButtons.append(action("reactivate", "Reactivate")) }
        if may.delete { stateButtons.append(action("delete", "Delete", confirm: "Delete this image and its data?", style: "danger")) }
        let shareForm: HTML = may.share ? """
            <form method="post" action="/console/images/\(i.id)/members" class="row">\(csrf)
            <label>Project <input name="member" id="member-id" required maxlength="255" placeholder="project id"></label>
            <button type="submit" id="share">Share</button>
            </form>
            """ : (i.visibility != .shared && may.edit ? HTML("<p class=\"hint\">Set the visibility to <em>shared</em> to share it with other projects.</p>") : .empty)
        let uploadPanel: HTML = may.upload && (i.status == .queued || (i.status == .saving && i.uploadSession != nil)) ? """
            <section class="panel" id="upload" data-image="\(i.id)" data-csrf="\(session.csrf)"><h2>Upload data</h2>
            <p class="hint">Sent in pieces; after a dropped connection or a reload it continues where it stopped (choose the same file again).</p>
            <div class="row"><input type="file" id="upload-file" aria-label="Image file">
            <button type="button" id="upload-start" class="primary">Upload</button>
            <button type="button" id="upload-cancel" hidden>Cancel</button></div>
            <progress id="upload-progress" max="1" value="0" aria-label="Upload progress"></progress>
            <p id="upload-status" role="status" aria-live="polite"></p>
            </section>
            """ : .empty
        let importPanel: HTML = may.edit && i.status == .queued ? """
            <section class="panel" id="import"><h2>Import from a URL</h2>
            <p class="hint">The server fetches the file (through the site's URL rules), checks it and stores it; the task below shows its progress.</p>
            <form method="post" action="/console/images/\(i.id)/import" class="stacked">\(csrf)
            <label for="import-url">URL</label><input id="import-url" name="url" type="url" required maxlength="2048" placeholder="https://…/image.qcow2">
            <label for="import-hash">Expected digest <span class="hint">(optional, algorithm:hex, e.g. sha256:…)</span></label><input id="import-hash" name="expected_hash" maxlength="200">
            <label for="import-checksum-url">Checksum file URL <span class="hint">(optional, a SHA256SUMS-style file naming the image)</span></label><input id="import-checksum-url" name="checksum_url" type="url" maxlength="2048">
            <button type="submit" class="primary" id="import-start">Import</button>
            </form>
            </section>
            """ : .empty
        let membership: HTML = may.membership.map { m in
            """
            <section class="panel" id="membership"><h2>Shared with your project</h2>
            <p>This image belongs to project <code>\(i.owner ?? "")</code>. Your project's answer: <strong id="my-member-status">\(m.status.rawValue)</strong></p>
            <form method="post" action="/console/images/\(i.id)/membership" class="inline">\(csrf)<input type="hidden" name="status" value="accepted"><button type="submit" id="accept">Accept</button></form>
            <form method="post" action="/console/images/\(i.id)/membership" class="inline">\(csrf)<input type="hidden" name="status" value="rejected"><button type="submit" id="reject">Reject</button></form>
            </section>
            """
        } ?? .empty
        let content: HTML = """
            \(message?.html ?? .empty)
            <p class="crumbs"><a href="/console/images">Images</a> /</p>

            <div class="titlebar"><h1 id="image-name">\(i.name.flatMap { $0.isEmpty ? nil : $0 } ?? "(no name)")</h1><span class="status s-\(i.status.rawValue)">\(i.status.rawValue)</span>\(stateButtons.isEmpty ? HTML.empty : HTML("<div class=\"actions\">\(stateButtons)</div>"))</div>
            \(uploadPanel)
            \(importPanel)
            <div class="columns">
            <section class="panel"><h2>Attributes</h2><table class="facts">\(attributes)</table></section>
            <section class="panel"><h2>Digests</h2><table class="facts">\(digests)</table>
            <h2>Tags</h2><p class="tags">\(tags.isEmpty ? HTML("<span class=\"none\">no tags</span>") : HTML("\(tags)"))</p>
            <h2>Properties</h2>\(properties.isEmpty ? HTML("<p class=\"none\">no properties</p>") : HTML("<table class=\"facts\">\(properties)</table>"))
            </section>
            </div>
            \(membership)
            \(editPanel)
            <section class="panel" id="members"><h2>Members</h2>\(members.isEmpty ? HTML("<p class=\"none\">Not shared with any project.</p>") : HTML("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Project</th><th scope=\"col\">Status</th><th scope=\"col\">Updated</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>\(memberRows)</tbody></table></div>"))
            \(shareForm)</section>
            <section class="panel" id="tasks"><h2>Tasks</h2>\(tasks.isEmpty ? HTML("<p class=\"none\">No tasks.</p>") : HTML("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Task</th><th scope=\"col\">Type</th><th scope=\"col\">Status</th><th scope=\"col\">Progress</th><th scope=\"col\">Message</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>\(taskRows)</tbody></table></div>"))</section>
            <section class="panel"><h2>The same image through each API</h2>
            <div class="api-views">\(apiViews)</div>
            </section>
            """
        return ConsolePage.layout(title: i.name ?? i.id, session: session, active: "images", content: content)
    }

    // MARK: New image

    static func newImage(session: ConsoleSessionView, message: ConsoleMessage?) -> HTML {
        func options(_ values: [String], _ selected: String) -> [HTML] {
            values.map { "<option value=\"\($0)\"\($0 == selected ? HTML(" selected") : .empty)>\($0)</option>" }
        }
        let content: HTML = """
            \(message?.html ?? .empty)
            <p class="crumbs"><a href="/console/images">Images</a> /</p>
            <section class="panel narrow-wide"><h1>New image</h1>
            <form method="post" action="/console/images" class="stacked">
            <input type="hidden" name="csrf" value="\(session.csrf)">
            <label for="new-name">Name</label><input id="new-name" name="name" required maxlength="255" autofocus>
            <label for="new-disk-format">Disk format</label><select id="new-disk-format" name="disk_format">\(options(["qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi", "iso", "ploop", "ami", "aki", "ari"], "qcow2"))</select>
            <label for="new-container-format">Container format</label><select id="new-container-format" name="container_format">\(options(["bare", "ovf", "ova", "docker", "compressed", "ami", "aki", "ari"], "bare"))</select>
            <label for="new-visibility">Visibility</label><select id="new-visibility" name="visibility">\(options(["private", "shared", "community", "public"], "shared"))</select>
            <button type="submit" class="primary" id="create">Create</button>
            </form>
            </section>
            """
        return ConsolePage.layout(title: "New image", session: session, active: "images", content: content)
    }


    // MARK: Formatting

    static func size(_ bytes: Int64?) -> String {
        guard let bytes else { return "" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return (rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)) + " " + units[unit]
    }

    static func time(_ seconds: Int64) -> String { Timestamp.formatSpaced(seconds) }
}
