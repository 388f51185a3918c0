import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOSSL

/// The child channel of every connection: HTTP/1.1 as Hummingbird's `HTTP1Channel` sets it up, with
/// the connection gate (per node, per client address), TLS from the certificate store when configured,
/// and the connection's deadlines (header, idle, upload rate) around the HTTP codec.
struct GuardedHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits
    let gate: ConnectionGate
    let tls: TLSCertificateStore?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let client = channel.remoteAddress?.ipAddress ?? "unknown"
        let refusal = gate.admit(client)
        let deadlines = ConnectionDeadlines(limits: limits, channel: channel)
        let gate = gate
        if refusal == nil { channel.closeFuture.whenComplete { _ in gate.release(client) } }
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if refusal == nil, let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.current)) }
            try pipeline.addHandler(RawActivityHandler(deadlines))
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: .init())
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: tls != nil))
            try pipeline.addHandler(RequestPartsHandler(deadlines))
            // Hummingbird's own: closes after `Connection: close` and idle connections at graceful shutdown.
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            let value = try Value(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            if let refusal {
                // Refused at accept: the handler sees a closed channel and returns at once.
                refusal.count()
                channel.close(promise: nil)
            } else {
                deadlines.start()
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

/// Every connection through `GuardedHTTPChannel`, with one gate for the node.
func guardedServer(limits: ConnectionLimits, tls: TLSCertificateStore?) -> HTTPServerBuilder {
    let gate = ConnectionGate(limits: limits)
    return HTTPServerBuilder { responder in
        GuardedHTTPChannel(responder: responder, limits: limits, gate: gate, tls: tls)
    }
}

/// The listening socket's settings beyond what Hummingbird's configuration offers.
enum ListeningSocket {
    /// Connections accepted per wake-up of the listening socket. NIO's default, 4, makes a burst of
    /// 1,000 connects wait behind some 250 loop turns, each serving every connection already in: their
    /// first requests waited seconds (p99 1.5-2.6 s at 1,000 connections in bench/clients.sh).
    static let acceptsPerWakeUp: UInt = 64

    static func tune(_ channel: any Channel) async {
        try? await channel.setOption(ChannelOptions.maxMessagesPerRead, value: acceptsPerWakeUp).get()
    }
}
