import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Testing
@testable import Server

/// The connection deadlines on the real HTTP/1 codec, on an EmbeddedChannel whose clock the test moves.
struct ConnectionDeadlinesTests {
    static let limits: ConnectionLimits = {
        var l = ConnectionLimits()
        l.headerTimeoutSeconds = 10
        l.idleTimeoutSeconds = 60
        l.minUploadBytesPerSecond = 1024
        l.uploadStallSeconds = 30
        return l
    }()

    /// The pipeline GuardedHTTPChannel builds, without TLS and the async wrapper.
    func connection() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let deadlines = ConnectionDeadlines(limits: Self.limits, channel: channel)
        let ops = channel.pipeline.syncOperations
        try ops.addHandler(RawActivityHandler(deadlines))
        try ops.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try ops.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try ops.addHandler(RequestPartsHandler(deadlines))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        deadlines.start()
        return channel
    }

    func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func respond(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok, headerFields: [.contentLength: "0"])))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    func advance(_ channel: EmbeddedChannel, seconds: Double) {
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(Int64(seconds * 1000)))
    }

    @Test func aSilentConnectionIsClosedAtTheHeaderTimeout() throws {
        let channel = try connection()
        advance(channel, seconds: 9.9)
        #expect(channel.isActive)
        advance(channel, seconds: 0.2)
        #expect(!channel.isActive)
    }

    @Test func aSlowlorisHeadIsCutOffAtTheHeaderTimeout() throws {
        let channel = try connection()
        var elapsed = 0.0
        for byte in "GET /v2/images HTTP/1.1\r\nHost: example\r\nX-Padding: aaaaaaaa\r\n\r\n" {
            guard channel.isActive else { break }
            try send(channel, String(byte))
            advance(channel, seconds: 0.5)
            elapsed += 0.5
        }
        #expect(!channel.isActive)
        #expect(elapsed <= 10.5)
    }

    @Test func theIdleTimeoutAppliesBetweenRequests() throws {
        let channel = try connection()
        try send(channel, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        advance(channel, seconds: 20)   // a slow handler: no deadline while the request is served
        #expect(channel.isActive)
        try respond(channel)
        advance(channel, seconds: 59)
        #expect(channel.isActive)
        advance(channel, seconds: 1.1)
        #expect(!channel.isActive)
    }

    @Test func theFirstByteOfTheNextRequestArmsTheHeaderTimeout() throws {
        let channel = try connection()
        try send(channel, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try respond(channel)
        advance(channel, seconds: 30)
        try send(channel, "G")
        advance(channel, seconds: 9.9)
        #expect(channel.isActive)
        advance(channel, seconds: 0.2)
        #expect(!channel.isActive)
    }

    @Test func aStalledBodyIsCutOffButServerBackpressureIsNotBlamedOnTheClient() throws {
        let channel = try connection()
        try send(channel, "PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        try send(channel, String(repeating: "x", count: 100))
        // The server asks for nothing (its disk is slow): no time counts against the client.
        for _ in 0..<90 { advance(channel, seconds: 1) }
        #expect(channel.isActive)
        // Now it waits for bytes that do not come.
        channel.read()
        for _ in 0..<29 { advance(channel, seconds: 1) }
        #expect(channel.isActive)
        advance(channel, seconds: 1.5)
        #expect(!channel.isActive)
    }

    @Test func aSteadyUploadAboveTheMinimumRateIsKept() throws {
        let channel = try connection()
        try send(channel, "PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        for _ in 0..<120 {
            channel.read()
            try send(channel, String(repeating: "x", count: 2048))
            channel.read()
            advance(channel, seconds: 1)
        }
        #expect(channel.isActive)
    }

    @Test func theGateCountsPerNodeAndPerAddress() {
        var limits = ConnectionLimits()
        limits.maxConnections = 3
        limits.maxConnectionsPerClient = 2
        let gate = ConnectionGate(limits: limits)
        #expect(gate.admit("10.0.0.1") == nil)
        #expect(gate.admit("10.0.0.1") == nil)
        #expect(gate.admit("10.0.0.1") == .perClient)
        #expect(gate.admit("10.0.0.2") == nil)
        #expect(gate.admit("10.0.0.3") == .maxConnections)
        gate.release("10.0.0.1")
        #expect(gate.admit("10.0.0.3") == nil)
        #expect(gate.admit("10.0.0.1") == .maxConnections)
    }
}
