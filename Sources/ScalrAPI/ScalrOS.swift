import Foundation
import ImageCore

/// One Operating System of Scalr's catalogue (the `Os` object of `…/os/`): ids as Scalr names them
/// (`ubuntu-22-04`, `centos-7-x`, `windows-2019`), with `name`, `family`, `generation` and `version`.
package struct ScalrOS: Sendable, Equatable {
    package var id: String
    package var name: String
    package var family: String
    package var generation: String
    package var version: String

    package init(_ id: String, _ name: String, _ family: String, _ generation: String, _ version: String) {
        self.id = id; self.name = name; self.family = family; self.generation = generation; self.version = version
    }

    var rendered: JSONValue {
        .object([("id", .string(id)), ("name", .string(name)), ("family", .string(family)), ("generation", .string(generation)),
                 ("version", .string(version))])
    }

    static let filterable = ["id", "name", "family", "generation"]
}

/// The OSes `os.id` is checked against: common OSes seeded as Scalr names them, extended (or an OS
/// withdrawn) by the operator's file (`imaged serve --scalr-os-file FILE`). Scalr has no API that
/// creates OSes (its `/os/` routes only read; its administrators keep the table), so neither has
/// imaged: the file is read at start, the same on every node of a cluster.
public struct ScalrOSCatalogue: Sendable {
    package let systems: [ScalrOS]

    package init(_ systems: [ScalrOS]) { self.systems = systems }

    package func os(_ id: String) -> ScalrOS? { systems.first { $0.id == id } }

    /// Scalr's own ids (its `os` table: `<family>-<major>-<minor>` for Ubuntu, `<family>-<major>-x`
    /// for the others, `windows-<year>`), brought up to the releases in use today.
    public static let seeded = ScalrOSCatalogue([
        ScalrOS("amazon-2015-09", "Amazon Linux 2015.09", "amazon", "2015.09", "2015.09"),
        ScalrOS("amazon-2", "Amazon Linux 2", "amazon", "2", "2"),
        ScalrOS("amazon-2023", "Amazon Linux 2023", "amazon", "2023", "2023"),
        ScalrOS("centos-6-x", "CentOS 6.X Final", "centos", "6", "6.X"),
        ScalrOS("centos-7-x", "CentOS 7.X Final", "centos", "7", "7.X"),
        ScalrOS("centos-8-x", "CentOS 8.X", "centos", "8", "8.X"),
        ScalrOS("debian-8-x", "Debian 8.X Jessie", "debian", "8", "8.X"),
        ScalrOS("debian-9-x", "Debian 9.X Stretch", "debian", "9", "9.X"),
        ScalrOS("debian-10-x", "Debian 10.X Buster", "debian", "10", "10.X"),
        ScalrOS("debian-11-x", "Debian 11.X Bullseye", "debian", "11", "11.X"),
        ScalrOS("debian-12-x", "Debian 12.X Bookworm", "debian", "12", "12.X"),
        ScalrOS("oracle-6-x", "Oracle Enterprise Linux Server 6.X Santiago", "oel", "6", "6.X"),
        ScalrOS("oracle-7-x", "Oracle Linux Server 7.X", "oel", "7", "7.X"),
        ScalrOS("oracle-8-x", "Oracle Linux Server 8.X", "oel", "8", "8.X"),
        ScalrOS("redhat-6-x", "Redhat 6.X Santiago", "redhat", "6", "6.X"),
        ScalrOS("redhat-7-x", "Redhat 7.X Maipo", "redhat", "7", "7.X"),
        ScalrOS("redhat-8-x", "Redhat 8.X Ootpa", "redhat", "8", "8.X"),
        ScalrOS("redhat-9-x", "Redhat 9.X Plow", "redhat", "9", "9.X"),
        ScalrOS("rocky-8-x", "Rocky Linux 8.X", "rocky", "8", "8.X"),
        ScalrOS("rocky-9-x", "Rocky Linux 9.X", "rocky", "9", "9.X"),
        ScalrOS("ubuntu-14-04", "Ubuntu 14.04 Trusty", "ubuntu", "14.04", "14.04"),
        ScalrOS("ubuntu-16-04", "Ubuntu 16.04 Xenial", "ubuntu", "16.04", "16.04"),
        ScalrOS("ubuntu-18-04", "Ubuntu 18.04 Bionic", "ubuntu", "18.04", "18.04"),
        ScalrOS("ubuntu-20-04", "Ubuntu 20.04 Focal", "ubuntu", "20.04", "20.04"),
        ScalrOS("ubuntu-22-04", "Ubuntu 22.04 Jammy", "ubuntu", "22.04", "22.04"),
        ScalrOS("ubuntu-24-04", "Ubuntu 24.04 Noble", "ubuntu", "24.04", "24.04"),
        ScalrOS("windows-2012", "Windows 2012", "windows", "2012", ""),
        ScalrOS("windows-2016", "Windows 2016", "windows", "2016", ""),
        ScalrOS("windows-2019", "Windows 2019", "windows", "2019", ""),
        ScalrOS("windows-2022", "Windows 2022", "windows", "2022", ""),
        ScalrOS("unknown-os", "Unknown", "unknown", "unknown", "unknown"),
    ])

    public struct FileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The seeded catalogue changed by the operator's file: a JSON array of Os objects
    /// (`{"id": "alpine-3-19", "name": "Alpine 3.19", "family": "alpine", "generation": "3", "version": "3.19"}`).
    /// An entry whose id is seeded replaces it; `"status": "inactive"` withdraws the id.
    public static func load(file: String) throws -> ScalrOSCatalogue {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw FileError(description: "--scalr-os-file: cannot read \(file)")
        }
        return try merging(Array(data), source: file)
    }

    package static func merging(_ bytes: [UInt8], source: String) throws -> ScalrOSCatalogue {
        func fail(_ why: String) -> FileError { FileError(description: "--scalr-os-file \(source): \(why)") }
        guard case .array(let entries) = (try? JSONValue.parse(bytes)) ?? .null else {
            throw fail("expected a JSON array of Os objects ({\"id\", \"name\", \"family\", \"generation\", \"version\"})")
        }
        var systems = seeded.systems
        for (n, entry) in entries.enumerated() {
            guard case .object(let members) = entry else { throw fail("entry \(n + 1) is not an object") }
            let unknown = members.map(\.0).filter { !["id", "name", "family", "generation", "version", "status"].contains($0) }
            if let key = unknown.first { throw fail("entry \(n + 1): unknown property '\(key)'") }
            guard let id = entry["id"]?.stringValue, ScalrImage.validOS(id) else {
                throw fail("entry \(n + 1): 'id' must be letters, digits and hyphens (at most 64)")
            }
            let status = entry["status"]?.stringValue ?? "active"
            guard status == "active" || status == "inactive" else { throw fail("entry \(n + 1) (\(id)): 'status' is active or inactive") }
            systems.removeAll { $0.id == id }
            if status == "inactive" { continue }
            var fields: [String] = []
            for key in ["name", "family", "generation", "version"] {
                guard let value = entry[key]?.stringValue else { throw fail("entry \(n + 1) (\(id)): '\(key)' must be a string") }
                fields.append(value)
            }
            guard !fields[0].isEmpty, !fields[1].isEmpty else { throw fail("entry \(n + 1) (\(id)): 'name' and 'family' may not be empty") }
            systems.append(ScalrOS(id, fields[0], fields[1], fields[2], fields[3]))
        }
        return ScalrOSCatalogue(systems)
    }
}
