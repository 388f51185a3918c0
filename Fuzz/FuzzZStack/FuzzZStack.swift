// The ZStack front-end's request decoding: the `q=` query language (and limit/start/sort/fields)
// evaluated on stored images' inventories, AddImage bodies checked as ZStack checks them, image
// action bodies (UpdateImage's parameters applied to a stored image), login bodies, the
// `Authorization: OAuth` header and an access key's `Authorization: ZStack <id>:<signature>` and `Date`.
//
// Input: byte 0 picks the request (0 query, 1 AddImage, 2 action, 3 login, 4 Authorization
// header), byte 1 the caller and the stored images' statuses; the rest is the query string, the
// body or the header.
import FuzzSupport
import Identity
import ImageCore
import NIOCore
import ZStackAPI

/// A store that holds nothing: the backup storages only need ids.
struct NoStore: BlobStore {
    let id: String
    func makeWriter(key: String) async throws -> any BlobWriter { throw CancellationError() }
    func size(key: String) async throws -> Int64? { nil }
    func read(key: String, range: Range<Int64>?, chunkSize: Int, into sink: (ByteBuffer) async throws -> Void) async throws {}
    func delete(key: String) async throws {}
    func keys(prefix: String) async throws -> [String] { [] }
    func removeLeftovers() async throws -> Int { 0 }
}

// Backup storage uuids: md5("imaged-store:default") = 0f2ba9ea…, md5("imaged-store:fast") (see the corpus).
let storages = ZStackBackupStorages(stores: try! BlobStores([NoStore(id: "default"), NoStore(id: "fast")]), started: Fixtures.now)

/// Stored images as ZStack made them (with a `zstack` document) and as another API did (without).
func storedImages(_ choice: UInt8) -> [Image] {
    let document: JSONValue = .object([
        ("description", .string("cirros test")), ("url", .string("http://example.com/cirros.qcow2")),
        ("mediaType", .string("RootVolumeTemplate")), ("guestOsType", .string("Linux")), ("platform", .string("Linux")),
        ("system", .bool(false)), ("virtio", .bool(true)), ("systemTags", .array([.string("bootMode::Legacy")])),
        ("userTags", .array([])),
    ])
    var first = Fixtures.image(choice, extensions: ["zstack": document])
    var second = Fixtures.image(choice >> 3)
    second.id = "99999999-2222-4333-8444-555555555555"
    second.name = "other"
    second.createdAt -= 3600
    first.properties["stores"] = "default,fast"
    return [first, second]
}

func query(_ text: String, _ images: [Image]) throws {
    let q = try ZStackQuery(parameters: ZStackQuery.parameters(text))
    try ZStackMatcher.check(q.conditions)
    if let sort = q.sort { try ZStackMatcher.checkSortable(sort.field) }
    var matched: [(Image, [(String, JSONValue)])] = []
    for image in images {
        let inventory = ZStackImage.inventory(image, stores: storages, pending: ["default"])
        if try q.conditions.allSatisfy({ try ZStackMatcher.matches($0, image, inventory) }) { matched.append((image, inventory)) }
    }
    let answer = ZStackRequests.queryAnswer(q, matched)
    require((try? JSONValue.parse(answer.serialized)) == answer, "the answer does not round-trip")
}

func addImage(_ body: JSONValue, _ caller: Principal) throws {
    guard case .object(let params)? = body["params"] else { return }
    try ZStackFields.checkBooleans(params, ["system", "virtio"])
    let spec = try AddImageSpec(params: params, body: body, storages: storages)
    _ = try ImageService.newImage(spec.coreAttributes, config: ImageServiceConfig(), by: caller, now: Fixtures.now)
}

func action(_ body: JSONValue, _ caller: Principal, _ image: Image) throws {
    let (name, params) = try ZStackRequests.action(body, uuid: "11111111222243338444555555555555")
    guard name == "updateImage" else { return }
    let (changes, document) = try ZStackRequests.updateChanges(params, of: image)
    try ImageService.checkChangeable(changes)
    var updated = image
    try ImageService.applyChanges(changes, to: &updated, config: ImageServiceConfig(), by: caller)
    updated.extensions["zstack"] = JSONValue.merging(updated.extensions["zstack"], document)
    _ = ZStackImage.inventory(updated, stores: storages, pending: [])
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let request = input.choice(5)
    let choice = input.byte()
    let caller = Fixtures.principal(choice >> 4)
    let images = storedImages(choice)
    let payload = input.rest()
    do {
        switch request {
        case 0: try query(String(decoding: payload, as: UTF8.self), images)
        case 1: try addImage(try JSONValue.parse(payload), caller)
        case 2: try action(try JSONValue.parse(payload), caller, images[0])
        case 3: _ = try ZStackRequests.login(try JSONValue.parse(payload))
        default:
            let text = String(decoding: payload, as: UTF8.self)
            _ = try? ZStackSignature.credential(text)
            if let seconds = ZStackSignature.parseDate(text) {
                // A date that parses is one the signature check can compare: never out of range.
                precondition(abs(seconds) < 1 << 40, "date \(text) parsed to \(seconds)")
            }
            _ = try ZStackRequests.sessionToken(text)
        }
    } catch {
        _ = "\(error)"
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzZStack", fuzzOne) }
}
