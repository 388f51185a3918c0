import ImageCore

extension OpenStackImageAPI {
    /// The image as `GET /v2/images/{id}` shows it (for the web console's side-by-side view).
    public static func imageDocument(_ image: Image) -> String {
        var w = JSONWriter()
        Views.image(image, into: &w)
        return w.text
    }

    public static func imagePath(_ image: Image) -> String { "/v2/images/\(image.id)" }
}
