import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// Image bytes as a response body, checked before any status goes out: once a 200 is sent an error
/// can only cut the connection, so a blob that is missing or not the recorded size is refused first.
public enum GuardedDownload {
    public enum Outcome {
        /// The image has no data (queued, or deactivated for the caller).
        case noData
        case bytes(image: Image, range: Range<Int64>, total: Int64, partial: Bool, body: ResponseBody)
    }

    /// `unavailable` when the stored blob is missing or not `total` bytes long.
    public static func prepare(_ data: ImageDataService, id: String, range: ByteRangeRequest?, by p: Principal) async throws -> Outcome {
        switch try await data.prepareDownload(id: id, range: range, by: p) {
        case .noData:
            return .noData
        case .bytes(let image, let r, let total, let partial):
            let stored: Int64?
            if !image.locations.isEmpty {
                stored = total  // data at a location: its length is checked while it streams
            } else {
                stored = try await data.storedSize(image)  // the node's cache entry, else the store (503 when down)
            }
            guard let stored, stored == total else {
                throw ImageError(.unavailable, "The data of image \(image.id) is not available.")
            }
            let body = ResponseBody(contentLength: Int(r.count)) { writer in
                try await data.read(image, range: r, receiver: p) { try await writer.write($0) }  // p: image.send's receiver
                try await writer.finish(nil)
            }
            return .bytes(image: image, range: r, total: total, partial: partial, body: body)
        }
    }
}
