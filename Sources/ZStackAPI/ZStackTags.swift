import FrontEndSupport
import Foundation
import HTTPTypes
import Hummingbird
import ImageCore

/// User tags on images (`CreateUserTag`, `QueryUserTag`, `DeleteTag`, AddImage's `userTags` and
/// `tagUuids`). A tag is a record in its image's `zstack` document under `tagRecords`
/// (`uuid`, `tag`, `type`, `createDate`), so it goes where the image goes and every node sees it;
/// queries scan the images the caller may see.
package enum ZStackTags {
    static let key = "tagRecords"
    static let inventoryClass = "org.zstack.header.tag.UserTagInventory"
    static let resourceType = "ImageVO"
    static let maxLength = 2048

    /// A new record for `tag`.
    static func record(_ tag: String, now: Int64 = Timestamp.now()) -> JSONValue {
        .object([("uuid", .string(ZStackImage.uuid(ImageID.generate()))), ("tag", .string(tag)), ("type", .string("User")),
                 ("createDate", .int(now))])
    }

    static func records(_ image: Image) -> [JSONValue] { image.extensions[ZStackImage.vendor]?[key]?.arrayItems ?? [] }

    /// The tags' texts (what `__userTag__` matches).
    static func texts(_ image: Image) -> [String] { records(image).compactMap { $0["tag"]?.stringValue } }

    /// `UserTagInventory` of one record of `image`.
    static func inventory(_ record: JSONValue, of image: Image) -> [(String, JSONValue)] {
        let created = record["createDate"]?.int64Value ?? image.createdAt
        return [
            ("uuid", record["uuid"] ?? .string("")), ("resourceUuid", .string(ZStackImage.uuid(image.id))),
            ("resourceType", .string(resourceType)), ("inherent", .bool(false)), ("type", .string("User")),
            ("tag", record["tag"] ?? .string("")), ("createDate", .string(GsonDate.format(created))),
            ("lastOpDate", .string(GsonDate.format(created))),
        ]
    }

    static let fields: [String: ZStackMatcher.Kind] = [
        "uuid": .text, "resourceUuid": .text, "resourceType": .text, "inherent": .boolean, "type": .text, "tag": .text,
        "createDate": .date, "lastOpDate": .date,
    ]

    static func matches(_ c: ZStackQuery.Condition, _ inv: [(String, JSONValue)]) throws -> Bool {
        guard let kind = fields[c.field] else {
            throw ZStackError.invalidArgument("condition name[\(c.field)] is invalid, no such field on inventory class[\(inventoryClass)]")
        }
        var value = inv.first { $0.0 == c.field }?.1
        if kind == .date, let text = value?.stringValue, let seconds = GsonDate.parse(text) { value = .int(seconds) }
        switch c.op {
        case .isNull: return value == nil
        case .notNull: return value != nil
        case .notEqual: return try !(value.map { try ZStackMatcher.compare($0, .equal, c.value, kind, c.field) } ?? false)
        case .notIn: return try !(value.map { try ZStackMatcher.compare($0, .inList, c.value, kind, c.field) } ?? false)
        case .notLike: return try !(value.map { try ZStackMatcher.compare($0, .like, c.value, kind, c.field) } ?? false)
        default: return try value.map { try ZStackMatcher.compare($0, c.op, c.value, kind, c.field) } ?? false
        }
    }

    /// The tag text of CreateUserTag / AddImage's userTags: a non-empty string of at most 2048 characters.
    static func checkText(_ tag: String, field: String, message: String) throws {
        guard !tag.isEmpty else { throw ZStackError.invalidArgument("field[\(field)] of message[\(message)] is mandatory, can not be null") }
        guard tag.count <= maxLength else {
            throw ZStackError.invalidArgument("field[\(field)] of message[\(message)] exceeds max length of string. expected was <= \(maxLength), actual was \(tag.count)")
        }
    }
}

extension ZStackImageAPI {
    /// Every user tag on images the caller may see, with its image (optionally only one image's).
    func visibleTags(_ p: Principal, imageUuid: String? = nil) async throws -> [(Image, JSONValue)] {
        let conditions: [ZStackQuery.Condition] = imageUuid.map { [.init(field: "uuid", op: .equal, value: $0)] } ?? []
        var out: [(Image, JSONValue)] = []
        for image in try await candidates(conditions, p) {
            for record in ZStackTags.records(image) { out.append((image, record)) }
        }
        return out
    }

    /// AddImage's `tagUuids`: the caller's existing user tags, attached to the new image as tags of
    /// the same text. An unknown uuid fails the AddImage before anything is made (SYS.1003).
    func tagsNamed(_ uuids: [JSONValue], _ p: Principal) async throws -> [JSONValue] {
        guard !uuids.isEmpty else { return [] }
        let known = try await visibleTags(p)
        var out: [JSONValue] = []
        for item in uuids {
            guard let uuid = item.stringValue, let (_, record) = known.first(where: { $0.1["uuid"]?.stringValue == uuid.lowercased() }),
                  let text = record["tag"]?.stringValue else {
                throw ZStackError.notFound("invalid field[tagUuids], resource[uuid:\(ZStackMatcher.text(item)), type:UserTagVO] not found")
            }
            if !out.contains(where: { $0["tag"]?.stringValue == text }) { out.append(ZStackTags.record(text)) }
        }
        return out
    }

    /// `POST /user-tags` `{"params": {"resourceType": "ImageVO", "resourceUuid", "tag"}}` → `{"inventory": UserTagInventory}`.
    func createUserTag(_ request: Request) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let body = try await Self.body(request)
        guard case .object(let params)? = body["params"] else {
            throw ZStackHTTPError(.badRequest, "the body doesn't contain action mapping to the URL[/v1/user-tags]")
        }
        let p = try await jobCaller(request)
        let message = "org.zstack.header.tag.APICreateUserTagMsg"
        func field(_ key: String) throws -> String {
            guard let v = params.first(where: { $0.0 == key })?.1, !(v == .null) else { return "" }
            return try ZStackFields.string(v, key, message)
        }
        let resourceUuid = try? field("resourceUuid")
        return try await runJob(job, request, p, api: "CreateUserTag", imageId: resourceUuid.flatMap(ZStackImage.coreId)) {
            let type = try field("resourceType"), uuid = try field("resourceUuid"), tag = try field("tag")
            guard !type.isEmpty else { throw ZStackError.invalidArgument("field[resourceType] of message[\(message)] is mandatory, can not be null") }
            guard !uuid.isEmpty else { throw ZStackError.invalidArgument("field[resourceUuid] of message[\(message)] is mandatory, can not be null") }
            try ZStackTags.checkText(tag, field: "tag", message: message)
            guard type == ZStackTags.resourceType else {
                throw ZStackError.invalidArgument("resourceType[\(type)]: imaged keeps tags on images only (resourceType ImageVO)")
            }
            guard let coreId = ZStackImage.coreId(uuid) else { throw ZStackError.notFound("invalid value[\(uuid)] of field [resourceUuid]") }
            do { _ = try await service.visibleImage(id: coreId, by: p) } catch let e as ImageError where e.kind == .notFound {
                throw ZStackError.notFound("resource[uuid:\(uuid), type:ImageVO] not found")
            }
            let record = ZStackTags.record(tag)
            let image = try await service.updateImage(id: coreId, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                let existing = doc?[ZStackTags.key]?.arrayItems ?? []
                if existing.contains(where: { $0["tag"]?.stringValue == tag }) {
                    throw ZStackError.failed("Duplicate user tag[\(tag)] on resource[uuid:\(ZStackImage.uuid(coreId)), type:ImageVO]")
                }
                return JSONValue.merging(doc, [(ZStackTags.key, .array(existing + [record]))])
            }], by: p)
            return .object([("inventory", .object(ZStackTags.inventory(record, of: image)))])
        }
    }

    /// `GET /user-tags[/{uuid}]` with ZStack's query parameters → `{"inventories": [...]}`.
    func queryUserTags(_ request: Request, uuid: String?) async throws -> Response {
        let p = try await caller(request)
        let q = try ZStackQuery.forRequest(query: request.uri.query, uuid: uuid)
        for c in q.conditions where ZStackTags.fields[c.field] == nil {
            throw ZStackError.invalidArgument("condition name[\(c.field)] is invalid, no such field on inventory class[\(ZStackTags.inventoryClass)]")
        }
        if let sort = q.sort, ZStackTags.fields[sort.field] == nil {
            throw ZStackError.invalidArgument("sort field[\(sort.field)] is not a field of \(ZStackTags.inventoryClass)")
        }
        let byImage = q.conditions.first { $0.field == "resourceUuid" && $0.op == .equal }?.value
        var items: [[(String, JSONValue)]] = []
        for (image, record) in try await visibleTags(p, imageUuid: byImage) {
            let inv = ZStackTags.inventory(record, of: image)
            if try q.conditions.allSatisfy({ try ZStackTags.matches($0, inv) }) { items.append(inv) }
        }
        let field = q.sort?.field ?? "createDate", descending = q.sort?.descending ?? false
        func key(_ inv: [(String, JSONValue)]) -> String {
            let v = inv.first { $0.0 == field }?.1
            if field == "createDate" || field == "lastOpDate", let t = v?.stringValue, let s = GsonDate.parse(t) { return String(format: "%020lld", s) }
            return v.map(ZStackMatcher.text) ?? ""
        }
        items.sort { a, b in
            let (ka, kb) = (key(a), key(b))
            if ka == kb { return ZStackMatcher.text(a[0].1) < ZStackMatcher.text(b[0].1) }
            return descending ? ka > kb : ka < kb
        }
        if q.count { return Self.json(.object([("total", .int(Int64(items.count)))])) }
        let page = items.dropFirst(q.start).prefix(q.limit).map { inv -> JSONValue in
            guard let wanted = q.fields else { return .object(inv) }
            return .object(inv.filter { wanted.contains($0.0) })
        }
        var out: [(String, JSONValue)] = [("inventories", .array(Array(page)))]
        if q.replyWithCount { out.append(("total", .int(Int64(items.count)))) }
        return Self.json(.object(out))
    }

    /// `DELETE /tags/{uuid}?deleteMode=`: removes the tag from its image; an unknown tag is a success
    /// (ZStack's successIfResourceNotExisting), a tag on an image the caller may not change is ID.1002.
    func deleteTag(_ request: Request, uuid: String) async throws -> Response {
        _ = try Self.sessionToken(request)
        let job = try await newJob(request)
        let p = try await jobCaller(request)
        let parameters = ZStackQuery.parameters(request.uri.query)
        return try await runJob(job, request, p, api: "DeleteTag", imageId: nil) {
            let mode = parameters.first { $0.0 == "deleteMode" }?.1 ?? "Permissive"
            _ = try ZStackFields.oneOf(mode, ["Permissive", "Enforcing"], "deleteMode", "org.zstack.header.tag.APIDeleteTagMsg")
            let wanted = uuid.lowercased()
            guard let (image, _) = try await visibleTags(p).first(where: { $0.1["uuid"]?.stringValue == wanted }) else { return .object([]) }
            _ = try await service.updateImage(id: image.id, changes: [], vendorChanges: [ZStackImage.vendor: { doc in
                let kept = (doc?[ZStackTags.key]?.arrayItems ?? []).filter { $0["uuid"]?.stringValue != wanted }
                return JSONValue.merging(doc, [(ZStackTags.key, .array(kept))])
            }], by: p)
            return .object([])
        }
    }
}
