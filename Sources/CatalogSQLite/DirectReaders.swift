import CatalogSQL
import GRDBSQLite
import ImageCore
import Synchronization

/// Point reads on read-only connections of our own, run on the calling thread.
///
/// GRDB's async `read` hops to a dispatch queue and back, two thread switches for a lookup by
/// primary key that itself takes a few microseconds; on a GET that was most of the cost beyond the
/// HTTP stack. In WAL mode a reader never waits for the writer, so a short read on a cooperative
/// thread does not block it for long. A connection is used by one caller at a time; when all
/// `capacity` are taken the caller gets nil and goes through GRDB's pool instead, so callers never
/// wait here for each other.
final class DirectReaders: Sendable {
    private let path: String
    private let capacity: Int
    private let budgetSteps: Int
    private let idle = Mutex<(free: [DirectReader], opened: Int)>(([], 0))

    init(path: String, capacity: Int, budgetSteps: Int = DirectReader.budgetSteps) {
        self.path = path
        self.capacity = capacity
        self.budgetSteps = budgetSteps
    }

    deinit {
        idle.withLock { state in for reader in state.free { reader.close() } }
    }

    /// Runs `body` on a free connection (opened on first need); nil when every connection is busy.
    func read<T>(_ body: (DirectReader) throws -> T) throws -> T? {
        let reader: DirectReader
        switch idle.withLock({ state -> DirectReader?? in
            if let r = state.free.popLast() { return .some(r) }
            guard state.opened < capacity else { return .none }
            state.opened += 1
            return .some(nil)
        }) {
        case .none: return nil
        case .some(.some(let r)): reader = r
        case .some(.none):
            do { reader = try DirectReader(path: path, budgetSteps: budgetSteps) } catch {
                idle.withLock { $0.opened -= 1 }
                throw error
            }
        }
        defer { idle.withLock { $0.free.append(reader) } }
        return try body(reader)
    }
}

/// One read-only connection with its prepared statements. Used by one thread at a time (DirectReaders).
final class DirectReader: @unchecked Sendable {
    private let db: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    /// [steps of 1,000 VM instructions so far, the most allowed]: the progress handler's state.
    private let budget = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    /// About 2–5 ms of work: an indexed page of a list takes a few thousand instructions, a sort over a
    /// million rows tens of millions.
    static let budgetSteps = 200
    static let mmapBytes = 4 << 30

    init(path: String, budgetSteps: Int = DirectReader.budgetSteps) throws {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw ImageError(.unavailable, "catalog read connection: \(message)")
        }
        // WAL recovery or a checkpoint can hold a reader off briefly.
        sqlite3_busy_timeout(handle, 2_000)
        // Pages are read from the mapped file instead of copied by a pread each: at a million images
        // the catalog outgrows each connection's page cache and the copies were a tenth of a list.
        // (SQLite caps the size at its compile-time limit; the WAL is still read the usual way.)
        sqlite3_exec(handle, "PRAGMA mmap_size = \(Self.mmapBytes)", nil, nil, nil)
        db = handle
        budget[0] = 0
        budget[1] = budgetSteps
        sqlite3_progress_handler(handle, 1_000, { context in
            let b = context!.assumingMemoryBound(to: Int.self)
            b[0] += 1
            return b[0] > b[1] ? 1 : 0
        }, budget)
    }

    func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_close_v2(db)
        budget.deallocate()
    }

    /// Binds `values` to the statement's parameters in order, steps it, and decodes every row.
    func rows<T>(_ sql: String, _ values: [SQLValue], decode: (OpaquePointer) throws -> T) throws -> [T] {
        let statement = try prepared(sql)
        defer { sqlite3_reset(statement); sqlite3_clear_bindings(statement) }
        budget[0] = 0
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32 = switch value {
            case .null: sqlite3_bind_null(statement, index)
            case .text(let s): s.withCString { sqlite3_bind_text(statement, index, $0, -1, Self.transient) }
            case .int(let n): sqlite3_bind_int64(statement, index, n)
            case .bool(let b): sqlite3_bind_int64(statement, index, b ? 1 : 0)
            }
            guard rc == SQLITE_OK else { throw failure(rc) }
        }
        var out: [T] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return out }
            if rc == SQLITE_INTERRUPT { throw DirectReadOverBudget() }
            guard rc == SQLITE_ROW else { throw failure(rc) }
            out.append(try decode(statement))
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        // Lists make one statement per query shape; keep a bounded set.
        if statements.count >= 128 {
            for statement in statements.values { sqlite3_finalize(statement) }
            statements = [:]
        }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw failure(rc) }
        statements[sql] = statement
        return statement
    }

    private func failure(_ rc: Int32) -> ImageError {
        ImageError(rc == SQLITE_BUSY ? .unavailable : .internal, "catalog read: \(String(cString: sqlite3_errmsg(db))) (\(rc))")
    }

    /// SQLITE_TRANSIENT: SQLite copies the bound text before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// A direct read stopped at its budget: the caller runs it again on GRDB's reader threads, where a
/// long scan does not hold a cooperative thread.
struct DirectReadOverBudget: Error {}
