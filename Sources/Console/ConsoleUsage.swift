import Hummingbird
import ImageCore

/// `/console/usage`: quota bars per project, stored bytes per store, format (and project, for admins)
/// as server-drawn SVG charts, the task queue and the latest failures; for admins, the node's readiness.
/// Every figure comes from `ImageService` under the caller's policy: a member sees their project only.
extension WebConsole {
    /// At most this many tasks are looked at for the queue and the failures (newest first).
    static var taskScan: Int { 2000 }

    func usagePage(_ session: Session) async throws -> Response {
        let p = session.principal
        async let usages = service.projectUsages(by: p)
        async let shares = service.storedShares(by: p)
        async let tasks = service.listTasks(limit: Self.taskScan, by: p)
        var readiness: UsageFacts.Readiness?
        if p.isAdmin, let check = options.readiness {
            let (ready, checks) = await check()
            readiness = .init(ready: ready, checks: checks["checks"].map(Self.pairs) ?? [])
        }
        let facts = UsageFacts(projects: try await usages, shares: try await shares, tasks: try await tasks,
                               defaultStore: options.defaultStore, readiness: readiness, nodeId: options.nodeId)
        return ConsolePage.html(ConsoleUsagePage.page(facts, session: session.view))
    }

    static func pairs(_ object: JSONValue) -> [(String, String)] {
        guard case .object(let members) = object else { return [] }
        return members.map { ($0.0, $0.1.stringValue ?? $0.1.serialized) }
    }
}

/// What the usage page shows, gathered before it is drawn.
struct UsageFacts: Sendable {
    struct Readiness: Sendable {
        let ready: Bool
        let checks: [(String, String)]
    }
    let projects: [(project: String, usage: ProjectUsage, limits: QuotaLimits)]
    let shares: [StoredShare]
    let tasks: [ImageTask]
    let defaultStore: String
    let readiness: Readiness?
    let nodeId: String

    /// Bytes per key, where `key` may name several (an image in two stores counts in each).
    func bytes(by key: (StoredShare) -> [String]) -> [ConsoleCharts.Bar] {
        var bytes: [String: Int64] = [:], images: [String: Int64] = [:]
        for share in shares {
            for k in key(share) {
                bytes[k, default: 0] += share.bytes
                images[k, default: 0] += share.images
            }
        }
        return bytes.map { ConsoleCharts.Bar(label: $0.key, value: $0.value, note: "\(images[$0.key] ?? 0) images") }
    }

    var byFormat: [ConsoleCharts.Bar] { bytes { [$0.diskFormat ?? "(none)"] } }
    var byStore: [ConsoleCharts.Bar] {
        bytes { share in
            let stores = share.stores.split(separator: ",").map(String.init).filter { !$0.isEmpty }
            return stores.isEmpty ? [defaultStore] : stores
        }
    }
    var byProject: [ConsoleCharts.Bar] { bytes { [$0.owner ?? "(no owner)"] } }

    var queue: [ImageTask] { tasks.filter { !$0.status.isFinished }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) } }
    var failures: [ImageTask] { Array(tasks.filter { $0.status == .failure }.sorted { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }.prefix(10)) }
}

enum ConsoleUsagePage {
    static func page(_ facts: UsageFacts, session: ConsoleSessionView) -> HTML {
        let size: (Int64) -> String = { ConsolePages.size($0) }
        let quotaRows: [HTML] = facts.projects.prefix(500).map { row in
            """
            <tr data-project="\(row.project)"><th scope="row"><code>\(row.project)</code></th>\
            \(meter(row.usage.imageCount, row.limits.imageCountTotal, "images of \(row.project)") { "\($0)" })\
            \(meter(row.usage.sizeTotal, row.limits.imageSizeTotal, "stored bytes of \(row.project)", size))\
            \(meter(row.usage.stageTotal, row.limits.imageStageTotal, "staged bytes of \(row.project)", size))\
            \(meter(row.usage.uploadingCount, row.limits.imageCountUploading, "uploads of \(row.project)") { "\($0)" })</tr>
            """
        }
        let charts: [HTML] = [
            ConsoleCharts.bars(id: "chart-stores", title: "Stored bytes per store", facts.byStore, unit: size),
            ConsoleCharts.bars(id: "chart-formats", title: "Stored bytes per disk format", facts.byFormat, unit: size),
        ] + (session.isAdmin ? [ConsoleCharts.bars(id: "chart-projects", title: "Stored bytes per project", facts.byProject, unit: size)] : [])
        func taskRow(_ t: ImageTask) -> HTML {
            let progress: HTML = t.bytesTotal.map { total in
                total > 0 ? HTML("<progress max=\"\(total)\" value=\"\(min(t.bytesDone, total))\"></progress> ") : .empty
            } ?? .empty
            let image: HTML = t.imageId.map { HTML("<a href=\"/console/images/\($0)\"><code>\(String($0.prefix(8)))…</code></a>") } ?? .empty
            let status = ImageService.wasCancelled(t) ? "cancelled" : t.status.rawValue
            return """
                <tr><td><code>\(String(t.id.prefix(8)))…</code></td><td>\(image)</td><td>\(t.type)</td><td>\(status)</td>\
                <td>\(progress)\(size(t.bytesDone))</td><td class="time">\(ConsolePages.time(t.updatedAt))</td><td>\(t.message)</td></tr>
                """
        }
        let taskHead: HTML = "<thead><tr><th scope=\"col\">Task</th><th scope=\"col\">Image</th><th scope=\"col\">Type</th><th scope=\"col\">Status</th><th scope=\"col\">Progress</th><th scope=\"col\">Updated</th><th scope=\"col\">Message</th></tr></thead>"
        let queue = facts.queue, failures = facts.failures
        let readiness: HTML = facts.readiness.map { r in
            let checks: [HTML] = r.checks.map { "<tr><th scope=\"row\"><code>\($0.0)</code></th><td class=\"\($0.1 == "ok" ? "ok" : "bad")\">\($0.1)</td></tr>" }
            return """
                <section class="panel" id="readiness"><h2>This node</h2>
                <p>Node <code>\(facts.nodeId)</code> is <strong class="\(r.ready ? "ok" : "bad")" id="ready-status">\(r.ready ? "ready" : "not ready")</strong> (what <code>/readyz</code> answers).</p>
                <table class="facts">\(checks)</table>
                </section>
                """
        } ?? .empty
        let content: HTML = """
            <div class="titlebar"><h1>Usage and health</h1></div>
            \(readiness)
            <section class="panel" id="quotas"><h2>\(session.isAdmin ? "Projects and their quotas" : "Your project's quota")</h2>
            <div class="scroll"><table class="quotas">
            <thead><tr><th scope="col">Project</th><th scope="col">Images</th><th scope="col">Stored</th><th scope="col">Staged</th><th scope="col">Uploads now</th></tr></thead>
            <tbody>\(quotaRows.isEmpty ? HTML("<tr><td colspan=\"5\" class=\"empty\">No project owns an image yet.</td></tr>") : HTML("\(quotaRows)"))</tbody>
            </table></div>
            </section>
            <section class="panel"><h2>Where the bytes are</h2><div class="charts">\(charts)</div></section>
            <section class="panel" id="queue"><h2>Task queue <span class="hint">(\(queue.count) waiting or running)</span></h2>
            \(queue.isEmpty ? HTML("<p class=\"none\">No task is waiting or running.</p>") : HTML("<div class=\"scroll\"><table>\(taskHead)<tbody>\(queue.map(taskRow))</tbody></table></div>"))
            </section>
            <section class="panel" id="failures"><h2>Recent failures</h2>
            \(failures.isEmpty ? HTML("<p class=\"none\">No failed task.</p>") : HTML("<div class=\"scroll\"><table>\(taskHead)<tbody>\(failures.map(taskRow))</tbody></table></div>"))
            </section>
            """
        return ConsolePage.layout(title: "Usage", session: session, active: "usage", content: content)
    }

    /// One quota cell: a `<meter>` (the browser colours it past 80 % and 95 %) and the figures as text.
    static func meter(_ used: Int64, _ limit: Int64?, _ label: String, _ unit: (Int64) -> String) -> HTML {
        guard let limit else {
            return "<td class=\"quota\"><span class=\"figure\">\(unit(used))</span> <span class=\"hint\">no limit</span></td>"
        }
        let percent = limit > 0 ? Int((Double(used) / Double(limit) * 100).rounded()) : (used > 0 ? 100 : 0)
        let max = Swift.max(limit, 1)
        return """
            <td class="quota"><meter min="0" max="\(max)" low="\(max * 8 / 10)" high="\(max * 95 / 100)" optimum="0" value="\(Swift.min(used, max))" aria-label="\(label)"></meter> \
            <span class="figure">\(unit(used)) of \(unit(limit))</span> <span class="hint">(\(percent) %)</span></td>
            """
    }
}
