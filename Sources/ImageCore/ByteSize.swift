import Foundation

/// Sizes as operators write them: `4096`, `512MiB`, `10GiB`, `1T` (binary units; `B` and `iB` optional).
public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let digits = t.prefix { $0.isNumber }
        var unit = t.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()
        if unit.hasSuffix("IB") { unit = String(unit.dropLast(2)) } else if unit.hasSuffix("B") { unit = String(unit.dropLast()) }
        let shifts: [String: Int64] = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50]
        guard let n = Int64(digits), let shift = shifts[unit], n <= (Int64.max >> shift) else { return nil }
        return n << shift
    }
}
