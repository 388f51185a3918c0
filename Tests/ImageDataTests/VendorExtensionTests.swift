import Foundation
import ImageCore
import Testing

/// Vendor documents through the service: created with the image, rewritten atomically with other changes.
@Suite struct VendorExtensionTests {
    let owner = Principal(userId: "u", projectId: "p", roles: ["member"])

    @Test func createdWithTheImageAndChangedWithoutLosingConcurrentWrites() async throws {
        let node = try Node()
        defer { node.remove() }
        let service = node.service
        let avi: JSONValue = .object([("type", .string("IMAGE_TYPE_SYSTEM")), ("events", .array([]))])
        let image = try await service.createImage([("name", .string("img1"))], extensions: ["avi": avi], by: owner)
        let stored = try await service.showImage(id: image.id, by: owner)
        #expect(stored.extensions == ["avi": avi] && stored.name == "img1")

        // 20 concurrent appends to the vendor document, through the service: all land.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: ["avi": { doc in
                        guard case .object(var members)? = doc, let at = members.firstIndex(where: { $0.0 == "events" }),
                              case .array(var events) = members[at].1 else { throw ImageError.badRequest("no events") }
                        events.append(.int(Int64(i)))
                        members[at].1 = .array(events)
                        return .object(members)
                    }], by: owner)
                }
            }
            try await group.waitForAll()
        }
        let after = try await service.showImage(id: image.id, by: owner)
        guard case .array(let events)? = after.extensions["avi"]?["events"] else { Issue.record("no events"); return }
        let appended = events.compactMap { e -> Int64? in if case .int(let n) = e { n } else { nil } }.sorted()
        #expect(appended == Array(0..<20))

        // A failing vendor change leaves everything as it was, core changes of the same call included.
        await #expect(throws: ImageError.self) {
            _ = try await service.updateImage(id: image.id, changes: [ImageChange(.replace, "name", .string("renamed"))],
                                              vendorChanges: ["avi": { _ in throw ImageError.badRequest("refused") }], by: owner)
        }
        let unchanged = try await service.showImage(id: image.id, by: owner)
        #expect(unchanged.name == "img1" && unchanged.extensions == after.extensions)
        // nil removes a vendor's document.
        let removed = try await service.updateImage(id: image.id, changes: [], vendorChanges: ["avi": { _ in nil }], by: owner)
        #expect(removed.extensions.isEmpty)
    }
}
