import ImageCore

extension DanubeImageAPI {
    /// The image as `GET /api/image/{name}/?extended` shows it (for the web console).
    public func imageDocument(_ image: Image) -> String {
        DanubeImage.render(image, extended: true, defaultDC: defaultDC).serialized
    }

    public func imagePath(_ image: Image) -> String { "\(options.prefix)/image/\(image.name ?? image.id)/" }
}
