import Foundation
import Hummingbird
import ImageCore
import ImageData
import Synchronization
import Testing
@testable import DanubeAPI

/// Danube's pure rules: names, fields, manifests, task ids, urljoin, the image and manifest forms.
@Suite struct DanubeTests {
    @Test func namesFollowTheSerializerAndTheURLPattern() {
        #expect(DanubeImage.nameErrors("centos-7.4_x").isEmpty)
        #expect(DanubeImage.nameErrors(String(repeating: "a", count: 32)).isEmpty)
        #expect(DanubeImage.nameErrors(String(repeating: "a", count: 33)) == ["Ensure this field has no more than 32 characters."])
        #expect(DanubeImage.nameErrors("-dash") == ["Enter a valid value."] && DanubeImage.nameErrors(".dot") == ["Enter a valid value."])
        #expect(DanubeImage.routable("a.b-c_d") && !DanubeImage.routable("bad!name") && !DanubeImage.routable("") && !DanubeImage.routable("a b"))
    }

    @Test func fieldsAreCheckedLikeDanubesSerializer() {
        var v = DanubeValidation()
        let ok = DanubeFields([("alias", .string("web")), ("access", .string("4")), ("desc", .string("")), ("version", .int(2)),
                               ("resize", .string("True")), ("deploy", .int(0)), ("tags", .string("a, b:c,d/e")), ("dc_bound", .bool(false))], &v)
        #expect(v.isEmpty)
        #expect(ok.alias == "web" && ok.access == 4 && ok.desc == "" && ok.version == "2" && ok.resize == true && ok.deploy == false)
        #expect(ok.tags == ["a", "b:c", "d/e"] && ok.dcBound == false)
        var bad = DanubeValidation()
        _ = DanubeFields([("alias", .string(String(repeating: "x", count: 33))), ("access", .int(2)), ("desc", .string("a<b")),
                          ("version", .string("")), ("resize", .string("maybe")), ("tags", .array([.string("a.b")])), ("owner", .string(""))], &bad)
        let fields = Dictionary(uniqueKeysWithValues: bad.fields.map { ($0.0, $0.1) })
        #expect(fields["alias"] == ["Ensure this field has no more than 32 characters."])
        #expect(fields["access"] == ["\"2\" is not a valid choice."])
        #expect(fields["desc"] == ["Enter a valid value."] && fields["version"] == ["This field may not be blank."])
        #expect(fields["resize"] == ["Must be a valid boolean."] && fields["tags"] != nil && fields["owner"] != nil)
        #expect(bad.result["access"]?.arrayItems == [.string("\"2\" is not a valid choice.")])
    }

    @Test func manifestsAreReadAsDanubeReadsThem() throws {
        let id = ImageID.generate()
        let m = try DanubeImage.Manifest(try JSONValue.parse("""
            {"v": 2, "uuid": "\(id.uppercased())", "version": 3, "type": "zone-dataset", "os": "smartos", "image_size": 2048,
             "description": "\(String(repeating: "d", count: 200))", "tags": {"erigones": ["x"], "deploy": true},
             "files": [{"sha1": "\(String(repeating: "A", count: 40))", "size": 123, "compression": "gzip"}]}
            """))
        #expect(m.uuid == id && m.version == "3" && m.ostype == 5 && m.sizeMB == 2048 && m.description?.count == 128)
        #expect(m.tags == ["x"] && m.deploy == true && m.resize == true && m.fileSize == 123 && m.sha1 == String(repeating: "a", count: 40))
        let kvm = try DanubeImage.Manifest(try JSONValue.parse("{\"uuid\": \"\(id)\", \"version\": \"1\", \"os\": \"Windows\", \"files\": [{}]}"))
        #expect(kvm.ostype == 4 && kvm.sizeMB == 1024 && kvm.resize == nil && kvm.sha1 == nil && kvm.fileSize == nil)
        func refusal(_ text: String) -> String? {
            do { _ = try DanubeImage.Manifest(try JSONValue.parse(text)); return nil } catch let v as DanubeValidation {
                return v.fields.first?.1.first
            } catch { return "unparsed" }
        }
        #expect(refusal("{\"uuid\": \"\(id)\", \"version\": \"1\", \"os\": \"linux\", \"files\": []}") == "Invalid image manifest.")
        #expect(refusal("{\"uuid\": \"nope\", \"version\": \"1\", \"os\": \"linux\", \"files\": [{}]}") == "Invalid image manifest.")
        #expect(refusal("{\"uuid\": \"\(id)\", \"version\": \"1\", \"files\": [{}]}") == "Invalid image manifest.")
        #expect(refusal("[1]") == "Invalid image manifest.")
        #expect(refusal("{\"uuid\": \"\(id)\", \"version\": \"1\", \"os\": \"linux\", \"files\": [{}, {}]}") == "Multiple files inside manifest are not supported.")
    }

    @Test func taskIdsAndURLJoin() {
        let core = ImageID.generate()
        let real = DanubeTaskID.real(core)
        #expect(real.hasPrefix("1e1u1-") && DanubeTaskID.coreId(real) == core && DanubeTaskID.coreId(real.uppercased().replacingOccurrences(of: "1E1U1", with: "1e1u1")) == core)
        let dummy = DanubeTaskID.dummy()
        #expect(dummy.hasPrefix("1d1u1-") && dummy.count == 29 && DanubeTaskID.coreId(dummy) == nil)
        #expect(DanubeTaskID.coreId("1e1u1-not-a-uuid") == nil)
        #expect(DanubeImagestores.join("http://h:8080", "images") == "http://h:8080/images")
        #expect(DanubeImagestores.join("http://h/api/", "images") == "http://h/api/images")
        #expect(DanubeImagestores.join("http://h/api", "images/x") == "http://h/images/x")
    }

    @Test func imagesAndManifestsFromTheCore() throws {
        var image = Image(id: ImageID.generate(), name: "web", status: .deactivated, visibility: .public, owner: "p1",
                          diskFormat: "raw", size: 3 * (1 << 20) + 1, createdAt: 1_700_000_000, updatedAt: 1_700_000_000)
        let shown = DanubeImage.render(image, extended: true, defaultDC: "main")
        #expect(shown["access"] == .int(4) && shown["status"] == .int(1) && shown["size"] == .int(4) && shown["dc_bound"] == .bool(false))
        #expect(shown["alias"] == .string("web") && shown["owner"] == .string("p1") && shown["created"] == .string("2023-11-14T22:13:20Z"))
        #expect(shown["dcs"] == .array([.string("main")]))
        let keys = shown.objectMembers.map(\.0)
        #expect(keys.first == "dc_bound" && keys.last == "dcs")
        image.status = .importing
        #expect(DanubeImage.status(image) == 2 && DanubeImage.access(image) == 1)
        image.status = .active
        image.extensions["danube"] = .object([("alias", .string("web-alias")), ("version", .string("2.0")), ("ostype", .int(6)),
                                              ("manifest", .object([("files", .array([.object([("sha1", .string("ab")), ("compression", .string("gzip"))])])),
                                                                   ("homepage", .string("https://x"))]))])
        let m = DanubeImage.manifest(image)
        #expect(m["uuid"] == .string(image.id) && m["name"] == .string("web-alias") && m["version"] == .string("2.0"))
        #expect(m["type"] == .string("lx-dataset") && m["os"] == .string("linux") && m["public"] == .bool(true) && m["state"] == .string("active"))
        #expect(m["homepage"] == .string("https://x") && m["image_size"] == nil)
        #expect(m["files"] == .array([.object([("sha1", .string("ab")), ("size", .int(3 * (1 << 20) + 1)), ("compression", .string("gzip"))])]))
    }
}

/// A fetcher that serves one canned body once `release()` is called (a test double for the repository
/// refresh); `started()` tells the test that a fetch is waiting for it.
final class GatedFetcher: RemoteFetcher, Sendable {
    let body: [UInt8]
    private let gate = AsyncStream<Void>.makeStream()
    private let requested = Mutex<[String]>([])
    var urls: [String] { requested.withLock { $0 } }
    init(_ body: String) { self.body = Array(body.utf8) }
    func release() { gate.continuation.yield(); gate.continuation.finish() }

    /// Whether a fetch began within `timeout` (polled).
    func started(within timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while urls.isEmpty {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    func vet(_ url: String, asAdmin: Bool) async throws {}
    func fetch(_ url: String, asAdmin: Bool, maxBytes: Int64, announce: (Int64?) async throws -> Void,
               into sink: (ByteBuffer) async throws -> Void) async throws {
        requested.withLock { $0.append(url) }
        for await _ in gate.stream { break }
        try await sink(ByteBuffer(bytes: body))
    }
}

@Suite struct DanubeImagestoreTests {
    @Test func aRefreshInProgressLocksTheRepositoryAndTheListIsNewestFirst() async throws {
        let a = ImageID.generate(), b = ImageID.generate()
        let fetcher = GatedFetcher("""
            [{"uuid": "\(a)", "name": "old", "published_at": "2020-01-01T00:00:00Z"}, {"uuid": "not-a-uuid"},
             {"uuid": "\(b)", "name": "new", "published_at": "2024-01-01T00:00:00Z", "files": [{"size": 5}]}]
            """)
        let stores = DanubeImagestores([(name: "repo", url: "http://repo.example/api")], fetcher: fetcher)
        let first = Task { try await stores.refresh("repo") }
        defer { fetcher.release() }
        // The refresh is fetching, so it holds the repository's lock.
        try #require(await fetcher.started(), "the refresh never fetched")
        await #expect(throws: DanubeError.locked) { _ = try await stores.refresh("repo") }
        await #expect(throws: DanubeError.locked) { _ = try await stores.refreshAll() }
        fetcher.release()
        let repo = try await first.value
        #expect(repo.error == nil && repo.images.map(\.name) == ["new", "old"] && repo.json["image_count"] == .int(2))
        #expect(fetcher.urls == ["http://repo.example/images"])
        #expect(try await stores.image("repo", uuid: b.uppercased()).json(repo: repo.url)["download_size"] == .int(5))
        await #expect(throws: DanubeError(.notFound, "ImageStore not found")) { _ = try await stores.repository("other") }
    }
}
