import HTTPTypes
import ImageCore

extension HTTPResponse.Status {
    /// WebDAV's 507, which HTTPTypes does not name: a full image store.
    public static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}

extension ImageError.Kind {
    /// The HTTP status a core error means. Written once here; a front-end overrides only the kinds
    /// its vendor answers differently (Avi and the console hide `gone` as 404, Danube has its own codes).
    public var httpStatus: HTTPResponse.Status {
        switch self {
        case .badRequest: .badRequest
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict, .duplicate, .inUse: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .gone: .gone
        case .rangeNotSatisfiable: .rangeNotSatisfiable
        case .unavailable: .serviceUnavailable
        case .insufficientStorage: .insufficientStorage
        case .internal: .internalServerError
        }
    }
}
