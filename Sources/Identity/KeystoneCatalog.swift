import AsyncHTTPClient
import ImageCore

/// glance-download's endpoint lookup: the caller's token validated again *with* its service
/// catalog (authentication itself asks with `nocatalog`, which is cheaper and cached).
extension KeystoneAuthenticator: RegionCatalog {
    public func imageEndpoint(token: String, region: String, interface: String) async throws -> String? {
        let service = try await serviceToken()
        var request = HTTPClientRequest(url: config.baseURL + "/v3/auth/tokens")
        request.method = .GET
        request.headers.add(name: "X-Auth-Token", value: service.token)
        request.headers.add(name: "X-Subject-Token", value: token)
        request.headers.add(name: "Accept", value: "application/json")
        let (status, body) = try await send(request)
        guard status == 200, let doc = try? JSONValue.parse(body.readableBytesView) else {
            if status == 404 || status == 401 { return nil }
            throw ImageError(.unavailable, "The identity service could not list the token's catalog (HTTP \(status)).")
        }
        return Self.imageEndpoint(in: doc["token"]?["catalog"], region: region, interface: interface)
    }

    /// The first `image` endpoint of `region` (compared without case, as Glance does) and `interface`.
    static func imageEndpoint(in catalog: JSONValue?, region: String, interface: String) -> String? {
        for service in catalog?.arrayItems ?? [] where service["type"]?.stringValue == "image" {
            for endpoint in service["endpoints"]?.arrayItems ?? [] {
                let where_ = endpoint["region_id"]?.stringValue ?? endpoint["region"]?.stringValue ?? ""
                if where_.lowercased() == region.lowercased(), endpoint["interface"]?.stringValue == interface,
                   let url = endpoint["url"]?.stringValue {
                    return url.hasSuffix("/") ? String(url.dropLast()) : url
                }
            }
        }
        return nil
    }
}
