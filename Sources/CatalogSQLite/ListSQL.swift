import GRDB
import ImageCore

/// Turns an `ImageListQuery` into one SELECT with bound arguments. Column names come only from
/// the query's enums; every caller-supplied value is a bound argument.
enum ListSQL {
    static func build(_ q: ImageListQuery) -> (String, StatementArguments) {
        var sql = "SELECT \(SQLiteCatalog.columns) FROM images WHERE status NOT IN ('deleted','killed','pending_delete') AND os_hidden = ?"
        var args: [(any DatabaseValueConvertible)?] = [q.osHidden]

        let s = q.scope
        func memberExists() -> String {
            args.append(s.projectId)
            var clause = "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member_id = ?"
            if let statuses = s.memberStatuses {
                clause += " AND m.status IN (\(placeholders(statuses.count)))"
                args.append(contentsOf: statuses.map { $0.rawValue })
            }
            return clause + ")"
        }
        if s.isAdmin {
            switch s.visibility {
            case .default:
                sql += " AND (visibility <> 'community' OR owner = ?)"
                args.append(s.projectId)
            case .all: break
            case .only(let v):
                sql += " AND visibility = ?"
                args.append(v.rawValue)
            }
        } else {
            switch s.visibility {
            case .default:
                args.append(s.projectId)
                sql += " AND (visibility = 'public' OR owner = ? OR (visibility = 'shared' AND \(memberExists())))"
            case .all:
                args.append(s.projectId)
                sql += " AND (visibility IN ('public','community') OR owner = ? OR (visibility = 'shared' AND \(memberExists())))"
            case .only(.public): sql += " AND visibility = 'public'"
            case .only(.community): sql += " AND visibility = 'community'"
            case .only(.shared):
                args.append(s.projectId)
                sql += " AND visibility = 'shared' AND (owner = ? OR \(memberExists()))"
            case .only(.private):
                sql += " AND visibility = 'private' AND owner = ?"
                args.append(s.projectId)
            }
        }

        for f in q.filters {
            switch f {
            case .oneOf(_, let values) where values.isEmpty:
                sql += " AND 0"
            case .oneOf(let col, let values):
                sql += " AND \(col.rawValue) IN (\(placeholders(values.count)))"
                args.append(contentsOf: values)
            case .string(let col, let v):
                sql += " AND \(col.rawValue) = ?"
                args.append(v)
            case .int(let col, let cmp, let v):
                sql += " AND \(col.rawValue) \(op(cmp)) ?"
                args.append(v)
            case .time(let col, let cmp, let v):
                sql += " AND \(col.rawValue) \(op(cmp)) ?"
                args.append(v)
            case .isProtected(let b):
                sql += " AND protected = ?"
                args.append(b)
            case .tag(let t):
                sql += " AND EXISTS (SELECT 1 FROM json_each(images.tags) WHERE value = ?)"
                args.append(t)
            case .property(let k, let v):
                sql += " AND EXISTS (SELECT 1 FROM json_each(images.properties) WHERE key = ? AND value = ?)"
                args.append(k)
                args.append(v)
            }
        }

        if let marker = q.marker {
            // Keyset paging: rows strictly after the marker in the sort order. NULLs sort first
            // ascending and last descending (SQLite's order), and `id` ends every sort, so the order
            // is total. The trailing run of NOT NULL keys sharing one direction (at least
            // `created_at, id`) becomes one row-value comparison, which SQLite turns into an index
            // range; an OR of per-key terms would make it scan every row before the marker.
            var tail = q.sort.count
            while tail > 0, !q.sort[tail - 1].key.isNullable, q.sort[tail - 1].direction == q.sort.last!.direction { tail -= 1 }
            var alternatives: [String] = []
            var equalPrefix: [String] = []
            var prefixArgs: [(any DatabaseValueConvertible)?] = []
            for sort in q.sort[..<tail] {
                let col = sort.key.rawValue
                let bound = databaseValue(marker.sortValue(sort.key))
                var after: String?
                var afterArgs: [(any DatabaseValueConvertible)?] = []
                switch (sort.direction, bound) {
                case (.asc, nil): after = "\(col) IS NOT NULL"
                case (.asc, let v?): after = "\(col) > ?"; afterArgs = [v]
                case (.desc, nil): after = nil
                case (.desc, let v?): after = "(\(col) < ? OR \(col) IS NULL)"; afterArgs = [v]
                }
                if let after {
                    alternatives.append((equalPrefix + [after]).joined(separator: " AND "))
                    args.append(contentsOf: prefixArgs + afterArgs)
                }
                if let v = bound {
                    equalPrefix.append("\(col) = ?")
                    prefixArgs.append(v)
                } else {
                    equalPrefix.append("\(col) IS NULL")
                }
            }
            let rowKeys = q.sort[tail...]
            let columns = rowKeys.map(\.key.rawValue).joined(separator: ", ")
            let comparison = q.sort.last!.direction == .asc ? ">" : "<"
            alternatives.append((equalPrefix + ["(\(columns)) \(comparison) (\(placeholders(rowKeys.count)))"]).joined(separator: " AND "))
            args.append(contentsOf: prefixArgs)
            args.append(contentsOf: rowKeys.map { databaseValue(marker.sortValue($0.key)) })
            sql += " AND ((" + alternatives.joined(separator: ") OR (") + "))"
        }

        sql += " ORDER BY " + q.sort.map { "\($0.key.rawValue) \($0.direction == .asc ? "ASC" : "DESC")" }.joined(separator: ", ")
        sql += " LIMIT ?"
        args.append(q.limit)
        return (sql, StatementArguments(args))
    }

    static func databaseValue(_ v: SortValue) -> (any DatabaseValueConvertible)? {
        switch v {
        case .text(let s): return s
        case .integer(let i): return i
        }
    }

    static func placeholders(_ n: Int) -> String { Array(repeating: "?", count: max(n, 1)).joined(separator: ",") }

    static func op(_ c: ImageListQuery.Comparison) -> String {
        switch c {
        case .eq: return "="
        case .neq: return "<>"
        case .gt: return ">"
        case .gte: return ">="
        case .lt: return "<"
        case .lte: return "<="
        }
    }
}
