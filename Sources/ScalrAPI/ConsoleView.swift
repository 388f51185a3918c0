import ImageCore

extension ScalrImageAPI {
    /// The image as `GET /api/v1beta0/user/{envId}/images/{imageId}/` shows it (for the web console).
    public static func imageDocument(_ image: Image) -> String { ScalrImage.render(image).serialized }

    public static func imagePath(_ image: Image) -> String { "/api/v1beta0/user/{envId}/images/\(image.id)/" }
}
