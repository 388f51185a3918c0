import NIOCore
import NIOHTTPTypes

/// The clocks of one connection: a request head must arrive within the header timeout (counted from
/// the accept, or from the first byte of a later request, so a slowloris head sent a byte at a time is
/// cut off), a keep-alive connection may wait for its next request for the idle timeout, and a request
/// body must keep the minimum rate over the stall window — counting only the time the server was
/// waiting for the client, so a slow disk or S3 (backpressure: no read asked for) is never blamed on
/// it. Closing the channel cancels the request in flight; an upload cancelled so returns its image to
/// `queued` (the data path's rule). Confined to the channel's event loop, hence `@unchecked Sendable`.
final class ConnectionDeadlines: @unchecked Sendable {
    private enum Phase { case awaitingHead, inRequest, idle }

    private let limits: ConnectionLimits
    private let channel: any Channel
    private var phase = Phase.awaitingHead
    /// The armed deadline and what passing it means; nil: none (a request is being served).
    private var deadline: NIODeadline?
    private var deadlineReason = ConnectionRefusal.idle
    /// One timer checks the deadline lazily: arming and disarming on every request only move
    /// `deadline`, instead of scheduling and cancelling a timer task each time (~4 % of a GET).
    /// It never sleeps longer than the shortest timeout, so a newly armed deadline is never
    /// earlier than its next check, and it fires exactly at a deadline it would otherwise pass.
    private var timer: Scheduled<Void>?
    private var timerFiresAt: NIODeadline?
    /// Heads received whose response has not ended yet (pipelined requests).
    private var openRequests = 0
    private var bodyOpen = false
    // The body rate: bytes and waiting time since the window began; sampled once a second.
    private var readPending = false
    private var rateTicker: RepeatedTask?
    private var lastTick = NIODeadline.uptimeNanoseconds(0)
    private var waitedNanos: Int64 = 0
    private var bodyBytes: Int64 = 0
    private var closed = false

    init(limits: ConnectionLimits, channel: any Channel) {
        self.limits = limits
        self.channel = channel
    }

    /// The connection was accepted: its first head is due.
    func start() { arm(seconds: limits.headerTimeoutSeconds, reason: .headerTimeout) }

    // MARK: events from RawActivityHandler (bytes, before the HTTP decoder)

    func bytesArrived(_ count: Int) {
        readPending = false
        if phase == .idle {
            phase = .awaitingHead
            arm(seconds: limits.headerTimeoutSeconds, reason: .headerTimeout)
        }
        if bodyOpen { bodyBytes += Int64(count) }
    }

    func readRequested() { readPending = true }

    // MARK: events from RequestPartsHandler (decoded request and response parts)

    func headReceived() {
        openRequests += 1
        phase = .inRequest
        bodyOpen = true
        disarm()
    }

    func bodyPartReceived() {
        guard rateTicker == nil, limits.minUploadBytesPerSecond > 0 else { return }
        lastTick = channel.eventLoop.now
        waitedNanos = 0
        bodyBytes = 0
        rateTicker = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in tick() }
    }

    func requestEnded() {
        bodyOpen = false
        rateTicker?.cancel()
        rateTicker = nil
        becomeIdleIfDone()
    }

    func responseEnded() {
        openRequests = max(0, openRequests - 1)
        becomeIdleIfDone()
    }

    func channelClosed() {
        closed = true
        stopTimer()
        rateTicker?.cancel()
        rateTicker = nil
    }

    // MARK: -

    private func becomeIdleIfDone() {
        guard openRequests == 0, !bodyOpen, phase == .inRequest else { return }
        phase = .idle
        arm(seconds: limits.idleTimeoutSeconds, reason: .idle)
    }

    private func tick() {
        let now = channel.eventLoop.now   // the loop's clock (virtual in EmbeddedEventLoop tests)
        if readPending { waitedNanos += (now - lastTick).nanoseconds }
        lastTick = now
        let window = limits.uploadStallSeconds * 1_000_000_000
        guard waitedNanos >= window else { return }
        // bytes/s over the time the server waited: bodyBytes / (waited s) < minimum
        if bodyBytes * 1_000_000_000 < limits.minUploadBytesPerSecond * waitedNanos {
            refuse(.slowUpload)
        } else {
            waitedNanos = 0
            bodyBytes = 0
        }
    }

    private func arm(seconds: Int64, reason: ConnectionRefusal) {
        guard seconds > 0, !closed else { deadline = nil; return }
        let due = channel.eventLoop.now + .seconds(seconds)
        deadline = due
        deadlineReason = reason
        if let at = timerFiresAt, at <= due { return }
        schedule(at: min(due, channel.eventLoop.now + .seconds(checkInterval)))
    }

    private func disarm() { deadline = nil }

    /// The shortest timeout in force: the longest the timer sleeps between checks.
    private var checkInterval: Int64 {
        [limits.headerTimeoutSeconds, limits.idleTimeoutSeconds].filter { $0 > 0 }.min() ?? 1
    }

    private func schedule(at when: NIODeadline) {
        timer?.cancel()
        timerFiresAt = when
        timer = channel.eventLoop.scheduleTask(deadline: when) { [self] in check() }
    }

    private func check() {
        timer = nil
        timerFiresAt = nil
        guard let deadline, !closed else { return }
        let now = channel.eventLoop.now
        if now >= deadline { refuse(deadlineReason); return }
        schedule(at: min(deadline, now + .seconds(checkInterval)))
    }

    private func stopTimer() {
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
        deadline = nil
    }

    private func refuse(_ reason: ConnectionRefusal) {
        guard !closed else { return }
        closed = true
        reason.count()
        stopTimer()
        rateTicker?.cancel()
        rateTicker = nil
        channel.close(promise: nil)
    }
}

/// Sits before the HTTP decoder (after TLS): sees the plaintext bytes arrive and the reads the server asks for.
final class RawActivityHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let deadlines: ConnectionDeadlines
    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadlines.bytesArrived(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        deadlines.readRequested()
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlines.channelClosed()
        context.fireChannelInactive()
    }
}

/// Sits after the HTTP codec: sees request heads, bodies and ends, and the end of each response.
final class RequestPartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadlines: ConnectionDeadlines
    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.headReceived()
        case .body: deadlines.bodyPartReceived()
        case .end: deadlines.requestEnded()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { deadlines.responseEnded() }
        context.write(data, promise: promise)
    }
}
