import Foundation

/// The API time format, `YYYY-MM-DDThh:mm:ssZ`, without Foundation formatters (they are slow and not Sendable).
public enum Timestamp {
    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    public static func format(_ seconds: Int64) -> String {
        let (y, mo, d, h, mi, s) = civil(seconds)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))Z"
    }

    /// `YYYY-MM-DD hh:mm:ss` (UTC, no zone): Avi's event times.
    public static func formatSpaced(_ seconds: Int64) -> String {
        let (y, mo, d, h, mi, s) = civil(seconds)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2)) \(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))"
    }

    /// The UTC calendar fields of an instant, for vendor formats built from them (ZStack's Gson dates).
    public static func components(_ seconds: Int64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        let (y, mo, d, h, mi, s) = civil(seconds)
        return (y, mo, d, h, mi, s)
    }

    /// The instant of UTC calendar fields; nil when a field is out of its range.
    public static func seconds(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) -> Int64? {
        guard (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute),
              (0...60).contains(second), (-9999...9999).contains(year) else { return nil }
        return days(year, month, day) * 86400 + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Glance's task timestamps: no zone, microseconds.
    public static func formatNaive(_ seconds: Int64) -> String {
        let (y, mo, d, h, mi, s) = civil(seconds)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).000000"
    }

    /// Parses ISO 8601: `2026-03-01T12:34:56`, optional fraction, optional `Z` or `±hh:mm`/`±hhmm`
    /// (a missing zone means UTC). Also accepts a date alone.
    public static func parse(_ text: String) -> Int64? {
        let u = Array(text.utf8)
        var i = 0
        func num(_ n: Int) -> Int? {
            guard i + n <= u.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = u[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < u.count, u[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let y = num(4), expect("-"), let mo = num(2), expect("-"), let d = num(2) else { return nil }
        guard (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var h = 0, mi = 0, s = 0
        if i < u.count {
            guard u[i] == UInt8(ascii: "T") || u[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            guard let hh = num(2), expect(":"), let mm = num(2) else { return nil }
            h = hh; mi = mm
            if expect(":") { guard let ss = num(2) else { return nil }; s = ss }
            if expect(".") {
                let start = i
                while i < u.count, u[i] >= 48, u[i] <= 57 { i += 1 }
                guard i > start else { return nil }
            }
        }
        guard h < 24, mi < 60, s < 61 else { return nil }
        var offset = 0
        if i < u.count {
            if u[i] == UInt8(ascii: "Z") || u[i] == UInt8(ascii: "z") {
                i += 1
            } else if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
                let sign = u[i] == UInt8(ascii: "+") ? 1 : -1
                i += 1
                guard let oh = num(2) else { return nil }
                _ = expect(":")
                guard let om = num(2) else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            } else { return nil }
        }
        guard i == u.count else { return nil }
        return days(y, mo, d) * 86400 + Int64(h * 3600 + mi * 60 + s) - Int64(offset)
    }

    // Howard Hinnant's civil-from-days / days-from-civil algorithms.
    static func days(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146097 + doe - 719468)
    }

    @usableFromInline static func civil(_ t: Int64) -> (Int, Int, Int, Int, Int, Int) {
        var z = t / 86400
        var rem = t % 86400
        if rem < 0 { rem += 86400; z -= 1 }
        let zz = Int(z) + 719468
        let era = (zz >= 0 ? zz : zz - 146096) / 146097
        let doe = zz - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        let r = Int(rem)
        return (y, m, d, r / 3600, (r / 60) % 60, r % 60)
    }

    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
