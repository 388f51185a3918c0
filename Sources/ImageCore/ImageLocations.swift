/// Glance's image locations (v2.17 `POST/GET /v2/images/{id}/locations`): an image whose data stays
/// at a URL outside imaged's stores. Kept in the image's `locations` document (the catalog stores it
/// untouched, no migration needed) as `[{"url", "metadata", "added_by_admin"}]`; downloads read the
/// first one. Only the core writes it.
public struct ImageLocation: Sendable, Equatable {
    public var url: String
    public var metadata: JSONValue
    /// Whether an admin added it: what the URL guard may open when the data is read later.
    public var addedByAdmin: Bool

    public init(url: String, metadata: JSONValue = .object([]), addedByAdmin: Bool = false) {
        self.url = url; self.metadata = metadata; self.addedByAdmin = addedByAdmin
    }

    var document: JSONValue {
        .object([("url", .string(url)), ("metadata", metadata), ("added_by_admin", .bool(addedByAdmin))])
    }
}

extension Image {
    static let locationsKey = "locations"

    /// The image's external locations, oldest first; empty for images whose data is in a store.
    public var locations: [ImageLocation] {
        (extensions[Image.locationsKey]?.arrayItems ?? []).compactMap { item in
            guard let url = item["url"]?.stringValue else { return nil }
            return ImageLocation(url: url, metadata: item["metadata"] ?? .object([]),
                                 addedByAdmin: item["added_by_admin"]?.boolValue ?? false)
        }
    }

    mutating func setLocations(_ list: [ImageLocation]) {
        if list.isEmpty { extensions.removeValue(forKey: Image.locationsKey) } else {
            extensions[Image.locationsKey] = .array(list.map(\.document))
        }
    }
}

extension ImageService {
    /// `add_image_location`: queued → importing with the location recorded and the import lock
    /// taken by `taskId`, in one write. 404 unseen, 403 by policy, 409 not queued or locked.
    /// A queued image's earlier locations are what failed imports left: the new one replaces them.
    /// `store` is recorded in `stores` (Glance names the http store there when stores are named).
    public func beginLocationImport(id: String, location: ImageLocation, store: String?, taskId: String,
                                    by p: Principal) async throws -> Image {
        AuditTrail.note("image.location_add", imageId: id, by: p)
        let (visible, member) = try await visibleImageAndMembership(id: id, by: p)
        guard visible.status == .queued else {
            throw ImageError.conflict("It's not allowed to add locations if image status is \(visible.status.rawValue).")
        }
        guard Policy.allows(.addImageLocation, p, PolicyTarget(visible, callerIsImageMember: member != nil)) else {
            throw ImageError.forbidden("You are not authorized to add a location to image \(visible.id).")
        }
        let updated = try await catalog.updateImage(id: visible.id) { image in
            guard image.status == .queued else {
                throw ImageError.conflict("It's not allowed to add locations if image status is \(image.status.rawValue).")
            }
            if let holder = image.properties[ImageService.importLockKey], !holder.isEmpty {
                throw ImageError.conflict("New operation on image '\(image.id)' is not permitted as prior operation is still in progress (task \(holder)).")
            }
            image.status = .importing
            image.properties[ImageService.importLockKey] = taskId
            image.setLocations([location])
            if let store { image.properties[Self.storesKey] = store }
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        return updated
    }

    /// The location's data checked out: importing → active with the digests the task computed.
    public func finishLocationImport(id: String, taskId: String, facts: DataFacts) async throws -> Image {
        let updated = try await catalog.updateImage(id: id) { image in
            guard image.status == .importing, image.properties[ImageService.importLockKey] == taskId else {
                throw ImageError.conflict("Image \(id) is no longer importing for task \(taskId).")
            }
            image.status = .active
            image.size = facts.size
            image.checksum = facts.checksum
            image.osHashAlgo = facts.hashAlgorithm
            image.osHashValue = facts.hashValue
            image.releaseImportLock()
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        return updated
    }

    /// The location could not be read or its digest did not match the caller's `validation_data`:
    /// back to queued with the digests cleared (Glance's revert), so it can be retried. The http(s)
    /// location stays recorded, as Glance's read-only http store leaves it, and `stores` with it.
    public func failLocationImport(id: String, taskId: String) async throws {
        _ = try await catalog.updateImage(id: id) { image in
            guard image.status == .importing, image.properties[ImageService.importLockKey] == taskId else { return }
            image.requeue()
            image.releaseImportLock()
        }
    }

    /// `fetch_image_location` (service role only): the image's locations.
    public func imageLocations(id: String, by p: Principal) async throws -> [ImageLocation] {
        let (image, member) = try await visibleImageAndMembership(id: id, by: p)
        guard Policy.allows(.fetchImageLocation, p, PolicyTarget(image, callerIsImageMember: member != nil)) else {
            throw ImageError.forbidden("You are not authorized to get the locations of image \(image.id).")
        }
        return image.locations
    }

    /// Glance's `DELETE /v2/stores/{store}/{image}` rules (v2.10): the caller must see the image
    /// (404), hold `get_image_location` and `delete_image_location` (403); the image must be active
    /// (409), in more than one store (403 for its only copy) and in `store` (404). Recorded in one
    /// write; the caller removes the blob afterwards.
    public func removeStoreCopy(id: String, store: String, defaultStore: String, by p: Principal) async throws -> Image {
        AuditTrail.note("image.store_delete", imageId: id, by: p)
        let (visible, member) = try await visibleImageAndMembership(id: id, by: p)
        let target = PolicyTarget(visible, callerIsImageMember: member != nil)
        guard Policy.allows(.getImageLocation, p, target), Policy.allows(.deleteImageLocation, p, target) else {
            throw ImageError.forbidden("You are not authorized to delete image data from a store.")
        }
        let updated = try await catalog.updateImage(id: visible.id) { image in
            guard image.status == .active else {
                throw ImageError.conflict("It's not allowed to remove image data from store if image status is not 'active'")
            }
            let held = Self.storeIds(image).isEmpty ? [defaultStore] : Self.storeIds(image)
            guard held.count > 1 else {
                throw ImageError.forbidden("Cannot delete image data from the only store containing it. Consider deleting the image instead.")
            }
            guard held.contains(store) else {
                throw ImageError.notFound("Image \(image.id) is not stored in store \(store).")
            }
            image.properties[Self.storesKey] = held.filter { $0 != store }.joined(separator: ",")
            image.updatedAt = max(Timestamp.now(), image.updatedAt)
        }
        guard let updated else { throw ImageError.notFound("No image found with ID \(id)") }
        logger.info("image data removed from a store", metadata: ["image": .string(id), "store": .string(store)])
        return updated
    }

    /// `stores_info_detail` (admin or service role).
    public func requireStoresDetail(by p: Principal) throws {
        guard Policy.allows(.storesInfoDetail, p) else {
            throw ImageError.forbidden("You are not authorized to view the stores' details.")
        }
    }
}

/// What a store says about itself in `/v2/info/stores/detail` (Glance 2.15): its driver type and
/// the driver's settings worth showing (never credentials).
public protocol BlobStoreDetails: Sendable {
    var storeType: String { get }
    var storeProperties: [(String, JSONValue)] { get }
    /// The URL Glance would show as the location of the blob under `key` (`file:///…`, `s3://…`).
    func locationURL(key: String) -> String
}

extension NamedBlobStore: BlobStoreDetails {
    public var storeType: String { (base as? any BlobStoreDetails)?.storeType ?? "unknown" }
    public var storeProperties: [(String, JSONValue)] { (base as? any BlobStoreDetails)?.storeProperties ?? [] }
    public func locationURL(key: String) -> String { (base as? any BlobStoreDetails)?.locationURL(key: key) ?? "" }
}
