// libFuzzer target: ElfFile (elf_file.h) on a file holding the input bytes (a memfd,
// opened through /proc/self/fd). FatalError (not an ELF file, malformed) is an
// expected outcome; anything else that escapes, or a crash, is a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "pyspy/common/error.h"
#include "pyspy/elf/elf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const int fd = ::memfd_create("fuzz_elf", MFD_CLOEXEC);
    if (fd < 0) __builtin_trap();
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) __builtin_trap();
        done += static_cast<std::size_t>(n);
    }
    volatile std::size_t sink = 0;
    try {
        auto elf = pyspy::ElfFile::open("/proc/self/fd/" + std::to_string(fd));
        for (const char* name : {"_PyRuntime", "Py_GetVersion", "PyUnicode_Type", "interp_head", "main", "x"}) {
            if (auto symbol = elf.findSymbol(name)) {
                sink = sink + symbol->value;
                if (auto bytes = elf.readAtAddress(symbol->value, std::min<std::uint64_t>(symbol->size + 1, 4096))) {
                    sink = sink + bytes->size();
                }
            }
        }
        for (const char* name : {".data", ".bss", ".PyRuntime", ".text"}) {
            if (auto section = elf.findSection(name)) sink = sink + section->size;
        }
        sink = sink + elf.sections().size() + elf.hasSymbolTable();
        for (const auto& segment : elf.loadSegments()) {
            if (auto bytes = elf.readAtAddress(segment.vaddr, 64)) sink = sink + bytes->size();
            if (auto bias = elf.loadBias(0x555555554000 + (segment.offset & ~0xfffULL), segment.offset & ~0xfffULL)) {
                sink = sink + *bias;
            }
        }
        if (auto bias = elf.loadBias(0x7f0000000000, 0)) sink = sink + *bias;
    } catch (const pyspy::FatalError&) {
    }
    ::close(fd);
    return 0;
}
