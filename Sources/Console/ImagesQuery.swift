import ImageCore

/// The image list's URL query: what it filters, how it sorts and where the page starts. Every value
/// is in the URL, so a filtered, sorted page can be bookmarked; values it does not know are dropped.
struct ImagesQuery: Sendable {
    static let sortKeys: [ImageListQuery.SortKey] = [.name, .status, .diskFormat, .size, .createdAt, .updatedAt]
    static let statuses = ["queued", "saving", "uploading", "importing", "active", "deactivated", "killed"]
    static let visibilities = ["public", "private", "shared", "community"]
    static let defaultLimit = 50
    static let maxLimit = 200

    var search = ""
    var status = ""
    var visibility = ""
    var diskFormat = ""
    var tag = ""
    var owner = ""
    var sort = ImageListQuery.Sort(.createdAt, .desc)
    var limit = defaultLimit
    var marker: String? = nil

    /// `parameters`: the decoded query (`RequestReading.formPairs`), first value of each name.
    init(_ parameters: [String: String], isAdmin: Bool) {
        func value(_ name: String, max: Int = 255) -> String {
            guard let v = parameters[name] else { return "" }
            return String(v.trimmingSpacesForConsole.prefix(max))
        }
        search = value("q")
        status = Self.statuses.contains(value("status")) ? value("status") : ""
        visibility = Self.visibilities.contains(value("visibility")) || value("visibility") == "all" ? value("visibility") : ""
        diskFormat = value("disk_format", max: 32)
        tag = value("tag")
        if isAdmin { owner = value("owner") }
        if let key = ImageListQuery.SortKey(rawValue: value("sort")), Self.sortKeys.contains(key) {
            sort = .init(key, value("dir") == "asc" ? .asc : .desc)
        }
        if let l = Int(value("limit")), l > 0 { limit = min(l, Self.maxLimit) }
        let m = value("marker", max: 64)
        if ImageID.isValid(m) { marker = m.lowercased() }
    }

    var filters: [ImageListQuery.Filter] {
        var out: [ImageListQuery.Filter] = []
        if !search.isEmpty { out.append(.nameContains(search)) }
        if !status.isEmpty { out.append(.oneOf(.status, [status])) }
        if !diskFormat.isEmpty { out.append(.oneOf(.diskFormat, [diskFormat])) }
        if !tag.isEmpty { out.append(.tag(tag)) }
        if !owner.isEmpty { out.append(.string(.owner, owner)) }
        return out
    }

    var visibilityFilter: ImageListQuery.Scope.VisibilityFilter {
        switch visibility {
        case "all": .all
        case "": .default
        default: Visibility(rawValue: visibility).map { .only($0) } ?? .default
        }
    }

    /// The query of this list with some values changed (`""` removes one); the marker goes unless kept.
    func url(_ changes: [String: String] = [:], keepMarker: Bool = false) -> String {
        var pairs: [(String, String)] = [("q", search), ("status", status), ("visibility", visibility),
                                         ("disk_format", diskFormat), ("tag", tag), ("owner", owner)]
        if sort.key != .createdAt || sort.direction != .desc {
            pairs += [("sort", sort.key.rawValue), ("dir", sort.direction.rawValue)]
        }
        if limit != Self.defaultLimit { pairs.append(("limit", String(limit))) }
        if keepMarker, let marker { pairs.append(("marker", marker)) }
        for (k, v) in changes {
            if let i = pairs.firstIndex(where: { $0.0 == k }) { pairs[i].1 = v } else { pairs.append((k, v)) }
        }
        let q = HTML.query(pairs)
        return "/console/images" + (q.isEmpty ? "" : "?" + q)
    }

    var isFiltered: Bool { !search.isEmpty || !status.isEmpty || !visibility.isEmpty || !diskFormat.isEmpty || !tag.isEmpty || !owner.isEmpty }
}

extension String {
    var trimmingSpacesForConsole: Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
