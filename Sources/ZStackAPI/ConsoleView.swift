import ImageCore

extension ZStackImageAPI {
    /// The image's inventory as `GET /zstack/v1/images/{uuid}` shows it (for the web console).
    public func imageDocument(_ image: Image) -> String {
        JSONValue.object(ZStackImage.inventory(image, stores: storages, pending: [], uploadURL: nil)).serialized
    }

    public static func imagePath(_ image: Image) -> String { "\(prefix)/images/\(ZStackImage.uuid(image.id))" }
}
