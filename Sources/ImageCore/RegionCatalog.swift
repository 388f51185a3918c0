/// Where another region's image service is, as the caller's identity service lists it (Glance's
/// `get_glance_endpoint`: the `image` service's endpoint in that region for that interface).
public protocol RegionCatalog: Sendable {
    /// The endpoint URL, or nil when the caller's catalog has none for that region and interface.
    func imageEndpoint(token: String, region: String, interface: String) async throws -> String?
}
