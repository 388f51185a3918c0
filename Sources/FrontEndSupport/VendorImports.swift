import ImageCore
import ImageData

extension ImageImports {
    /// A vendor API's import from a URL (Avi's `url`, ZStack's AddImage, Danube's manifest and
    /// snapshot imports): a web-download task into the image the front-end has just created. When
    /// the task cannot start (a refused URL, a quota), the image is deleted and the error rethrown,
    /// so a refused import leaves nothing behind. `deleteImageOnFailure` also deletes it when the
    /// download fails later (ZStack's and Danube's rollback; Avi keeps it, FAILED). `pinned` are the
    /// digests the vendor's request promises (an IMGAPI manifest's SHA-1), checked like any pin.
    public func startVendorImport(imageId: String, uri: String, request extra: [(String, JSONValue)] = [],
                                  taskId: String? = nil, deleteImageOnFailure: Bool,
                                  expectedSize: Int64? = nil, pinned: [PinnedDigest] = [],
                                  by p: Principal) async throws -> ImageTask {
        let body: JSONValue = .object([("method", .object([("name", .string("web-download")), ("uri", .string(uri))]))] + extra)
        do {
            return try await start(id: imageId, method: "web-download", uri: uri, requestBody: body, requestId: nil, taskId: taskId,
                                   deleteImageOnFailure: deleteImageOnFailure, expectedSize: expectedSize,
                                   pinned: pinned, by: p)
        } catch {
            try? await data.deleteImage(id: imageId, by: p)
            throw error
        }
    }
}
