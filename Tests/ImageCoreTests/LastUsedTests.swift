@testable import ImageCore
import Testing

/// The core's rule: a VM newly recorded against an image is a use (its last-used time), whatever API records it.
@Suite struct LastUsedTests {
    func image(vms: [String], lastUsed: Int64? = nil) -> Image {
        var i = Image(id: ImageID.generate(), createdAt: 1, updatedAt: 1)
        i.extensions["danube"] = .object([("vms", .array(vms.map { .string($0) }))])
        if let lastUsed { i.extensions["usage"] = .object([("lastUsed", .int(lastUsed))]) }
        return i
    }

    @Test func recordingAVMIsAUse() {
        let before = image(vms: [])
        var after = image(vms: ["web01"])
        ImageService.noteUse(&after, before: before, now: 1000)
        #expect(after.lastUsedAt == 1000 && before.lastUsedAt == nil)
        var second = image(vms: ["web01", "web02"], lastUsed: 1000)
        ImageService.noteUse(&second, before: after, now: 2000)
        #expect(second.lastUsedAt == 2000)
    }

    @Test func forgettingOrKeepingVMsIsNoUse() {
        let used = image(vms: ["web01"], lastUsed: 1000)
        for vms in [[], ["web01"]] {
            var after = image(vms: vms, lastUsed: 1000)
            ImageService.noteUse(&after, before: used, now: 5000)
            #expect(after.lastUsedAt == 1000)
        }
        var plain = Image(id: ImageID.generate(), createdAt: 1, updatedAt: 1)
        ImageService.noteUse(&plain, before: plain, now: 5000)
        #expect(plain.lastUsedAt == nil && plain.extensions["usage"] == nil)
    }

    @Test func aClockGoingBackNeverMovesItEarlier() {
        let before = image(vms: [], lastUsed: 9000)
        var after = image(vms: ["web01"], lastUsed: 9000)
        ImageService.noteUse(&after, before: before, now: 5000)
        #expect(after.lastUsedAt == 9000)
    }
}
