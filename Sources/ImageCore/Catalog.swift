/// Metadata storage. Implementations: SQLite (embedded) and PostgreSQL (scale-out).
/// The catalog stores and queries; it decides no policy (the service does).
public protocol Catalog: Sendable {
    /// Throws `ImageError.conflict` when the id exists, deleted images included (ids are never reused).
    func insertImage(_ image: Image) async throws
    /// The row whatever its status, deleted included; nil when the id was never used.
    func image(id: String) async throws -> Image?
    /// Writes `image` if the stored version still equals `image.version`; the stored version
    /// becomes `image.version + 1`. Returns false (and writes nothing) when someone else won.
    func updateImage(_ image: Image) async throws -> Bool
    func listImages(_ query: ImageListQuery) async throws -> [Image]

    func members(imageId: String) async throws -> [ImageMember]
    func member(imageId: String, memberId: String) async throws -> ImageMember?
    /// Throws `ImageError.conflict` when the member exists.
    func insertMember(_ member: ImageMember) async throws
    func updateMember(_ member: ImageMember) async throws
    func deleteMember(imageId: String, memberId: String) async throws -> Bool
}
