// The JSON parser every front-end reads request bodies with (ImageCore's JSONValue), and the writer
// every response goes through: whatever parses must serialize to text that parses back to the same
// value, and a document built by `merging` must serialize and parse back too.
import FuzzSupport
import ImageCore

func fuzzOne(_ data: [UInt8]) {
    guard let value = try? JSONValue.parse(data) else {
        _ = try? JSONValue.parse(String(decoding: data, as: UTF8.self))
        return
    }
    let text = value.serialized
    guard let again = try? JSONValue.parse(text) else {
        fatalError("fuzz check failed: serialized JSON does not parse: \(text.prefix(200))")
    }
    require(again == value, "serialized JSON parses to another value: \(text.prefix(200))")
    require(again.serialized == text, "serializing is not stable: \(text.prefix(200))")

    // The vendor documents are updated with `merging`: members replaced in place, others appended.
    if case .object(let members) = value {
        let fields = Array(members.suffix(4).reversed()) + [("added-by-fuzz", JSONValue.null)]
        let merged = JSONValue.merging(value, fields)
        if case .object(let out) = merged {
            require(out.count == members.count + (members.contains { $0.0 == "added-by-fuzz" } ? 0 : 1),
                    "merging changed the object's size wrongly")
        } else {
            fatalError("fuzz check failed: merging did not give an object")
        }
        require((try? JSONValue.parse(merged.serialized)) == merged, "a merged document does not round-trip")
    }
    _ = value.typeName
    _ = value["name"]
}

@main
enum Main {
    static func main() { fuzzMain("FuzzJSON", fuzzOne) }
}
