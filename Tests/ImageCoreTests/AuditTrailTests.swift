import Foundation
import ImageCore
import Testing

@Suite struct AuditTrailTests {
    static let alice = Principal(userId: "u-alice", projectId: "p-alice", roles: ["member"])

    func line(_ facts: AuditRecord.Facts, status: Int = 201, action: String = "image.create") -> AuditLine {
        AuditLine(time: "2026-12-03T19:00:00.000Z", requestId: "req-1", client: "127.0.0.1", api: "openstack",
                  method: "POST", path: "/v2/images", facts: facts, action: action, status: status)
    }

    @Test func aNameWithQuotesNewlinesAndControlsStaysOneValidJSONLine() throws {
        let name = "a \"quoted\"\nname\r\twith \\ and \u{1}\u{7f}\u{2028} é😀"
        let text = line(AuditRecord.Facts(action: "image.create", imageId: "id-1", imageName: name, user: "u\"x")).encoded()
        #expect(!text.contains("\n") && !text.contains("\r") && !text.contains("\u{2028}"))
        #expect(text.contains(#""image_name":"a \"quoted\"\nname\r\twith \\ and \u0001\u007f\u2028 é😀""#))
        let back = try JSONDecoder().decode(AuditLine.self, from: Data(text.utf8))
        #expect(back.imageName == name && back.user == "u\"x")
    }

    @Test func everyFieldIsPresentInAFixedOrderUnknownOnesNull() {
        let text = line(AuditRecord.Facts(), status: 404, action: "image.delete").encoded()
        #expect(text == #"{"time":"2026-12-03T19:00:00.000Z","request_id":"req-1","client":"127.0.0.1","api":"openstack","method":"POST","path":"/v2/images","user":null,"project":null,"key_id":null,"action":"image.delete","image_id":null,"image_name":null,"status":404,"result":"error"}"#)
        #expect(line(AuditRecord.Facts(), status: 399).result == "ok")
    }

    @Test func theFirstActionIsTheRequestsAndLaterNotesOnlyFillGaps() async {
        let record = AuditRecord()
        await AuditTrail.$current.withValue(record) {
            AuditTrail.note(attemptedUser: "guess")
            AuditTrail.note("image.create", by: Self.alice)
            var image = Image(id: "5c3e0c5e-0000-4000-8000-000000000001", owner: "p-alice", createdAt: 0, updatedAt: 0)
            image.name = "first"
            AuditTrail.note(image: image)
            AuditTrail.note("image.import", imageId: "5C3E0C5E-0000-4000-8000-000000000002", by: Self.alice)
            image.name = "renamed"
            AuditTrail.note(image: image)
            AuditTrail.note(keyId: "APIKX")
        }
        #expect(record.facts == AuditRecord.Facts(action: "image.create", imageId: "5c3e0c5e-0000-4000-8000-000000000001",
                                                  imageName: "renamed", user: "u-alice", project: "p-alice", keyId: "APIKX"))
        AuditTrail.note("image.delete", imageId: "x", by: Self.alice)  // outside a request: dropped
        #expect(record.facts.action == "image.create")
    }

    @Test func aFailedLoginKeepsTheNameTried() async {
        let record = AuditRecord()
        AuditTrail.$current.withValue(record) { AuditTrail.note(attemptedUser: "mallory") }
        #expect(record.facts.user == "mallory" && record.facts.project == nil)
    }

    @Test func filtersByImageInAnyFrontEndsFormUserProjectAndTime() {
        var l = line(AuditRecord.Facts(imageId: "5c3e0c5e-0000-4000-8000-000000000001", user: "u-alice", project: "p-alice"))
        #expect(AuditFilter(imageId: "image-5C3E0C5E-0000-4000-8000-000000000001").matches(l))
        #expect(AuditFilter(imageId: "5c3e0c5e000040008000000000000001").matches(l))
        #expect(!AuditFilter(imageId: "5c3e0c5e-0000-4000-8000-000000000002").matches(l))
        #expect(AuditFilter(user: "u-alice", project: "p-alice").matches(l) && !AuditFilter(user: "u-bob").matches(l))
        let now = Date()
        l.time = AuditLine.timestamp(now.addingTimeInterval(-7200))
        #expect(AuditFilter(since: AuditFilter.since("3h", now: now)).matches(l))
        #expect(!AuditFilter(since: AuditFilter.since("1h", now: now)).matches(l))
        #expect(AuditFilter.since("2026-12-03") != nil && AuditFilter.since("2026-12-03T10:00:00Z") != nil && AuditFilter.since("soon") == nil)
    }
}
