import CatalogSQLite
import Foundation
import ImageCore
import NIOCore
import Testing
@testable import ImageData

/// The reaper's rule on its own, then two nodes (two services with their own node ids) sharing one
/// catalog: an upload whose node stopped beating goes back to queued; a live node's never does.
@Suite struct UploadReaperTests {
    let rule = WriterLiveness(deadAfter: 15)

    @Test func deadOnlyWhenSilentLongerThanTheBound() {
        let beats: [String: Int64] = ["a": 1_000, "b": 990]
        #expect(!rule.isAbandoned(writer: "a", heartbeats: beats, selfNode: "me", now: 1_015))   // 15 s: not yet
        #expect(rule.isAbandoned(writer: "b", heartbeats: beats, selfNode: "me", now: 1_006))    // 16 s
        #expect(rule.isAbandoned(writer: "gone", heartbeats: beats, selfNode: "me", now: 1_000)) // no row: dead
        #expect(!rule.isAbandoned(writer: nil, heartbeats: beats, selfNode: "me", now: 9_999))   // no writer recorded
        #expect(!rule.isAbandoned(writer: "me", heartbeats: [:], selfNode: "me", now: 9_999))    // never itself
    }

    @Test func judgesOnlyAfterReachingTheCatalogForTheWholeBound() {
        #expect(!rule.mayJudge(reachableSince: nil, now: 1_000))        // the last heartbeat failed
        #expect(!rule.mayJudge(reachableSince: 990, now: 1_000))        // back for 10 s: others may not have beaten yet
        #expect(rule.mayJudge(reachableSince: 985, now: 1_000))
    }

    @Test func writerMatching() {
        #expect(UploadWriter.node("a").owns(nil))
        #expect(UploadWriter.node("a").owns("a"))
        #expect(!UploadWriter.node("a").owns("b"))
        #expect(!UploadWriter.exactly("a").owns(nil))
        #expect(UploadWriter.exactly("a").owns("a"))
        #expect(UploadWriter.any.owns("z"))
    }

    static func service(_ catalog: SQLiteCatalog, node: String) -> ImageService {
        var config = ImageServiceConfig()
        config.nodeId = node
        return ImageService(catalog: catalog, config: config)
    }

    @Test func deadNodesUploadIsRequeuedWithItsLeftoversAndALiveOnesIsKept() async throws {
        let node = try Node()
        defer { node.remove() }
        let dead = Self.service(node.catalog, node: "node-dead")
        let live = Self.service(node.catalog, node: "node-live")
        let reaping = Self.service(node.catalog, node: "node-reaper")
        let abandoned = try await node.image(.queued)
        let inFlight = try await node.image(.queued)
        _ = try await dead.beginUpload(id: abandoned, to: .saving, by: node.admin)
        _ = try await live.beginUpload(id: inFlight, to: .saving, by: node.admin)
        #expect(try await node.catalog.image(id: abandoned)?.writerNode == "node-dead")
        try await node.put(BlobKey.image(abandoned), [9, 9])   // committed just before the node died

        let now = Timestamp.now()
        try await node.catalog.beat(node: "node-dead", at: now - 60)
        try await node.catalog.beat(node: "node-live", at: now - 2)
        var options = UploadReaper.Options()
        options.heartbeatSeconds = 5
        let reaper = UploadReaper(data: ImageDataService(images: reaping, blobs: node.blobs), catalog: node.catalog, options: options)
        // Before it has reached the catalog for the whole bound, the reaper judges nobody.
        #expect(try await reaper.sweepImages(now: now) == 0)
        #expect(try await reaper.sweepImages(now: now, judgeAnyway: true) == 1)

        let requeued = try #require(try await node.catalog.image(id: abandoned))
        #expect(requeued.status == .queued && requeued.writerNode == nil && requeued.size == nil)
        #expect(try await node.blobs.size(key: BlobKey.image(abandoned)) == nil)
        let kept = try #require(try await node.catalog.image(id: inFlight))
        #expect(kept.status == .saving && kept.writerNode == "node-live")

        // The dead node comes back and finishes: refused, its data is not published.
        let facts = ImageService.DataFacts(size: 2, checksum: "x", hashAlgorithm: "sha512", hashValue: "y", virtualSize: nil)
        await #expect(throws: ImageError.self) { _ = try await dead.finishData(id: abandoned, from: .saving, facts: facts) }
        // Uploaded again by the live node: the old writer's failure path cannot requeue it.
        _ = try await live.beginUpload(id: abandoned, to: .saving, by: node.admin)
        _ = try await dead.returnToQueued(id: abandoned, from: [.saving])
        #expect(try await node.catalog.image(id: abandoned)?.status == .saving)
        await #expect(throws: ImageError.self) { _ = try await dead.finishData(id: abandoned, from: .saving, facts: facts) }
        let done = try await live.finishData(id: abandoned, from: .saving, facts: facts)
        #expect(done.status == .active && done.writerNode == nil)
    }

    @Test func heartbeatsAreRenewedNeverMovedBack() async throws {
        let node = try Node()
        defer { node.remove() }
        try await node.catalog.beat(node: "n1", at: 100)
        try await node.catalog.beat(node: "n1", at: 90)
        try await node.catalog.beat(node: "n2", at: 50)
        #expect(try await node.catalog.heartbeats() == ["n1": 100, "n2": 50])
        try await node.catalog.forgetNode("n2")
        #expect(try await node.catalog.heartbeats() == ["n1": 100])
    }
}
