import ImageCore
import Testing

/// Glance's metadef documents checked as its schemas check them: what is refused (and how), what a
/// namespace file turns into, and what PUT resets.
@Suite struct MetadefBodiesTests {
    static func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }

    static func kind(_ body: String, _ make: (JSONValue) throws -> Void) -> ImageError.Kind? {
        do { try make(try parse(body)); return nil } catch let e as ImageError { return e.kind } catch { return .internal }
    }

    @Test(arguments: [
        (#"{"name": "p", "type": "string"}"#, ImageError.Kind.badRequest),                       // no title
        (#"{"name": "p", "title": "P"}"#, .badRequest),                                         // no type
        (#"{"name": "p", "title": "P", "type": "colour"}"#, .badRequest),                       // unknown type
        (#"{"name": "p", "title": "P", "type": "string", "enum": "a"}"#, .badRequest),          // enum not an array
        (#"{"name": "p", "title": "P", "type": "integer", "minimum": "1"}"#, .badRequest),      // minimum not a number
        (#"{"name": "p", "title": "P", "type": "string", "colour": 1}"#, .badRequest),          // additional member
        (#"{"name": "p", "title": "P", "type": "string", "schema": "x"}"#, .forbidden),         // read-only member
        (#"{"title": "P", "type": "string"}"#, .badRequest),                                    // no name
        (#"["p"]"#, .badRequest),
    ])
    func badProperties(_ body: String, _ expected: ImageError.Kind) {
        #expect(Self.kind(body) { _ = try MetadefBodies.property($0, namespace: "N", now: 1) } == expected)
    }

    @Test func propertyKeepsItsSchemaWithoutTheName() throws {
        let p = try MetadefBodies.property(try Self.parse(#"{"name": "cores", "title": "Cores", "type": "integer", "minimum": 1, "readonly": false}"#),
                                           namespace: "N", now: 7)
        #expect(p.name == "cores" && p.kind == .property && p.createdAt == 7)
        #expect(p.document == .object([("title", .string("Cores")), ("type", .string("integer")), ("minimum", .int(1)), ("readonly", .bool(false))]))
    }

    @Test func namespaceDocumentBecomesRows() throws {
        let (ns, associations, items) = try MetadefBodies.namespace(try Self.parse("""
            {"namespace": "OS::X", "display_name": "X", "protected": true,
             "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "x_", "properties_target": "image"}],
             "properties": {"a": {"title": "A", "type": "boolean"}},
             "objects": [{"name": "O", "description": "d", "required": ["b"], "properties": {"b": {"title": "B", "type": "string"}}}],
             "tags": [{"name": "t"}]}
            """), owner: "p1", now: 5)
        #expect(ns == MetadefNamespace(namespace: "OS::X", displayName: "X", visibility: "private", isProtected: true, owner: "p1",
                                       createdAt: 5, updatedAt: 5))
        #expect(associations == [MetadefAssociation(namespace: "OS::X", resourceType: "OS::Glance::Image", prefix: "x_",
                                                    propertiesTarget: "image", createdAt: 5, updatedAt: 5)])
        #expect(items.map { "\($0.kind.rawValue):\($0.name)" } == ["property:a", "object:O", "tag:t"])
        #expect(items[1].document["required"] == .array([.string("b")]))
    }

    @Test(arguments: [
        (#"{"display_name": "x"}"#, ImageError.Kind.badRequest),                                 // no namespace
        (#"{"namespace": ""}"#, .badRequest),
        (#"{"namespace": "N", "visibility": "shared"}"#, .badRequest),
        (#"{"namespace": "N", "protected": "yes"}"#, .badRequest),
        (#"{"namespace": "N", "self": "/x"}"#, .forbidden),
        (#"{"namespace": "N", "colour": "red"}"#, .badRequest),
        (#"{"namespace": "N", "tags": [{"name": "t"}, {"name": "t"}]}"#, .conflict),
        (#"{"namespace": "N", "properties": {"p": {"type": "string"}}}"#, .badRequest),
    ])
    func badNamespaces(_ body: String, _ expected: ImageError.Kind) {
        #expect(Self.kind(body) { _ = try MetadefBodies.namespace($0, owner: nil, now: 1) } == expected)
    }

    @Test func namesLongerThanGlancesColumnsAreRefused() {
        let long = String(repeating: "n", count: 81)
        #expect(Self.kind(#"{"namespace": "\#(long)"}"#) { _ = try MetadefBodies.namespace($0, owner: nil, now: 1) } == .badRequest)
        #expect(Self.kind(#"{"namespace": "\#(String(long.dropLast()))"}"#) { _ = try MetadefBodies.namespace($0, owner: nil, now: 1) } == nil)
    }

    @Test func putResetsWhatItLeavesOut() throws {
        let current = MetadefNamespace(namespace: "N", displayName: "D", description: "d", visibility: "public", isProtected: true,
                                       owner: "p1", createdAt: 1, updatedAt: 1)
        let updated = try MetadefBodies.namespaceUpdate(try Self.parse(#"{"namespace": "N2"}"#), current: current, owner: "adm", now: 9)
        #expect(updated == MetadefNamespace(namespace: "N2", visibility: "private", isProtected: false, owner: "adm", createdAt: 1, updatedAt: 9))
    }
}
