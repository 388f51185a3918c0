import ImageCore

/// Glance's metadef schemas (`/v2/schemas/metadefs/*`), composed as Glance's `glance/api/v2/metadef_*.py`
/// `get_schema()` / `get_collection_schema()` compose them from `glance/schema.py`'s shapes, so each
/// document is Glance's to the member order.
enum MetadefSchemas {
    static let documents: [String: String] = [
        "namespace": namespace.serialized, "namespaces": collection("namespaces", of: namespace).serialized,
        "resource_type": resourceType.serialized,
        "resource_types": collection("resource_type_associations", of: resourceType).serialized,
        "property": property(required: ["type", "title", "name"]).serialized,
        "properties": dictionary("properties", of: property(required: ["type", "title"])).serialized,
        "object": object.serialized, "objects": collection("objects", of: object).serialized,
        "tag": tag.serialized, "tags": collection("tags", of: tag).serialized,
    ]

    // MARK: glance/schema.py

    /// `Schema.raw()`: name, properties, no other members, then definitions and required when given.
    static func schema(_ name: String, _ properties: JSONValue, required: [String], definitions: JSONValue? = nil) -> JSONValue {
        var members: [(String, JSONValue)] = [("name", .string(name)), ("properties", properties),
                                              ("additionalProperties", .bool(false))]
        if let definitions { members.append(("definitions", definitions)) }
        members.append(("required", .array(required.map { .string($0) })))
        return .object(members)
    }

    /// `CollectionSchema.raw()`: an array of `item` under `name`, with paging links.
    static func collection(_ name: String, of item: JSONValue) -> JSONValue {
        paged(name, item, [("type", .string("array")), ("items", withoutDefinitions(item))])
    }

    /// `DictCollectionSchema.raw()`: as a collection, but an object of items keyed by their names.
    static func dictionary(_ name: String, of item: JSONValue) -> JSONValue {
        paged(name, item, [("type", .string("object")), ("additionalProperties", withoutDefinitions(item))])
    }

    /// The item's definitions move up to the collection (Glance lifts them out while it renders).
    static func paged(_ name: String, _ item: JSONValue, _ items: [(String, JSONValue)]) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("name", .string(name)),
            ("properties", .object([(name, .object(items)), ("first", string), ("next", string), ("schema", string)])),
            ("links", json(#"[{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}]"#)),
        ]
        if let definitions = item["definitions"] { members.append(("definitions", definitions)) }
        return .object(members)
    }

    static func withoutDefinitions(_ schema: JSONValue) -> JSONValue {
        guard case .object(let members) = schema else { return schema }
        return .object(members.filter { $0.0 != "definitions" })
    }

    // MARK: Shared pieces

    static let string = json(#"{"type": "string"}"#)
    static let readOnlyString = json(#"{"readOnly": true, "type": "string"}"#)
    static let propertyRef = json(##"{"$ref": "#/definitions/property"}"##)
    static let stringArrayRef = json(##"{"$ref": "#/definitions/stringArray"}"##)

    static func name(maxLength: Int64) -> JSONValue { .object([("type", .string("string")), ("maxLength", .int(maxLength))]) }

    static func described(_ description: String, maxLength: Int64) -> JSONValue {
        .object([("type", .string("string")), ("description", .string(description)), ("maxLength", .int(maxLength))])
    }

    /// `created_at` / `updated_at` of a thing ("Date and time of <creation>").
    static func times(_ creation: String, _ modification: String) -> [(String, JSONValue)] {
        func time(_ what: String) -> JSONValue {
            .object([("type", .string("string")), ("readOnly", .bool(true)), ("description", .string("Date and time of " + what)),
                     ("format", .string("date-time"))])
        }
        return [("created_at", time(creation)), ("updated_at", time(modification))]
    }

    /// metadef_namespaces.get_schema_definitions(); metadef_properties' own copy has `minItems: 1` on stringArray.
    static func definitions(minItems: Bool, property: Bool) -> JSONValue {
        var stringArray: [(String, JSONValue)] = [("type", .string("array")), ("items", string)]
        if minItems { stringArray.append(("minItems", .int(1))) }
        stringArray.append(("uniqueItems", .bool(true)))
        var members: [(String, JSONValue)] = [
            ("positiveInteger", json(#"{"type": "integer", "minimum": 0}"#)),
            ("positiveIntegerDefault0", json(##"{"allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]}"##)),
            ("stringArray", .object(stringArray)),
        ]
        if property {
            members.append(("property", .object([
                ("type", .string("object")),
                ("additionalProperties", .object([("type", .string("object")), ("required", json(#"["title", "type"]"#)),
                                                  ("properties", propertyProperties)])),
            ])))
        }
        return .object(members)
    }

    /// What a property definition may hold (the `property` definition's item properties).
    static let propertyProperties = json(##"""
    {
      "name": {"type": "string", "maxLength": 80},
      "title": {"type": "string"},
      "description": {"type": "string"},
      "operators": {"type": "array", "items": {"type": "string"}},
      "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", null]},
      "required": {"$ref": "#/definitions/stringArray"},
      "minimum": {"type": "number"},
      "maximum": {"type": "number"},
      "maxLength": {"$ref": "#/definitions/positiveInteger"},
      "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
      "pattern": {"type": "string", "format": "regex"},
      "enum": {"type": "array"},
      "readonly": {"type": "boolean"},
      "default": {},
      "items": {
        "type": "object",
        "properties": {
          "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", null]},
          "enum": {"type": "array"}
        }
      },
      "maxItems": {"$ref": "#/definitions/positiveInteger"},
      "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
      "uniqueItems": {"type": "boolean", "default": false},
      "additionalItems": {"type": "boolean"}
    }
    """##)

    // MARK: The five schemas (glance/api/v2/metadef_*.py get_schema())

    static let namespace = schema("namespace", .object([
        ("namespace", described("The unique namespace text.", maxLength: 80)),
        ("display_name", described("The user friendly name for the namespace. Used by UI if available.", maxLength: 80)),
        ("description", described("Provides a user friendly description of the namespace.", maxLength: 500)),
        ("visibility", json(#"{"type": "string", "description": "Scope of namespace accessibility.", "enum": ["public", "private"]}"#)),
        ("protected", json(#"{"type": "boolean", "description": "If true, namespace will not be deletable."}"#)),
        ("owner", described("Owner of the namespace.", maxLength: 255)),
    ] + times("namespace creation", "the last namespace modification") + [
        ("schema", readOnlyString),
        ("self", readOnlyString),
        ("resource_type_associations", arrayOfObjects([("name", string), ("prefix", string), ("properties_target", string)])),
        ("properties", propertyRef),
        ("objects", arrayOfObjects([("name", string), ("description", string), ("required", stringArrayRef),
                                    ("properties", propertyRef)])),
        ("tags", arrayOfObjects([("name", string)])),
    ]), required: ["namespace"], definitions: definitions(minItems: false, property: true))

    static func arrayOfObjects(_ properties: [(String, JSONValue)]) -> JSONValue {
        .object([("type", .string("array")), ("items", .object([("type", .string("object")), ("properties", .object(properties))]))])
    }

    static let resourceType = schema("resource_type_association", .object([
        ("name", described("Resource type names should be aligned with Heat resource types whenever possible: "
                           + "https://docs.openstack.org/heat/latest/template_guide/openstack.html", maxLength: 80)),
        ("prefix", described("Specifies the prefix to use for the given resource type. Any properties in the namespace "
                             + "should be prefixed with this prefix when being applied to the specified resource type. "
                             + "Must include prefix separator (e.g. a colon :).", maxLength: 80)),
        ("properties_target", described("Some resource types allow more than one key / value pair per instance.  For example, "
                                        + "Cinder allows user and image metadata on volumes. Only the image properties metadata "
                                        + "is evaluated by Nova (scheduling or drivers). This property allows a namespace "
                                        + "target to remove the ambiguity.", maxLength: 80)),
    ] + times("resource type association", "the last resource type association modification")), required: ["name"])

    /// A property alone names itself (`name` required); in a collection its name is the key.
    static func property(required: [String]) -> JSONValue {
        schema("property", propertyProperties, required: required, definitions: definitions(minItems: true, property: false))
    }

    static let object = schema("object", .object([
        ("name", name(maxLength: 80)),
        ("description", string),
        ("required", stringArrayRef),
        ("properties", propertyRef),
        ("schema", readOnlyString),
        ("self", readOnlyString),
    ] + times("object creation", "the last object modification")), required: ["name"], definitions: definitions(minItems: false, property: true))

    static let tag = schema("tag", .object([("name", name(maxLength: 80))] + times("tag creation", "the last tag modification")),
                            required: ["name"])

    /// A fragment written as JSON (as Glance writes these dicts); a malformed one is a programming error.
    static func json(_ text: String) -> JSONValue {
        do { return try JSONValue.parse(text) } catch { preconditionFailure("metadef schema fragment: \(error)") }
    }
}
