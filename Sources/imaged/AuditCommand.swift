import ArgumentParser
import Foundation
import ImageCore

/// `imaged audit`: reads the audit file `imaged serve` writes and prints the lines that match, as
/// they are (JSON, for jq) or as a table.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read the audit log: who changed what, by image, user, project or time.")

    @Option(help: "Data directory (the audit file is <data-dir>/audit.log unless --file).") var dataDir = "./imaged-data"
    @Option(help: "The audit file (what 'imaged serve --audit-log' writes).") var file: String?
    @Option(help: "Only this image (its uuid, Avi's image-<uuid> or ZStack's uuid without dashes).") var image: String?
    @Option(help: "Only requests of this user.") var user: String?
    @Option(help: "Only requests in this project.") var project: String?
    @Option(help: "Only since: RFC 3339 time, a day (2026-12-03) or an age (30m, 2h, 7d).") var since: String?
    @Flag(help: "A table instead of the JSON lines.") var table = false

    func run() throws {
        var sinceDate: Date?
        if let since {
            guard let d = AuditFilter.since(since) else { throw ValidationError("--since: '\(since)' is not a time, a day or an age like 2h") }
            sinceDate = d
        }
        let filter = AuditFilter(imageId: image, user: user, project: project, since: sinceDate)
        let path = file ?? dataDir + "/audit.log"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the audit file \(path)")
        }
        let decoder = JSONDecoder()
        var rows: [[String]] = []
        var skipped = 0
        for raw in data.split(separator: UInt8(ascii: "\n")) where !raw.isEmpty {
            guard let line = try? decoder.decode(AuditLine.self, from: Data(raw)) else { skipped += 1; continue }
            guard filter.matches(line) else { continue }
            if table {
                rows.append([line.time, line.api, line.user ?? "-", line.project ?? "-", line.action, line.imageId ?? "-",
                             line.imageName.map { String(reflecting: $0) } ?? "-", String(line.status), line.client ?? "-", line.requestId])
            } else {
                print(String(decoding: raw, as: UTF8.self))
            }
        }
        if table { printTable(["TIME", "API", "USER", "PROJECT", "ACTION", "IMAGE", "NAME", "STATUS", "CLIENT", "REQUEST"], rows) }
        if skipped > 0 {
            FileHandle.standardError.write(Data("imaged audit: \(skipped) line(s) of \(path) are not audit lines\n".utf8))
        }
    }

    func printTable(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        for row in all {
            print(row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  "))
        }
    }
}
