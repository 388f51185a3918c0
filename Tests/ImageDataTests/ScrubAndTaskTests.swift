import BlobStoreFile
import CatalogSQLite
import Crypto
import Foundation
import ImageCore
import NIOCore
import Synchronization
import Testing
@testable import ImageData

/// A catalog and a file store in a temp dir, as one node has them.
struct Node {
    let dir: String
    let catalog: SQLiteCatalog
    let blobs: FileBlobStore
    var service: ImageService { ImageService(catalog: catalog) }
    let admin = Principal(userId: "u", projectId: "p", roles: ["admin"])

    init() throws {
        dir = temporaryDirectory("node")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        catalog = try SQLiteCatalog(path: dir + "/catalog.sqlite", durability: .normal)
        blobs = try FileBlobStore(root: dir + "/blobs")
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func image(_ status: ImageStatus, properties: [String: String] = [:]) async throws -> String {
        let now = Timestamp.now()
        let image = Image(id: ImageID.generate(), status: status, owner: "p", containerFormat: "bare", diskFormat: "raw",
                          size: status == .active ? 3 : nil, createdAt: now, updatedAt: now, properties: properties)
        try await catalog.insertImage(image)
        return image.id
    }

    func put(_ key: String, _ bytes: [UInt8]) async throws {
        let w = try await blobs.makeWriter(key: key)
        try await w.write(ByteBuffer(bytes: bytes))
        try await w.commit()
    }
}

@Suite struct StartupScrubTests {
    @Test func crashLeftoversAreCleanedAndStuckImagesQueued() async throws {
        let node = try Node()
        defer { node.remove() }
        let active = try await node.image(.active)
        try await node.put(BlobKey.image(active), [1, 2, 3])
        let saving = try await node.image(.saving)
        try await node.put(BlobKey.image(saving), [4])          // committed, but the catalog never recorded it
        let stagedOK = try await node.image(.uploading)
        try await node.put(BlobKey.staging(stagedOK), [5])
        let stagedLost = try await node.image(.uploading)       // crashed while staging: no staged blob
        let orphan = ImageID.generate()
        try await node.put(BlobKey.image(orphan), [6])          // no image at all
        let deleted = try await node.image(.deleted)
        try await node.put(BlobKey.image(deleted), [7])
        let importingDead = try await node.image(.importing, properties: [ImageService.importLockKey: "no-such-task"])
        FileManager.default.createFile(atPath: node.dir + "/blobs/.tmp/crash.part", contents: Data([1]))

        let report = try await StartupScrub(catalog: node.catalog, blobs: node.blobs).run()
        #expect(report.temporariesRemoved == 1)
        #expect(report.imagesRequeued == 3)
        #expect(report.blobsRemoved == 3)
        #expect(try await node.catalog.image(id: saving)?.status == .queued)
        #expect(try await node.catalog.image(id: stagedLost)?.status == .queued)
        #expect(try await node.catalog.image(id: stagedOK)?.status == .uploading)
        let requeuedImport = try await node.catalog.image(id: importingDead)
        #expect(requeuedImport?.status == .queued)
        #expect(requeuedImport?.properties[ImageService.failedImportKey] == "file")
        #expect(requeuedImport?.properties[ImageService.importLockKey] == nil)
        #expect(try await node.blobs.keys(prefix: "images/") == [BlobKey.image(active)])
        #expect(try await node.blobs.keys(prefix: "staging/") == [BlobKey.staging(stagedOK)])
        #expect(try await node.catalog.image(id: active)?.status == .active)
        // A second run finds nothing to do.
        #expect(try await StartupScrub(catalog: node.catalog, blobs: node.blobs).run() == .init())
    }
}

/// Polls `condition` until it holds or `timeout` passes; whether it held. For tests that wait for
/// something to happen: the wait ends as soon as it has, and a bounded wait fails instead of hanging.
func eventually(within timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
}

/// A point a test double gets to (a download's first chunk, the end of a request body), made
/// explicit so the test waits for it instead of sleeping: the double calls `reach()`, the test
/// `reached()`. A holding checkpoint keeps the double there until the test calls `open()` (or the
/// double's task is cancelled), so the test acts while the double is known to be at that point.
/// One task reaches it.
final class Checkpoint: Sendable {
    private let wasReached = Mutex(false)
    private let gate: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)?

    init(holds: Bool = false) { gate = holds ? AsyncStream<Void>.makeStream() : nil }

    func reach() async {
        wasReached.withLock { $0 = true }
        if let gate { for await _ in gate.stream {} }
    }

    func open() { gate?.continuation.finish() }

    /// Whether the double got there within `timeout`.
    func reached(within timeout: Duration = .seconds(10)) async -> Bool {
        await eventually(within: timeout) { self.wasReached.withLock { $0 } }
    }
}

/// Values a test double saw, in order.
final class Recorder<T: Sendable>: Sendable {
    private let seen = Mutex<[T]>([])
    func add(_ value: T) { seen.withLock { $0.append(value) } }
    var values: [T] { seen.withLock { $0 } }
}

/// Callbacks that go nowhere (the import tests do not send any).
struct NoCallbacks: CallbackSender {
    func vet(_ url: String, by p: Principal) async throws {}
    func post(_ url: String, body: [UInt8], headers: [(String, String)], asAdmin: Bool) async -> Bool { false }
}

/// A test double for the network side of web-download.
struct ScriptedFetcher: RemoteFetcher {
    var body: [UInt8]
    var failAfter: Int? = nil
    var delayPerChunk: Duration = .zero
    /// Reached once the first chunk went to the sink.
    var afterFirstChunk: Checkpoint? = nil
    struct Cut: Error {}
    /// Whether each fetch was made with the admin's reach (what the task recorded at creation).
    var fetchedAsAdmin: Recorder<Bool>? = nil
    /// The size of each chunk that went to the sink.
    var chunksSent: Recorder<Int>? = nil
    func vet(_ url: String, asAdmin: Bool) async throws {
        if url.contains("forbidden") { throw ImageError.badRequest("URI for web-download does not pass filtering: \(url)") }
        if url.contains("private"), !asAdmin { throw ImageError.badRequest("only admins may import from private addresses") }
    }
    func fetch(_ url: String, asAdmin: Bool, maxBytes: Int64, announce: (Int64?) async throws -> Void,
               into sink: (ByteBuffer) async throws -> Void) async throws {
        fetchedAsAdmin?.add(asAdmin)
        try await announce(Int64(body.count))
        var sent = 0
        while sent < body.count {
            if let failAfter, sent >= failAfter { throw Cut() }
            let n = min(65_536, body.count - sent)
            try await sink(ByteBuffer(bytes: body[sent..<sent + n]))
            chunksSent?.add(n)
            if sent == 0, let afterFirstChunk { await afterFirstChunk.reach() }
            sent += n
            if delayPerChunk > .zero { try await Task.sleep(for: delayPerChunk) }
        }
    }
}

func webDownload(_ uri: String) -> JSONValue {
    .object([("method", .object([("name", .string("web-download")), ("uri", .string(uri))]))])
}

@Suite struct ImportTaskTests {
    func setUp(_ node: Node, fetcher: ScriptedFetcher, options: TaskRunner.Options = .init()) -> (ImageImports, TaskRunner) {
        let data = ImageDataService(images: node.service, blobs: node.blobs)
        let runner = TaskRunner(catalog: node.catalog, options: options)
        runner.attach(data: data, fetcher: fetcher)
        return (ImageImports(data: data, fetcher: fetcher, runner: runner, callbacks: NoCallbacks()), runner)
    }

    /// Imports whose download takes about 10 s (4 MiB: 64 chunks of 64 KiB, one every 150 ms), on 1 s
    /// leases: a run that stops at its next renewal has fetched a few chunks, one that went on all 64.
    /// Counting chunks, not seconds, keeps the check exact on a loaded machine.
    /// The checkpoint is reached once the first chunk is written.
    static let slowDownloadChunks = 64

    func slowDownload(_ node: Node) -> (ImageImports, TaskRunner, Checkpoint, Recorder<Int>) {
        var options = TaskRunner.Options()
        options.leaseSeconds = 1
        let downloading = Checkpoint()
        let chunks = Recorder<Int>()
        var fetcher = ScriptedFetcher(body: pseudoRandom(Self.slowDownloadChunks << 16), delayPerChunk: .milliseconds(150),
                                      afterFirstChunk: downloading)
        fetcher.chunksSent = chunks
        let (imports, runner) = setUp(node, fetcher: fetcher, options: options)
        return (imports, runner, downloading, chunks)
    }

    /// The fetch runs later, without the principal: the task carries whether an admin asked, and only
    /// the server sets it (a member's request body cannot).
    @Test func theFetchGetsTheReachOfWhoeverStartedTheImport() async throws {
        let node = try Node()
        defer { node.remove() }
        let seen = Recorder<Bool>()
        var fetcher = ScriptedFetcher(body: pseudoRandom(1_000, seed: 3))
        fetcher.fetchedAsAdmin = seen
        let (imports, runner) = setUp(node, fetcher: fetcher)
        let member = Principal(userId: "m", projectId: "p", roles: ["member"])

        let refused = try await node.image(.queued)
        await #expect(throws: ImageError.self) {
            _ = try await imports.start(id: refused, method: "web-download", uri: "http://private.example/x",
                                        requestBody: webDownload("http://private.example/x"), requestId: nil, by: member)
        }
        #expect(try await node.catalog.image(id: refused)?.status == .queued)
        #expect(try await node.catalog.tasks(imageId: refused).isEmpty)

        let forged = JSONValue.object([("method", .object([("name", .string("web-download")), ("uri", .string("http://example.org/x"))])),
                                       ("requested_by_admin", .bool(true))])
        let byMember = try await node.image(.queued)
        let memberTask = try await imports.start(id: byMember, method: "web-download", uri: "http://example.org/x",
                                                 requestBody: forged, requestId: nil, by: member)
        await runner.execute(try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 30)))
        #expect(try await node.catalog.task(id: memberTask.id)?.status == .success)

        let byAdmin = try await node.image(.queued)
        let adminTask = try await imports.start(id: byAdmin, method: "web-download", uri: "http://private.example/x",
                                                requestBody: webDownload("http://private.example/x"), requestId: nil, by: node.admin)
        await runner.execute(try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 30)))
        #expect(try await node.catalog.task(id: adminTask.id)?.status == .success)
        #expect(try await node.catalog.image(id: byAdmin)?.status == .active)
        #expect(seen.values == [false, true])
    }

    @Test func webDownloadRunsToActiveWithDigestsAndProgress() async throws {
        let node = try Node()
        defer { node.remove() }
        let body = pseudoRandom(300_000, seed: 5)
        let (imports, runner) = setUp(node, fetcher: ScriptedFetcher(body: body))
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://example.org/x", requestBody: webDownload("http://example.org/x"),
                                           requestId: "req-1", by: node.admin)
        #expect(try await node.catalog.image(id: id)?.status == .importing)
        #expect(try await node.catalog.image(id: id)?.properties[ImageService.importLockKey] == task.id)
        #expect(try await node.catalog.image(id: id)?.properties[ImageService.importingToStoresKey] == "file")
        let claimed = try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 30))
        await runner.execute(claimed)
        let image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .active)
        #expect(image.checksum == hex(Insecure.MD5.hash(data: body)))
        #expect(image.osHashValue == hex(SHA512.hash(data: body)))
        #expect(image.size == 300_000)
        #expect(image.properties[ImageService.importLockKey] == nil)
        #expect(image.properties[ImageService.importingToStoresKey] == "")  // Glance keeps the list, emptied
        let done = try #require(try await node.catalog.task(id: task.id))
        #expect(done.status == .success)
        #expect(done.bytesDone == 300_000 && done.bytesTotal == 300_000)
        #expect(done.result == #"{"image_id":"\#(id)"}"#)
        #expect(done.requestId == "req-1")
        #expect(try await node.blobs.size(key: BlobKey.image(id)) == 300_000)
    }

    @Test func failedDownloadQueuesImageAgainAndLeavesNoBlob() async throws {
        let node = try Node()
        defer { node.remove() }
        let (imports, runner) = setUp(node, fetcher: ScriptedFetcher(body: pseudoRandom(300_000), failAfter: 131_072))
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://example.org/x", requestBody: webDownload("http://example.org/x"),
                                           requestId: nil, by: node.admin)
        await runner.execute(try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 30)))
        let image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .queued)
        #expect(image.properties[ImageService.failedImportKey] == "file")
        #expect(image.properties[ImageService.importLockKey] == nil)
        #expect(try await node.catalog.task(id: task.id)?.status == .failure)
        #expect(try await node.catalog.task(id: task.id)?.message.contains("Cut") == true)
        #expect(try await node.blobs.keys(prefix: "").isEmpty)
        #expect(try await node.blobs.removeLeftovers() == 0)
    }

    @Test func refusedURLIs400AndCreatesNoTask() async throws {
        let node = try Node()
        defer { node.remove() }
        let (imports, _) = setUp(node, fetcher: ScriptedFetcher(body: []))
        let id = try await node.image(.queued)
        await #expect { _ = try await imports.start(id: id, method: "web-download", uri: "http://forbidden/", requestBody: webDownload("http://forbidden/"), requestId: nil, by: node.admin) } throws: { e in
            (e as? ImageError)?.kind == .badRequest
        }
        #expect(try await node.catalog.tasks(imageId: id).isEmpty)
        #expect(try await node.catalog.image(id: id)?.status == .queued)
    }

    @Test func secondImportWhileOneRunsIs409() async throws {
        let node = try Node()
        defer { node.remove() }
        let (imports, _) = setUp(node, fetcher: ScriptedFetcher(body: [1]))
        let id = try await node.image(.queued)
        _ = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin)
        await #expect { _ = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin) } throws: { e in
            (e as? ImageError)?.kind == .conflict
        }
    }

    /// A node died holding the lease: once it expires another run claims the task and finishes it.
    @Test func expiredLeaseIsClaimedAgainAndResumed() async throws {
        let node = try Node()
        defer { node.remove() }
        let body = pseudoRandom(100_000)
        let (imports, runner) = setUp(node, fetcher: ScriptedFetcher(body: body))
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin)
        let now = Timestamp.now()
        let first = try #require(try await node.catalog.claimTask(owner: "dead-node", now: now, leaseSeconds: 30))
        #expect(first.attempts == 1 && first.leaseOwner == "dead-node")
        // Held lease: nobody else may take it.
        #expect(try await node.catalog.claimTask(owner: "n2", now: now + 10, leaseSeconds: 30) == nil)
        let second = try #require(try await node.catalog.claimTask(owner: "n2", now: now + 31, leaseSeconds: 30))
        #expect(second.id == task.id && second.attempts == 2 && second.leaseOwner == "n2")
        await runner.execute(second)
        #expect(try await node.catalog.task(id: task.id)?.status == .success)
        #expect(try await node.catalog.image(id: id)?.status == .active)
    }

    /// This run stalled past its lease and another node took the task over: the run stops at its
    /// next renewal and touches neither the task nor the image (the new holder owns both now).
    @Test func aRunThatLostItsLeaseStopsAndLeavesTheTaskAlone() async throws {
        let node = try Node()
        defer { node.remove() }
        let (imports, runner, downloading, chunks) = slowDownload(node)
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin)
        let claimed = try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 1))
        async let run: Void = runner.execute(claimed)
        // The run is downloading (its first chunk is written) when another node takes the task over.
        try #require(await downloading.reached(), "the run never started downloading")
        // What another node's claim after expiry writes.
        _ = try await node.catalog.updateTask(id: task.id) { $0.leaseOwner = "n2"; $0.attempts += 1; $0.leaseExpiresAt = Timestamp.now() + 60 }
        await run
        #expect(chunks.values.count < Self.slowDownloadChunks, "the run went on downloading")
        let t = try #require(try await node.catalog.task(id: task.id))
        #expect(t.status == .processing && t.leaseOwner == "n2" && t.attempts == 2 && t.result == nil)
        let image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .importing && image.properties[ImageService.importLockKey] == task.id)
        #expect(try await node.blobs.size(key: BlobKey.image(id)) == nil)
    }

    /// A cancel (the console's Cancel) gives the image back at once: queued, lock released, ready for a new
    /// import. The cancelled run stops at its next renewal and undoes nothing of the import begun meanwhile.
    @Test func aCancelledImportGivesTheImageBackAndItsRunLeavesTheNextImportAlone() async throws {
        let node = try Node()
        defer { node.remove() }
        let (imports, runner, downloading, chunks) = slowDownload(node)
        let member = Principal(userId: "m", projectId: "p", roles: ["member"], userName: "mia")
        let reader = Principal(userId: "r", projectId: "p", roles: ["reader"])
        let stranger = Principal(userId: "s", projectId: "q", roles: ["member"])
        let id = try await node.image(.queued)
        let first = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"),
                                            requestId: nil, by: member)
        let claimed = try #require(try await node.catalog.claimTask(owner: "n1", now: Timestamp.now(), leaseSeconds: 1))
        async let run: Void = runner.execute(claimed)
        try #require(await downloading.reached(), "the run never started downloading")
        // Who may not change the image may not cancel its import; another project does not see the task.
        await #expect { _ = try await imports.cancel(taskId: first.id, by: reader) } throws: { ($0 as? ImageError)?.kind == .forbidden }
        await #expect { _ = try await imports.cancel(taskId: first.id, by: stranger) } throws: { ($0 as? ImageError)?.kind == .notFound }
        #expect(try await node.catalog.task(id: first.id)?.status == .processing)

        let (cancelled, image) = try await imports.cancel(taskId: first.id, by: member)
        #expect(cancelled.status == .failure && ImageService.wasCancelled(cancelled) && cancelled.message == "Cancelled by mia.")
        #expect(cancelled.leaseOwner == nil)
        #expect(image?.status == .queued && image?.properties[ImageService.importLockKey] == nil)
        await #expect { _ = try await imports.cancel(taskId: first.id, by: member) } throws: { ($0 as? ImageError)?.kind == .conflict }
        // A new import begins before the cancelled run has noticed.
        let second = try await imports.start(id: id, method: "web-download", uri: "http://e.org/y", requestBody: webDownload("http://e.org/y"),
                                             requestId: nil, by: member)
        await run
        #expect(chunks.values.count < Self.slowDownloadChunks, "the cancelled run went on downloading")
        let after = try #require(try await node.catalog.image(id: id))
        #expect(after.status == .importing && after.properties[ImageService.importLockKey] == second.id)
        #expect(try await node.catalog.task(id: first.id)?.result == ImageService.cancelledTaskResult)
        #expect(try await node.blobs.size(key: BlobKey.image(id)) == nil)
    }

    /// The writes a run ends with check that its task still holds the lock: a cancelled run that gets to
    /// its commit after a new import began publishes nothing and queues nothing.
    @Test func aStaleRunCanNeitherPublishNorRequeue() async throws {
        let node = try Node()
        defer { node.remove() }
        let id = try await node.image(.importing, properties: [ImageService.importLockKey: "task-new"])
        let facts = ImageService.DataFacts(size: 3, checksum: "c", hashAlgorithm: "sha512", hashValue: "h", virtualSize: nil)
        await #expect { _ = try await node.service.finishData(id: id, from: .importing, facts: facts, writer: .any, importTask: "task-old") } throws: {
            ($0 as? ImageError)?.kind == .conflict
        }
        _ = try await node.service.returnToQueued(id: id, from: [.importing], writer: .any, importTask: "task-old")
        var image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .importing && image.properties[ImageService.importLockKey] == "task-new" && image.size == nil)
        _ = try await node.service.finishData(id: id, from: .importing, facts: facts, writer: .any, importTask: "task-new")
        image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .active && image.size == 3)
    }

    /// A task interrupted more than `maxAttempts` times fails instead of looping, and the image is queued.
    @Test func tooManyAttemptsFailCleanly() async throws {
        let node = try Node()
        defer { node.remove() }
        var options = TaskRunner.Options()
        options.maxAttempts = 2
        let (imports, runner) = setUp(node, fetcher: ScriptedFetcher(body: [1, 2, 3]), options: options)
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin)
        var claimed: ImageTask?
        for k in 0..<3 { claimed = try await node.catalog.claimTask(owner: "n", now: Timestamp.now() + Int64(k) * 100, leaseSeconds: 30) }
        #expect(claimed?.attempts == 3)
        await runner.execute(try #require(claimed))
        let t = try #require(try await node.catalog.task(id: task.id))
        #expect(t.status == .failure && t.message.contains("giving up"))
        #expect(try await node.catalog.image(id: id)?.status == .queued)
    }

    @Test func deletedDuringImportDiscardsData() async throws {
        let node = try Node()
        defer { node.remove() }
        // The download stops after its first chunk (of seven) until the image is deleted.
        let halfway = Checkpoint(holds: true)
        let (imports, runner) = setUp(node, fetcher: ScriptedFetcher(body: pseudoRandom(400_000), afterFirstChunk: halfway))
        let id = try await node.image(.queued)
        let task = try await imports.start(id: id, method: "web-download", uri: "http://e.org/x", requestBody: webDownload("http://e.org/x"), requestId: nil, by: node.admin)
        let claimed = try #require(try await node.catalog.claimTask(owner: "n", now: Timestamp.now(), leaseSeconds: 30))
        async let run: Void = runner.execute(claimed)
        try #require(await halfway.reached(), "the run never started downloading")
        try await node.service.deleteImage(id: id, by: node.admin)
        halfway.open()
        await run
        let failed = try #require(try await node.catalog.task(id: task.id))
        #expect(failed.status == .failure)
        #expect(failed.message.contains("deleted"), "\(failed.message)")
        #expect(try await node.catalog.image(id: id)?.status == .deleted)
        #expect(try await node.blobs.keys(prefix: "").isEmpty)
    }
}

@Suite struct SoftDeleteReaperTests {
    @Test func imagesDeletedLongEnoughAreExpungedWithTheirData() async throws {
        let node = try Node()
        defer { node.remove() }
        let data = ImageDataService(images: node.service, blobs: node.blobs)
        let now = Timestamp.now()
        var ids: [String: String] = [:]
        for (name, deletedAgo) in [("old", 100), ("recent", 5)] {
            let id = try await node.image(.active)
            try await node.put(BlobKey.image(id), [7, 7, 7])
            _ = try await node.catalog.updateImage(id: id) { $0.status = .pendingDelete; $0.deletedAt = now - Int64(deletedAgo) }
            ids[name] = id
        }
        let live = try await node.image(.active)
        try await node.put(BlobKey.image(live), [1])

        let reaper = SoftDeleteReaper(data: data, catalog: node.catalog, after: 60)
        #expect(reaper.interval == 15)
        #expect(try await reaper.sweep(now: now) == 1)
        #expect(try await node.catalog.image(id: ids["old"]!)?.status == .deleted)
        #expect(try await node.blobs.size(key: BlobKey.image(ids["old"]!)) == nil)
        #expect(try await node.catalog.image(id: ids["recent"]!)?.status == .pendingDelete)
        #expect(try await node.blobs.size(key: BlobKey.image(ids["recent"]!)) == 3)
        #expect(try await node.catalog.image(id: live)?.status == .active)
        #expect(try await node.blobs.size(key: BlobKey.image(live)) == 1)
        // Nothing more is due until the recent one's period ends.
        #expect(try await reaper.sweep(now: now) == 0)
        #expect(try await reaper.sweep(now: now + 60) == 1)
        #expect(try await node.blobs.size(key: BlobKey.image(ids["recent"]!)) == nil)
    }
}
