import HTTPTypes
import Hummingbird
import ImageCore
import NIOCore

/// The shell every front-end's JSON answers (and error bodies) go out in: a status, the front-end's
/// content type and headers, the serialized document.
public enum JSONResponse {
    public static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok, contentType: String = "application/json",
                            headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = contentType
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
    }
}
