/// Metadata storage. Implementations: SQLite (embedded) and PostgreSQL (scale-out).
/// The catalog stores and queries; it decides no policy (the service does).
public protocol Catalog: TaskCatalog {
    /// Throws `ImageError.conflict` when the id exists, deleted images included (ids are never reused).
    func insertImage(_ image: Image) async throws
    /// The row whatever its status, deleted included; nil when the id was never used.
    func image(id: String) async throws -> Image?
    /// Applies `change` to the stored image inside one write transaction (no lost updates between
    /// concurrent writers) and returns the result; nil when the id was never used. When `change`
    /// throws, nothing is written. `version` is bumped when the image changed.
    func updateImage(id: String, _ change: @escaping @Sendable (inout Image) throws -> Void) async throws -> Image?
    func listImages(_ query: ImageListQuery) async throws -> [Image]
    /// Images in any of `statuses`, whatever their owner (for the start-up scrub).
    func images(withStatus statuses: [ImageStatus]) async throws -> [Image]

    func members(imageId: String) async throws -> [ImageMember]
    func member(imageId: String, memberId: String) async throws -> ImageMember?
    /// Throws `ImageError.conflict` when the member exists.
    func insertMember(_ member: ImageMember) async throws
    func updateMember(_ member: ImageMember) async throws
    func deleteMember(imageId: String, memberId: String) async throws -> Bool
}
