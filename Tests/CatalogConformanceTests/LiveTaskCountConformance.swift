import Foundation
import ImageCore
import Testing

/// `countLiveTasks`, which bounds ZStack's api jobs per project: only the owner's tasks of the asked
/// types that have not expired (unfinished ones have no expiry and always count).
@Suite struct LiveTaskCountConformance {
    static func task(owner: String, type: String, expiresAt: Int64?) -> ImageTask {
        ImageTask(id: UUID().uuidString.lowercased(), type: type, status: expiresAt == nil ? .pending : .success, owner: owner,
                  imageId: nil, userId: "u", requestId: nil, input: "{}", createdAt: 1, updatedAt: 1, expiresAt: expiresAt)
    }

    @Test(arguments: Backend.available)
    func countsTheOwnersUnexpiredTasksOfTheTypes(_ backend: Backend) async throws {
        try await TestCatalog.with(backend) { catalog in
            for t in [Self.task(owner: "p1", type: "zstack_api_job", expiresAt: 200),
                      Self.task(owner: "p1", type: "zstack_api_job", expiresAt: 300),
                      Self.task(owner: "p1", type: "zstack_api_job", expiresAt: 50),       // expired
                      Self.task(owner: "p1", type: "api_image_import", expiresAt: nil),    // running
                      Self.task(owner: "p1", type: "danube_thing", expiresAt: 500),        // another type
                      Self.task(owner: "p2", type: "zstack_api_job", expiresAt: 500)] {    // another owner
                try await catalog.insertTask(t)
            }
            #expect(try await catalog.countLiveTasks(owner: "p1", types: ["zstack_api_job"], now: 100) == 2)
            #expect(try await catalog.countLiveTasks(owner: "p1", types: ["zstack_api_job", "api_image_import"], now: 100) == 3)
            #expect(try await catalog.countLiveTasks(owner: "p1", types: ["zstack_api_job"], now: 250) == 1)
            #expect(try await catalog.countLiveTasks(owner: "p2", types: ["zstack_api_job"], now: 100) == 1)
            #expect(try await catalog.countLiveTasks(owner: "p3", types: ["zstack_api_job"], now: 100) == 0)
            #expect(try await catalog.countLiveTasks(owner: "p1", types: [], now: 100) == 0)
        }
    }
}
