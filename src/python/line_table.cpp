#include "pyspy/python/line_table.h"

#include <cstddef>
#include <limits>

namespace pyspy {

namespace {

std::optional<int> asLine(std::int64_t line) {
    if (line < std::numeric_limits<int>::min() || line > std::numeric_limits<int>::max()) return std::nullopt;
    return static_cast<int>(line);
}

// co_lnotab (2.7 - 3.9): (address increment, line increment) byte pairs. The line of
// an offset is firstlineno plus the line increments of every pair whose cumulative
// address is <= the offset. The table does not know the bytecode's length, so an
// offset past the last pair gets the last line, as in the interpreter.
std::optional<int> lineFromLnotab(std::span<const std::uint8_t> table, int firstLineNo, int byteOffset,
                                  bool signedLineIncrement) {
    std::int64_t line = firstLineNo;
    std::int64_t address = 0;
    for (std::size_t i = 0; i + 1 < table.size(); i += 2) {
        address += table[i];
        if (address > byteOffset) break;
        const std::uint8_t increment = table[i + 1];
        line += signedLineIncrement ? static_cast<std::int8_t>(increment) : increment;
    }
    return asLine(line);
}

// co_linetable (3.10, PEP 626): (start delta in bytes, signed line delta) byte pairs,
// each describing the range [end, end + delta); a line delta of -128 means the range
// has no line (and leaves the running line unchanged).
std::optional<int> lineFromLinetable310(std::span<const std::uint8_t> table, int firstLineNo, int byteOffset) {
    std::int64_t line = firstLineNo;
    std::int64_t end = 0;
    for (std::size_t i = 0; i + 1 < table.size(); i += 2) {
        const std::int64_t start = end;
        end += table[i];
        const auto lineDelta = static_cast<std::int8_t>(table[i + 1]);
        const bool hasLine = lineDelta != -128;
        if (hasLine) line += lineDelta;
        if (byteOffset >= start && byteOffset < end) {
            if (!hasLine) return std::nullopt;
            return asLine(line);
        }
    }
    return std::nullopt;  // past the code the table describes
}

// Reader of the PEP 657 location table (3.11+). Entries start with a byte whose top
// bit is set; the following bytes of an entry have it clear.
class LocationReader {
  public:
    explicit LocationReader(std::span<const std::uint8_t> table) : table_(table) {}

    bool atEnd() const { return pos_ >= table_.size(); }
    std::uint8_t next() { return table_[pos_++]; }

    // Unsigned varint: 6-bit chunks, least significant first, bit 6 = more follows.
    // A truncated or overlong varint (more than CPython writes for 32 bits) fails.
    std::optional<std::uint64_t> varint() {
        std::uint64_t value = 0;
        for (int shift = 0; shift <= 36; shift += 6) {
            if (atEnd()) return std::nullopt;
            const std::uint8_t byte = next();
            if ((byte & 0x80) != 0) return std::nullopt;  // the next entry started: corrupt
            value |= std::uint64_t{byte & 0x3fu} << shift;
            if ((byte & 0x40) == 0) return value;
        }
        return std::nullopt;
    }

    std::optional<std::int64_t> svarint() {
        auto raw = varint();
        if (!raw) return std::nullopt;
        const auto magnitude = static_cast<std::int64_t>(*raw >> 1);
        return (*raw & 1) != 0 ? -magnitude : magnitude;
    }

    bool skip(std::size_t count) {
        if (table_.size() - pos_ < count) return false;
        pos_ += count;
        return true;
    }

  private:
    std::span<const std::uint8_t> table_;
    std::size_t pos_ = 0;
};

std::optional<int> lineFromLocations311(std::span<const std::uint8_t> table, int firstLineNo, int byteOffset) {
    // The table counts in code units (2 bytes), including inline cache entries.
    const std::int64_t unit = byteOffset / 2;
    LocationReader reader(table);
    std::int64_t line = firstLineNo;
    std::int64_t start = 0;
    while (!reader.atEnd()) {
        const std::uint8_t first = reader.next();
        if ((first & 0x80) == 0) return std::nullopt;  // not an entry start: corrupt table
        const int code = (first >> 3) & 0x0f;
        const std::int64_t end = start + (first & 0x07) + 1;
        bool hasLine = true;
        if (code <= 9) {  // short form: same line, one byte of columns
            if (!reader.skip(1)) return std::nullopt;
        } else if (code <= 12) {  // one-line form: line delta 0..2, start and end column bytes
            line += code - 10;
            if (!reader.skip(2)) return std::nullopt;
        } else if (code == 13) {  // no column info: line delta only
            auto delta = reader.svarint();
            if (!delta) return std::nullopt;
            line += *delta;
        } else if (code == 14) {  // long form: line delta, end line delta, start and end columns
            auto delta = reader.svarint();
            if (!delta || !reader.varint() || !reader.varint() || !reader.varint()) return std::nullopt;
            line += *delta;
        } else {  // 15: no location
            hasLine = false;
        }
        if (unit >= start && unit < end) {
            if (!hasLine) return std::nullopt;
            return asLine(line);
        }
        start = end;
    }
    return std::nullopt;  // past the code the table describes
}

}  // namespace

LineTableFormat lineTableFormatFor(int major, int minor) {
    if (major < 3 || (major == 3 && minor <= 5)) return LineTableFormat::Lnotab27;
    if (major == 3 && minor <= 9) return LineTableFormat::Lnotab36;
    if (major == 3 && minor == 10) return LineTableFormat::Linetable310;
    return LineTableFormat::Locations311;
}

std::optional<int> lineForOffset(LineTableFormat format, std::span<const std::uint8_t> table, int firstLineNo,
                                 int byteOffset) {
    if (byteOffset < 0) return firstLineNo;  // not started yet: CPython reports the first line too
    switch (format) {
        case LineTableFormat::Lnotab27:
            return lineFromLnotab(table, firstLineNo, byteOffset, false);
        case LineTableFormat::Lnotab36:
            return lineFromLnotab(table, firstLineNo, byteOffset, true);
        case LineTableFormat::Linetable310:
            return lineFromLinetable310(table, firstLineNo, byteOffset);
        case LineTableFormat::Locations311:
            return lineFromLocations311(table, firstLineNo, byteOffset);
    }
    return std::nullopt;
}

}  // namespace pyspy
