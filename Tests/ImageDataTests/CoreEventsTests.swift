import Foundation
import ImageCore
import NIOCore
import Synchronization
import Testing
@testable import ImageData

/// What the core hands its event sink (the Notifications target in the server; a recorder here).
final class RecordedEvents: EventSink {
    private let events = Mutex<[ImageEvent]>([])
    func emit(_ event: ImageEvent) { events.withLock { $0.append(event) } }
    var all: [ImageEvent] { events.withLock { $0 } }
    var types: [String] { all.map(\.type) }
}

/// Each write of the core emits Glance's event once, after the write, with Glance's payload; a refused
/// write emits nothing.
@Suite struct CoreEventsTests {
    static let alice = Principal(userId: "u-alice", projectId: "pa", roles: ["member"])
    static let bob = Principal(userId: "u-bob", projectId: "pb", roles: ["member"])

    static func body(_ bytes: [UInt8]) -> AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { c in
            c.yield(ByteBuffer(bytes: bytes))
            c.finish()
        }
    }

    /// The node's core with its events recorded.
    static func recorded(_ node: Node) -> (RecordedEvents, ImageService, ImageDataService) {
        let sink = RecordedEvents()
        var config = ImageServiceConfig()
        config.events = sink
        let service = ImageService(catalog: node.catalog, config: config)
        return (sink, service, ImageDataService(images: service, blobs: node.blobs))
    }

    @Test func imageLifecycleMembersAndDownloadEmitGlancesEventsOnce() async throws {
        let node = try Node()
        defer { node.remove() }
        let (sink, service, data) = Self.recorded(node)

        let image = try await service.createImage([("name", .string("ev")), ("disk_format", .string("raw")),
                                                   ("container_format", .string("bare")), ("visibility", .string("shared"))],
                                                  by: Self.alice)
        #expect(sink.types == ["image.create"])
        #expect(sink.all[0].payload["id"] == .string(image.id) && sink.all[0].payload["owner"] == .string("pa"))

        let bytes = [UInt8](repeating: 7, count: 1000)
        _ = try await data.upload(id: image.id, declaredSize: nil, body: Self.body(bytes), by: Self.alice)
        #expect(sink.types == ["image.create", "image.update", "image.prepare", "image.upload", "image.activate"])
        let activated = sink.all[4].payload
        #expect(activated["status"] == .string("active") && activated["size"] == .int(1000))
        #expect(sink.all[3].payload["os_glance_importing_to_stores"] == .array([]))

        // A refused write (bob does not own the image) emits nothing.
        let before = sink.all.count
        await #expect(throws: ImageError.self) {
            _ = try await service.updateImage(id: image.id, changes: [ImageChange(.replace, "name", .string("no"))], by: Self.bob)
        }
        #expect(sink.all.count == before)

        _ = try await service.addMember(imageId: image.id, memberId: "pb", by: Self.alice)
        _ = try await service.setMemberStatus(imageId: image.id, memberId: "pb", status: "accepted", by: Self.bob)
        #expect(Array(sink.types.suffix(2)) == ["image.member.create", "image.member.update"])
        #expect(sink.all.last?.payload["status"] == .string("accepted") && sink.all.last?.payload["member_id"] == .string("pb"))

        guard case .bytes(let shown, let range, _, _) = try await data.prepareDownload(id: image.id, range: nil, by: Self.bob) else {
            Issue.record("no data to download")
            return
        }
        var received = 0
        try await data.read(shown, range: range, receiver: Self.bob) { received += $0.readableBytes }
        #expect(received == 1000)
        let send = try #require(sink.all.last)
        #expect(send.type == "image.send")
        #expect(send.payload == .object([("bytes_sent", .int(1000)), ("image_id", .string(image.id)), ("owner_id", .string("pa")),
                                         ("receiver_tenant_id", .string("pb")), ("receiver_user_id", .string("u-bob"))]))

        try await service.removeMember(imageId: image.id, memberId: "pb", by: Self.alice)
        #expect(sink.all.last?.type == "image.member.delete" && sink.all.last?.payload["deleted"] == .bool(true))
        try await service.deleteImage(id: image.id, by: Self.alice)
        let deleted = try #require(sink.all.last)
        #expect(deleted.type == "image.delete" && deleted.priority == .info)
        #expect(deleted.payload["deleted"] == .bool(true) && deleted.payload["status"] == .string("deleted"))
        #expect(deleted.payload["deleted_at"]?.stringValue?.hasSuffix("Z") == true)
        #expect(sink.types.filter { $0 == "image.delete" }.count == 1)
    }

    @Test func aFailedUploadIsAnErrorEventAndNoActivation() async throws {
        let node = try Node()
        defer { node.remove() }
        let (sink, service, data) = Self.recorded(node)
        let image = try await service.createImage([("disk_format", .string("raw")), ("container_format", .string("bare"))], by: Self.alice)
        await #expect(throws: ImageError.self) {
            _ = try await data.upload(id: image.id, declaredSize: nil, expectedMD5: "00000000000000000000000000000000",
                                      body: Self.body([1, 2, 3]), by: Self.alice)
        }
        let last = try #require(sink.all.last)
        #expect(last.type == "image.upload" && last.priority == .error)
        #expect(last.payload.stringValue?.contains(image.id) == true)
        #expect(!sink.types.contains("image.activate"))
    }
}
