import BlobStoreFile
import CatalogSQLite
import Foundation
import ImageCore
import NIOCore
import Synchronization
import Testing
@testable import ImageData

/// A request body that delivers some chunks, then fails like a client that went away.
struct BrokenBody: AsyncSequence {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    struct Disconnected: Error {}
    var chunks: Int
    var hang = false
    /// Reached when every chunk was delivered, before the hang or the failure.
    var atEnd: Checkpoint? = nil
    struct Iterator: AsyncIteratorProtocol {
        var left: Int
        var hang: Bool
        let atEnd: Checkpoint?
        mutating func next() async throws -> ByteBuffer? {
            if left == 0 {
                await atEnd?.reach()
                if hang { try await Task.sleep(for: .seconds(3600)) }
                throw Disconnected()
            }
            left -= 1
            return ByteBuffer(bytes: pseudoRandom(100_000, seed: UInt64(left)))
        }
    }
    func makeAsyncIterator() -> Iterator { Iterator(left: chunks, hang: hang, atEnd: atEnd) }
}

@Suite struct UploadFaultTests {
    /// A requeue the catalog refused (its outage failed the upload too) is tried again, waiting longer
    /// each time, until it goes through; the attempts are counted.
    @Test func cleanUpIsRetriedUntilItGoesThrough() async {
        let failures = Mutex(3)
        let started = ContinuousClock.now
        let attempts = await retryUntilDone(first: .milliseconds(20), longest: .milliseconds(40)) {
            try failures.withLock { left in
                guard left == 0 else { left -= 1; throw ImageError(.unavailable, "catalog away") }
            }
        }
        #expect(attempts == 4)
        #expect(failures.withLock { $0 } == 0)
        // Waited 20, 40, then 40 ms (the longest) between them.
        #expect(ContinuousClock.now - started >= .milliseconds(100))
    }

    @Test func clientGoneMidUploadQueuesTheImageAndKeepsNothing() async throws {
        let node = try Node()
        defer { node.remove() }
        let data = ImageDataService(images: node.service, blobs: node.blobs)
        let id = try await node.image(.queued)
        await #expect(throws: BrokenBody.Disconnected.self) {
            _ = try await data.upload(id: id, declaredSize: nil, body: BrokenBody(chunks: 25), by: node.admin)
        }
        let image = try #require(try await node.catalog.image(id: id))
        #expect(image.status == .queued && image.size == nil && image.checksum == nil)
        #expect(try await node.blobs.keys(prefix: "").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: node.dir + "/blobs/.tmp").isEmpty)
    }

    /// When the server cancels the handler (shutdown, a dropped connection), clean-up still runs.
    @Test func cancelledUploadStillCleansUp() async throws {
        let node = try Node()
        defer { node.remove() }
        let data = ImageDataService(images: node.service, blobs: node.blobs)
        let id = try await node.image(.queued)
        let stalled = Checkpoint()
        let upload = Task { try await data.upload(id: id, declaredSize: nil, body: BrokenBody(chunks: 30, hang: true, atEnd: stalled), by: node.admin) }
        defer { upload.cancel() }
        // Cancelled mid-upload: the data so far is written and the client has stopped sending.
        try #require(await stalled.reached(), "the upload never read the body to its stall")
        #expect(try await node.catalog.image(id: id)?.status == .saving)
        upload.cancel()
        _ = await upload.result
        #expect(try await node.catalog.image(id: id)?.status == .queued)
        #expect(try await node.blobs.keys(prefix: "").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: node.dir + "/blobs/.tmp").isEmpty)
    }

    @Test func deletedWhileSavingIs410AndDataDiscarded() async throws {
        let node = try Node()
        defer { node.remove() }
        let data = ImageDataService(images: node.service, blobs: node.blobs)
        let id = try await node.image(.queued)
        struct SlowBody: AsyncSequence {
            typealias Element = ByteBuffer
            typealias Failure = any Error
            let onHalf: @Sendable () async throws -> Void
            struct Iterator: AsyncIteratorProtocol {
                var n = 0
                let onHalf: @Sendable () async throws -> Void
                mutating func next() async throws -> ByteBuffer? {
                    n += 1
                    if n == 5 { try await onHalf() }
                    return n > 10 ? nil : ByteBuffer(bytes: pseudoRandom(50_000))
                }
            }
            func makeAsyncIterator() -> Iterator { Iterator(onHalf: onHalf) }
        }
        let service = node.service, admin = node.admin
        await #expect { _ = try await data.upload(id: id, declaredSize: nil, body: SlowBody { try await service.deleteImage(id: id, by: admin) }, by: node.admin) } throws: { e in
            (e as? ImageError)?.kind == .gone
        }
        #expect(try await node.catalog.image(id: id)?.status == .deleted)
        #expect(try await node.blobs.keys(prefix: "").isEmpty)
    }
}
