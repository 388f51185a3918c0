import Hummingbird

/// A group of `/v2` routes in a file of its own (data, tasks, locations, cache, metadefs), registered
/// before `ImageRoutes` adds its `/v2/**` catch-all. Its handlers share the image routes' helpers (`R`).
protocol OpenStackRouteGroup: Sendable {
    associatedtype Context: OpenStackRequestContext
    func register(on router: Router<Context>, using routes: ImageRoutes<Context>)
}

extension OpenStackRouteGroup {
    typealias Handler = ImageRoutes<Context>.Handler
    typealias R = ImageRoutes<Context>
}
