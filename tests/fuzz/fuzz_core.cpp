// libFuzzer target: CoreFile::fromBytes (core_file.h) on the input, then every accessor,
// maps(), and CoreMemory reads around each segment's and file mapping's edges with a
// locator that finds no file. FatalError (not a core, truncated, inconsistent) is an
// expected outcome; anything else that escapes, or a crash, is a bug.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "pyspy/common/error.h"
#include "pyspy/process/core_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    volatile std::size_t sink = 0;
    try {
        auto core = std::make_shared<const pyspy::CoreFile>(
            pyspy::CoreFile::fromBytes(std::span<const std::uint8_t>(data, size), "fuzz"));
        sink = sink + static_cast<std::size_t>(core->pid()) + core->command().size() + core->arguments().size();
        for (const auto& thread : core->threads()) {
            sink = sink + static_cast<std::size_t>(thread.tid) + thread.pc() + thread.sp() + thread.syscallArgs()[5];
        }
        sink = sink + static_cast<std::size_t>(core->crash().signal) + core->crash().faultAddress.value_or(0);
        for (const std::uint64_t type : {3, 6, 9, 31})
            sink = sink + core->auxv(type).value_or(0);  // PHDR, PAGESZ, ENTRY, EXECFN
        sink = sink + core->executablePath().size() + core->truncated();
        for (const auto& mapping : core->maps()) sink = sink + mapping.offset + mapping.path.size();
        sink = sink + core->bytes(size / 2, size).size();

        const pyspy::CoreMemory memory(core, [](const std::string&) { return std::string(); });
        std::array<std::uint8_t, 256> buffer{};
        auto probe = [&](std::uint64_t address, std::size_t length) {
            sink = sink + memory.read(address, buffer.data(), std::min(length, buffer.size())).ok();
        };
        std::size_t probes = 0;
        for (const auto& segment : core->segments()) {
            if (++probes > 64) break;
            probe(segment.vaddr, 256);
            probe(segment.vaddr + segment.fileSize - 8, 16);
            probe(segment.vaddr + segment.memSize - 1, 2);
        }
        for (const auto& file : core->fileMappings()) {
            if (++probes > 128) break;
            probe(file.start, 32);
            probe(file.end - 4, 8);
        }
        probe(~std::uint64_t{0} - 3, 8);
    } catch (const pyspy::FatalError&) {
    }
    return 0;
}
