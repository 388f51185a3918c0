import ImageCore

/// The Swagger 2.0 documents `scalr-ctl` downloads at start (`/api/{user,account,global}.v1beta0.yml`)
/// and builds its commands from: the image routes of each scope, parameters inlined, the Image
/// definition with its `readOnly`, `x-createOnly` and `x-filterable` marks. JSON is valid YAML.
enum ScalrSpec {
    static func document(level: String) -> JSONValue? {
        let (base, prefixParam): (String, String?) = switch level {
        case "global": ("/api/v1beta0/global", nil)
        case "account": ("/api/v1beta0/account", "accountId")
        case "user": ("/api/v1beta0/user", "envId")
        default: ("", nil)
        }
        guard !base.isEmpty else { return nil }
        let lead = prefixParam.map { "/{\($0)}" } ?? ""
        func pathParam(_ name: String, _ description: String, pattern: String? = nil, type: String = "string") -> JSONValue {
            var p: [(String, JSONValue)] = [("name", .string(name)), ("in", .string("path")), ("required", .bool(true)),
                                            ("description", .string(description)), ("type", .string(type))]
            if let pattern { p.append(("pattern", .string(pattern))) }
            return .object(p)
        }
        var scopeParams: [JSONValue] = []
        if prefixParam == "envId" { scopeParams.append(pathParam("envId", "The ID of the Environment.", type: "integer")) }
        if prefixParam == "accountId" { scopeParams.append(pathParam("accountId", "The ID of the Account.", type: "integer")) }
        let imageId = pathParam("imageId", "The ID of the Image.", pattern: "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
        func ref(_ name: String) -> JSONValue { .object([("$ref", .string("#/definitions/\(name)"))]) }
        func response(_ definition: String, _ description: String) -> JSONValue {
            .object([("200", .object([("description", .string(description)), ("schema", ref(definition))]))])
        }
        func query(_ name: String, _ description: String, type: String = "string") -> JSONValue {
            .object([("name", .string(name)), ("in", .string("query")), ("required", .bool(false)), ("description", .string(description)),
                     ("type", .string(type))])
        }
        let body: JSONValue = .object([("name", .string("image")), ("in", .string("body")), ("required", .bool(true)),
                                       ("description", .string("The JSON representation of a Image object.")), ("schema", ref("Image"))])
        let filters = ScalrImage.filterable.map { query($0, "Filter by \($0).") }
        let paths: [(String, JSONValue)] = [
            ("\(lead)/images/", .object([
                ("parameters", .array(scopeParams)),
                ("get", .object([("description", .string("List all Images available in this scope.")),
                                 ("parameters", .array(filters + [query("maxResults", "Page size (1–100).", type: "integer"),
                                                                  query("pageNum", "Page number.", type: "integer")])),
                                 ("responses", response("ImageListResponse", "The JSON representation of a list of Image objects."))])),
                ("post", .object([("description", .string("Register an Image in this scope.")), ("parameters", .array([body])),
                                  ("responses", .object([("201", .object([("description", .string("Created")), ("schema", ref("ImageDetailsResponse"))]))]))])),
            ])),
            ("\(lead)/images/{imageId}/", .object([
                ("parameters", .array(scopeParams + [imageId])),
                ("get", .object([("description", .string("Retrieve detailed information about a given Image.")), ("parameters", .array([])),
                                 ("responses", response("ImageDetailsResponse", "The JSON representation of a Image object."))])),
                ("patch", .object([("description", .string("Change the attributes of an Image (name, deprecated).")), ("parameters", .array([body])),
                                   ("responses", response("ImageDetailsResponse", "The JSON representation of a Image object."))])),
                ("delete", .object([("description", .string("Deregister an Image.")),
                                    ("parameters", .array([query("deleteFromCloud", "Also delete the image from its cloud (not offered by imaged).", type: "boolean")])),
                                    ("responses", response("DeleteSuccessResponse", "Deleted."))])),
            ])),
            ("\(lead)/images/{imageId}/actions/copy/", .object([
                ("parameters", .array(scopeParams + [imageId])),
                ("post", .object([("description", .string("Copy an EC2 image to another region (not offered by imaged).")),
                                  ("parameters", .array([.object([("name", .string("copyImageRequest")), ("in", .string("body")), ("required", .bool(true)),
                                                                  ("description", .string("Target cloud location.")), ("schema", ref("CloudLocation"))])])),
                                  ("responses", response("ImageDetailsResponse", "The new Image."))])),
            ])),
            ("\(lead)/images/{imageId}/actions/replace/", .object([
                ("parameters", .array(scopeParams + [imageId])),
                ("post", .object([("description", .string("Replace the Image in the Roles that use it (not offered by imaged).")),
                                  ("parameters", .array([.object([("name", .string("replaceImageRequest")), ("in", .string("body")), ("required", .bool(true)),
                                                                  ("description", .string("The new image.")), ("schema", ref("ReplaceImageRequest"))])])),
                                  ("responses", response("ImageDetailsResponse", "Replaced."))])),
            ])),
            ("\(lead)/os/", .object([
                ("parameters", .array(scopeParams)),
                ("get", .object([("description", .string("List the Operating Systems available in this scope.")),
                                 ("parameters", .array(ScalrOS.filterable.map { query($0, "Filter by \($0).") }
                                                       + [query("maxResults", "Page size (1–100).", type: "integer"),
                                                          query("pageNum", "Page number.", type: "integer")])),
                                 ("responses", response("OsListResponse", "The JSON representation of a list of Os objects."))])),
            ])),
            ("\(lead)/os/{osId}/", .object([
                ("parameters", .array(scopeParams + [pathParam("osId", "The ID of the OS.", pattern: "[A-Za-z0-9-]+")])),
                ("get", .object([("description", .string("Retrieve detailed information about a given OS.")), ("parameters", .array([])),
                                 ("responses", response("OsDetailsResponse", "The JSON representation of an Os object."))])),
            ])),
        ]
        func prop(_ type: String, readOnly: Bool = false, _ extra: [(String, JSONValue)] = []) -> JSONValue {
            var p: [(String, JSONValue)] = [("type", .string(type))]
            if readOnly { p.append(("readOnly", .bool(true))) }
            return .object(p + extra)
        }
        let image: JSONValue = .object([
            ("type", .string("object")),
            ("required", .array(["name", "cloudPlatform", "cloudImageId", "architecture", "os"].map { .string($0) })),
            ("x-filterable", .array(ScalrImage.filterable.map { .string($0) })),
            ("x-createOnly", .array(["cloudPlatform", "cloudLocation", "cloudImageId", "architecture", "os", "scalrAgentInstalled",
                                     "cloudInitInstalled", "cloudFeatures", "size", "type"].map { .string($0) })),
            ("properties", .object([
                ("id", prop("string", readOnly: true)), ("name", prop("string")), ("cloudPlatform", prop("string", [("enum", .array(ScalrImage.platforms.map { .string($0) }))])),
                ("cloudLocation", prop("string")), ("cloudImageId", prop("string")),
                ("architecture", prop("string", [("enum", .array([.string("i386"), .string("x86_64")]))])),
                ("os", ref("OsForeignKey")), ("scalrAgentInstalled", prop("boolean")), ("cloudInitInstalled", prop("boolean")),
                ("cloudFeatures", ref("ImageCloudFeatures")), ("deprecated", prop("boolean")),
                ("scope", prop("string", readOnly: true)), ("size", prop("integer")), ("type", prop("string", [("enum", .array(ScalrRequests.ec2Types.map { .string($0) }))])),
                ("source", prop("string", readOnly: true)), ("status", prop("string", readOnly: true)), ("statusError", prop("string", readOnly: true)),
                ("added", prop("string", readOnly: true)), ("lastUsed", prop("string", readOnly: true)),
            ])),
        ])
        let envelope: [(String, JSONValue)] = [("meta", .object([("type", .string("object"))])),
                                               ("warnings", .object([("type", .string("array")), ("items", .object([("type", .string("object"))]))]))]
        let definitions: JSONValue = .object([
            ("Image", image),
            ("OsForeignKey", .object([("type", .string("object")), ("properties", .object([("id", prop("string"))]))])),
            ("ImageCloudFeatures", .object([("type", .string("object")), ("required", .array([.string("type")])), ("properties", .object([
                ("type", prop("string", [("enum", .array(ScalrRequests.featureTypes.keys.sorted().map { .string($0) }))])),
                ("virtualization", prop("string", [("enum", .array([.string("hvm"), .string("paravirtual")]))])), ("vCenterHost", prop("string")),
            ]))])),
            ("Os", .object([("type", .string("object")), ("required", .array(["id", "name", "family", "generation", "version"].map { .string($0) })),
                            ("x-filterable", .array(ScalrOS.filterable.map { .string($0) })),
                            ("properties", .object(["id", "name", "family", "generation", "version"].map { ($0, prop("string", readOnly: true)) }))])),
            ("OsListResponse", .object([("type", .string("object")), ("properties", .object(envelope + [
                ("data", .object([("type", .string("array")), ("items", ref("Os"))])), ("pagination", .object([("type", .string("object"))]))]))])),
            ("OsDetailsResponse", .object([("type", .string("object")), ("properties", .object(envelope + [("data", ref("Os"))]))])),
            ("CloudLocation", .object([("type", .string("object")), ("properties", .object([("cloudPlatform", prop("string")), ("cloudLocation", prop("string"))]))])),
            ("ReplaceImageRequest", .object([("type", .string("object")), ("properties", .object([("newImage", .object([("type", .string("object"))])),
                                                                                              ("deprecateOldImage", prop("boolean")),
                                                                                              ("scope", .object([("type", .string("array")), ("items", prop("string"))]))]))])),
            ("ImageListResponse", .object([("type", .string("object")), ("properties", .object(envelope + [
                ("data", .object([("type", .string("array")), ("items", ref("Image"))])), ("pagination", .object([("type", .string("object"))]))]))])),
            ("ImageDetailsResponse", .object([("type", .string("object")), ("properties", .object(envelope + [("data", ref("Image"))]))])),
            ("DeleteSuccessResponse", .object([("type", .string("object")), ("properties", .object(envelope))])),
        ])
        return .object([
            ("swagger", .string("2.0")),
            ("info", .object([("title", .string("imaged — Scalr API (\(level) scope, images)")), ("version", .string("v1beta0"))])),
            ("basePath", .string(base)),
            ("schemes", .array([.string("http"), .string("https")])),
            ("consumes", .array([.string("application/json")])), ("produces", .array([.string("application/json")])),
            ("paths", .object(paths)),
            ("definitions", definitions),
        ])
    }
}
