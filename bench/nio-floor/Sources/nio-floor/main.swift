import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

// nio-floor PORT: `{"status":"ok"}` to every request, keep-alive, on the event loop that read it.
// The listener is set up as imaged's (backlog 4096, 64 accepts per wake-up) and so is the codec
// (NIO's HTTP/1 server pipeline without pipelining assistance or error handling), on as many event
// loop threads as imaged's default `--event-loop-threads`: half the cores, at least one
// (NIO_SINGLETON_GROUP_LOOP_COUNT overrides it, as it does imaged's).
final class FixedAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): keepAlive = head.isKeepAlive
        case .body: break
        case .end:
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "15")])
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            var body = context.channel.allocator.buffer(capacity: 15)
            body.writeString(#"{"status":"ok"}"#)
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let keepAlive = keepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context] _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}

let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 19399
if ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil {
    NIOSingletons.groupLoopCountSuggestion = max(1, System.coreCount / 2)
}
let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .serverChannelOption(.maxMessagesPerRead, value: 64)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false)
            try channel.pipeline.syncOperations.addHandler(FixedAnswer())
        }
    }
    .bind(host: "127.0.0.1", port: port).wait()
print("nio-floor listening on \(channel.localAddress!)")
try channel.closeFuture.wait()
