import FrontEndSupport
import Hummingbird
import ImageCore
import ImageData

/// The tasks API (`/v2/tasks`, glance/api/v2/tasks.py): admin only by Glance's default policy
/// (`tasks_api_access`), checked before anything else is read. `POST` starts Glance's legacy
/// `import` task; the list pages and filters Glance's task types.
struct TaskRoutes<Context: OpenStackRequestContext>: OpenStackRouteGroup {
    let imports: ImageImports

    /// The types Glance's task schema knows; only `import` may be created through the API.
    static var schemaTypes: [String] { ["import", "api_image_import", "location_import"] }

    func register(on router: Router<Context>, using routes: ImageRoutes<Context>) {
        routes.route(router, "/v2/tasks", [.get: list, .post: create])
        routes.route(router, "/v2/tasks/{task}", [.get: show])
    }

    static func requireAdmin(_ p: Principal) throws {
        guard Policy.allows(.tasksAPIAccess, p) else { throw GlanceError(.forbidden, "You are not authorized to access the tasks API.") }
    }

    /// The body's `type` and `input`, or Glance's 400s (its deserializer and the task schema,
    /// which has `additionalProperties: false`).
    package static func createBody(_ body: JSONValue?) throws -> (type: String, input: JSONValue) {
        guard let body else { throw GlanceError(.badRequest, "Body expected in request.") }
        guard case .object(let members) = body else { throw GlanceError(.badRequest, "Task body must be a JSON object.") }
        for key in ["type", "input"] where body[key] == nil { throw GlanceError(.badRequest, "Task '\(key)' is required") }
        let known = ["id", "type", "status", "input", "result", "owner", "message", "image_id", "request_id", "user_id",
                     "expires_at", "created_at", "updated_at", "self", "schema"]
        if let extra = members.first(where: { !known.contains($0.0) }) {
            throw GlanceError(.badRequest, "Provided object does not match schema 'task': Additional properties are not allowed ('\(extra.0)' was unexpected)")
        }
        guard case .string(let type) = body["type"], schemaTypes.contains(type) else {
            throw GlanceError(.badRequest, "Provided object does not match schema 'task': \(body["type"]!.serialized) is not one of \(schemaTypes)")
        }
        guard type == ImageImports.legacyTaskType else {
            throw GlanceError(.badRequest, "Tasks of type '\(type)' are created by the image import API, not the tasks API.")
        }
        let input = body["input"]!
        guard case .object = input else {
            throw GlanceError(.badRequest, "Provided object does not match schema 'task': \(input.serialized) is not of type 'null', 'object'")
        }
        return (type, input)
    }

    var create: Handler {
        { [imports] request, context in
            let p = try R.principal(context)
            try Self.requireAdmin(p)
            let (_, input) = try Self.createBody(try await R.readJSON(request))
            let task = try await imports.startLegacyImport(input: input, requestId: context.requestId, by: p)
            var w = JSONWriter(capacity: 1024)
            Views.task(task, into: &w)
            return Views.json(w, status: .created, headers: [.location: "/v2/tasks/\(task.id)"])
        }
    }

    var list: Handler {
        { [imports] request, context in
            let p = try R.principal(context)
            try Self.requireAdmin(p)
            try await R.requireNoBody(request)
            let images = imports.data.images
            let query = try TaskListParameters.parse(request.uri.query, defaultLimit: images.config.listDefaultLimit,
                                                     maxLimit: images.config.listMaxLimit)
            let page = try await images.listTasks(query, by: p)
            let links = TaskListParameters.links(request.uri.query, page: page, limit: query.limit)
            var w = JSONWriter(capacity: 512 * (page.count + 1))
            w.raw("{\"tasks\":[")
            w.elements(page) { w, t in Views.task(t, into: &w, stub: true) }
            w.raw("],\"first\":"); w.string(links.first)
            w.raw(",\"schema\":\"/v2/schemas/tasks\"")
            if let next = links.next { w.raw(",\"next\":"); w.string(next) }
            w.raw("}")
            return Views.json(w)
        }
    }

    var show: Handler {
        { [imports] request, context in
            let p = try R.principal(context)
            try Self.requireAdmin(p)
            try await R.requireNoBody(request)
            let id = try R.parameter(context, "task")
            guard let t = try await imports.data.images.task(id: id, by: p), TaskListParameters.glanceTypes.contains(t.type) else {
                throw GlanceError(.notFound, "Task with the given id \(id) was not found.")
            }
            var w = JSONWriter(capacity: 1024)
            Views.task(t, into: &w)
            return Views.json(w)
        }
    }
}
