import ImageCore

extension ImageDataService {
    /// The space the caller's project takes in the stores: for each of its images holding data
    /// (the statuses `image_size_total` counts), the image's blob in every store holding it.
    /// Physical bytes are below logical ones where the file store left holes (zero blocks).
    public func storedSpace(by p: Principal) async throws -> BlobSpace {
        guard let project = p.projectId else { return BlobSpace() }
        var request = ImageListRequest()
        request.filters = [.string(.owner, project), .oneOf(.status, ProjectUsage.storedStatuses.map(\.rawValue))]
        request.visibility = .all
        var total = BlobSpace()
        for image in try await images.listAllImages(request, by: p) {
            for store in stores.holding(image) {
                if let space = try await store.space(key: BlobKey.image(image.id), size: image.size ?? 0) { total = total + space }
            }
        }
        return total
    }
}
