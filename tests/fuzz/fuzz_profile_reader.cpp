// libFuzzer target: parseProfile (profile_reader.h), what `diff` reads: raw, speedscope
// and pprof (gzip'd or not), the format told by the content. An error result is an
// expected outcome; a crash, a leak, a hang or an exception escaping is a bug. The
// limits are small so a decompression bomb or a deep stack meets them quickly.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pyspy/output/profile_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    pyspy::ProfileReadLimits limits;
    limits.maxBytes = 4 << 20;
    limits.maxStackDepth = 4096;
    limits.maxFramesTotal = 1 << 20;
    const auto result = pyspy::parseProfile(std::string_view(reinterpret_cast<const char*>(data), size), limits);
    volatile std::uint64_t sink = 0;
    if (result) {
        sink = sink + result->samples() + result->frames.size() + result->trie.size();
        result->trie.forEachStack([&](std::span<const pyspy::FrameId> stack, std::uint64_t count) {
            for (const pyspy::FrameId f : stack) sink = sink + result->frames.at(f).size();
            sink = sink + count;
        });
    }
    return 0;
}
