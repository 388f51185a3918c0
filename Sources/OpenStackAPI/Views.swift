import HTTPTypes
import Hummingbird
import ImageCore
import ImageData

/// JSON shapes of the Image API v2, written straight into bytes.
enum Views {
    /// `extra` writes more members (`direct_url`, `locations`) before the closing brace.
    static func image(_ i: Image, into w: inout JSONWriter, extra: (inout JSONWriter) -> Void = { _ in }) {
        w.raw("{\"id\":"); w.string(i.id)
        w.raw(",\"name\":"); w.optionalString(i.name)
        w.raw(",\"status\":"); w.string(i.status.rawValue)
        w.raw(",\"visibility\":"); w.string(i.visibility.rawValue)
        w.raw(",\"protected\":"); w.bool(i.isProtected)
        w.raw(",\"os_hidden\":"); w.bool(i.osHidden)
        w.raw(",\"owner\":"); w.optionalString(i.owner)
        w.raw(",\"container_format\":"); w.optionalString(i.containerFormat)
        w.raw(",\"disk_format\":"); w.optionalString(i.diskFormat)
        w.raw(",\"size\":"); w.optionalInt(i.size)
        w.raw(",\"virtual_size\":"); w.optionalInt(i.virtualSize)
        w.raw(",\"min_disk\":"); w.int(i.minDisk)
        w.raw(",\"min_ram\":"); w.int(i.minRam)
        w.raw(",\"checksum\":"); w.optionalString(i.checksum)
        w.raw(",\"os_hash_algo\":"); w.optionalString(i.osHashAlgo)
        w.raw(",\"os_hash_value\":"); w.optionalString(i.osHashValue)
        w.raw(",\"created_at\":"); w.timestamp(i.createdAt)
        w.raw(",\"updated_at\":"); w.timestamp(i.updatedAt)
        w.raw(",\"tags\":[")
        for (k, t) in i.tags.enumerated() {
            if k > 0 { w.raw(",") }
            w.string(t)
        }
        w.raw("],\"self\":\"/v2/images/"); w.bytes.append(contentsOf: i.id.utf8)
        w.raw("\",\"file\":\"/v2/images/"); w.bytes.append(contentsOf: i.id.utf8)
        w.raw("/file\",\"schema\":\"/v2/schemas/image\"")
        for key in i.properties.keys.sorted() {
            w.raw(","); w.key(key)
            // Glance lists `stores` sorted (Tempest's waiters compare it with the sorted store ids).
            w.string(key == ImageService.storesKey ? ImageService.storeIds(i).sorted().joined(separator: ",") : i.properties[key]!)
        }
        extra(&w)
        w.raw("}")
    }

    static func member(_ m: ImageMember, into w: inout JSONWriter) {
        w.raw("{\"member_id\":"); w.string(m.memberId)
        w.raw(",\"image_id\":"); w.string(m.imageId)
        w.raw(",\"status\":"); w.string(m.status.rawValue)
        w.raw(",\"created_at\":"); w.timestamp(m.createdAt)
        w.raw(",\"updated_at\":"); w.timestamp(m.updatedAt)
        w.raw(",\"schema\":\"/v2/schemas/member\"}")
    }

    /// A task as `/v2/tasks/{id}` shows it; `stub` omits input, result and message (lists);
    /// `rawDatabaseShape` is the `/v2/images/{id}/tasks` form (timestamps without `Z`, deleted fields).
    static func task(_ t: ImageTask, into w: inout JSONWriter, stub: Bool = false, rawDatabaseShape: Bool = false) {
        func time(_ seconds: Int64?) {
            guard let seconds else { w.raw("null"); return }
            if rawDatabaseShape {
                w.string(Timestamp.formatNaive(seconds))
            } else {
                w.timestamp(seconds)
            }
        }
        w.raw("{\"id\":"); w.string(t.id)
        w.raw(",\"type\":"); w.string(t.type)
        w.raw(",\"status\":"); w.string(t.status.rawValue)
        w.raw(",\"owner\":"); w.optionalString(t.owner)
        // Glance's API views leave out the unset members (its schema types them as strings); stubs never show them.
        for (key, value) in [("image_id", t.imageId), ("request_id", t.requestId), ("user_id", t.userId)] where !stub {
            guard rawDatabaseShape || value != nil else { continue }
            w.raw(","); w.key(key); w.optionalString(value)
        }
        if !stub {
            w.raw(",\"input\":"); w.value(taskInput(t))
            w.raw(",\"result\":")
            if let r = t.result, let v = try? JSONValue.parse(r) { w.value(v) } else { w.raw("null") }
            w.raw(",\"message\":"); w.string(t.message)
        }
        w.raw(",\"created_at\":"); time(t.createdAt)
        w.raw(",\"updated_at\":"); time(t.updatedAt)
        if rawDatabaseShape || t.expiresAt != nil { w.raw(",\"expires_at\":"); time(t.expiresAt) }
        if rawDatabaseShape {
            w.raw(",\"deleted_at\":null,\"deleted\":false")
        } else {
            w.raw(",\"self\":\"/v2/tasks/"); w.bytes.append(contentsOf: t.id.utf8)
            w.raw("\",\"schema\":\"/v2/schemas/task\"")
        }
        w.raw("}")
    }

    /// The input as the client sent it: a legacy `import` task's row also holds the web-download it runs as.
    static func taskInput(_ t: ImageTask) -> JSONValue {
        let input = (try? JSONValue.parse(t.input)) ?? .object([])
        guard t.type == ImageImports.legacyTaskType, case .object(let members) = input else { return input }
        return .object(members.filter { ImageImports.legacyInputKeys.contains($0.0) })
    }

    static func json(_ w: JSONWriter, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
