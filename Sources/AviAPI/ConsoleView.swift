import ImageCore

extension AviImageAPI {
    /// The image as `GET /api/image/{uuid}` shows it in the current data model (for the web console).
    public func imageDocument(_ image: Image) -> String {
        AviImage.render(image, base: options.publicEndpoint ?? "", withName: false, version: .current).serialized
    }

    public static func imagePath(_ image: Image) -> String { AviImage.storedRef(image.id) }
}
