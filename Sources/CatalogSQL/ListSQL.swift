import Foundation
import ImageCore

/// Turns an `ImageListQuery` into one SELECT with bound values, for either catalog. Column names
/// come only from the query's enums; every caller-supplied value is bound.
public enum ListSQL {
    /// `extraColumn` is selected after the image's columns (an expression, the same in every row).
    /// `columns`: what to select instead of every column of the image (`selectColumns`).
    public static func build(_ q: ImageListQuery, _ dialect: SQLDialect, columns: String? = nil, extraColumn: String? = nil) -> SQLStatement {
        var st = SQLStatement(dialect, "SELECT \(columns ?? selectColumns(dialect))\(extraColumn.map { ", " + $0 } ?? "") FROM images")
        appendWhere(q, &st)
        if let marker = q.marker { appendAfterMarker(marker, q.sort, &st) }

        st.append(" ORDER BY " + q.sort.map { sort in
            let dir = sort.direction == .asc ? "ASC" : "DESC"
            // SQLite sorts NULLs first ascending and last descending; PostgreSQL the other way round.
            guard dialect == .postgres, sort.key.isNullable else { return "\(sort.key.rawValue) \(dir)" }
            return "\(sort.key.rawValue) \(dir) \(sort.direction == .asc ? "NULLS FIRST" : "NULLS LAST")"
        }.joined(separator: ", "))
        st.append(" LIMIT \(st.bind(.int(Int64(q.limit))))")
        if q.offset > 0 { st.append(" OFFSET \(st.bind(.int(Int64(q.offset))))") }
        return st
    }

    /// `SELECT COUNT(*)` over what `build` would list, without paging.
    public static func buildCount(_ q: ImageListQuery, _ dialect: SQLDialect) -> SQLStatement {
        var st = SQLStatement(dialect, "SELECT COUNT(*) FROM images")
        appendWhere(q, &st)
        return st
    }

    /// Status, hidden flag, visibility scope and filters.
    static func appendWhere(_ q: ImageListQuery, _ st: inout SQLStatement) {
        st.append(q.includePendingDelete ? " WHERE status NOT IN ('deleted','killed')" : " WHERE status NOT IN ('deleted','killed','pending_delete')")
        st.append(" AND os_hidden = \(st.bind(.bool(q.osHidden)))")

        let s = q.scope
        let project = SQLValue(s.projectId)
        func memberExists(_ st: inout SQLStatement) -> String {
            var clause = "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member_id = \(st.bind(project))"
            if let statuses = s.memberStatuses {
                clause += " AND m.status IN (\(statuses.isEmpty ? "NULL" : st.bindList(statuses.map { .text($0.rawValue) })))"
            }
            return clause + ")"
        }
        if s.isAdmin {
            switch s.visibility {
            case .default: st.append(" AND (visibility <> 'community' OR owner = \(st.bind(project)))")
            case .all: break
            case .only(let v): st.append(" AND visibility = \(st.bind(.text(v.rawValue)))")
            }
        } else {
            switch s.visibility {
            case .default:
                let owner = st.bind(project)
                st.append(" AND (visibility = 'public' OR owner = \(owner) OR (visibility = 'shared' AND \(memberExists(&st))))")
            case .all:
                let owner = st.bind(project)
                st.append(" AND (visibility IN ('public','community') OR owner = \(owner) OR (visibility = 'shared' AND \(memberExists(&st))))")
            case .only(.public): st.append(" AND visibility = 'public'")
            case .only(.community): st.append(" AND visibility = 'community'")
            case .only(.shared):
                let owner = st.bind(project)
                st.append(" AND visibility = 'shared' AND (owner = \(owner) OR \(memberExists(&st)))")
            case .only(.private):
                st.append(" AND visibility = 'private' AND owner = \(st.bind(project))")
            }
        }

        appendFilters(q.filters, &st)
    }

    /// Live images other than `except` that match a uniqueness check's candidate filters, whatever
    /// their owner, visibility or hidden flag; the caller applies the check's `clashes`.
    public static func buildCandidates(_ check: UniquenessCheck, except id: String, _ dialect: SQLDialect) -> SQLStatement {
        var st = SQLStatement(dialect, "SELECT \(selectColumns(dialect)) FROM images WHERE status NOT IN ('deleted','killed','pending_delete')")
        st.append(" AND id <> \(st.bind(.text(id)))")
        appendFilters(check.candidates, &st)
        st.append(" ORDER BY created_at, id LIMIT 100")
        return st
    }

    static func appendFilters(_ filters: [ImageListQuery.Filter], _ st: inout SQLStatement) {
        let dialect = st.dialect
        for f in filters {
            switch f {
            case .oneOf(_, let values) where values.isEmpty:
                st.append(" AND 1 = 0")
            case .oneOf(let col, let values):
                st.append(" AND \(col.rawValue) IN (\(st.bindList(values.map(SQLValue.text))))")
            case .string(let col, let v):
                st.append(" AND \(col.rawValue) = \(st.bind(.text(v)))")
            case .int(let col, let cmp, let v):
                st.append(" AND \(col.rawValue) \(op(cmp)) \(st.bind(.int(v)))")
            case .time(let col, let cmp, let v):
                st.append(" AND \(col.rawValue) \(op(cmp)) \(st.bind(.int(v)))")
            case .isProtected(let b):
                st.append(" AND protected = \(st.bind(.bool(b)))")
            case .tag(let t):
                switch dialect {
                case .sqlite: st.append(" AND EXISTS (SELECT 1 FROM json_each(images.tags) WHERE value = \(st.bind(.text(t))))")
                case .postgres: st.append(" AND tags @> jsonb_build_array(CAST(\(st.bind(.text(t))) AS TEXT))")
                }
            case .nameContains(let text):
                // SQLite: LIKE (ASCII case folding, as its lower()) with the text's % _ \ escaped, which
                // compares in place where lower() would copy every name. PostgreSQL: strpos of lower().
                switch dialect {
                case .sqlite:
                    let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                        .replacingOccurrences(of: "_", with: "\\_")
                    st.append(" AND name LIKE \(st.bind(.text("%" + escaped + "%"))) ESCAPE '\\'")
                case .postgres: st.append(" AND strpos(lower(name), lower(\(st.bind(.text(text))))) > 0")
                }
            case .property(let k, let v):
                switch dialect {
                case .sqlite:
                    let key = st.bind(.text(k))
                    st.append(" AND EXISTS (SELECT 1 FROM json_each(images.properties) WHERE key = \(key) AND value = \(st.bind(.text(v))))")
                case .postgres:
                    let key = st.bind(.text(k))
                    st.append(" AND properties @> jsonb_build_object(CAST(\(key) AS TEXT), CAST(\(st.bind(.text(v))) AS TEXT))")
                }
            }
        }
    }

    /// The image columns as selected: PostgreSQL hands JSONB documents back as text.
    public static func selectColumns(_ dialect: SQLDialect) -> String {
        switch dialect {
        case .sqlite: CatalogColumns.images
        case .postgres: CatalogColumns.imageNames.map { $0 == "tags" || $0 == "properties" ? "\($0)::text" : $0 }.joined(separator: ", ")
        }
    }

    /// Keyset paging: rows strictly after the marker in the sort order. NULLs sort first ascending
    /// and last descending, and `id` ends every sort, so the order is total. The trailing run of
    /// NOT NULL keys sharing one direction (at least `created_at, id`) becomes one row-value
    /// comparison, which the planner turns into an index range; an OR of per-key terms would make
    /// it scan every row before the marker.
    static func appendAfterMarker(_ marker: Image, _ sort: [ImageListQuery.Sort], _ st: inout SQLStatement) {
        var tail = sort.count
        while tail > 0, !sort[tail - 1].key.isNullable, sort[tail - 1].direction == sort.last!.direction { tail -= 1 }
        var alternatives: [String] = []
        /// Renders "every earlier key equals the marker's" with fresh bindings (`?` cannot be reused).
        func equalPrefix(_ n: Int) -> [String] {
            sort[..<n].map { s in
                let v = value(marker.sortValue(s.key))
                return v == .null ? "\(s.key.rawValue) IS NULL" : "\(s.key.rawValue) = \(st.bind(v))"
            }
        }
        for (i, s) in sort[..<tail].enumerated() {
            let col = s.key.rawValue
            let bound = value(marker.sortValue(s.key))
            switch (s.direction, bound) {
            case (.asc, .null):
                alternatives.append((equalPrefix(i) + ["\(col) IS NOT NULL"]).joined(separator: " AND "))
            case (.asc, _):
                let prefix = equalPrefix(i)
                alternatives.append((prefix + ["\(col) > \(st.bind(bound))"]).joined(separator: " AND "))
            case (.desc, .null):
                break  // nothing sorts after NULL descending
            case (.desc, _):
                let prefix = equalPrefix(i)
                let v = st.bind(bound)
                alternatives.append((prefix + ["(\(col) < \(v) OR \(col) IS NULL)"]).joined(separator: " AND "))
            }
        }
        let rowKeys = sort[tail...]
        let prefix = equalPrefix(tail)
        let columns = rowKeys.map(\.key.rawValue).joined(separator: ", ")
        let comparison = sort.last!.direction == .asc ? ">" : "<"
        let bounds = st.bindList(rowKeys.map { value(marker.sortValue($0.key)) })
        alternatives.append((prefix + ["(\(columns)) \(comparison) (\(bounds))"]).joined(separator: " AND "))
        st.append(" AND ((" + alternatives.joined(separator: ") OR (") + "))")
    }

    static func value(_ v: SortValue) -> SQLValue {
        switch v {
        case .text(let s): SQLValue(s)
        case .integer(let i): SQLValue(i)
        }
    }

    static func op(_ c: ImageListQuery.Comparison) -> String {
        switch c {
        case .eq: "="
        case .neq: "<>"
        case .gt: ">"
        case .gte: ">="
        case .lt: "<"
        case .lte: "<="
        }
    }
}
