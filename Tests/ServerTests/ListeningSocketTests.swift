import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Server

/// The listening socket on a real loopback socket: a burst of connects queued while the event loop is
/// busy is accepted in one wake-up, not four at a time.
struct ListeningSocketTests {
    /// How many connections each wake-up of the listening socket accepted (channelReads between two
    /// channelReadCompletes); it passes every accepted channel on to NIO's acceptor.
    final class AcceptBatches: ChannelInboundHandler, Sendable {
        typealias InboundIn = any Channel
        let batches = Mutex<(current: Int, done: [Int])>((0, []))

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            batches.withLock { $0.current += 1 }
            context.fireChannelRead(data)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            batches.withLock { b in
                if b.current > 0 { b.done.append(b.current) }
                b.current = 0
            }
            context.fireChannelReadComplete()
        }
    }

    @Test func aBurstOfConnectsIsAcceptedInOneWakeUp() async throws {
        let burst = 32
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = AcceptBatches()
        let server = try await ServerBootstrap(group: serverGroup)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) }
            }
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        await ListeningSocket.tune(server)

        // Keep the server's loop busy while the clients connect: the kernel finishes their handshakes
        // into the backlog, and the loop finds them all at its next wake-up.
        // The clients connect only once the loop is inside the blocking task: a connect that reaches it
        // before would be accepted alone.
        let release = Mutex(false)
        let holding = Mutex(false)
        server.eventLoop.execute {
            holding.withLock { $0 = true }
            let until = Date().addingTimeInterval(10)
            while !release.withLock({ $0 }), Date() < until { usleep(1000) }
        }
        while !holding.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
        var clients: [any Channel] = []
        for _ in 0..<burst {
            clients.append(try await ClientBootstrap(group: clientGroup).connect(to: server.localAddress!).get())
        }
        release.withLock { $0 = true }

        let deadline = Date().addingTimeInterval(10)
        while counter.batches.withLock({ $0.done.reduce(0, +) }) < burst, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let batches = counter.batches.withLock { $0.done }
        #expect(batches.reduce(0, +) == burst)
        #expect(batches.first == burst, "accepted in batches of \(batches)")

        for client in clients { try? await client.close() }
        try await server.close()
        try await clientGroup.shutdownGracefully()
        try await serverGroup.shutdownGracefully()
    }
}
