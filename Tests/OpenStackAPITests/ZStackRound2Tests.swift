import Foundation
import Hummingbird
import ImageCore
import Testing
@testable import ZStackAPI

/// Issue 18's pure pieces of the ZStack front-end: refs with exports and per-storage deletes, user tag
/// records and their query, the system-tag edits of boot mode and qga, ISO media without a format.
@Suite struct ZStackRound2Tests {
    static func image(stores: String = "a,b", _ doc: [(String, JSONValue)] = []) -> Image {
        var image = Image(id: ImageID.generate(), name: "tiny", status: .active, visibility: .private, owner: "p1",
                          diskFormat: "raw", size: 100, createdAt: 1_700_000_000, updatedAt: 1_700_000_100)
        image.properties["stores"] = stores
        image.extensions["zstack"] = .object(doc)
        return image
    }

    static func storages() throws -> ZStackBackupStorages {
        ZStackBackupStorages(stores: try BlobStores([NamedStore(id: "a"), NamedStore(id: "b")]))
    }

    static func refs(_ image: Image) throws -> [String: [(String, JSONValue)]] {
        let list = ZStackImage.refs(image, stores: try storages(), pending: [])
        return Dictionary(uniqueKeysWithValues: list.map { ref in (ref.first { $0.0 == "backupStorageUuid" }!.1.stringValue!, ref) })
    }

    @Test func exportsShowOnTheirRefWhileTheyLive() throws {
        let a = ZStackBackupStorages.uuid(ofStore: "a"), b = ZStackBackupStorages.uuid(ofStore: "b")
        let now = Timestamp.now()
        let live: JSONValue = .object([("token", .string("t")), ("url", .string("http://x/e")), ("md5", .string("m")), ("expiresAt", .int(now + 60))])
        let stale: JSONValue = .object([("token", .string("t")), ("url", .string("http://x/old")), ("md5", .string("m")), ("expiresAt", .int(now - 1))])
        var doc = ZStackExports.setting(nil, bsUuid: b, live)
        doc = ZStackExports.setting(doc, bsUuid: a, stale)
        guard case .object(let members) = doc else { Issue.record("not an object"); return }
        let image = Self.image(members)
        let r = try Self.refs(image)
        #expect(r[b]?.first { $0.0 == "exportUrl" }?.1 == .string("http://x/e"))
        #expect(r[b]?.first { $0.0 == "exportMd5Sum" }?.1 == .string("m"))
        #expect(r[a]?.contains { $0.0 == "exportUrl" } == false)  // expired
        #expect(ZStackExports.record(image, bsUuid: b) != nil && ZStackExports.record(image, bsUuid: a) == nil)
        // deleting one export leaves the other
        let without = ZStackExports.setting(doc, bsUuid: b, nil)
        #expect(without["exports"]?[b] == nil && without["exports"]?[a] != nil)
    }

    @Test func refsDeletedOnSomeStoragesShowDeleted() throws {
        let a = ZStackBackupStorages.uuid(ofStore: "a"), b = ZStackBackupStorages.uuid(ofStore: "b")
        var image = Self.image([("deletedOn", .array([.string("b")])),
                                ("exports", .object([(b, .object([("url", .string("u")), ("md5", .string("m")), ("expiresAt", .int(Timestamp.now() + 60))]))]))])
        var r = try Self.refs(image)
        #expect(r[a]?.first { $0.0 == "status" }?.1 == .string("Ready") && r[b]?.first { $0.0 == "status" }?.1 == .string("Deleted"))
        #expect(r[b]?.contains { $0.0 == "exportUrl" } == false)  // not served from a deleted ref
        #expect(ZStackImage.status(image) == "Ready")
        image.status = .pendingDelete
        r = try Self.refs(image)
        #expect(r.values.allSatisfy { $0.first { $0.0 == "status" }?.1 == .string("Deleted") })
    }

    @Test func userTagRecordsAreQueriedLikeZStackQueriesThem() throws {
        let record = ZStackTags.record("team::blue", now: 1_700_000_000)
        let image = Self.image([(ZStackTags.key, .array([record]))])
        let inv = ZStackTags.inventory(record, of: image)
        #expect(inv.map(\.0) == ["uuid", "resourceUuid", "resourceType", "inherent", "type", "tag", "createDate", "lastOpDate"])
        #expect(ZStackTags.texts(image) == ["team::blue"])
        func m(_ s: String) throws -> Bool { try ZStackTags.matches(try ZStackQuery.condition(s), inv) }
        #expect(try m("tag=team::blue") && m("tag~=team%") && !m("tag!=team::blue") && m("resourceType=ImageVO"))
        #expect(try m("resourceUuid=\(ZStackImage.uuid(image.id))") && m("inherent=false") && m("type?=User,System"))
        #expect(try m("createDate>=2023-11-14 22:13:20") && !m("createDate>2023-11-14 22:13:20"))
        #expect(try m("tag not null") && !m("tag is null"))
        #expect(throws: ZStackError.self) { _ = try m("colour=red") }
        // __userTag__ on the image sees the records and the tags of older images alike
        var old = Self.image([("userTags", .array([.string("legacy")])), (ZStackTags.key, .array([record]))])
        old.properties["stores"] = "a"
        let values = ZStackMatcher.values("__userTag__", old, []).compactMap(\.stringValue)
        #expect(values == ["legacy", "team::blue"])
        #expect(throws: ZStackError.self) { try ZStackTags.checkText(String(repeating: "t", count: 2049), field: "tag", message: "m") }
        #expect(throws: ZStackError.self) { try ZStackTags.checkText("", field: "tag", message: "m") }
    }

    @Test func systemTagsAreReplacedByKind() {
        let doc: JSONValue = .object([("systemTags", .array([.string("bootMode::Legacy"), .string("qemuga"), .string("x")]))])
        let uefi = ZStackImageAPI<BasicRequestContext>.systemTags(doc, dropping: { $0.hasPrefix("bootMode::") }, adding: "bootMode::UEFI")
        #expect(uefi["systemTags"] == .array([.string("qemuga"), .string("x"), .string("bootMode::UEFI")]))
        let off = ZStackImageAPI<BasicRequestContext>.systemTags(uefi, dropping: { $0 == "qemuga" }, adding: nil)
        #expect(off["systemTags"] == .array([.string("x"), .string("bootMode::UEFI")]))
        let twice = ZStackImageAPI<BasicRequestContext>.systemTags(off, dropping: { _ in false }, adding: "x")
        #expect(twice["systemTags"] == off["systemTags"])
    }

    @Test func anISOMediumNeedsNoFormat() throws {
        let storages = try Self.storages()
        let bs = JSONValue.array([.string(ZStackBackupStorages.uuid(ofStore: "a"))])
        func spec(_ params: [(String, JSONValue)]) throws -> AddImageSpec {
            try AddImageSpec(params: [("name", .string("n")), ("url", .string("http://h/x")), ("backupStorageUuids", bs)] + params,
                             body: .object([]), storages: storages)
        }
        let iso = try spec([("mediaType", .string("ISO"))])
        #expect(iso.format == "iso" && iso.mediaType == "ISO")
        #expect(throws: ZStackError.invalidArgument("unknown format[null]")) { _ = try spec([("mediaType", .string("DataVolumeTemplate"))]) }
        #expect(throws: ZStackError.invalidArgument("unknown format[null]")) { _ = try spec([]) }
        // userTags become tag records, once each
        let tagged = try AddImageSpec(params: [("name", .string("n")), ("url", .string("http://h/x")), ("format", .string("raw")), ("backupStorageUuids", bs)],
                                      body: .object([("userTags", .array([.string("a"), .string("a"), .string("b")]))]), storages: storages)
        #expect(tagged.document[ZStackTags.key]?.arrayItems?.compactMap { $0["tag"]?.stringValue } == ["a", "b"])
    }
}
