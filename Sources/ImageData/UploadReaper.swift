import ImageCore
import Logging
import Synchronization

/// Keeps this node's heartbeat in the catalog and cleans up after nodes that died: an image left in
/// `saving` (or `uploading`) by a node whose heartbeat stopped goes back to `queued` with nothing
/// kept, multipart uploads older than `multipartMaxAge` are aborted (but not those of open resumable
/// uploads), and resumable upload sessions past their expiry are dropped. Every node runs one; the
/// requeue is a conditional catalog write (still that status, still that writer), so two reapers,
/// or a reaper and the writer, never both win, and a writer that was reaped is refused at its finish.
public struct UploadReaper: Sendable {
    public struct Options: Sendable {
        /// Seconds between heartbeats (`--node-heartbeat-seconds`).
        public var heartbeatSeconds: Int64 = 5
        /// A node silent for this long is dead (3 heartbeats by default).
        public var deadAfter: Int64?
        /// Multipart uploads older than this are orphans (`--s3-multipart-max-age`, 24 h).
        public var multipartMaxAge: Int64 = 86_400
        public init() {}
        public var deadBound: Int64 { deadAfter ?? 3 * heartbeatSeconds }
    }

    public struct Report: Sendable, Equatable {
        public var imagesRequeued = 0
        public var uploadsAborted = 0
        public init() {}
    }

    let data: ImageDataService
    let catalog: any Catalog
    public let options: Options
    let logger: Logger
    let state = ReaperState()

    public init(data: ImageDataService, catalog: any Catalog, options: Options, logger: Logger = Logger(label: "imaged.reaper")) {
        self.data = data; self.catalog = catalog; self.options = options; self.logger = logger
    }

    var node: String { data.images.nodeId }
    var liveness: WriterLiveness { WriterLiveness(deadAfter: options.deadBound) }

    /// Renews this node's heartbeat; remembers since when the catalog has been reachable without a gap.
    public func beat(now: Int64 = Timestamp.now()) async {
        do {
            try await catalog.beat(node: node, at: now)
            state.reached(at: now)
        } catch {
            state.lost()
            logger.warning("heartbeat failed", metadata: ["node": .string(node), "error": "\(error)"])
        }
    }

    /// One pass over the uploads of dead nodes. `judgeAnyway` skips the reachability rule (tests).
    @discardableResult
    public func sweepImages(now: Int64 = Timestamp.now(), judgeAnyway: Bool = false) async throws -> Int {
        guard judgeAnyway || liveness.mayJudge(reachableSince: state.since, now: now) else { return 0 }
        let beats = try await catalog.heartbeats()
        var requeued = 0
        for image in try await catalog.images(withStatus: [.saving, .uploading])
        where liveness.isAbandoned(writer: image.writerNode, heartbeats: beats, selfNode: node, now: now) {
            guard let dead = image.writerNode else { continue }
            let after = try await data.images.returnToQueued(id: image.id, from: [image.status], writer: .exactly(dead))
            // Someone else won (the writer finished, another reaper requeued it): not ours to clean.
            guard let after, after.status == .queued else { continue }
            requeued += 1
            logger.notice("image \(image.id) was \(image.status.rawValue) by node \(dead), silent since \(beats[dead].map(String.init) ?? "ever"): back to queued")
            await removeLeftovers(of: image.id)
        }
        return requeued
    }

    /// What the dead writer may have committed before it died (a blob under the image's key, staged
    /// data). Re-read first: a new upload may have begun since the requeue.
    func removeLeftovers(of id: String) async {
        guard let current = try? await catalog.image(id: id), current.status == .queued, current.writerNode == nil else { return }
        for store in data.stores.all { try? await store.delete(key: BlobKey.image(id)) }
        try? await data.blobs.delete(key: BlobKey.staging(id))
    }

    /// Aborts orphan multipart uploads in every store that can have them.
    @discardableResult
    public func sweepUploads(now: Int64 = Timestamp.now()) async throws -> Int {
        var aborted = 0
        // Read before listing the stores: a session opened after this read is younger than maxAge.
        let sessions = try await data.images.openUploadTokens()
        for store in data.stores.all {
            guard let reaping = store as? any BlobStoreOrphanReaping else { continue }
            aborted += try await reaping.abortStaleUploads(maxAge: options.multipartMaxAge, now: now, keeping: sessions[store.id] ?? [])
        }
        return aborted
    }

    /// Seconds between multipart sweeps: a fraction of the bound, at most 5 minutes.
    var uploadSweepSeconds: Int64 { max(options.heartbeatSeconds, min(300, options.multipartMaxAge / 4)) }

    public func run() async {
        var lastUploadSweep: Int64 = 0
        while !Task.isCancelled {
            await beat()
            let now = Timestamp.now()
            do {
                try await sweepImages(now: now)
            } catch {
                logger.warning("abandoned-upload sweep failed", metadata: ["error": "\(error)"])
            }
            do {
                try await data.sweepExpiredUploadSessions(now: now)
            } catch {
                logger.warning("upload session sweep failed", metadata: ["error": "\(error)"])
            }
            if now - lastUploadSweep >= uploadSweepSeconds {
                lastUploadSweep = now
                do { try await sweepUploads(now: now) } catch {
                    logger.warning("multipart sweep failed", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .seconds(options.heartbeatSeconds))
        }
    }
}

/// Since when this node has reached the catalog without a failed heartbeat.
final class ReaperState: Sendable {
    private let value = Mutex<Int64?>(nil)
    var since: Int64? { value.withLock { $0 } }
    func reached(at now: Int64) { value.withLock { if $0 == nil { $0 = now } } }
    func lost() { value.withLock { $0 = nil } }
}
