import Foundation
import ImageCore

/// How the ZStack handlers decode requests and shape query answers: pure functions (the fuzzer
/// calls them too).
package enum ZStackRequests {
    /// The session id of `Authorization: OAuth <id>`; a missing or other header is a plain 400.
    package static func sessionToken(_ header: String?) throws -> String {
        guard let header else { throw ZStackHTTPError(.badRequest, "missing header 'Authorization'") }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0] == "OAuth" else { throw ZStackHTTPError(.badRequest, "Authorization type must be 'OAuth'") }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// `PUT /accounts/login`: `{"logInByAccount": {"accountName", "password"}}` (the password as its SHA-512 hex).
    package static func login(_ body: JSONValue) throws -> (name: String, password: String) {
        guard case .object(let params)? = body["logInByAccount"] else {
            throw ZStackHTTPError(.badRequest, "the body doesn't contain action mapping to the URL[/v1/accounts/login]")
        }
        let message = "org.zstack.header.identity.APILogInByAccountMsg"
        guard let name = params.first(where: { $0.0 == "accountName" })?.1.stringValue, !name.isEmpty else {
            throw ZStackError.invalidArgument("field[accountName] of message[\(message)] is mandatory, can not be null")
        }
        guard let password = params.first(where: { $0.0 == "password" })?.1.stringValue, !password.isEmpty else {
            throw ZStackError.invalidArgument("field[password] of message[\(message)] is mandatory, can not be null")
        }
        return (name, password)
    }

    static var actions: [String] { ["updateImage", "changeImageState", "expungeImage", "recoverImage", "syncImageSize", "setImageBootMode",
                                    "calculateImageHash", "setImageQga"] }
    static var unsupportedActions: [String] { ["exportImageFromBackupStorage"] }

    /// `PUT /images/{uuid}/actions`: the action named in the body and its parameters.
    package static func action(_ body: JSONValue, uuid: String) throws -> (name: String, params: [(String, JSONValue)]) {
        guard case .object(let members) = body,
              let (name, value) = members.first(where: { actions.contains($0.0) || unsupportedActions.contains($0.0) }) else {
            throw ZStackHTTPError(.badRequest, "the body doesn't contain action mapping to the URL[/v1/images/\(uuid)/actions]")
        }
        guard case .object(let params) = value else {
            throw ZStackHTTPError(.badRequest, "the value of '\(name)' must be an object")
        }
        if name == "updateImage" { try ZStackFields.checkBooleans(params, ["system", "virtio"]) }
        if name == "setImageQga" { try ZStackFields.checkBooleans(params, ["enable"]) }
        return (name, params)
    }

    /// UpdateImage's parameters for `image`: the core changes and the fields of the zstack document.
    package static func updateChanges(_ params: [(String, JSONValue)], of image: Image) throws
        -> (changes: [ImageChange], document: [(String, JSONValue)]) {
        let message = "org.zstack.header.image.APIUpdateImageMsg"
        var changes: [ImageChange] = []
        var document: [(String, JSONValue)] = []
        var mediaType = ZStackImage.string(image, "mediaType")
        var system = ZStackImage.bool(image, "system") ?? false
        for (key, value) in params {
            if case .null = value { continue }
            switch key {
            case "name":
                let s = try ZStackFields.string(value, key, message, max: 255)
                if !s.isEmpty { changes.append(ImageChange(.replace, "name", .string(s))) }
            case "description": document.append((key, .string(try ZStackFields.string(value, key, message, max: 2048))))
            case "guestOsType":
                let s = try ZStackFields.string(value, key, message, max: 255)
                if !s.isEmpty { document.append((key, .string(s))) }
            case "mediaType":
                let s = try ZStackFields.string(value, key, message)
                if !s.isEmpty { mediaType = try ZStackFields.oneOf(s, ZStackImage.mediaTypes, key, message); document.append((key, .string(s))) }
            case "format":
                let s = try ZStackFields.string(value, key, message)
                if !s.isEmpty { changes.append(ImageChange(.replace, "disk_format", .string(try ZStackFields.oneOf(s, ["raw", "qcow2", "iso"], key, message)))) }
            case "platform":
                let s = try ZStackFields.string(value, key, message)
                if !s.isEmpty { document.append((key, .string(try ZStackFields.oneOf(s, ZStackImage.platforms, key, message)))) }
            case "architecture":
                let s = try ZStackFields.string(value, key, message)
                if !s.isEmpty { changes.append(ImageChange(.add(strict: false), "architecture", .string(try ZStackFields.oneOf(s, ZStackImage.architectures, key, message, max: 32)))) }
            case "system": system = ZStackFields.boolean(value); document.append((key, .bool(system)))
            case "virtio": document.append((key, .bool(ZStackFields.boolean(value))))
            default: break  // uuid, imageUuid, systemTags… are not image fields
            }
        }
        if system && mediaType == "ISO" { throw ZStackError.invalidArgument("ISO cannot be used as system image") }
        return (changes, document)
    }

    /// QueryImage's answer for the inventories that matched: sorted, counted, paged, fields chosen.
    package static func queryAnswer(_ q: ZStackQuery, _ matched: [(Image, [(String, JSONValue)])]) -> JSONValue {
        var items = matched
        ZStackMatcher.sort(&items, by: q.sort?.field ?? "createDate", descending: q.sort?.descending ?? false)
        if q.count { return .object([("total", .int(Int64(items.count)))]) }
        let page = items.dropFirst(q.start).prefix(q.limit)
        var schema: [(String, JSONValue)] = []
        let inventories: [JSONValue] = page.enumerated().map { i, item in
            schema.append(("inventories[\(i)]", .string(ZStackImage.inventoryClass)))
            let refs = item.1.first { $0.0 == "backupStorageRefs" }?.1.arrayItems ?? []
            for j in refs.indices { schema.append(("inventories[\(i)].backupStorageRefs[\(j)]", .string(ZStackImage.refClass))) }
            guard let wanted = q.fields else { return .object(item.1) }
            return .object(item.1.filter { wanted.contains($0.0) })
        }
        var out: [(String, JSONValue)] = [("inventories", .array(inventories))]
        if q.replyWithCount { out.append(("total", .int(Int64(items.count)))) }
        out.append(("schema", .object(schema)))
        return .object(out)
    }
}
