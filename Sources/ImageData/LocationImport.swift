import Foundation
import ImageCore
import NIOCore

/// Glance's locations API (v2.17): `POST /v2/images/{id}/locations` records an http(s) URL as the
/// queued image's data and queues a `location_import` task that reads the bytes once through the
/// URL guard, computes MD5 and the multihash (the caller's `validation_data` algorithm, else the
/// configured one) and makes the image active, or queues it again when the digest does not match.
public enum LocationImport {
    public static let taskType = "location_import"
    /// What `stores` says of an image at an http(s) location when stores are named: the id Glance's
    /// read-only http store has in devstack, which Tempest's location tests expect.
    public static let httpStoreId = "web"
    /// Glance's `validation_data.os_hash_algo` enum.
    static let algorithms: [String: (StreamDigest.Algorithm, Int)] = [
        "md5": (.md5, 16), "sha1": (.sha1, 20), "sha256": (.sha256, 32), "sha512": (.sha512, 64),
    ]

    /// The schemes a location may have: imaged reads locations as web-download reads its URLs.
    static func acceptedScheme(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    /// Checks `validation_data` as Glance's schema and `_validate_hashing_data` do (400 each).
    public static func validationData(_ value: JSONValue?) throws -> (algo: String, value: String)? {
        guard let value, value != .null else { return nil }
        guard case .object(let members) = value else { throw ImageError.badRequest("'validation_data' must be an object.") }
        if members.isEmpty { return nil }
        for (key, _) in members where key != "os_hash_algo" && key != "os_hash_value" {
            throw ImageError.badRequest("Additional properties are not allowed in validation_data ('\(key)' was unexpected).")
        }
        guard let algo = value["os_hash_algo"]?.stringValue else {
            throw ImageError.badRequest("'os_hash_algo' is a dependency of 'os_hash_value' and must be a string.")
        }
        guard let hash = value["os_hash_value"]?.stringValue else {
            throw ImageError.badRequest("'os_hash_value' is a dependency of 'os_hash_algo' and must be a string.")
        }
        guard let (_, size) = algorithms[algo] else {
            throw ImageError.badRequest("'\(algo)' is not one of ['sha1', 'sha256', 'sha512', 'md5'] (validation_data.os_hash_algo).")
        }
        guard hash.utf8.count % 2 == 0, hash.utf8.allSatisfy({ ImageLocationHex.isHex($0) }) else {
            throw ImageError.badRequest("os_hash_value (\(hash)) is not a valid hexadecimal value")
        }
        guard hash.utf8.count == size * 2 else {
            throw ImageError.badRequest("os_hash_value: (\(hash)) is not the correct size for (\(algo)) (should be (\(size)) bytes)")
        }
        return (algo, hash.lowercased())
    }
}

enum ImageLocationHex {
    static func isHex(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) }
}

extension ImageImports {
    /// Checks a location request and queues its task; the image is `importing` until the task ends.
    /// Only http(s) URLs, vetted by the URL guard now (400) and again when read.
    @discardableResult
    public func addLocation(id: String, url: String, validationData: JSONValue?, requestId: String?,
                            by p: Principal) async throws -> ImageTask {
        let validation = try LocationImport.validationData(validationData)
        let visible = try await data.images.visibleImage(id: id, by: p)
        guard LocationImport.acceptedScheme(url) else {
            // Glance: "http store must be enabled to use location API by normal user"; imaged has no
            // other location stores, so every caller gets this for other schemes.
            throw ImageError.badRequest("Only http:// and https:// locations are accepted here; '\(url.prefix(64))' is not one.")
        }
        try await vet(url, by: p)
        let taskId = ImageID.generate()
        var input: [(String, JSONValue)] = [
            ("image_id", .string(visible.id)), ("loc_url", .string(url)),
            ("validation_data", validation.map { .object([("os_hash_algo", .string($0.algo)), ("os_hash_value", .string($0.value))]) } ?? .object([])),
        ]
        if p.isAdmin { input.append(("requested_by_admin", .bool(true))) }
        let now = Timestamp.now()
        let task = ImageTask(id: taskId, type: LocationImport.taskType, owner: visible.owner, imageId: visible.id, userId: p.userId,
                             requestId: requestId, input: JSONValue.object(input).serialized, createdAt: now, updatedAt: now)
        let store = data.stores.multiple ? LocationImport.httpStoreId : nil
        let metadata: JSONValue = .object(store.map { [("store", .string($0))] } ?? [])
        _ = try await data.images.beginLocationImport(id: visible.id, location: ImageLocation(url: url, metadata: metadata, addedByAdmin: p.isAdmin),
                                                      store: store, taskId: taskId, by: p)
        do {
            try await catalog.insertTask(task)
        } catch {
            try? await data.images.failLocationImport(id: visible.id, taskId: taskId)
            throw error
        }
        runner.wake()
        return task
    }
}

extension TaskRunner {
    /// Reads the location once, computes its digests and ends the image's import either way.
    func performLocationImport(_ task: ImageTask, _ progress: TaskProgress) async throws -> String {
        guard let imageId = task.imageId else { throw ImageError.badRequest("Task has no image.") }
        let input = try JSONValue.parse(task.input)
        let data = self.data!, fetcher = self.fetcher!
        guard let url = input["loc_url"]?.stringValue else { throw ImageError.badRequest("location_import task without loc_url") }
        guard let image = try await catalog.image(id: imageId), image.status == .importing,
              image.properties[ImageService.importLockKey] == task.id else {
            throw ImageError.conflict("Image \(imageId) is no longer importing for this task.")
        }
        do {
            if task.attempts > options.maxAttempts {
                throw ImageError(.internal, "Location import interrupted \(task.attempts - 1) times; giving up.")
            }
            let expectedAlgo = input["validation_data"]?["os_hash_algo"]?.stringValue
            let expectedValue = input["validation_data"]?["os_hash_value"]?.stringValue
            let algoName = expectedAlgo ?? data.config.hashAlgorithm.rawValue
            guard let (algorithm, _) = LocationImport.algorithms[algoName] else {
                throw ImageError.badRequest("Unknown hash algorithm \(algoName).")
            }
            let md5 = try StreamDigest(.md5), multihash = try StreamDigest(algorithm)
            var size: Int64 = 0
            try await fetcher.fetch(url, asAdmin: input["requested_by_admin"]?.boolValue ?? false,
                                    maxBytes: data.config.imageSizeCap, announce: { progress.setTotal($0) }) { buffer in
                buffer.withUnsafeReadableBytes { md5.update($0); multihash.update($0) }
                size += Int64(buffer.readableBytes)
                progress.add(buffer.readableBytes)
            }
            let facts = ImageService.DataFacts(size: size, checksum: md5.finalizeHex(), hashAlgorithm: algoName,
                                               hashValue: multihash.finalizeHex(), virtualSize: nil)
            if let expectedValue, expectedValue != facts.hashValue {
                throw ImageError.badRequest("os_hash_value: (\(expectedValue)) not matched with actual os_hash_value: (\(facts.hashValue))")
            }
            _ = try await data.images.finishLocationImport(id: imageId, taskId: task.id, facts: facts)
            return JSONValue.object([("image_id", .string(imageId))]).serialized
        } catch {
            if !progress.leaseLost && !Task.isCancelled {
                try? await data.images.failLocationImport(id: imageId, taskId: task.id)
            }
            throw error
        }
    }
}

extension ImageDataService {
    /// Streams bytes `range` of an image whose data is at its first location (read through the URL
    /// guard; the bytes before and after the range are read and dropped).
    func readLocation(_ image: Image, _ location: ImageLocation, range: Range<Int64>,
                      into sink: (ByteBuffer) async throws -> Void) async throws {
        guard let fetcher = locationReader else {
            throw ImageError(.unavailable, "The location of image \(image.id) cannot be read on this node.")
        }
        var offset: Int64 = 0
        try await fetcher.fetch(location.url, asAdmin: location.addedByAdmin, maxBytes: config.imageSizeCap, announce: { _ in }) { buffer in
            let start = offset, end = offset + Int64(buffer.readableBytes)
            offset = end
            let from = max(start, range.lowerBound), to = min(end, range.upperBound)
            guard from < to else { return }
            var slice = buffer
            slice.moveReaderIndex(forwardBy: Int(from - start))
            if let part = slice.readSlice(length: Int(to - from)) {
                try await sink(part)
                DataMetrics.bytesOut(part.readableBytes)
            }
        }
        guard offset >= range.upperBound else {
            throw ImageError(.unavailable, "The location of image \(image.id) returned \(offset) bytes, fewer than recorded.")
        }
    }

    /// `DELETE /v2/stores/{store}/{image}`: Glance's rules in the core, then the blob removed.
    public func deleteFromStore(id: String, store storeId: String, by p: Principal) async throws {
        guard stores.multiple else { throw ImageError.notFound("Multi backend is not supported at this site.") }
        guard stores.store(storeId) != nil else {
            throw ImageError.conflict("The selected store \(storeId) is not available on this node.")
        }
        let image = try await images.removeStoreCopy(id: id, store: storeId, defaultStore: blobs.id, by: p)
        do { try await stores.store(storeId)?.delete(key: BlobKey.image(image.id)) } catch {
            DataMetrics.storeError("delete")
            logger.warning("a store's copy was forgotten but could not be removed yet", metadata: ["image": .string(image.id), "store": .string(storeId), "error": "\(error)"])
        }
    }
}
