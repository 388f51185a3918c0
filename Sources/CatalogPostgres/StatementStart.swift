import ImageCore
import NIOCore
import PostgresNIO

extension PostgresConnection {
    /// Runs a statement that `start` begins, begun from the connection's event loop once it has seen
    /// there that the connection is open; a closed one is `.unavailable` at once.
    ///
    /// Why: postgres-nio hands a statement to its channel without a promise for the write. Once a
    /// closed channel has dropped its handlers (a tick after it closed), the statement is discarded and
    /// its answer never comes. A connection the pool had just leased as PostgreSQL shut down hung its
    /// query for good, and with it every GET waiting on the shared revision check: a node answered no
    /// GET again after a database restart (seen in the chaos test). The handlers are dropped only after
    /// the channel turns inactive, on this same loop, so a statement begun there on an open connection
    /// reaches a handler that answers it, whatever happens to the connection afterwards.
    func whileOpen<T: Sendable>(_ start: @escaping @Sendable (PostgresConnection) -> EventLoopFuture<T>) async throws -> T {
        try await eventLoop.flatSubmit { [self] in
            guard !isClosed else {
                return eventLoop.makeFailedFuture(ImageError(.unavailable, "The catalog database closed the connection; retry shortly."))
            }
            return start(self)
        }.get()
    }
}
