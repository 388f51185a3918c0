// The OpenStack front-end's request decoding: `POST /v2/images` bodies through the service's
// validation, PATCH bodies (both JSON-patch dialects) parsed and applied to a stored image,
// `GET /v2/images` query strings through the list query down to the SQL of both catalogs, and the
// members calls' bodies.
//
// Input: byte 0 picks the request (0 create, 1 patch v2.1, 2 patch draft-04, 3 list, 4 member),
// byte 1 the caller, byte 2 the stored image's status; the rest is the body or the query string.
import CatalogSQL
import FuzzSupport
import ImageCore
import OpenStackAPI

let config = ImageServiceConfig()

func create(_ payload: [UInt8], _ caller: Principal) throws {
    let attributes = try OpenStackRequests.createAttributes(try OpenStackRequests.json(payload))
    let image = try ImageService.newImage(attributes, config: config, by: caller, now: Fixtures.now)
    require(ImageID.isValid(image.id) && image.id == image.id.lowercased(), "created id \(image.id)")
    require(image.status == .queued, "created in status \(image.status)")
    require(image.tags.count <= config.tagQuota && image.properties.count <= config.propertyQuota + 16, "quotas not applied")
    require((image.name?.count ?? 0) <= ImageAttributes.maxNameLength, "name longer than allowed")
    require(image.diskFormat.map(config.diskFormats.contains) ?? true, "disk_format \(image.diskFormat ?? "")")
    require(image.containerFormat.map(config.containerFormats.contains) ?? true, "container_format \(image.containerFormat ?? "")")
}

func patch(_ payload: [UInt8], _ caller: Principal, _ stored: Image, draft04: Bool) throws {
    guard let body = try OpenStackRequests.json(payload) else { return }
    let changes = try JSONPatch.changes(from: body, draft04: draft04)
    try ImageService.checkChangeable(changes)
    var image = stored
    try ImageService.applyChanges(changes, to: &image, config: config, by: caller)
    require(image.id == stored.id && image.status == stored.status, "a patch changed the id or the status")
    require(image.properties.values.allSatisfy { $0.utf8.count <= ImageAttributes.maxPropertyValueBytes }, "oversized property")
    require((0 ... Int64(Int32.max)).contains(image.minDisk) && (0 ... Int64(Int32.max)).contains(image.minRam), "min_disk/min_ram")
    require(image.tags == Array(Set(image.tags)).sorted(), "tags not normalized")
}

func list(_ payload: [UInt8], _ caller: Principal, _ marker: Image) throws {
    let request = try ListParameters.parse(String(decoding: payload, as: UTF8.self))
    var query = try ImageService.listQuery(request, config: config, by: caller)
    require(query.limit >= 0 && query.limit <= config.listMaxLimit, "limit \(query.limit)")
    // A total order: the sort ends at the unique id (a list sorted by id stops there, needing no
    // created_at); one without id has created_at and id appended.
    require(query.sort.last?.key == .id && query.sort.dropLast().allSatisfy { $0.key != .id }, "the sort does not end at the id")
    if !request.sort.contains(where: { $0.key == .id }) {
        require(query.sort.contains { $0.key == .createdAt }, "no created_at tie-breaker")
    }
    if request.marker != nil { query.marker = marker }
    for dialect in [SQLDialect.sqlite, .postgres] {
        for statement in [ListSQL.build(query, dialect), ListSQL.buildCount(query, dialect)] {
            let placeholders = dialect == .sqlite
                ? statement.sql.filter { $0 == "?" }.count
                : Set(statement.sql.split(separator: "$").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }).count
            require(placeholders == statement.values.count,
                    "\(placeholders) placeholders for \(statement.values.count) values: \(statement.sql)")
        }
    }
}

func fuzzOne(_ data: [UInt8]) {
    var input = FuzzInput(data)
    let request = input.choice(5)
    let caller = Fixtures.principal(input.byte())
    let stored = Fixtures.image(input.byte())
    let payload = input.rest()
    do {
        switch request {
        case 0: try create(payload, caller)
        case 1: try patch(payload, caller, stored, draft04: false)
        case 2: try patch(payload, caller, stored, draft04: true)
        case 3: try list(payload, caller, stored)
        default:
            let body = try OpenStackRequests.json(payload)
            _ = try? OpenStackRequests.stringField(body, "member")
            _ = try OpenStackRequests.stringField(body, "status")
        }
    } catch {
        _ = "\(error)"
    }
}

@main
enum Main {
    static func main() { fuzzMain("FuzzOpenStack", fuzzOne) }
}
