import NIOCore

/// Where image bytes live: files under the data directory, or an S3 bucket.
///
/// Keys are short relative names made by the service (`images/<uuid>`, `staging/<uuid>`), never
/// caller input. A blob is visible under its key only once its writer commits, so a reader never
/// sees half-written data.
public protocol BlobStore: Sendable {
    /// A short name for logs and `/v2/info/stores`.
    var id: String { get }
    /// What `/v2/info/stores` says about it.
    var description: String { get }
    /// Starts a blob. Its bytes stay invisible until `commit()`; `cancel()` discards them.
    /// Committing replaces any blob already under `key`.
    func makeWriter(key: String) async throws -> any BlobWriter
    /// Size of the committed blob, nil when absent.
    func size(key: String) async throws -> Int64?
    /// Pushes the bytes of `range` (the whole blob when nil) to `sink` in order, awaiting each
    /// call, so a slow consumer slows the read instead of buffering it.
    func read(key: String, range: Range<Int64>?, chunkSize: Int,
              into sink: (ByteBuffer) async throws -> Void) async throws
    /// Removes a committed blob; absent is not an error.
    func delete(key: String) async throws
    /// Committed keys starting with `prefix` (for the start-up scrub).
    func keys(prefix: String) async throws -> [String]
    /// Removes what writers left behind without committing or cancelling (a crash).
    /// Returns how many leftovers were removed. Call only when no writer of this process is open.
    func removeLeftovers() async throws -> Int
}

extension BlobStore {
    public var description: String { id }
}

/// What every store driver throws when it fails, so callers (and the conformance suite) can tell
/// the conditions apart without knowing the driver. `message` is the driver's own account (a
/// syscall and its errno, S3's status, code and message); `description` is the message.
/// Cancellation is not a store failure: a cancelled operation throws `CancellationError`.
public struct BlobStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The key is not a blob key (`BlobKey.isValid`): refused before the store is touched.
        case invalidKey
        /// Reading a blob that is not committed under the key (never written, cancelled or deleted).
        case notFound
        /// A byte range that starts at or past the end of the blob. (A range that only ends past
        /// it gets the bytes there are from S3; the file store delivers them, then throws this.)
        case invalidRange
        /// `write` or `commit` on a writer that was already committed or cancelled.
        case writerClosed
        /// The store refused the credentials or the access (S3 401/403).
        case accessDenied
        /// The store could not be reached or kept failing after retries (S3 connection errors,
        /// timeouts, 5xx and throttling).
        case unavailable
        /// The store failed the operation otherwise: a file system call (disk full, permissions,
        /// a blob shorter than its size), an S3 answer refusing the request or not making sense.
        case io
        /// The file system is full (ENOSPC, EDQUOT): the write failed and left nothing behind.
        case noSpace
        /// The driver's configuration is unusable (an S3 endpoint that is not http(s)://host…).
        case badConfiguration
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }

    public var description: String { message }
}

/// Space of a store, for APIs that show it (ZStack's backup storage capacities).
public struct BlobStoreCapacity: Sendable, Equatable {
    public var total: Int64
    public var available: Int64
    public init(total: Int64, available: Int64) { self.total = total; self.available = available }
}

/// Stores that can tell their capacity (files: the file system's); S3 cannot.
public protocol BlobStoreCapacityReporting: Sendable {
    func capacity() async -> BlobStoreCapacity?
}

/// Stores whose writers can leave something behind when their node dies (S3's multipart uploads,
/// abandoned resumable blobs): the reaper aborts what is older than a bound no live writer reaches.
public protocol BlobStoreOrphanReaping: Sendable {
    /// Aborts unfinished writes begun more than `maxAge` seconds before `now`, except the resumable
    /// blobs of the open sessions (their tokens, `keeping`); returns how many.
    func abortStaleUploads(maxAge: Int64, now: Int64, keeping: [String]) async throws -> Int
}

/// Stores whose blobs can be written over several requests, by any node: resumable uploads. The
/// caller keeps the token each step returns (in the catalog) and hands it back to continue. Bytes
/// stay invisible until the writer commits, as with `makeWriter`.
public protocol ResumableBlobStore: BlobStore {
    /// The offsets (multiples of it) where `checkpoint` costs no extra write: S3's part size, 1 for files.
    var checkpointAlignment: Int64 { get }
    /// Starts an empty resumable blob that `commit()` will publish under `key`; `session` names it
    /// (unique, `[0-9a-f-]`). Returns its token.
    func beginResumable(key: String, session: String) async throws -> String
    /// A writer appending at `offset`, the offset of the checkpoint that returned `token`. Bytes the
    /// store holds past it (written, never checkpointed) are dropped.
    func resumeWriter(key: String, token: String, offset: Int64) async throws -> any ResumableBlobWriter
    /// Discards a resumable blob and everything it holds; an unknown token is not an error.
    func discardResumable(token: String) async
    /// `removeLeftovers()`, sparing the resumable blobs of the open sessions (their tokens).
    func removeLeftovers(keeping: [String]) async throws -> Int
}

/// A writer of a resumable blob: `commit()` publishes it, `cancel()` discards all of it.
public protocol ResumableBlobWriter: BlobWriter {
    /// Makes every byte written so far durable; returns the token to resume from this offset.
    func checkpoint() async throws -> String
    /// `checkpoint` in two halves: the token at once, durability when `durable` returns. `durable` may
    /// run while the writer takes more bytes (the file store's fsync), so the stream need not wait for it.
    func beginCheckpoint() async throws -> (token: String, durable: @Sendable () async throws -> Void)
    /// Stops writing, keeping what the last checkpoint saved for a later `resumeWriter`. Never throws.
    func suspend() async
}

extension ResumableBlobWriter {
    /// Durable before returning: for writers whose checkpoint has nothing to overlap (S3's parts are durable once sent).
    public func beginCheckpoint() async throws -> (token: String, durable: @Sendable () async throws -> Void) {
        (try await checkpoint(), {})
    }
}

extension BlobStore {
    /// The store's resumable side, when it has one (through a `NamedBlobStore` too).
    public var resumable: (any ResumableBlobStore)? {
        (self as? NamedBlobStore)?.base as? any ResumableBlobStore ?? self as? any ResumableBlobStore
    }
}

/// One blob being written. Not for concurrent use: one task writes, then commits or cancels.
public protocol BlobWriter: Sendable {
    /// Appends bytes. Throws when the store fails (disk full, network…).
    func write(_ buffer: ByteBuffer) async throws
    /// Makes the bytes durable and visible under the key, all at once.
    func commit() async throws
    /// Discards everything written; never throws, safe to call after a failed write or twice.
    func cancel() async
}

/// Where the service keeps each kind of blob.
public enum BlobKey {
    public static func image(_ id: String) -> String { "images/\(id)" }
    public static func staging(_ id: String) -> String { "staging/\(id)" }

    /// What every store accepts as a key: `/`-separated names of printable ASCII, none empty or
    /// starting with `.` (so no `..`, no hidden or temporary names, no absolute paths), no `\\`.
    public static func isValid(_ key: String) -> Bool {
        guard !key.isEmpty, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\\") }) else { return false }
        return !key.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0.hasPrefix(".") }
    }
}

/// A store under the name the operator gave it (`--store NAME=…`); everything else is the base store's.
public struct NamedBlobStore: BlobStore, BlobStoreCapacityReporting, BlobStoreOrphanReaping {
    let base: any BlobStore
    public let id: String
    public let description: String

    public init(_ base: any BlobStore, id: String, description: String) { self.base = base; self.id = id; self.description = description }

    public func makeWriter(key: String) async throws -> any BlobWriter { try await base.makeWriter(key: key) }
    public func size(key: String) async throws -> Int64? { try await base.size(key: key) }
    public func read(key: String, range: Range<Int64>?, chunkSize: Int,
                     into sink: (ByteBuffer) async throws -> Void) async throws {
        try await base.read(key: key, range: range, chunkSize: chunkSize, into: sink)
    }
    public func delete(key: String) async throws { try await base.delete(key: key) }
    public func keys(prefix: String) async throws -> [String] { try await base.keys(prefix: prefix) }
    public func removeLeftovers() async throws -> Int { try await base.removeLeftovers() }
    public func capacity() async -> BlobStoreCapacity? { await (base as? any BlobStoreCapacityReporting)?.capacity() }
    public func abortStaleUploads(maxAge: Int64, now: Int64, keeping: [String]) async throws -> Int {
        try await (base as? any BlobStoreOrphanReaping)?.abortStaleUploads(maxAge: maxAge, now: now, keeping: keeping) ?? 0
    }
}

/// Every configured store (Glance's multiple backends). Uploads and imports go to the default store
/// unless told otherwise; staged data always lives in the default store. An image records where its
/// data is in its `stores` property (comma-separated ids, Glance's attribute).
public struct BlobStores: Sendable {
    public let all: [any BlobStore]
    public let defaultStore: any BlobStore
    /// Stores were named by the operator: `/v2/info/stores` lists them and imports may choose.
    public let multiple: Bool

    public init(_ stores: [any BlobStore], defaultId: String? = nil) throws {
        guard let first = stores.first else { throw ImageError(.internal, "no blob store configured") }
        guard Set(stores.map(\.id)).count == stores.count else { throw ImageError(.internal, "store ids must be unique") }
        all = stores
        guard let d = defaultId.map({ id in stores.first { $0.id == id } }) ?? first else {
            throw ImageError(.internal, "the default store '\(defaultId ?? "")' is not configured")
        }
        defaultStore = d
        multiple = true
    }

    /// One unnamed store (the default configuration): no `/v2/info/stores`, no store choices.
    public init(single: any BlobStore) {
        all = [single]; defaultStore = single; multiple = false
    }

    public func store(_ id: String) -> (any BlobStore)? { all.first { $0.id == id } }

    /// Ids of the stores the image's data is in (its `stores` property; the default store for
    /// images written before stores were recorded).
    public func ids(of image: Image) -> [String] {
        let listed = ImageService.storeIds(image)
        return listed.isEmpty ? [defaultStore.id] : listed
    }

    /// The configured stores holding the image's data, in the order recorded.
    public func holding(_ image: Image) -> [any BlobStore] { ids(of: image).compactMap(store) }
}

extension ImageService {
    /// Glance's `stores` image attribute: where the data is.
    public static let storesKey = "stores"

    public static func storeIds(_ image: Image) -> [String] {
        (image.properties[storesKey] ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }
}
