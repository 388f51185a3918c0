import Foundation
import ImageCore
import NIOCore
@testable import Notifications
import Testing

/// AMQP 0-9-1 framing, byte for byte against the specification's layout, and the envelopes.
@Suite struct AMQPFrameTests {
    @Test func publishIsMethodThenHeaderThenBodyFramesSplitAtFrameMax() throws {
        var out = ByteBuffer()
        let body = Array("0123456789".utf8)
        AMQP.publish(exchange: "glance", routingKey: "notifications.info", body: body, contentType: "application/json",
                     persistent: false, channel: 1, frameMax: 12, into: &out)
        // basic.publish (60, 40) on channel 1: ticket 0, exchange, routing key, flags 0.
        let method = try #require(try AMQPFrameDecoder.next(&out))
        #expect(method.type == 1 && method.channel == 1)
        #expect(method.method?.classId == 60 && method.method?.methodId == 40)
        var args = method.arguments
        #expect(args.readInteger(as: UInt16.self) == 0)
        #expect(args.readShortString() == "glance")
        #expect(args.readShortString() == "notifications.info")
        #expect(args.readInteger(as: UInt8.self) == 0)
        #expect(args.readableBytes == 0)
        // Content header: class 60, weight 0, body size 10, flags content-type|content-encoding|delivery-mode.
        let header = try #require(try AMQPFrameDecoder.next(&out))
        #expect(header.type == 2 && header.channel == 1)
        var h = header.payload
        #expect(h.readInteger(as: UInt16.self) == 60)
        #expect(h.readInteger(as: UInt16.self) == 0)
        #expect(h.readInteger(as: UInt64.self) == 10)
        #expect(h.readInteger(as: UInt16.self) == 0xD000)
        #expect(h.readShortString() == "application/json")
        #expect(h.readShortString() == "utf-8")
        #expect(h.readInteger(as: UInt8.self) == 1)
        // frame-max 12 leaves 4 payload bytes per body frame: 4 + 4 + 2.
        var chunks: [[UInt8]] = []
        while let frame = try AMQPFrameDecoder.next(&out) {
            #expect(frame.type == 3 && frame.channel == 1)
            chunks.append(Array(frame.payload.readableBytesView))
        }
        #expect(chunks == [Array("0123".utf8), Array("4567".utf8), Array("89".utf8)])
        #expect(out.readableBytes == 0)
    }

    @Test func frameLayoutOnTheWire() {
        var out = ByteBuffer()
        AMQP.method(AMQP.channelOpen, channel: 1, into: &out) { $0.writeShortString("") }
        // type 1, channel 1, size 5, class 20, method 10, empty short string, frame end.
        #expect(Array(out.readableBytesView) == [1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xCE])
        #expect(AMQP.heartbeat == [8, 0, 0, 0, 0, 0, 0, 0xCE])
        #expect(AMQP.protocolHeader == [65, 77, 81, 80, 0, 0, 9, 1])
    }

    @Test func decoderWaitsForWholeFramesAndRefusesAMissingFrameEnd() throws {
        var partial = ByteBuffer(bytes: [1, 0, 0, 0, 0, 0, 4, 0, 10])
        #expect(try AMQPFrameDecoder.next(&partial) == nil)
        #expect(partial.readableBytes == 9)  // nothing consumed
        var bad = ByteBuffer(bytes: [8, 0, 0, 0, 0, 0, 0, 0x00])
        #expect(throws: AMQP.ProtocolError.self) { try AMQPFrameDecoder.next(&bad) }
    }

    @Test func tableEncodesStringsBooleansAndNestedTables() {
        var out = ByteBuffer()
        out.writeTable([("a", .string("xy")), ("b", .bool(true)), ("c", .table([]))])
        // size, then "a" 'S' len "xy", "b" 't' 1, "c" 'F' 0.
        let expected: [UInt8] = [0, 0, 0, 20, 1, 97, 83, 0, 0, 0, 2, 120, 121, 1, 98, 116, 1, 1, 99, 70, 0, 0, 0, 0]
        #expect(Array(out.readableBytesView) == expected)
    }

    @Test func endpointParsesUserPasswordHostPortAndVhost() {
        let e = AMQPEndpoint(url: "amqp://nova:s%40cret@rabbit.example:5673/%2Fprod")
        #expect(e?.user == "nova")
        #expect(e?.password == "s@cret")
        #expect(e?.host == "rabbit.example")
        #expect(e?.port == 5673)
        #expect(e?.vhost == "/prod")
        #expect(e?.description == "amqp://nova@rabbit.example:5673//prod")
        let d = AMQPEndpoint(url: "amqp://localhost")
        #expect(d?.user == "guest" && d?.password == "guest" && d?.port == 5672 && d?.vhost == "/")
        #expect(AMQPEndpoint(url: "http://localhost") == nil)
        #expect(AMQPEndpoint(url: "amqp:///vhost") == nil)
    }

    static let time = Date(timeIntervalSince1970: 1_796_340_012.25)  // 2026-12-03 23:20:12.25 UTC

    @Test func osloEnvelopeIsVersion2WithTheMessageAsAJSONString() throws {
        let event = ImageEvent("image.create", payload: .object([("id", .string("abc")), ("size", .null)]), time: Self.time)
        let body = Envelopes.oslo(event, publisherId: "image.host1", messageId: "m-1")
        let outer = try JSONValue.parse(body)
        #expect(outer["oslo.version"] == .string("2.0"))
        let inner = try JSONValue.parse(try #require(outer["oslo.message"]?.stringValue))
        #expect(inner["message_id"] == .string("m-1"))
        #expect(inner["publisher_id"] == .string("image.host1"))
        #expect(inner["event_type"] == .string("image.create"))
        #expect(inner["priority"] == .string("INFO"))
        #expect(inner["payload"]?["id"] == .string("abc"))
        #expect(inner["payload"]?["size"] == .null)
        #expect(inner["timestamp"] == .string("2026-12-03 23:20:12.250000"))
        #expect(Envelopes.routingKey(topic: "notifications", event) == "notifications.info")
        let error = ImageEvent("image.upload", priority: .error, payload: .string("failed"))
        #expect(Envelopes.routingKey(topic: "notifications", error) == "notifications.error")
    }

    @Test func cloudEventIsStructuredJSON() throws {
        let event = ImageEvent("image.member.create", payload: .object([("image_id", .string("abc"))]), time: Self.time)
        let doc = try JSONValue.parse(Envelopes.cloudEvent(event, source: "/imaged/host1", id: "e-1"))
        #expect(doc["specversion"] == .string("1.0"))
        #expect(doc["id"] == .string("e-1"))
        #expect(doc["source"] == .string("/imaged/host1"))
        #expect(doc["type"] == .string("org.openstack.image.member.create"))
        #expect(doc["time"] == .string("2026-12-03T23:20:12.250000Z"))
        #expect(doc["datacontenttype"] == .string("application/json"))
        #expect(doc["data"]?["image_id"] == .string("abc"))
    }

    @Test func imagePayloadHasGlanceFieldsAndNoLocations() {
        var image = Image(id: "11111111-2222-3333-4444-555555555555", name: "cirros", owner: "p1", createdAt: 0, updatedAt: 60)
        image.size = 42
        image.properties = ["hw_disk_bus": "scsi", "os_glance_importing_to_stores": "a,b"]
        image.tags = ["t1"]
        let p = EventPayload.image(image, extra: EventPayload.deleted(at: 120))
        #expect(p["id"] == .string(image.id))
        #expect(p["size"] == .int(42))
        #expect(p["owner"] == .string("p1"))
        #expect(p["status"] == .string("queued"))
        #expect(p["is_public"] == .bool(false))
        #expect(p["created_at"] == .string("1970-01-01T00:00:00Z"))
        #expect(p["updated_at"] == .string("1970-01-01T00:01:00Z"))
        #expect(p["properties"]?["hw_disk_bus"] == .string("scsi"))
        #expect(p["tags"] == .array([.string("t1")]))
        #expect(p["deleted"] == .bool(true))
        #expect(p["deleted_at"] == .string("1970-01-01T00:02:00Z"))
        #expect(p["locations"] == nil && p["direct_url"] == nil)
        let stores = JSONValue.object(EventPayload.importStores(image))
        #expect(stores["os_glance_importing_to_stores"] == .array([.string("a"), .string("b")]))
        #expect(stores["os_glance_failed_import"] == .array([]))
    }
}
