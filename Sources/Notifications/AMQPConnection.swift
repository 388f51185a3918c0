import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Where the broker is: `amqp://user:password@host:5672/vhost` (vhost `/` when the path is empty,
/// `%2F` for `/` inside a name; user and password default to guest, as oslo.messaging's).
public struct AMQPEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String

    public init?(url: String) {
        guard let c = URLComponents(string: url), c.scheme?.lowercased() == "amqp", let host = c.host, !host.isEmpty else { return nil }
        self.host = host
        self.port = c.port ?? 5672
        self.user = c.user?.removingPercentEncoding ?? "guest"
        self.password = c.password?.removingPercentEncoding ?? "guest"
        let path = c.percentEncodedPath
        let name = path.hasPrefix("/") ? String(path.dropFirst()) : path
        self.vhost = name.isEmpty ? "/" : (name.removingPercentEncoding ?? name)
    }

    /// Without the password (logs, the configuration summary).
    public var description: String { "amqp://\(user)@\(host):\(port)/\(vhost == "/" ? "" : vhost)" }
}

/// One open AMQP connection with channel 1 open and the exchange declared.
final class AMQPConnection: Sendable {
    let channel: any Channel
    let exchange: String
    let frameMax: Int
    /// Routing keys whose queue this connection declared and bound already.
    private let bound = Mutex<Set<String>>([])
    /// Delivery tags: the broker numbers this channel's messages from 1.
    private let published = Mutex<UInt64>(0)

    private init(channel: any Channel, exchange: String, frameMax: Int) {
        self.channel = channel; self.exchange = exchange; self.frameMax = frameMax
    }

    struct Closed: Error, CustomStringConvertible {
        var description: String
    }

    /// Connects, authenticates (PLAIN), opens the vhost and channel 1, declares the topic exchange.
    /// The whole handshake is cut after `timeout`.
    /// The broker's frames after the handshake (publisher confirms), read by the publisher alone.
    typealias Replies = AsyncStream<AMQP.Frame>.Iterator

    static func open(_ endpoint: AMQPEndpoint, exchange: String, durable: Bool,
                     timeout: TimeAmount) async throws -> (AMQPConnection, Replies) {
        let (frames, inbox) = AsyncStream.makeStream(of: AMQP.Frame.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(AMQPFrameDecoder()), AMQPInbox(inbox)])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        let watchdog = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        do {
            var iterator = frames.makeAsyncIterator()
            func expect(_ id: (UInt16, UInt16), _ what: String) async throws -> AMQP.Frame {
                guard let frame = await iterator.next() else { throw Closed(description: "broker closed the connection during \(what)") }
                guard let m = frame.method, m == id else {
                    var args = frame.arguments
                    _ = args.readInteger(as: UInt16.self)
                    throw Closed(description: "broker refused \(what): \(args.readShortString() ?? "unexpected frame")")
                }
                return frame
            }
            func send(_ write: (inout ByteBuffer) -> Void) async throws {
                var out = channel.allocator.buffer(capacity: 256)
                write(&out)
                try await channel.writeAndFlush(out)
            }
            try await channel.writeAndFlush(ByteBuffer(bytes: AMQP.protocolHeader))
            var start = try await expect(AMQP.connectionStart, "connection.start").arguments
            _ = start.readInteger(as: UInt16.self)  // version major, minor
            if let n = start.readInteger(as: UInt32.self) { start.moveReaderIndex(forwardBy: Int(n)) }  // server properties
            let mechanisms = String(decoding: start.readLongBytes() ?? [], as: UTF8.self)
            guard mechanisms.split(separator: " ").contains("PLAIN") else {
                throw Closed(description: "broker offers no PLAIN authentication (\(mechanisms))")
            }
            try await send { out in
                AMQP.method(AMQP.connectionStartOk, channel: 0, into: &out) { a in
                    a.writeTable([("product", .string("imaged")), ("platform", .string("Swift")),
                                  ("capabilities", .table([("connection.blocked", .bool(false))]))])
                    a.writeShortString("PLAIN")
                    a.writeLongString([0] + Array(endpoint.user.utf8) + [0] + Array(endpoint.password.utf8))
                    a.writeShortString("en_US")
                }
            }
            var tune = try await expect(AMQP.connectionTune, "authentication").arguments
            let channelMax = tune.readInteger(as: UInt16.self) ?? 0
            let serverFrameMax = Int(tune.readInteger(as: UInt32.self) ?? 0)
            let serverHeartbeat = tune.readInteger(as: UInt16.self) ?? 0
            let frameMax = serverFrameMax == 0 ? 131_072 : min(serverFrameMax, 131_072)
            // Heartbeats at most every 30 s (or the broker's shorter choice) so a dead peer is noticed.
            let heartbeat: UInt16 = serverHeartbeat == 0 ? 0 : min(serverHeartbeat, 30)
            try await send { out in
                AMQP.method(AMQP.connectionTuneOk, channel: 0, into: &out) { a in
                    a.writeInteger(channelMax)
                    a.writeInteger(UInt32(frameMax))
                    a.writeInteger(heartbeat)
                }
                AMQP.method(AMQP.connectionOpen, channel: 0, into: &out) { a in
                    a.writeShortString(endpoint.vhost)
                    a.writeShortString("")
                    a.writeInteger(UInt8(0))
                }
            }
            _ = try await expect(AMQP.connectionOpenOk, "connection.open of vhost \(endpoint.vhost)")
            try await send { out in
                AMQP.method(AMQP.channelOpen, channel: 1, into: &out) { $0.writeShortString("") }
            }
            _ = try await expect(AMQP.channelOpenOk, "channel.open")
            try await send { out in
                AMQP.method(AMQP.exchangeDeclare, channel: 1, into: &out) { a in
                    a.writeInteger(UInt16(0))
                    a.writeShortString(exchange)
                    a.writeShortString("topic")
                    a.writeInteger(UInt8(durable ? 0b10 : 0))  // passive, durable, auto-delete, internal, no-wait
                    a.writeTable([])
                }
            }
            _ = try await expect(AMQP.exchangeDeclareOk, "exchange.declare of \(exchange)")
            // Publisher confirms: a message counts as sent when the broker acknowledged it.
            try await send { out in AMQP.method(AMQP.confirmSelect, channel: 1, into: &out) { $0.writeInteger(UInt8(0)) } }
            _ = try await expect(AMQP.confirmSelectOk, "confirm.select")
            if heartbeat > 0 {
                // A broker silent for two heartbeat intervals is gone (a host that died sends no FIN):
                // the connection is closed and the publisher reconnects.
                let silence = TimeAmount.seconds(Int64(heartbeat) * 2)
                try await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: silence), position: .first)
                }.get()
                let beat = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(Int64(heartbeat) / 2 + 1),
                                                                  delay: .seconds(Int64(heartbeat) / 2 + 1)) { _ in
                    channel.writeAndFlush(ByteBuffer(bytes: AMQP.heartbeat), promise: nil)
                }
                channel.closeFuture.whenComplete { _ in beat.cancel() }
            }
            return (AMQPConnection(channel: channel, exchange: exchange, frameMax: frameMax), iterator)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// Publishes one message; the first message of a routing key declares its queue and binds it
    /// (oslo.messaging does so, so notifications wait in `notifications.info` for a consumer).
    func publish(routingKey: String, body: [UInt8], durable: Bool, replies: inout Replies) async throws {
        guard channel.isActive else { throw Closed(description: "connection closed") }
        var out = channel.allocator.buffer(capacity: body.count + 256)
        if bound.withLock({ $0.insert(routingKey).inserted }) {
            AMQP.method(AMQP.queueDeclare, channel: 1, into: &out) { a in
                a.writeInteger(UInt16(0))
                a.writeShortString(routingKey)
                a.writeInteger(UInt8(durable ? 0b10 : 0) | 0b1_0000)  // durable?, no-wait
                a.writeTable([])
            }
            AMQP.method(AMQP.queueBind, channel: 1, into: &out) { a in
                a.writeInteger(UInt16(0))
                a.writeShortString(routingKey)
                a.writeShortString(exchange)
                a.writeShortString(routingKey)
                a.writeInteger(UInt8(1))  // no-wait
                a.writeTable([])
            }
        }
        AMQP.publish(exchange: exchange, routingKey: routingKey, body: body, contentType: "application/json",
                     persistent: durable, channel: 1, frameMax: frameMax, into: &out)
        try await channel.writeAndFlush(out)
        let tag = published.withLock { $0 += 1; return $0 }
        // One message in flight: wait for its basic.ack (basic.nack: the broker could not take it).
        while true {
            guard let frame = await replies.next() else { throw Closed(description: "connection closed before the broker confirmed") }
            guard let m = frame.method else { continue }
            var args = frame.arguments
            if m == AMQP.basicAck || m == AMQP.basicNack {
                let acked = args.readInteger(as: UInt64.self) ?? 0
                let multiple = (args.readInteger(as: UInt8.self) ?? 0) & 1 == 1
                guard acked == tag || (multiple && acked >= tag) else { continue }
                if m == AMQP.basicNack { throw Closed(description: "broker refused the message (basic.nack)") }
                return
            }
            if m == AMQP.connectionClose || m == AMQP.channelClose {
                _ = args.readInteger(as: UInt16.self)
                throw Closed(description: "broker closed: \(args.readShortString() ?? "")")
            }
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Frames from the broker: handed to the handshake while it runs; a broker's connection.close or
/// channel.close is answered and ends the connection (the publisher reconnects).
final class AMQPInbox: ChannelInboundHandler {
    typealias InboundIn = AMQP.Frame
    typealias OutboundOut = ByteBuffer
    let inbox: AsyncStream<AMQP.Frame>.Continuation

    init(_ inbox: AsyncStream<AMQP.Frame>.Continuation) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.type == AMQP.FrameType.heartbeat.rawValue { return }
        if let m = frame.method, m == AMQP.connectionClose || m == AMQP.channelClose {
            inbox.yield(frame)
            var out = context.channel.allocator.buffer(capacity: 12)
            if m == AMQP.connectionClose { AMQP.method(AMQP.connectionCloseOk, channel: 0, into: &out) }
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            context.close(promise: nil)
            return
        }
        inbox.yield(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }
}
