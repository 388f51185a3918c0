import HTTPTypes
import Foundation
import FrontEndSupport
import ImageCore

/// Parses `GET /v2/images` query strings with Glance's syntax into an `ImageListRequest`.
package enum ListParameters {
    /// Splits a raw query into decoded (key, value) pairs, keeping order and repeats.
    /// `+` means space, as in WebOb's form decoding.
    package static func pairs(_ rawQuery: String?) -> [(String, String)] {
        RequestReading.queryParts(rawQuery).map { part in
            let (key, value) = RequestReading.keyAndValue(part)
            return (decode(key), value.map(decode) ?? "")
        }
    }

    /// The query as written without its `marker` parameters (a page's `first` link).
    package static func withoutMarker(_ rawQuery: String?) -> String {
        RequestReading.queryParts(rawQuery).filter { decode(RequestReading.keyAndValue($0).key) != "marker" }.joined(separator: "&")
    }

    /// Percent-decoding with `+` as space; invalid escapes are kept as written.
    static func decode(_ s: Substring) -> String {
        guard s.utf8.contains(where: { $0 == 0x25 || $0 == 0x2B }) else { return String(s) }
        let u = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < u.count {
            if u[i] == 0x2B {
                out.append(0x20)
            } else if u[i] == 0x25, i + 2 < u.count, let hi = hex(u[i + 1]), let lo = hex(u[i + 2]) {
                out.append(hi << 4 | lo)
                i += 2
            } else {
                out.append(u[i])
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func parse(_ rawQuery: String?) throws(ImageError) -> ImageListRequest {
        var req = ImageListRequest()
        var sortKeys: [String] = []
        var sortDirs: [String] = []
        var sortParam: String?
        for (key, value) in pairs(rawQuery) {
            switch key {
            case "limit":
                guard let n = Int(value) else { throw .badRequest("limit param must be an integer") }
                guard n >= 0 else { throw .badRequest("limit param must be positive") }
                req.limit = n
            case "marker": req.marker = value
            case "sort_key": sortKeys.append(value)
            case "sort_dir": sortDirs.append(value)
            case "sort":
                guard sortParam == nil else { throw .badRequest("The 'sort' parameter may only be given once.") }
                sortParam = value
            case "name": req.filters.append(.oneOf(.name, try listValues(key, value)))
            case "id": req.filters.append(.oneOf(.id, try listValues(key, value)))
            case "container_format": req.filters.append(.oneOf(.containerFormat, try listValues(key, value)))
            case "disk_format": req.filters.append(.oneOf(.diskFormat, try listValues(key, value)))
            case "status":
                let values = try listValues(key, value)
                for v in values where ImageStatus(rawValue: v) == nil { throw .badRequest("Invalid status value: \(v)") }
                req.filters.append(.oneOf(.status, values))
            case "visibility":
                if value == "all" { req.visibility = .all }
                else if let v = Visibility(rawValue: value) { req.visibility = .only(v) }
                else { throw .badRequest("Invalid visibility value: \(value)") }
            case "member_status":
                if value == "all" { req.memberStatuses = [] }
                else if let s = MemberStatus(rawValue: value) { req.memberStatuses = [s] }
                else { throw .badRequest("Invalid status value: \(value)") }
            case "owner": req.filters.append(.string(.owner, value))
            case "checksum": req.filters.append(.string(.checksum, value))
            case "os_hash_value": req.filters.append(.string(.osHashValue, value))
            case "os_hash_algo": req.filters.append(.string(.osHashAlgo, value))
            case "tag": req.filters.append(.tag(value))
            case "size_min": req.filters.append(.int(.size, .gte, try integer(key, value)))
            case "size_max": req.filters.append(.int(.size, .lte, try integer(key, value)))
            case "size": req.filters.append(.int(.size, .eq, try integer(key, value)))
            case "virtual_size": req.filters.append(.int(.virtualSize, .eq, try integer(key, value)))
            case "min_disk": req.filters.append(.int(.minDisk, .eq, try integer(key, value)))
            case "min_ram": req.filters.append(.int(.minRam, .eq, try integer(key, value)))
            case "protected":
                guard value == "true" || value == "false" else {
                    throw .badRequest("Invalid value '\(value)' for 'protected' filter. Valid values are 'true' or 'false'.")
                }
                req.filters.append(.isProtected(value == "true"))
            case "os_hidden":
                switch value.lowercased() {
                case "true": req.osHidden = true
                case "false": req.osHidden = false
                default: throw .badRequest("Invalid value '\(value)' for 'os_hidden' filter. Valid values are 'true' or 'false'.")
                }
            case "created_at": req.filters.append(try time(.createdAt, value))
            case "updated_at": req.filters.append(try time(.updatedAt, value))
            case "changes-since": throw .badRequest("The 'changes-since' filter is no longer available on the v2 API.")
            default:
                req.filters.append(.property(key, value))
            }
        }
        req.sort = try sort(keys: sortKeys, dirs: sortDirs, sortParam: sortParam)
        return req
    }

    static func integer(_ key: String, _ value: String) throws(ImageError) -> Int64 {
        guard let n = Int64(value.trimmingSpaces) else {
            throw .badRequest("\(key) filter must be an integer, got '\(value)'")
        }
        return n
    }

    /// `value`, `eq:value` or `in:a,"b, c"`; any other `op:` prefix is refused.
    static func listValues(_ key: String, _ value: String) throws(ImageError) -> [String] {
        guard let colon = value.firstIndex(of: ":") else { return [value] }
        let op = value[..<colon]
        let rest = String(value[value.index(after: colon)...])
        switch op {
        case "eq": return [rest]
        case "in": return try splitList(rest)
        default: throw .badRequest("Unable to filter by unknown operator '\(op)'.")
        }
    }

    /// Comma-separated; double quotes protect commas; unquoted items are trimmed.
    static func splitList(_ s: String) throws(ImageError) -> [String] {
        var items: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        for c in s {
            if c == "\"" {
                quoted.toggle()
                wasQuoted = true
            } else if c == ",", !quoted {
                items.append(wasQuoted ? current : current.trimmingSpaces)
                current = ""
                wasQuoted = false
            } else {
                current.append(c)
            }
        }
        guard !quoted else { throw .badRequest("Invalid filter value \(s). The quote is not closed.") }
        items.append(wasQuoted ? current : current.trimmingSpaces)
        return items
    }

    static func time(_ column: ImageListQuery.TimeColumn, _ value: String) throws(ImageError) -> ImageListQuery.Filter {
        var op = ImageListQuery.Comparison.eq
        var text = value
        if let colon = value.firstIndex(of: ":"), let parsed = ImageListQuery.Comparison(rawValue: String(value[..<colon])) {
            op = parsed
            text = String(value[value.index(after: colon)...])
        }
        guard let t = Timestamp.parse(text) else {
            throw .badRequest("Unable to parse datetime '\(value)' for '\(column.rawValue)'.")
        }
        return .time(column, op, t)
    }

    static func sortKey(_ s: String) throws(ImageError) -> ImageListQuery.SortKey {
        guard let k = ImageListQuery.SortKey(rawValue: s.trimmingSpaces) else {
            throw .badRequest("Invalid sort key: \(s). It should be one of: \(ImageListQuery.SortKey.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return k
    }

    static func direction(_ s: String) throws(ImageError) -> ImageListQuery.Direction {
        guard let d = ImageListQuery.Direction(rawValue: s.trimmingSpaces) else {
            throw .badRequest("Invalid sort direction: \(s)")
        }
        return d
    }

    static func sort(keys: [String], dirs: [String], sortParam: String?) throws(ImageError) -> [ImageListQuery.Sort] {
        if let sortParam {
            guard keys.isEmpty, dirs.isEmpty else {
                throw .badRequest("The 'sort' parameter can't be combined with 'sort_key' or 'sort_dir'.")
            }
            var out: [ImageListQuery.Sort] = []
            for item in sortParam.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = item.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count <= 2, !parts[0].trimmingSpaces.isEmpty else {
                    throw .badRequest("Invalid sort value: \(item)")
                }
                out.append(.init(try sortKey(String(parts[0])), parts.count == 2 ? try direction(String(parts[1])) : .desc))
            }
            return out
        }
        let parsedKeys = try keys.map { (k) throws(ImageError) in try sortKey(k) }
        let parsedDirs = try dirs.map { (d) throws(ImageError) in try direction(d) }
        if parsedKeys.isEmpty {
            guard parsedDirs.count <= 1 else { throw .badRequest("Number of sort dirs does not match the number of sort keys") }
            return parsedDirs.isEmpty ? [] : [.init(.createdAt, parsedDirs[0])]
        }
        if parsedDirs.count > 1, parsedDirs.count != parsedKeys.count {
            throw .badRequest("Number of sort dirs does not match the number of sort keys")
        }
        return parsedKeys.enumerated().map { i, k in
            .init(k, parsedDirs.isEmpty ? .desc : (parsedDirs.count == 1 ? parsedDirs[0] : parsedDirs[i]))
        }
    }
}
