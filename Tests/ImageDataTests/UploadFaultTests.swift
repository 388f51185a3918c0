import BlobStoreFile
import CatalogSQLite
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// A request body that delivers some chunks, then fails like a client that went away.
struct BrokenBody: AsyncSequence {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    struct Disconnected: Error {}
    var chunks: Int
    var hang = false
    struct Iterator: AsyncIteratorProtocol {
        var left: Int
        var hang: Bool
        mutating func next() async throws -> ByteBuffer? {
            if left == 0 {
                if hang { try await Task.sleep(for: .seconds(3600)) }
                throw Disconnected()
            }
            left -= 1
            return ByteBuffer(bytes: pseudoRandom(100_000, seed: UInt64(left)))
        }
    }
    func makeAsyncIterator() -> Iterator { Iterator(left: chunks, hang: hang) }
}

@Suite struct UploadFaultTests {
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
        let upload = Task { try await data.upload(id: id, declaredSize: nil, body: BrokenBody(chunks: 30, hang: true), by: node.admin) }
        // Wait until the upload is under way.
        for _ in 0..<200 where try await node.catalog.image(id: id)?.status != .saving {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(100))
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
