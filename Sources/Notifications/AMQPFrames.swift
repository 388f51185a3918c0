import NIOCore

/// The slice of AMQP 0-9-1 a notification publisher needs (connection start/tune/open with PLAIN,
/// channel open, exchange and queue declare, queue bind, basic.publish with header and body
/// frames, heartbeats, close). No AMQP package is available, and this much is small.
public enum AMQP {
    public static let protocolHeader: [UInt8] = Array("AMQP".utf8) + [0, 0, 9, 1]
    public static let frameEnd: UInt8 = 0xCE

    public enum FrameType: UInt8, Sendable {
        case method = 1, header = 2, body = 3, heartbeat = 8
    }

    /// One frame as read from the wire: its payload is still encoded.
    public struct Frame: Sendable, Equatable {
        public var type: UInt8
        public var channel: UInt16
        public var payload: ByteBuffer

        /// class and method ids of a method frame.
        public var method: (classId: UInt16, methodId: UInt16)? {
            guard type == FrameType.method.rawValue, let c = payload.getInteger(at: payload.readerIndex, as: UInt16.self),
                  let m = payload.getInteger(at: payload.readerIndex + 2, as: UInt16.self) else { return nil }
            return (c, m)
        }

        /// The method's arguments (after the class and method ids).
        public var arguments: ByteBuffer { payload.getSlice(at: payload.readerIndex + 4, length: max(0, payload.readableBytes - 4)) ?? ByteBuffer() }
    }

    // Method ids (class, method).
    public static let connectionStart: (UInt16, UInt16) = (10, 10)
    public static let connectionStartOk: (UInt16, UInt16) = (10, 11)
    public static let connectionTune: (UInt16, UInt16) = (10, 30)
    public static let connectionTuneOk: (UInt16, UInt16) = (10, 31)
    public static let connectionOpen: (UInt16, UInt16) = (10, 40)
    public static let connectionOpenOk: (UInt16, UInt16) = (10, 41)
    public static let connectionClose: (UInt16, UInt16) = (10, 50)
    public static let connectionCloseOk: (UInt16, UInt16) = (10, 51)
    public static let channelOpen: (UInt16, UInt16) = (20, 10)
    public static let channelOpenOk: (UInt16, UInt16) = (20, 11)
    public static let channelClose: (UInt16, UInt16) = (20, 40)
    public static let exchangeDeclare: (UInt16, UInt16) = (40, 10)
    public static let exchangeDeclareOk: (UInt16, UInt16) = (40, 11)
    public static let queueDeclare: (UInt16, UInt16) = (50, 10)
    public static let queueBind: (UInt16, UInt16) = (50, 20)
    public static let basicPublish: (UInt16, UInt16) = (60, 40)
    public static let basicAck: (UInt16, UInt16) = (60, 80)
    public static let basicNack: (UInt16, UInt16) = (60, 120)
    public static let confirmSelect: (UInt16, UInt16) = (85, 10)
    public static let confirmSelectOk: (UInt16, UInt16) = (85, 11)

    /// A whole frame: type, channel, size, payload, frame end.
    public static func frame(_ type: FrameType, channel: UInt16, _ payload: ByteBuffer, into out: inout ByteBuffer) {
        out.writeInteger(type.rawValue)
        out.writeInteger(channel)
        out.writeInteger(UInt32(payload.readableBytes))
        var p = payload
        out.writeBuffer(&p)
        out.writeInteger(frameEnd)
    }

    /// A method frame: the ids, then the arguments written by `args`.
    public static func method(_ id: (UInt16, UInt16), channel: UInt16, into out: inout ByteBuffer,
                              _ args: (inout ByteBuffer) -> Void = { _ in }) {
        var payload = ByteBuffer()
        payload.writeInteger(id.0)
        payload.writeInteger(id.1)
        args(&payload)
        frame(.method, channel: channel, payload, into: &out)
    }

    public static let heartbeat: [UInt8] = [FrameType.heartbeat.rawValue, 0, 0, 0, 0, 0, 0, frameEnd]

    /// basic.publish, its content header (content-type, content-encoding, delivery-mode) and the
    /// body split into frames no larger than `frameMax`.
    public static func publish(exchange: String, routingKey: String, body: [UInt8], contentType: String,
                               persistent: Bool, channel: UInt16, frameMax: Int, into out: inout ByteBuffer) {
        method(basicPublish, channel: channel, into: &out) { a in
            a.writeInteger(UInt16(0))  // reserved (ticket)
            a.writeShortString(exchange)
            a.writeShortString(routingKey)
            a.writeInteger(UInt8(0))  // mandatory, immediate: off
        }
        var header = ByteBuffer()
        header.writeInteger(UInt16(60))  // class: basic
        header.writeInteger(UInt16(0))   // weight
        header.writeInteger(UInt64(body.count))
        header.writeInteger(UInt16(0x8000 | 0x4000 | 0x1000))  // content-type, content-encoding, delivery-mode
        header.writeShortString(contentType)
        header.writeShortString("utf-8")
        header.writeInteger(UInt8(persistent ? 2 : 1))
        frame(.header, channel: channel, header, into: &out)
        let maxChunk = max(1, frameMax - 8)
        var offset = 0
        while offset < body.count {
            let end = min(body.count, offset + maxChunk)
            frame(.body, channel: channel, ByteBuffer(bytes: body[offset..<end]), into: &out)
            offset = end
        }
    }

    public struct ProtocolError: Error, CustomStringConvertible {
        public var description: String
        public init(_ d: String) { description = d }
    }
}

extension ByteBuffer {
    /// AMQP short string: one length octet (at most 255 bytes), then UTF-8.
    mutating func writeShortString(_ s: String) {
        let bytes = Array(s.utf8.prefix(255))
        writeInteger(UInt8(bytes.count))
        writeBytes(bytes)
    }

    /// AMQP long string: a 32-bit length, then the bytes.
    mutating func writeLongString(_ bytes: [UInt8]) {
        writeInteger(UInt32(bytes.count))
        writeBytes(bytes)
    }

    /// An AMQP field table of string values (type `S`) and booleans (type `t`).
    mutating func writeTable(_ fields: [(String, AMQPField)]) {
        var table = ByteBuffer()
        for (name, value) in fields {
            table.writeShortString(name)
            switch value {
            case .string(let s): table.writeInteger(UInt8(ascii: "S")); table.writeLongString(Array(s.utf8))
            case .bool(let b): table.writeInteger(UInt8(ascii: "t")); table.writeInteger(UInt8(b ? 1 : 0))
            case .table(let t): table.writeInteger(UInt8(ascii: "F")); table.writeTable(t)
            }
        }
        writeInteger(UInt32(table.readableBytes))
        writeBuffer(&table)
    }

    mutating func readShortString() -> String? {
        guard let n = readInteger(as: UInt8.self), let s = readString(length: Int(n)) else { return nil }
        return s
    }

    mutating func readLongBytes() -> [UInt8]? {
        guard let n = readInteger(as: UInt32.self), let b = readBytes(length: Int(n)) else { return nil }
        return b
    }
}

/// A field-table value the client sends (its properties).
public indirect enum AMQPField: Sendable {
    case string(String)
    case bool(Bool)
    case table([(String, AMQPField)])
}

/// Cuts the byte stream into frames; refuses a frame that does not end in 0xCE or is absurdly large.
struct AMQPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = AMQP.Frame
    static let maxFrame = 1 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.next(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    /// One whole frame off the front of `buffer`, or nil when it is not all there yet.
    static func next(_ buffer: inout ByteBuffer) throws -> AMQP.Frame? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 7, let size = buffer.getInteger(at: start + 3, as: UInt32.self) else { return nil }
        guard size <= maxFrame else { throw AMQP.ProtocolError("frame of \(size) bytes") }
        guard buffer.readableBytes >= 8 + Int(size) else { return nil }
        let type = buffer.readInteger(as: UInt8.self)!
        let channel = buffer.readInteger(as: UInt16.self)!
        _ = buffer.readInteger(as: UInt32.self)
        let payload = buffer.readSlice(length: Int(size))!
        guard buffer.readInteger(as: UInt8.self) == AMQP.frameEnd else { throw AMQP.ProtocolError("frame without its end octet") }
        return AMQP.Frame(type: type, channel: channel, payload: payload)
    }
}
