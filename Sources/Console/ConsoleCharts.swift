/// Charts drawn by the server as inline SVG: no script, no external file, readable without colour
/// (each bar carries its value as text) and by screen readers (a `<title>` and a hidden table).
/// Presentation is attributes and classes only: the CSP forbids inline `style`.
enum ConsoleCharts {
    struct Bar: Sendable {
        let label: String
        let value: Int64
        let note: String
    }

    // Drawn about the size it is shown at in a third of a laptop screen, so its text stays legible.
    static let width = 420
    static let labelWidth = 120
    static let valueWidth = 90
    static let rowHeight = 26

    /// A horizontal bar chart, largest first; at most `limit` bars (the rest summed into "others").
    static func bars(id: String, title: String, _ input: [Bar], limit: Int = 12, unit: (Int64) -> String) -> HTML {
        var bars = input.filter { $0.value > 0 }.sorted { ($0.value, $1.label) > ($1.value, $0.label) }
        if bars.count > limit {
            let rest = bars[(limit - 1)...]
            let images = rest.count
            bars = Array(bars.prefix(limit - 1)) + [Bar(label: "\(images) others", value: rest.reduce(0) { $0 + $1.value }, note: "")]
        }
        guard let largest = bars.first?.value, largest > 0 else {
            return "<figure class=\"chart\" id=\"\(id)\"><figcaption>\(title)</figcaption><p class=\"none\">Nothing stored yet.</p></figure>"
        }
        let span = width - labelWidth - valueWidth
        let height = bars.count * rowHeight + 4
        let rows: [HTML] = bars.enumerated().map { index, bar in
            let y = index * rowHeight + 2
            // At least one pixel, so a tiny share is still seen.
            let length = max(1, Int((Double(bar.value) / Double(largest) * Double(span)).rounded()))
            return """
                <g class="bar"><title>\(bar.label): \(unit(bar.value))\(bar.note.isEmpty ? "" : " (\(bar.note))")</title>\
                <text x="\(labelWidth - 8)" y="\(y + 17)" text-anchor="end" class="label">\(short(bar.label))</text>\
                <rect x="\(labelWidth)" y="\(y + 4)" width="\(length)" height="\(rowHeight - 8)" rx="2" class="c\(index % 6)"></rect>\
                <text x="\(labelWidth + length + 6)" y="\(y + 17)" class="value">\(unit(bar.value))</text></g>
                """
        }
        let table: [HTML] = bars.map { "<tr><th scope=\"row\">\($0.label)</th><td>\(unit($0.value))</td><td>\($0.note)</td></tr>" }
        return """
            <figure class="chart" id="\(id)">
            <figcaption>\(title)</figcaption>
            <svg viewBox="0 0 \(width) \(height)" width="\(width)" height="\(height)" role="img" aria-label="\(title)" xmlns="http://www.w3.org/2000/svg">
            <title>\(title)</title>
            \(rows)
            </svg>
            <table class="visually-hidden"><caption>\(title)</caption>\(table)</table>
            </figure>
            """
    }

    /// Labels longer than the label column are cut (the full text is in the bar's title).
    static func short(_ label: String) -> String {
        label.count > 16 ? String(label.prefix(15)) + "…" : label
    }
}
