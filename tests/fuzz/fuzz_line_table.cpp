// libFuzzer target: the line-table decoders of every format (line_table.h).
// Input: byte 0 picks the format, bytes 1-2 the first line, bytes 3-4 an offset; the
// rest is the table. Every offset the table could describe is looked up too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <span>

#include "pyspy/python/line_table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    constexpr pyspy::LineTableFormat kFormats[] = {pyspy::LineTableFormat::Lnotab27, pyspy::LineTableFormat::Lnotab36,
                                                   pyspy::LineTableFormat::Linetable310,
                                                   pyspy::LineTableFormat::Locations311};
    const auto format = kFormats[data[0] % 4];
    std::int16_t firstLine = 0;
    std::int16_t offset = 0;
    std::memcpy(&firstLine, data + 1, 2);
    std::memcpy(&offset, data + 3, 2);
    const std::span<const std::uint8_t> table(data + 5, size - 5);

    volatile unsigned sink = 0;  // unsigned: huge lines from a corrupt table must not overflow here
    auto look = [&](int byteOffset) {
        if (auto line = pyspy::lineForOffset(format, table, firstLine, byteOffset)) {
            sink = sink + static_cast<unsigned>(*line);
        }
    };
    look(offset);
    look(-1);
    look(0x7fffffff);
    // Offsets across what the table could describe (2 bytes per code unit), at most
    // 129 of them so that a long table stays fast.
    const int span = static_cast<int>(std::min<std::size_t>(table.size() * 16 + 16, 1 << 16));
    const int step = std::max(2, (span / 128) & ~1);
    for (int o = 0; o <= span; o += step) look(o);
    return 0;
}
