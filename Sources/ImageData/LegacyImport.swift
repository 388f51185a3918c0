import ImageCore

/// Glance's legacy `import` task (`POST /v2/tasks`): create an image from `image_properties` and
/// fill it from `import_from`. It runs as a web-download on the one task engine, so it is leased,
/// survives restarts and passes the URL guard, at the request and at every fetch and redirect.
extension ImageImports {
    public static let legacyTaskType = "import"
    /// The input members Glance shows for an `import` task; the rest of the row's input is ours.
    public static let legacyInputKeys = ["import_from", "import_from_format", "image_properties"]

    /// Validates the task's input, creates its image (queued, owned by the caller's project) and
    /// queues the task. Everything a client can get wrong is a 400 before anything is recorded.
    /// When the fetch fails the image is deleted again, as Glance's flow reverts its image.
    public func startLegacyImport(input: JSONValue, requestId: String?, by p: Principal) async throws -> ImageTask {
        // The request is a task creation; the image it creates fills in the audit line's image.
        AuditTrail.note("task.create", by: p)
        let (uri, properties) = try Self.legacyInput(input)
        // The image's attributes are checked before the URL is resolved, so each mistake gets its own 400.
        _ = try ImageService.newImage(properties, config: data.images.config, by: p, now: Timestamp.now())
        try await vet(uri, by: p)
        let image = try await data.images.createImage(properties, by: p)
        do {
            return try await start(id: image.id, method: "web-download", uri: uri,
                                   requestBody: .object([("method", .object([("name", .string("web-download")), ("uri", .string(uri))]))]),
                                   requestId: requestId, deleteImageOnFailure: true,
                                   taskType: Self.legacyTaskType, extraInput: Self.legacyInputKeys.compactMap { k in input[k].map { (k, $0) } },
                                   by: p)
        } catch {
            _ = try? await data.images.deleteImage(id: image.id, by: p)
            throw error
        }
    }

    /// The source URL and the image's attributes of an `import` task's input (Glance: an empty
    /// `image_properties` means qcow2 in bare).
    static func legacyInput(_ input: JSONValue) throws -> (String, [(String, JSONValue)]) {
        guard case .object = input else { throw ImageError.badRequest("Task 'input' must be a JSON object for an import task.") }
        for key in legacyInputKeys where input[key] == nil {
            throw ImageError.badRequest("Input does not contain '\(key)' field")
        }
        guard case .string(let uri) = input["import_from"] else { throw ImageError.badRequest("'import_from' must be a string.") }
        guard case .string = input["import_from_format"] else { throw ImageError.badRequest("'import_from_format' must be a string.") }
        guard case .object(var properties) = input["image_properties"] else {
            throw ImageError.badRequest("'image_properties' must be a JSON object.")
        }
        if uri.hasPrefix("file:") || uri.hasPrefix("filesystem:") {
            throw ImageError.badRequest("File based imports are not allowed. Please use a non-local source of image data.")
        }
        guard uri.hasPrefix("http://") || uri.hasPrefix("https://") else {
            throw ImageError.badRequest("The given uri is not valid. Please specify a valid uri from the following list of supported uri ['http', 'https']")
        }
        if properties.isEmpty { properties = [("disk_format", .string("qcow2")), ("container_format", .string("bare"))] }
        return (uri, properties)
    }
}
