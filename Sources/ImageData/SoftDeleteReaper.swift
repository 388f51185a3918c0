import ImageCore
import Logging

/// Expunges softly deleted images once they have been deleted for `after` seconds (ZStack's
/// `image.expungePeriod`, Glance's scrubber for delayed deletes): status deleted, then the data
/// goes from every store. Every node may sweep a shared catalog: the status change is checked in
/// its write, so an image is expunged once; removing data that is already gone is not an error.
public struct SoftDeleteReaper: Sendable {
    let data: ImageDataService
    let catalog: any Catalog
    public let after: Int64
    let logger: Logger

    public init(data: ImageDataService, catalog: any Catalog, after: Int64, logger: Logger = Logger(label: "imaged.reaper")) {
        self.data = data; self.catalog = catalog; self.after = after; self.logger = logger
    }

    /// Seconds between sweeps: often enough that an image outlives its period by a fraction of it.
    public var interval: Double { Double(max(1, min(300, after / 4))) }

    struct NotDue: Error {}

    /// One pass; returns how many images were expunged.
    @discardableResult
    public func sweep(now: Int64 = Timestamp.now()) async throws -> Int {
        let after = self.after
        var expunged = 0
        for image in try await catalog.images(withStatus: [.pendingDelete]) where (image.deletedAt ?? 0) + after <= now {
            do {
                _ = try await catalog.updateImage(id: image.id) { current in
                    guard current.status == .pendingDelete, (current.deletedAt ?? 0) + after <= now else { throw NotDue() }
                    current.status = .deleted
                }
            } catch is NotDue {
                continue  // recovered or expunged meanwhile
            }
            await data.removeData(of: image.id)
            expunged += 1
            logger.info("softly deleted image expunged", metadata: ["image": .string(image.id)])
        }
        return expunged
    }

    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(interval))
            if Task.isCancelled { return }
            do { try await sweep() } catch { logger.warning("expunge sweep failed", metadata: ["error": "\(error)"]) }
        }
    }
}
