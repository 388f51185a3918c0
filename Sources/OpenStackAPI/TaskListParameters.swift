import FrontEndSupport
import ImageCore
import ImageData

/// `GET /v2/tasks` query strings as Glance's tasks deserializer reads them.
package enum TaskListParameters {
    /// What the list may show: Glance's own task types (other front-ends keep their jobs as task rows too).
    package static let glanceTypes = [ImageImports.taskType, ImageImports.legacyTaskType, "location_import"]

    /// The query, or Glance's 400 messages: `type` only `import`, `status` one of the four, `sort_dir`
    /// asc|desc, a UUID marker, a non-negative integer limit (capped at `maxLimit`). Other
    /// parameters filter on the task column of that name; unknown ones are ignored, as in Glance.
    package static func parse(_ rawQuery: String?, defaultLimit: Int, maxLimit: Int) throws(ImageError) -> TaskListQuery {
        var q = TaskListQuery(limit: defaultLimit)
        q.types = glanceTypes
        for (key, value) in ListParameters.pairs(rawQuery) {
            switch key {
            case "limit":
                guard let n = Int(value) else { throw .badRequest("limit param must be an integer") }
                guard n >= 0 else { throw .badRequest("limit param must be positive") }
                q.limit = min(n, maxLimit)
            case "marker":
                guard ImageID.isValid(value) else { throw .badRequest("Invalid marker format") }
                q.marker = value.lowercased()
            case "sort_dir":
                guard let d = TaskListQuery.Direction(rawValue: value) else { throw .badRequest("Invalid sort direction: \(value)") }
                q.direction = d
            case "sort_key":
                guard let c = TaskListQuery.Column(rawValue: value) else { throw .badRequest("Invalid sort key: \(value)") }
                q.sortKey = c
            case "status":
                guard ImageTask.Status(rawValue: value) != nil else { throw .badRequest("Invalid status value: \(value)") }
                q.filters.append((.status, value))
            case "type":
                guard value == ImageImports.legacyTaskType else { throw .badRequest("Invalid type value: \(value)") }
                q.filters.append((.type, value))
            default:
                // Glance compares other columns for equality (an empty value is no filter); times are not filtered here.
                if let c = TaskListQuery.Column(rawValue: key), ![.createdAt, .updatedAt, .expiresAt].contains(c), !value.isEmpty {
                    q.filters.append((c, value))
                }
            }
        }
        return q
    }

    /// Glance's `first` and `next` links: the query as sent without `marker`, and with the last task as marker.
    package static func links(_ rawQuery: String?, page: [ImageTask], limit: Int) -> (first: String, next: String?) {
        let kept = ListParameters.pairs(rawQuery).filter { $0.0 != "marker" }
        func url(_ pairs: [(String, String)]) -> String {
            pairs.isEmpty ? "/v2/tasks" : "/v2/tasks?" + pairs.map { RequestReading.formEncode($0.0) + "=" + RequestReading.formEncode($0.1) }.joined(separator: "&")
        }
        guard !page.isEmpty, page.count == limit, let last = page.last else { return (url(kept), nil) }
        return (url(kept), url(kept + [("marker", last.id)]))
    }
}
