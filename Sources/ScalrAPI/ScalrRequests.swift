import FrontEndSupport
import Identity
import ImageCore

/// How the Scalr handlers decode requests and page lists: pure functions (the fuzzer calls them too).
package enum ScalrRequests {
    /// `GET …/images/`: paging and filters.
    package struct Listing {
        /// Every parameter (the last of a repeated name), for the pagination links.
        package var parameters: [String: String]
        package var maxResults: Int
        package var pageNum: Int
        package var filters: [String: String]
    }

    package static func listing(_ rawQuery: String?, filterable: [String] = ScalrImage.filterable) throws -> Listing {
        var params: [String: String] = [:]
        for (k, v) in ScalrQuery.parse(rawQuery) { params[k] = v }
        var maxResults = 100, pageNum = 1
        if let m = params["maxResults"] {
            guard let n = Int(m), n >= 1, n <= 100 else { throw ScalrFailure.value("Limit should be a positive number less then or equal to 100.") }
            maxResults = n
        }
        if let g = params["pageNum"] {
            guard let n = Int(g), n >= 1 else { throw ScalrFailure.value("Page number should be more than 0.") }
            pageNum = n
        }
        let filters = params.filter { $0.key != "maxResults" && $0.key != "pageNum" }
        if filters.keys.contains(where: { !filterable.contains($0) }) {
            throw ScalrFailure.structure("Unsupported filter. Fields which are available for filtering: [\(filterable.joined(separator: ", "))]")
        }
        if filterable == ScalrImage.filterable {
            if filters["cloudLocation"] != nil && filters["cloudPlatform"] == nil {
                throw ScalrFailure.structure("Both 'cloudPlatform' and 'cloudLocation' filters should be provided with request.")
            }
            if let os = filters["os"], !ScalrImage.validOS(os) { throw ScalrFailure.value("Invalid identifier of the OS") }
            if let scope = filters["scope"] {
                if scope.isEmpty { throw ScalrFailure.value("Invalid scope value") }
                if !["scalr", "account", "environment"].contains(scope) { throw ScalrFailure.value("Unexpected scope value") }
            }
        }
        return Listing(parameters: params, maxResults: maxResults, pageNum: pageNum, filters: filters)
    }

    /// Whether a rendered Image object passes every filter.
    package static func matches(_ rendered: JSONValue, _ filters: [String: String]) -> Bool {
        filters.allSatisfy { ScalrImage.matches(rendered, $0.key, $0.value) }
    }

    /// The page asked for of the matching objects, and the pagination links (on `path`).
    package static func page(_ matching: [JSONValue], _ listing: Listing, path: String) -> (data: JSONValue, pagination: JSONValue) {
        let maxResults = listing.maxResults, pageNum = listing.pageNum, params = listing.parameters
        // A page number past every representable offset is empty, as any page past the end
        // (`(pageNum - 1) * maxResults` overflowed and the trap took the server down).
        let window = PageWindow(page: pageNum, size: maxResults)
        let page = Array(window.slice(matching))
        var pagination: [(String, JSONValue)] = [("first", .null), ("last", .null), ("prev", .null), ("next", .null)]
        if matching.count > maxResults {
            let last = window.lastPage(total: matching.count)
            func link(_ n: Int) -> JSONValue {
                var all = params
                all["maxResults"] = String(maxResults)
                all["pageNum"] = String(n)
                return .string(path + "?" + ScalrSignature.canonicalQuery(all.map { "\($0.key)=\(ScalrSignature.encode($0.value))" }.joined(separator: "&")))
            }
            pagination = [("first", link(1)), ("last", link(last)), ("prev", pageNum > 1 ? link(min(pageNum - 1, last)) : .null),
                          ("next", pageNum < last ? link(pageNum + 1) : .null)]
        }
        return (.array(page), .object(pagination))
    }

    static func object(_ body: [UInt8]) throws -> [(String, JSONValue)] {
        guard case .object(let members) = (try? JSONValue.parse(body)) ?? .null else { throw ScalrFailure.structure("Invalid body") }
        return members
    }

    static func unknown(_ keys: [String], alterable: Bool) -> ScalrFailure {
        if alterable {
            return keys.count == 1
                ? .structure("You are trying to set the property \(keys[0]) which either is not alterable or does not exist")
                : .structure("You are trying to set properties \(keys.joined(separator: ", ")) that either are not alterable or do not exist")
        }
        return keys.count == 1
            ? .structure("You are trying to set the property \(keys[0]) which does not exist.")
            : .structure("You are trying to set the properties \(keys.joined(separator: ", ")) which do not exist.")
    }

    static func checkText(_ members: [(String, JSONValue)]) throws {
        for (k, v) in members {
            if let s = v.stringValue, ScalrImage.hasTags(s) { throw ScalrFailure.value("Property \(k) contains invalid characters.") }
            if case .object(let inner) = v { try checkText(inner) }
        }
    }

    /// `POST …/images/`: the Image object to register in `scope`, checked field by field.
    package struct Registration {
        package var name: String
        package var platform: String
        package var location: String?
        package var cloudImageId: String
        package var architecture: String
        package var os: String
        package var features: JSONValue?
        package var flags: [(String, JSONValue)]
        /// Root disk size in GB and EC2's image type (`ebs`, `ebs-hvm`, …), stored as given: imaged
        /// does not look the image up on its cloud.
        package var size: Int64?
        package var type: String?
    }

    /// EC2 image types (the `type` member).
    static let ec2Types = ["ebs", "ebs-hvm", "instance-store", "instance-store-hvm"]
    /// `cloudFeatures.type` and the platform each concrete type belongs to (nil: any platform).
    static let featureTypes: [String: String?] = ["ImageCloudFeatures": nil, "AwsImageCloudFeatures": "ec2", "VmwareImageCloudFeatures": "vmware"]

    /// `cloudFeatures`, checked: a known type, the members of that type, and a type that fits the
    /// platform (else 422 ConfigurationMismatch, Scalr's answer for settings that conflict).
    static func cloudFeatures(_ given: JSONValue, platform: String, type: String?) throws -> JSONValue {
        guard case .object(let members) = given else { throw ScalrFailure.value("Property cloudFeatures must be an object.") }
        guard let kind = given["type"]?.stringValue else { throw ScalrFailure.structure("Missed property 'cloudFeatures.type'") }
        guard let home = featureTypes[kind] else { throw ScalrFailure.value("Invalid cloudFeatures.type value") }
        let allowed = kind == "AwsImageCloudFeatures" ? ["type", "virtualization"] : kind == "VmwareImageCloudFeatures" ? ["type", "vCenterHost"] : ["type"]
        let unknown = members.map(\.0).filter { !allowed.contains($0) }.map { "cloudFeatures.\($0)" }
        if !unknown.isEmpty { throw Self.unknown(unknown, alterable: false) }
        if let home, home != platform {
            throw ScalrFailure.mismatch("cloudFeatures of type \(kind) cannot be applied to an Image on the \(platform) platform.")
        }
        if let v = given["virtualization"] {
            guard let s = v.stringValue, s == "hvm" || s == "paravirtual" else { throw ScalrFailure.value("Invalid cloudFeatures.virtualization value") }
            if let type, type.hasSuffix("-hvm") != (s == "hvm") {
                throw ScalrFailure.mismatch("The Image type \(type) conflicts with cloudFeatures.virtualization \(s).")
            }
        }
        if let v = given["vCenterHost"], v.stringValue?.isEmpty ?? true { throw ScalrFailure.value("Invalid cloudFeatures.vCenterHost value") }
        return given
    }

    package static func registration(_ body: [UInt8], scope: ScalrScope, systems: ScalrOSCatalogue = .seeded) throws -> Registration {
        let members = try object(body)
        let unknown = members.map(\.0).filter { !ScalrImage.writable.contains($0) && !ScalrImage.readOnly.contains($0) }
        if !unknown.isEmpty { throw Self.unknown(unknown, alterable: false) }
        try checkText(members)
        let b = JSONValue.object(members)
        if let given = b["scope"], given != .null, given.stringValue != scope.name { throw ScalrFailure.value("Invalid scope") }
        guard let name = b["name"]?.stringValue else { throw ScalrFailure.structure("Missed property 'name'") }
        guard ScalrImage.validName(name) else { throw ScalrFailure.value("Invalid name of the Image") }
        guard let platform = b["cloudPlatform"]?.stringValue else { throw ScalrFailure.structure("Missed property platform") }
        guard ScalrImage.platforms.contains(platform) else { throw ScalrFailure.structure("Unexpected platform value") }
        // Mistyped optional members are refused like every other one, not silently dropped.
        if let given = b["cloudLocation"], given != .null, given.stringValue == nil { throw ScalrFailure.value("Property cloudLocation must be a string.") }
        if let given = b["cloudFeatures"], given != .null {
            guard case .object = given else { throw ScalrFailure.value("Property cloudFeatures must be an object.") }
        }
        var size: Int64?
        if let given = b["size"], given != .null {
            guard case .int(let n) = given, n >= 1 else { throw ScalrFailure.value("Property size must be a positive integer.") }
            size = n
        }
        var type: String?
        if let given = b["type"], given != .null {
            guard let t = given.stringValue, Self.ec2Types.contains(t) else {
                throw ScalrFailure.value("Invalid type of the Image: one of \(Self.ec2Types.joined(separator: ", ")).")
            }
            type = t
        }
        let location = b["cloudLocation"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        if location == nil && !ScalrImage.locationless.contains(platform) { throw ScalrFailure.structure("Missed property 'cloudLocation'") }
        guard let cloudImageId = b["cloudImageId"]?.stringValue, !cloudImageId.isEmpty else { throw ScalrFailure.structure("Missed property 'cloudImageId'") }
        guard let architecture = b["architecture"]?.stringValue else { throw ScalrFailure.structure("Missed property 'architecture'") }
        guard architecture == "i386" || architecture == "x86_64" else { throw ScalrFailure.value("Invalid architecture value") }
        guard let os = b["os"]?["id"]?.stringValue ?? b["os"]?.stringValue else { throw ScalrFailure.structure("Missed property 'os.id'") }
        guard ScalrImage.validOS(os) else { throw ScalrFailure.value("Invalid identifier of the OS") }
        guard systems.os(os) != nil else { throw ScalrFailure.value("OS with id '\(os)' not found.") }
        if let type, platform != "ec2" {
            throw ScalrFailure.mismatch("The Image type \(type) is only used on the ec2 platform, not on \(platform).")
        }
        var flags: [(String, JSONValue)] = []
        for key in ["scalrAgentInstalled", "cloudInitInstalled", "deprecated"] {
            guard let v = b[key], v != .null else { continue }
            guard case .bool = v else { throw ScalrFailure.value("Property \(key) must be a boolean.") }
            flags.append((key, v))
        }
        var features: JSONValue?
        if let f = b["cloudFeatures"], f != .null { features = try cloudFeatures(f, platform: platform, type: type) }
        return Registration(name: name, platform: platform, location: location, cloudImageId: cloudImageId,
                            architecture: architecture, os: os, features: features, flags: flags, size: size, type: type)
    }

    /// `PATCH …/images/<id>`: the members, refused when they name anything but the alterable fields.
    package static func edit(_ body: [UInt8]) throws -> [(String, JSONValue)] {
        let members = try object(body)
        let refused = members.map(\.0).filter { !ScalrImage.alterable.contains($0) }
        if !refused.isEmpty { throw unknown(refused, alterable: true) }
        try checkText(members)
        return members
    }

    /// What an edit changes: the core's name, the scalr document's `deprecated`.
    package static func editChanges(_ members: [(String, JSONValue)]) throws -> (changes: [ImageChange], document: [(String, JSONValue)]) {
        let b = JSONValue.object(members)
        var changes: [ImageChange] = []
        if let name = b["name"] {
            guard let s = name.stringValue, ScalrImage.validName(s) else { throw ScalrFailure.value("Invalid name of the Image") }
            changes.append(ImageChange(.replace, "name", .string(s)))
        }
        var document: [(String, JSONValue)] = []
        if let deprecated = b["deprecated"] {
            guard case .bool = deprecated else { throw ScalrFailure.value("Property deprecated must be a boolean.") }
            document.append(("deprecated", deprecated))
        }
        return (changes, document)
    }

    /// `DELETE …/images/<id>?deleteFromCloud=…`: whether the cloud's image is to be deleted too.
    package static func deletesFromCloud(_ rawQuery: String?) -> Bool {
        let flag = ScalrQuery.parse(rawQuery).last { $0.0 == "deleteFromCloud" || $0.0 == "cloudDelete" }?.1 ?? ""
        return !(flag.isEmpty || flag == "0" || flag.lowercased() == "false")
    }
}
