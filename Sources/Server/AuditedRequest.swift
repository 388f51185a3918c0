import FrontEndSupport
import HTTPTypes
import Hummingbird
import ImageCore

extension RequestTelemetry {
    /// Runs the request with a fresh audit record the core and identity fill, then writes its line
    /// (state-changing requests, logins and logouts only); a thrown error is audited with its status.
    func audited(_ request: Request, _ context: Context, requestId: String,
                 next: (Request, Context) async throws -> Response) async throws -> Response {
        let sessionAction = AuditScope.sessionAction(api: frontend, method: request.method, path: request.uri.path)
        guard let audit, AuditScope.audits(method: request.method, action: sessionAction) else {
            return try await next(request, context)
        }
        let record = AuditRecord()
        let response: Response
        do {
            response = try await AuditTrail.$current.withValue(record) { try await next(request, context) }
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            await audit.write(line(request, context, requestId: requestId, record, sessionAction, status: status))
            throw error
        }
        let id = response.headers[Self.openstackRequestId] ?? requestId
        await audit.write(line(request, context, requestId: id, record, sessionAction, status: Int(response.status.code)))
        return response
    }

    func line(_ request: Request, _ context: Context, requestId: String, _ record: AuditRecord,
              _ sessionAction: String?, status: Int) -> AuditLine {
        let facts = record.facts
        let client = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress
        return AuditLine(time: AuditLine.timestamp(), requestId: requestId, client: client, api: frontend,
                         method: request.method.rawValue, path: LogRedaction.path(request.uri.path), facts: facts,
                         action: sessionAction ?? facts.action ?? AuditScope.fallbackAction(method: request.method),
                         status: status)
    }
}
