import Foundation
import Hummingbird
import ImageCore
import Testing
@testable import ZStackAPI

/// The pieces of ZStack's wire format that are pure functions: the query language, Gson dates, uuids.
@Suite struct ZStackQueryTests {
    @Test func operatorsAreFoundInZStacksOrder() throws {
        func parsed(_ s: String) throws -> (String, String, String) {
            let c = try ZStackQuery.condition(s)
            return (c.field, c.op.rawValue, c.value)
        }
        #expect(try parsed("name=TinyLinux") == ("name", "=", "TinyLinux"))
        #expect(try parsed("size>=5") == ("size", ">=", "5"))
        #expect(try parsed("status!=Deleted") == ("status", "!=", "Deleted"))
        #expect(try parsed("mediaType?=ISO,RootVolumeTemplate") == ("mediaType", "?=", "ISO,RootVolumeTemplate"))
        #expect(try parsed("mediaType!?=ISO") == ("mediaType", "!?=", "ISO"))
        #expect(try parsed("name!~=ubuntu%") == ("name", "!~=", "ubuntu%"))
        #expect(try parsed("name~=a_c%") == ("name", "~=", "a_c%"))
        // The first operator found wins and the value is not trimmed: `=` before `>` here.
        #expect(try parsed("name=a>b ") == ("name", "=", "a>b "))
        #expect(try parsed("description is null") == ("description", " is null", ""))
        #expect(try parsed("md5Sum not null") == ("md5Sum", " not null", ""))
        for bad in ["name", "", "=x", "nameisnull"] {
            #expect(throws: ZStackHTTPError.self) { _ = try ZStackQuery.condition(bad) }
        }
    }

    @Test func parametersKeepRepeatedConditionsAndTheFirstOfTheRest() throws {
        let q = try ZStackQuery(parameters: ZStackQuery.parameters("q=name~=abc%&q=status=Ready&limit=20&start=40&fields=uuid,name&fields=status&sort=-createDate&replyWithCount=true&unknown=1"))
        #expect(q.conditions.map(\.value) == ["abc%", "Ready"])
        #expect(q.limit == 20 && q.start == 40 && q.replyWithCount && !q.count)
        #expect(q.fields == ["uuid", "name"] && q.sort?.field == "createDate" && q.sort?.descending == true)
        // `%41` decodes where it is well-formed; a raw `%` stays.
        #expect(ZStackQuery.parameters("q=name=%41b%")[0].1 == "name=%41b%")
        #expect(ZStackQuery.parameters("q=name%3DAb")[0].1 == "name=Ab")
        #expect(try ZStackQuery(parameters: [("sort", " name")]).sort?.descending == false)
        #expect(throws: ZStackHTTPError.self) { _ = try ZStackQuery(parameters: [("limit", "ten")]) }
        #expect(throws: ZStackHTTPError.self) { _ = try ZStackQuery(parameters: [("start", "-1")]) }
    }

    @Test func likeMatchesPercentAndUnderscore() {
        #expect(ZStackMatcher.like("ubuntu-22.04", pattern: "ubuntu%"))
        #expect(ZStackMatcher.like("ubuntu", pattern: "%"))
        #expect(ZStackMatcher.like("abc", pattern: "a_c"))
        #expect(!ZStackMatcher.like("abbc", pattern: "a_c"))
        #expect(ZStackMatcher.like("a%c", pattern: "a%%c"))
        #expect(!ZStackMatcher.like("centos", pattern: "ubuntu%"))
        #expect(ZStackMatcher.like("", pattern: "%"))
        #expect(!ZStackMatcher.like("", pattern: "_"))
    }

    @Test func conditionsEvaluateOnInventories() throws {
        var image = Image(id: ImageID.generate(), name: "tiny", status: .active, visibility: .private, owner: "p1",
                          diskFormat: "qcow2", size: 100, virtualSize: 4096, createdAt: 1_700_000_000, updatedAt: 1_700_000_100)
        image.extensions["zstack"] = .object([("userTags", .array([.string("team::blue")])), ("system", .bool(true))])
        let stores = try BlobStores([NamedStore(id: "a"), NamedStore(id: "b")])
        image.properties["stores"] = "a,b"
        let inv = ZStackImage.inventory(image, stores: ZStackBackupStorages(stores: stores), pending: [])
        func m(_ s: String) throws -> Bool { try ZStackMatcher.matches(try ZStackQuery.condition(s), image, inv) }
        #expect(try m("size=4096") && m("actualSize<101") && !m("size>4096"))
        #expect(try m("status=Ready") && m("state=Enabled") && m("format?=raw,qcow2") && !m("format!?=qcow2"))
        #expect(try m("system=true") && !m("virtio=false"))
        #expect(try m("createDate>=2023-11-14 22:13:20") && !m("createDate>2023-11-14 22:13:20"))
        #expect(try m("lastOpDate>Nov 14, 2023 10:13:20 PM"))
        #expect(try m("__userTag__=team::blue") && !m("__systemTag__=team::blue"))
        #expect(try m("backupStorageRefs.backupStorageUuid=\(ZStackBackupStorages.uuid(ofStore: "b"))"))
        #expect(try m("backupStorageRefs.status=Ready") && !m("backupStorageRefs.status!=Ready"))
        #expect(try m("md5Sum is null") && m("name not null"))
        #expect(throws: ZStackError.self) { _ = try m("colour=red") }
        #expect(throws: ZStackError.self) { _ = try m("size>big") }
        #expect(throws: ZStackError.self) { _ = try m("system>true") }
    }

    /// Found by schemathesis: a malformed operand passed when no image was there to compare it with.
    @Test func operandsAreCheckedBeforeAnythingIsRead() throws {
        func check(_ s: String) throws { try ZStackMatcher.check([try ZStackQuery.condition(s)]) }
        for bad in ["size>abc", "system>true", "system=maybe", "createDate<yesterday", "size?=1,x", "actualSize!=z", "colour=red"] {
            #expect(throws: ZStackError.self, "\(bad)") { try check(bad) }
        }
        for good in ["size>5", "system!=true", "system?=true,false", "createDate>=2023-11-14 22:13:20", "name~=%", "size is null",
                     "name>abc", "__userTag__=a", "size!?=1,2"] {
            #expect(throws: Never.self, "\(good)") { try check(good) }
        }
    }

    @Test func gsonDatesRoundTrip() {
        #expect(GsonDate.format(1_483_674_676) == "Jan 6, 2017 3:51:16 AM")
        #expect(GsonDate.format(1_483_718_400) == "Jan 6, 2017 4:00:00 PM")
        #expect(GsonDate.format(1_483_660_800) == "Jan 6, 2017 12:00:00 AM")
        #expect(GsonDate.parse("Jan 6, 2017 3:51:16 AM") == 1_483_674_676)
        #expect(GsonDate.parse("Jan 6, 2017 12:00:00 AM") == 1_483_660_800)
        #expect(GsonDate.parse("2017-01-06 03:51:16") == 1_483_674_676)
        #expect(GsonDate.parse("1483674676000") == 1_483_674_676)
        #expect(GsonDate.parse("yesterday") == nil)
    }

    @Test func uuidsAreTheCoreIdsWithoutDashes() {
        let id = ImageID.generate()
        let z = ZStackImage.uuid(id)
        #expect(z.count == 32 && !z.contains("-"))
        #expect(ZStackImage.coreId(z) == id && ZStackImage.coreId(z.uppercased()) == id && ZStackImage.coreId(id) == id)
        #expect(ZStackImage.coreId("xyz") == nil && ZStackImage.coreId(String(z.dropLast())) == nil)
        #expect(ZStackImage.coreId(String(z.dropLast()) + "g") == nil)
        // Store uuids are stable (derived from the name) and distinct.
        #expect(ZStackBackupStorages.uuid(ofStore: "a") == ZStackBackupStorages.uuid(ofStore: "a"))
        #expect(ZStackBackupStorages.uuid(ofStore: "a") != ZStackBackupStorages.uuid(ofStore: "b"))
    }

    @Test func statusesMapTheCoreLifecycle() {
        var image = Image(id: ImageID.generate(), status: .queued, visibility: .private, owner: "p1", createdAt: 1, updatedAt: 1)
        #expect(ZStackImage.status(image) == "Creating")
        image.extensions["zstack"] = .object([("url", .string("http://x/y"))])
        #expect(ZStackImage.status(image) == "Downloading")
        let expected: [(ImageStatus, String, String)] = [(.importing, "Downloading", "Enabled"), (.active, "Ready", "Enabled"),
                                                         (.deactivated, "Ready", "Disabled"), (.killed, "Error", "Enabled"),
                                                         (.pendingDelete, "Deleted", "Enabled"), (.deleted, "Deleted", "Enabled")]
        for (core, status, state) in expected {
            image.status = core
            #expect(ZStackImage.status(image) == status && ZStackImage.state(image) == state)
        }
        image.status = .pendingDelete
        image.extensions["zstack"] = .object([("state", .string("Disabled"))])
        #expect(ZStackImage.state(image) == "Disabled")
    }
}

/// A store that holds nothing: only its id matters to the inventories.
struct NamedStore: BlobStore {
    let id: String
    func makeWriter(key: String) async throws -> any BlobWriter { throw ImageError(.internal, "unused") }
    func size(key: String) async throws -> Int64? { nil }
    func read(key: String, range: Range<Int64>?, chunkSize: Int, into sink: (ByteBuffer) async throws -> Void) async throws {}
    func delete(key: String) async throws {}
    func keys(prefix: String) async throws -> [String] { [] }
    func removeLeftovers() async throws -> Int { 0 }
}
