import Foundation
import ImageCore
import Logging
import NIOCore
import Synchronization

/// `POST /import`: checks, records and queues image imports; `TaskRunner` does the work.
public struct ImageImports: Sendable {
    public let data: ImageDataService
    public let fetcher: any RemoteFetcher
    public let runner: TaskRunner
    /// Job-end notifications to the caller's URL (ZStack `X-Web-Hook`, Danube `cb_url`).
    public let callbacks: any CallbackSender

    /// The task rows and the image writes of the data path (the runner's catalog; not reachable
    /// from front-ends, which hold `ImageImports` but go through `ImageService`).
    var catalog: any Catalog { runner.catalog }

    public init(data: ImageDataService, fetcher: any RemoteFetcher, runner: TaskRunner, callbacks: any CallbackSender) {
        self.data = data; self.fetcher = fetcher; self.runner = runner; self.callbacks = callbacks
    }

    /// Refuses an import URL the URL guard refuses for this principal (400, naming the rule and the
    /// option that opens it), before anything is recorded.
    public func vet(_ url: String, by p: Principal) async throws {
        try await fetcher.vet(url, asAdmin: p.isAdmin)
    }

    public static let taskType = "api_image_import"

    /// Validates an import request and queues its task. web-download URLs are checked by the
    /// guard now (400), and again, with every redirect, when fetched.
    /// `taskId` lets a front-end choose the id (ZStack's `X-Job-UUID`); `deleteImageOnFailure` makes
    /// a failed import delete its image instead of queueing it again (ZStack's AddImage).
    public func start(id: String, method: String, uri: String?, requestBody: JSONValue, requestId: String?,
                      taskId chosenId: String? = nil, deleteImageOnFailure: Bool = false,
                      expectedSize: Int64? = nil,
                      taskType: String = ImageImports.taskType, extraInput: [(String, JSONValue)] = [],
                      credential: String? = nil, pinned frontEndPins: [PinnedDigest] = [],
                      by p: Principal) async throws -> ImageTask {
        let pinned = try PinnedDigest.merged(frontEndPins + Self.pinnedDigests(requestBody))
        _ = try Self.decompresses(requestBody)
        if try ConversionTarget.requested(in: requestBody) != nil, data.converter == nil {
            throw ImageError.badRequest("Image conversion ('convert_to') is not available at this site.")
        }
        // Only implemented methods can be enabled (`ImageDataConfig.importMethods`); the tasks API's
        // legacy import fetches like web-download whether or not the import API offers it.
        guard data.importMethods.contains(method) || taskType == Self.legacyTaskType else {
            throw ImageError.badRequest("Unknown import method name '\(method)'.")
        }
        if method == "web-download" {
            guard let uri, !uri.isEmpty else { throw ImageError.badRequest("web-download needs method.uri.") }
            try await vet(uri, by: p)
            if let checksumURL = try Self.checksumURL(requestBody) {
                try await vet(checksumURL, by: p)
                _ = try Self.checksumFileName(uri)
            }
        }
        var extraInput = extraInput
        if method == GlanceDownload.method {
            _ = try GlanceDownload.parameters(requestBody["method"])
        }
        // Visibility and ownership first, so a stranger learns nothing from the checks below.
        let visible = try await data.images.visibleImage(id: id, by: p)
        if method == GlanceDownload.method { extraInput += try await glanceDownloadInput(requestBody, token: credential) }
        var targets = try targetStores(requestBody)
        if method == "copy-image" {
            guard requestBody["stores"] != nil || requestBody["all_stores"]?.boolValue == true else {
                throw ImageError.badRequest("copy-image needs 'stores' or 'all_stores'.")
            }
            let present = Set(data.stores.ids(of: visible))
            targets.removeAll { present.contains($0) }
            guard !targets.isEmpty else { throw ImageError.conflict("Image \(visible.id) is already in every store asked for.") }
            try Self.checkPinned(pinned, against: visible)
        }
        let now = Timestamp.now()
        let taskId = chosenId ?? ImageID.generate()
        var inputMembers: [(String, JSONValue)] = [
            ("image_id", .string(visible.id)),
            ("import_req", requestBody),
            ("backend", .array(targets.map { .string($0) })),
            ("all_stores_must_succeed", .bool(requestBody["all_stores_must_succeed"]?.boolValue ?? true)),
        ]
        if deleteImageOnFailure { inputMembers.append(("delete_image_on_failure", .bool(true))) }
        // The fetch runs later, maybe on another node, without the principal: what the guard may
        // open for it (`--import-private`) is decided from this, under the policy of that moment.
        if p.isAdmin { inputMembers.append(("requested_by_admin", .bool(true))) }
        // What the source promised (an IMGAPI manifest's files[0]): checked before the data is committed.
        if let expectedSize { inputMembers.append(("expected_size", .int(expectedSize))) }
        if !pinned.isEmpty { inputMembers.append((Self.pinnedInputKey, .array(pinned.map { .string($0.description) }))) }
        let input = JSONValue.object(extraInput + inputMembers).serialized
        let task = ImageTask(id: taskId, type: taskType, owner: visible.owner, imageId: visible.id, userId: p.userId,
                             requestId: requestId, input: input, createdAt: now, updatedAt: now)
        let stores = targets.joined(separator: ",")
        if method == "copy-image" {
            _ = try await data.images.beginCopy(id: visible.id, taskId: taskId, stores: stores, by: p)
        } else {
            _ = try await data.images.beginImport(id: visible.id, method: method, taskId: taskId, store: stores, by: p)
        }
        if method == GlanceDownload.method, let credential { runner.credentials.set(credential, for: taskId) }
        do {
            try await catalog.insertTask(task)
        } catch {
            runner.credentials.remove(taskId)
            if method == "copy-image" {
                _ = try? await catalog.updateImage(id: visible.id) { $0.releaseImportLock() }
            } else {
                _ = try? await data.images.returnToQueued(id: visible.id, from: [.importing]) { $0.releaseImportLock() }
            }
            throw error
        }
        data.images.emitTask("task.create", task)
        runner.wake()
        return task
    }

    /// Cancels an import or copy (`ImageService.cancelImport`: the image is released at once, the run
    /// stops at its next lease renewal); a cancelled glance-direct import's staged data goes too, as a
    /// failed one's does.
    public func cancel(taskId: String, by p: Principal) async throws -> (task: ImageTask, image: Image?) {
        let (task, image) = try await data.images.cancelImport(taskId: taskId, by: p)
        data.images.emitTask("task.failure", task)
        let method = (try? JSONValue.parse(task.input))?["import_req"]?["method"]?["name"]?.stringValue
        if method == "glance-direct", let image, image.status == .queued {
            try? await data.blobs.delete(key: BlobKey.staging(image.id))
        }
        return (task, image)
    }

    /// Where a task's input keeps the pins (`algo:hex` strings), for whichever node runs it.
    static let pinnedInputKey = "pinned_digests"

    /// An import's `expected_hash` (`"algo:hex"`; at the top level of the request, or in `method`):
    /// a wrong type, an unknown algorithm or a malformed digest is 400 before anything is queued.
    static func pinnedDigests(_ body: JSONValue) throws -> [PinnedDigest] {
        var pins: [PinnedDigest] = []
        for holder in [body, body["method"] ?? .null] {
            guard let value = holder["expected_hash"] else { continue }
            guard let text = value.stringValue else { throw ImageError.badRequest("'expected_hash' must be a string 'algorithm:hex'.") }
            pins.append(try PinnedDigest(parsing: text))
        }
        return pins
    }

    /// web-download's `method.checksum_url`: a `SHA256SUMS`-style file, fetched through the URL guard
    /// when the task runs, whose line for the image's file name pins the data.
    static func checksumURL(_ body: JSONValue) throws -> String? {
        guard let value = body["method"]?["checksum_url"] else { return nil }
        guard let text = value.stringValue, !text.isEmpty else {
            throw ImageError.badRequest("'method.checksum_url' must be a URL string.")
        }
        return text
    }

    /// The import's `"decompress": false` keeps compressed data as sent (a vendor API whose manifest
    /// describes the compressed file, or a client that wants the archive); absent or true decompresses
    /// (the site's `--decompress` still decides). Anything but a boolean is 400.
    static func decompresses(_ body: JSONValue) throws -> Bool {
        guard let value = body["decompress"] else { return true }
        guard let flag = value.boolValue else { throw ImageError.badRequest("'decompress' must be true or false.") }
        return flag
    }

    /// The name a checksum file lists the image under: the last segment of the URL's path, decoded.
    static func checksumFileName(_ uri: String) throws -> String {
        guard let url = URL(string: uri), let name = url.path.split(separator: "/").last.map(String.init), !name.isEmpty else {
            throw ImageError.badRequest("With checksum_url, method.uri must name a file: '\(uri)'.")
        }
        return name
    }

    /// The pins a task's input carries (and the `expected_sha1` that tasks queued by earlier
    /// versions carry for a Danube manifest, now a pin like the others).
    static func pinned(inTask input: JSONValue) throws -> [PinnedDigest] {
        var pins = try (input[pinnedInputKey]?.arrayItems ?? []).compactMap(\.stringValue).map { try PinnedDigest(parsing: $0) }
        if let legacy = input["expected_sha1"]?.stringValue { pins.append(try PinnedDigest(algorithm: .sha1, hex: legacy)) }
        return try PinnedDigest.merged(pins)
    }

    /// copy-image copies bytes the image already has: a pin is checked against its recorded digests
    /// at once (MD5, or its os_hash_algo), 400 when they differ or the algorithm was not recorded.
    static func checkPinned(_ pins: [PinnedDigest], against image: Image) throws {
        var recorded: [PinnedDigest.Algorithm: String] = [:]
        if let md5 = image.checksum { recorded[.md5] = md5 }
        if let algo = image.osHashAlgo.flatMap(PinnedDigest.Algorithm.init(name:)), let value = image.osHashValue { recorded[algo] = value }
        for pin in pins where recorded[pin.algorithm] == nil {
            throw ImageError.badRequest("Image \(image.id) records no \(pin.algorithm.rawValue) digest to compare with: pin md5 or its os_hash_algo.")
        }
        if let mismatch = PinnedDigest.mismatch(pins, computed: recorded) {
            throw ImageError.badRequest("Checksum verification failed: \(mismatch).")
        }
    }

    /// The stores an import writes to: `stores`, every store for `all_stores`, else the default.
    func targetStores(_ body: JSONValue) throws -> [String] {
        if body["all_stores"]?.boolValue == true { return data.stores.all.map(\.id) }
        guard case .array(let items)? = body["stores"], !items.isEmpty else { return [data.blobs.id] }
        var ids: [String] = []
        for item in items {
            guard let id = item.stringValue, data.stores.store(id) != nil,
                  data.stores.multiple || id == data.blobs.id else {
                throw ImageError.conflict("Unknown store '\(item.stringValue ?? "?")'.")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        return ids
    }
}

/// Runs catalog tasks on this node. A task is run while its lease is held and renewed; a task whose
/// lease lapsed (its node died or restarted) is claimed again and restarted from the beginning,
/// at most `maxAttempts` times, then failed. The image always ends active, or queued again with
/// `os_glance_failed_import`, never stuck in `importing`.
public final class TaskRunner: Sendable {
    public struct Options: Sendable {
        public var nodeId = "node-" + ImageID.generate().prefix(8)
        public var leaseSeconds: Int64 = 30
        public var pollSeconds: Double = 5
        public var concurrency = 2
        public var maxAttempts = 3
        /// Finished tasks are kept this long (Glance's `task_time_to_live`).
        public var timeToLive: Int64 = 48 * 3600
        public init() {}
    }

    let catalog: any Catalog
    let options: Options
    let logger: Logger
    let wakeups: AsyncStream<Void>
    let wakeup: AsyncStream<Void>.Continuation
    // Set once at wiring time, before `run()`.
    nonisolated(unsafe) var data: ImageDataService!
    nonisolated(unsafe) var fetcher: (any RemoteFetcher)!
    /// Other regions' image services (glance-download); set at wiring time when Keystone is configured.
    nonisolated(unsafe) public var regions: (any RegionCatalog)?
    /// Callers' tokens of this node's glance-download tasks (memory only).
    public let credentials = TaskCredentials()

    public init(catalog: any Catalog, options: Options = .init(), logger: Logger = Logger(label: "imaged.tasks")) {
        self.catalog = catalog
        self.options = options
        self.logger = logger
        (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func attach(data: ImageDataService, fetcher: any RemoteFetcher) {
        self.data = data
        self.fetcher = fetcher
    }

    /// Deletes finished tasks whose time to live has passed; returns how many.
    @discardableResult
    public func purgeExpired(now: Int64 = Timestamp.now()) async -> Int {
        do {
            let removed = try await catalog.deleteTasks(expiredBefore: now)
            if removed > 0 { logger.info("expired tasks removed", metadata: ["count": "\(removed)"]) }
            return removed
        } catch is CancellationError {
            return 0  // shutting down
        } catch {
            logger.warning("removing expired tasks failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// The task queue's depth and age, for `/metrics`.
    func publishQueue() async {
        guard let tasks = try? await catalog.listTasks(limit: 1000) else { return }
        let now = Timestamp.now()
        let pending = tasks.filter { $0.status == .pending }
        DataMetrics.tasks(pending: pending.count, processing: tasks.filter { $0.status == .processing }.count,
                          oldestPendingAge: pending.map { now - $0.createdAt }.max() ?? 0)
    }

    /// Something may be runnable now.
    public func wake() { wakeup.yield() }

    /// Claims and runs tasks until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<options.concurrency {
                group.addTask { await self.worker() }
            }
            group.addTask {
                // Turn wake-ups into periodic polls too, so expired leases of other nodes are noticed.
                var polls = 0
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(self.options.pollSeconds))
                    self.wakeup.yield()
                    polls += 1
                    // Finished tasks past their time to live (and ZStack's expired api-jobs) go, now and then.
                    if polls % 60 == 1 { await self.purgeExpired() }
                    await self.publishQueue()
                }
            }
        }
    }

    func worker() async {
        var iterator = wakeups.makeAsyncIterator()
        while !Task.isCancelled {
            do {
                while let task = try await catalog.claimTask(owner: options.nodeId, now: Timestamp.now(),
                                                              leaseSeconds: options.leaseSeconds) {
                    await execute(task)
                    if Task.isCancelled { return }
                }
            } catch {
                logger.error("task claim failed", metadata: ["error": "\(error)"])
            }
            guard await iterator.next() != nil else { return }
        }
    }

    /// Runs one claimed task to success or failure, renewing its lease meanwhile. When the lease
    /// turns out to be someone else's (this node stalled past its expiry and another node took the
    /// task over), the work stops and leaves the task and its image to the new holder.
    public func execute(_ task: ImageTask) async {
        logger.info("task started", metadata: ["task": .string(task.id), "attempt": "\(task.attempts)"])
        data.images.emitTask("task.run", task)
        data.images.emitTask("task.processing", task)
        let progress = TaskProgress()
        // The lease this run holds: the claim's.
        let nodeId = task.leaseOwner ?? options.nodeId
        let outcome: Result<String, any Error> = await withTaskGroup(of: Result<String, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await self.perform(task, progress)) } catch { return .failure(error) }
            }
            group.addTask {
                // Renew the lease and publish progress until the work ends.
                var renewals = 0
                while !Task.isCancelled {
                    // Often enough for a live progress bar and a prompt stop after a cancel; the lease
                    // is renewed with it.
                    try? await Task.sleep(for: .seconds(min(2, Double(self.options.leaseSeconds) / 3)))
                    if Task.isCancelled { break }
                    let (done, total) = progress.snapshot
                    let renewed = try? await self.catalog.updateTask(id: task.id) { t in
                        guard t.leaseOwner == nodeId, t.status == .processing else { return }
                        t.leaseExpiresAt = Timestamp.now() + self.options.leaseSeconds
                        t.bytesDone = done
                        t.bytesTotal = total ?? t.bytesTotal
                        t.updatedAt = Timestamp.now()
                        // Glance reports import progress in the task message the same way.
                        t.message = "Copied \(done >> 20) MiB" + (total.map { " of \($0 >> 20) MiB" } ?? "")
                    }
                    renewals += 1
                    if renewals % 5 == 1 {
                        self.logger.info("task progress", metadata: ["task": .string(task.id), "bytes": "\(done)",
                                                                     "total": .string(total.map(String.init) ?? "unknown")])
                    }
                    if let renewed, renewed.leaseOwner != nodeId || renewed.status != .processing {
                        progress.loseLease()
                        return .failure(ImageError.conflict("Task \(task.id) was taken over by \(renewed.leaseOwner ?? "another run")."))
                    }
                }
                return nil
            }
            // The work's outcome, or the renewer's report of a lost lease; when cancelled (shutdown) the
            // renewer ends first with nothing to report, so wait on for the work.
            var first: Result<String, any Error>?
            while let next = await group.next() {
                if let next { first = next; break }
            }
            group.cancelAll()
            return first ?? .failure(CancellationError())
        }
        if progress.leaseLost {
            logger.warning("task lease lost: stopped, the new holder carries on", metadata: ["task": .string(task.id)])
            return
        }
        if Task.isCancelled {
            // Shutting down: the lease goes back at once, so another node (or this one, restarted)
            // runs the task again without waiting for the lease to expire.
            await uncancelled {
                _ = try? await self.catalog.updateTask(id: task.id) { t in
                    guard t.leaseOwner == nodeId, t.status == .processing else { return }
                    t.status = .pending
                    t.leaseOwner = nil
                    t.leaseExpiresAt = nil
                    t.attempts = max(0, t.attempts - 1)  // an interrupted run by shutdown is not a failed attempt
                    t.updatedAt = Timestamp.now()
                }
            }
            logger.notice("task released at shutdown", metadata: ["task": .string(task.id)])
            return
        }
        let now = Timestamp.now()
        let (done, total) = progress.snapshot
        let (result, message): (String?, String) = switch outcome {
        case .success(let r): (r, "")
        case .failure(let e): (nil, (e as? ImageError)?.message ?? "\(e)")
        }
        let finished = try? await catalog.updateTask(id: task.id) { t in
            guard t.leaseOwner == nodeId else { return }
            t.status = result != nil ? .success : .failure
            t.result = result
            t.message = message
            t.bytesDone = done
            t.bytesTotal = total ?? (result != nil ? done : t.bytesTotal)
            t.leaseOwner = nil
            t.leaseExpiresAt = nil
            t.updatedAt = now
            t.expiresAt = now + self.options.timeToLive
        }
        if let finished, finished.status.isFinished {
            data.images.emitTask(finished.status == .success ? "task.success" : "task.failure", finished)
        }
        if result != nil {
            logger.info("task succeeded", metadata: ["task": .string(task.id), "bytes": "\(done)"])
        } else {
            logger.warning("task failed", metadata: ["task": .string(task.id), "error": .string(message)])
        }
    }

    /// The work of one task; returns the result JSON text.
    func perform(_ task: ImageTask, _ progress: TaskProgress) async throws -> String {
        if task.type == LocationImport.taskType { return try await performLocationImport(task, progress) }
        guard task.type == ImageImports.taskType || task.type == ImageImports.legacyTaskType else {
            throw ImageError.badRequest("Unknown task type \(task.type).")
        }
        guard let imageId = task.imageId else { throw ImageError.badRequest("Task has no image.") }
        let input = try JSONValue.parse(task.input)
        let method = input["import_req"]?["method"]?["name"]?.stringValue ?? ""
        // A caller's token (glance-download) serves this run only, whatever its outcome.
        defer { credentials.remove(task.id) }
        let data = self.data!
        let images = data.images
        let targetIds = input["backend"]?.arrayItems?.compactMap(\.stringValue) ?? [data.blobs.id]
        let mustSucceed = input["all_stores_must_succeed"]?.boolValue ?? true
        let deleteOnFailure = input["delete_image_on_failure"]?.boolValue ?? false
        var pinned = try ImageImports.pinned(inTask: input)
        let expected: ImageStatus = method == "copy-image" ? .active : .importing
        guard let image = try await catalog.image(id: imageId), image.status == expected,
              image.properties[ImageService.importLockKey] == task.id else {
            throw ImageError.conflict("Image \(imageId) is no longer importing for this task.")
        }
        if task.attempts > options.maxAttempts {
            await giveUp(image, task: task.id, method: method, stores: targetIds, deleteImage: deleteOnFailure)
            throw ImageError(.internal, "Import interrupted \(task.attempts - 1) times; giving up.")
        }
        let key = BlobKey.image(imageId)
        do {
            let targets = try targetIds.map { id in
                guard let store = data.stores.store(id) else { throw ImageError.conflict("Store \(id) is not configured.") }
                return store
            }
            if method == "copy-image" {
                return try await copyToStores(image, task: task.id, targets, mustSucceed: mustSucceed, progress)
            }
            let first = targets[0]
            let result: IngestResult
            // What the source says the image is (glance-download): applied with the data, in one write.
            var adopt: @Sendable (inout Image) -> Void = { _ in }
            var virtualSize: Int64?
            // The format decision comes before the commit: refused data is never published.
            let verify: (IngestResult) throws -> Void = { virtualSize = try data.decideFormat(image, $0) }
            let decompress = try ImageImports.decompresses(input["import_req"] ?? .null)
            // The import's own "convert_to", else what the first store wants.
            let convert = try ConversionTarget.requested(in: input["import_req"] ?? .null) ?? data.conversion(for: first)
            switch method {
            case "web-download":
                guard let uri = input["import_req"]?["method"]?["uri"]?.stringValue else {
                    throw ImageError.badRequest("web-download task without uri")
                }
                var expectedSize: Int64?
                if case .int(let n)? = input["expected_size"] { expectedSize = n }
                if let checksumURL = try ImageImports.checksumURL(input["import_req"] ?? .null) {
                    pinned = try PinnedDigest.merged(pinned + [try await checksumFilePin(checksumURL, for: uri, input: input)])
                }
                result = try await ingestRemote(uri, asAdmin: input["requested_by_admin"]?.boolValue ?? false,
                                                into: key, store: first, owner: image.owner, progress,
                                                expectedSize: expectedSize, pinned: pinned, decompress: decompress, convert: convert,
                                                verify: verify)
            case GlanceDownload.method:
                (result, adopt) = try await ingestGlanceDownload(task, input: input, image: image, into: key, store: first, progress) { target, r in
                    virtualSize = try data.decideFormat(target, r)
                }
            case "glance-direct":
                result = try await ingestStaged(imageId, into: key, store: first, progress, pinned: pinned, decompress: decompress,
                                                convert: convert, verify: verify)
            default:
                throw ImageError.badRequest("Unknown import method name '\(method)'.")
            }
            await storeDone(imageId, first.id, failed: false)
            // Further stores get a verified copy of what the first one committed.
            var withFacts = image
            withFacts.size = result.size
            withFacts.checksum = result.md5
            withFacts.osHashAlgo = result.hashAlgorithm.rawValue
            withFacts.osHashValue = result.hashValue
            let (copied, failed) = await copy(withFacts, from: first, to: Array(targets.dropFirst()), progress)
            if mustSucceed, !failed.isEmpty {
                for store in [first] + copied { try? await store.delete(key: key) }
                throw ImageError(.internal, "Import to store(s) \(failed.map(\.id).joined(separator: ",")) failed.")
            }
            let stored = ([first] + copied).map(\.id)
            let failedIds = failed.map(\.id)
            let record = data.recordStores(stored)
            let adoptNow = adopt, recordPins = ImageDataService.recordPinned(pinned)
            do {
                _ = try await images.finishData(id: imageId, from: .importing, facts: data.facts(result, virtualSize), importTask: task.id) {
                    $0.finishImport(failedStores: failedIds.joined(separator: ","))
                    record(&$0)
                    adoptNow(&$0)
                    recordPins(&$0)
                }
            } catch {
                for store in [first] + copied { try? await store.delete(key: key) }
                throw error
            }
            if method == "glance-direct" { try? await data.blobs.delete(key: BlobKey.staging(imageId)) }
            return Self.result(imageId, stores: data.stores.multiple ? stored : nil)
        } catch {
            // A run that lost its lease leaves the image to the task's new holder; a run stopped by a
            // shutdown leaves it importing, for the task's next run.
            if !progress.leaseLost && !Task.isCancelled {
                await giveUp(image, task: task.id, method: method, stores: targetIds, deleteImage: deleteOnFailure)
            }
            throw error
        }
    }

    /// Verified copies of the image's blob into each store; returns the stores that got one and those that failed.
    func copy(_ image: Image, from source: any BlobStore, to targets: [any BlobStore],
              _ progress: TaskProgress) async -> (copied: [any BlobStore], failed: [any BlobStore]) {
        var copied: [any BlobStore] = [], failed: [any BlobStore] = []
        for target in targets {
            do {
                _ = try await copyImageBlob(image, from: source, to: target) { progress.add($0) }
                copied.append(target)
                await storeDone(image.id, target.id, failed: false)
            } catch {
                logger.warning("copy to store failed", metadata: ["image": .string(image.id), "store": .string(target.id), "error": "\(error)"])
                failed.append(target)
                await storeDone(image.id, target.id, failed: true)
            }
        }
        return (copied, failed)
    }

    /// One store of an import or copy is done: the image's progress lists say so at once, as Glance's do.
    func storeDone(_ imageId: String, _ store: String, failed: Bool) async {
        _ = try? await catalog.updateImage(id: imageId) { $0.storeImportDone(store, failed: failed) }
    }

    /// `copy-image`: the active image's data into more stores; it stays active and downloadable meanwhile.
    func copyToStores(_ image: Image, task: String, _ targets: [any BlobStore], mustSucceed: Bool, _ progress: TaskProgress) async throws -> String {
        let data = self.data!
        guard let source = data.stores.holding(image).first else {
            throw ImageError.conflict("Image \(image.id) has no data in a configured store.")
        }
        progress.setTotal(image.size.map { $0 * Int64(targets.count) })
        let (copied, failed) = await copy(image, from: source, to: targets, progress)
        let key = BlobKey.image(image.id)
        if mustSucceed, !failed.isEmpty {
            for store in copied { try? await store.delete(key: key) }
            throw ImageError(.internal, "Copy to store(s) \(failed.map(\.id).joined(separator: ",")) failed.")
        }
        let stores = data.stores.ids(of: image) + copied.map(\.id)
        let failedIds = failed.map(\.id)
        let record = data.recordStores(stores)
        let updated = try await catalog.updateImage(id: image.id) { current in
            guard current.status == .active || current.status == .deactivated else {
                throw ImageError(.gone, "Image \(image.id) was deleted while it was being copied.")
            }
            // A cancelled copy records nothing (the copies it made are removed below).
            guard current.properties[ImageService.importLockKey] == task else {
                throw ImageError.conflict("The copy of image \(image.id) was cancelled.")
            }
            current.finishImport(failedStores: failedIds.joined(separator: ","))
            record(&current)
        }
        if updated == nil { throw ImageError.notFound("No image found with ID \(image.id)") }
        return Self.result(image.id, stores: stores)
    }

    /// The task's `result`: the image, and with named stores where its data now is.
    static func result(_ imageId: String, stores: [String]?) -> String {
        var members: [(String, JSONValue)] = [("image_id", .string(imageId))]
        if let stores { members.append(("stores", .array(stores.map { .string($0) }))) }
        return JSONValue.object(members).serialized
    }

    /// The import failed: the image is queued again with the stores named in `os_glance_failed_import`
    /// (a failed copy-image leaves the image active, only the failure recorded).
    /// With `deleteImage` the image is deleted instead (its front-end keeps nothing of a failed add).
    /// Only while `task` holds the image's import lock: a cancelled run leaves a newer import alone.
    func giveUp(_ image: Image, task: String, method: String, stores: [String], deleteImage: Bool = false) async {
        let failed = stores.joined(separator: ",")
        if deleteImage, method != "copy-image" {
            _ = try? await catalog.updateImage(id: image.id) { image in
                guard image.status == .importing || image.status == .queued,
                      (image.properties[ImageService.importLockKey] ?? task) == task else { return }
                image.releaseImportLock()
                image.status = .deleted
                image.deletedAt = Timestamp.now()
            }
            await data.removeData(of: image.id)
            return
        }
        if method == "copy-image" {
            _ = try? await catalog.updateImage(id: image.id) { image in
                guard image.properties[ImageService.importLockKey] == task else { return }
                image.finishImport(failedStores: failed)
            }
            return
        }
        _ = try? await data.images.returnToQueued(id: image.id, from: [.importing], importTask: task) { $0.finishImport(failedStores: failed) }
        if method == "glance-direct" { try? await data.blobs.delete(key: BlobKey.staging(image.id)) }
    }

    func ingestRemote(_ uri: String, asAdmin: Bool, into key: String, store: any BlobStore, owner: String?, _ progress: TaskProgress,
                      expectedSize: Int64? = nil, pinned: [PinnedDigest] = [], decompress: Bool = true,
                      convert: ConversionTarget? = nil,
                      verify: (IngestResult) throws -> Void) async throws -> IngestResult {
        let data = self.data!, fetcher = self.fetcher!
        let quota = try await data.quotaRoom(.imageSizeTotal, owner: owner, declared: expectedSize)
        return try await data.ingest(into: key, store: store, declaredSize: expectedSize, quota: quota, pinned: pinned,
                                     decompress: decompress, convert: convert, verify: verify) { sink in
            try await fetcher.fetch(uri, asAdmin: asAdmin, maxBytes: data.config.imageSizeCap, announce: { progress.setTotal($0) }) { buffer in
                try await sink(buffer)
                progress.add(buffer.readableBytes)
            }
        }
    }

    /// The pin a checksum file gives for the file `uri` names (at most 1 MiB, through the URL guard).
    func checksumFilePin(_ checksumURL: String, for uri: String, input: JSONValue) async throws -> PinnedDigest {
        var text: [UInt8] = []
        do {
            try await fetcher!.fetch(checksumURL, asAdmin: input["requested_by_admin"]?.boolValue ?? false, maxBytes: 1 << 20,
                                     announce: { _ in }) { text.append(contentsOf: $0.readableBytesView) }
        } catch {
            throw ImageError.badRequest("The checksum file \(checksumURL) could not be read: \((error as? ImageError)?.message ?? "\(error)")")
        }
        return try PinnedDigest.fromChecksumFile(String(decoding: text, as: UTF8.self), name: try ImageImports.checksumFileName(uri))
    }

    func ingestStaged(_ imageId: String, into key: String, store: any BlobStore, _ progress: TaskProgress,
                      pinned: [PinnedDigest] = [], decompress: Bool = true, convert: ConversionTarget? = nil,
                      verify: (IngestResult) throws -> Void) async throws -> IngestResult {
        let data = self.data!
        let staged = BlobKey.staging(imageId)
        guard let size = try await data.blobs.size(key: staged) else {
            throw ImageError.conflict("No staged data for image \(imageId).")
        }
        progress.setTotal(size)
        return try await data.ingest(into: key, store: store, declaredSize: size, pinned: pinned, decompress: decompress,
                                     convert: convert, verify: verify) { sink in
            try await data.blobs.read(key: staged, range: nil, chunkSize: 1 << 20) { buffer in
                try await sink(buffer)
                progress.add(buffer.readableBytes)
            }
        }
    }
}

/// Bytes done and total of the running task, read by the lease renewer, and whether the lease was lost.
final class TaskProgress: Sendable {
    private let state = Mutex<(Int64, Int64?)>((0, nil))
    private let lost = Mutex(false)
    func add(_ n: Int) { state.withLock { $0.0 += Int64(n) } }
    func setTotal(_ total: Int64?) { state.withLock { $0.1 = total } }
    var snapshot: (Int64, Int64?) { state.withLock { $0 } }
    func loseLease() { lost.withLock { $0 = true } }
    var leaseLost: Bool { lost.withLock { $0 } }
}
