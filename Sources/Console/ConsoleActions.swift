import Hummingbird
import HTTPTypes
import Identity
import ImageCore

/// The console's forms that change the catalog. Each is a POST with the session's CSRF token (checked
/// before it gets here), calls the same `ImageService`/`ImageDataService` method as the APIs, then sends
/// the browser back to the image's page with what happened, or shows the service's refusal on it.
extension WebConsole {
    func imageAction(id: String, action: String, form: [String: String], _ session: Session) async throws -> Response {
        let p = session.principal
        let page = "/console/images/\(id)"
        do {
            switch action {
            case "edit":
                var changes: [ImageChange] = []
                if let name = form["name"] { changes.append(.init(.replace, "name", .string(String(name.trimmingSpacesForConsole)))) }
                if let v = form["visibility"], !v.isEmpty { changes.append(.init(.replace, "visibility", .string(v))) }
                changes.append(.init(.replace, "protected", .bool(form["protected"] == "on")))
                if let tags = form["tags"] {
                    let list = tags.split(whereSeparator: { $0 == "," || $0 == "\n" })
                        .map { String($0.trimmingCharacters(in: .whitespaces)) }.filter { !$0.isEmpty }
                    var seen = Set<String>()
                    changes.append(.init(.replace, "tags", .array(list.filter { seen.insert($0).inserted }.map(JSONValue.string))))
                }
                _ = try await service.updateImage(id: id, changes: changes, by: p)
                return Self.redirect(page + "?done=saved")
            case "property":
                let key = String((form["key"] ?? "").trimmingSpacesForConsole)
                guard !key.isEmpty else { throw ImageError.badRequest("A property needs a name.") }
                if form["remove"] != nil {
                    _ = try await service.updateImage(id: id, changes: [.init(.remove, key)], by: p)
                    return Self.redirect(page + "?done=property-removed")
                }
                _ = try await service.updateImage(id: id, changes: [.init(.add(strict: false), key, .string(form["value"] ?? ""))], by: p)
                return Self.redirect(page + "?done=property-saved")
            case "deactivate":
                try await service.deactivateImage(id: id, by: p)
                return Self.redirect(page + "?done=deactivated")
            case "reactivate":
                try await service.reactivateImage(id: id, by: p)
                return Self.redirect(page + "?done=reactivated")
            case "delete":
                try await imports.data.deleteImage(id: id, by: p)
                return Self.redirect("/console/images?done=deleted")
            case "members":
                let member = String((form["member"] ?? "").trimmingSpacesForConsole)
                if form["remove"] != nil {
                    try await service.removeMember(imageId: id, memberId: member, by: p)
                    return Self.redirect(page + "?done=member-removed")
                }
                _ = try await service.addMember(imageId: id, memberId: member, by: p)
                return Self.redirect(page + "?done=shared")
            case "membership":
                guard let project = p.projectId else { throw ImageError.forbidden("You have no project to accept shares for.") }
                let status = form["status"] ?? ""
                guard ["accepted", "rejected", "pending"].contains(status) else { throw ImageError.badRequest("Unknown member status '\(status)'.") }
                _ = try await service.setMemberStatus(imageId: id, memberId: project, status: status, by: p)
                return Self.redirect(page + "?done=\(status)")
            default:
                throw ConsoleRefusal(.notFound, "There is no such action.")
            }
        } catch let error as ImageError where error.kind != .notFound || action == "members" {
            // The refusal (protected, in use, quota, a bad value…) on the page it came from, with its status.
            return try await imagePage(id: id, session, message: .init(error: error.message), status: ConsoleRefusal(error).status)
        }
    }

    func newImagePage(_ session: Session, message: ConsoleMessage? = nil, status: HTTPResponse.Status = .ok) -> Response {
        ConsolePage.html(ConsolePages.newImage(session: session.view, message: message), status: status)
    }

    func createImage(form: [String: String], _ session: Session) async throws -> Response {
        var attributes: [(String, JSONValue)] = []
        attributes.append(("name", .string(String((form["name"] ?? "").trimmingSpacesForConsole))))
        for key in ["disk_format", "container_format", "visibility"] {
            if let v = form[key], !v.isEmpty { attributes.append((key, .string(v))) }
        }
        do {
            let image = try await service.createImage(attributes, by: session.principal)
            return Self.redirect("/console/images/\(image.id)?done=created")
        } catch let error as ImageError {
            return newImagePage(session, message: .init(error: error.message), status: ConsoleRefusal(error).status)
        }
    }
}

/// A line at the top of a page: what an action did, or why it was refused.
struct ConsoleMessage: Sendable {
    let text: String
    let isError: Bool
    init(error: String) { text = error; isError = true }
    init(done: String) { text = done; isError = false }

    /// `?done=` after a redirect: a fixed text per code, never the query's own words.
    static func done(_ code: String?) -> ConsoleMessage? {
        let texts = ["saved": "Saved.", "property-saved": "Property saved.", "property-removed": "Property removed.",
                     "deactivated": "Image deactivated.", "reactivated": "Image reactivated.", "deleted": "Image deleted.",
                     "shared": "Shared with the project.", "member-removed": "No longer shared with that project.",
                     "accepted": "Share accepted.", "rejected": "Share rejected.", "pending": "Share set back to pending.",
                     "created": "Image created. Upload its data below.", "uploaded": "Upload complete.",
                     "import-started": "Import started: the task below shows its progress.", "task-cancelled": "Task cancelled.",
                     "account-created": "Account created.", "account-deleted": "Account deleted.", "key-deleted": "API key revoked.",
                     "quota-saved": "Limits saved.", "quota-cleared": "The project's own limits are removed: the defaults apply."]
        return code.flatMap { texts[$0] }.map { ConsoleMessage(done: $0) }
    }

    var html: HTML {
        isError ? "<p class=\"message error\" role=\"alert\">\(text)</p>" : "<p class=\"message ok\" role=\"status\">\(text)</p>"
    }
}
