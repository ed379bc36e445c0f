// make_corpus: saves, from a live Python process, the memory that the fuzz targets'
// calls read (fuzz_ops.h), as a memory image (fuzz_image.h) for the seed corpus.
//   make_corpus frames  PID OUT            roots = every thread's current frame
//   make_corpus objects PID OUT ADDRESS... roots = the given objects (decimal ids)
// The process is paused (ptrace) while it is read. Driven by snapshot_memory.py.
// Also `make_corpus cores DIR`: writes fuzz_core's seeds, small synthetic cores
// (tests/unit/process/synthetic_core.h), into DIR (tests/fuzz/corpus/core/).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../unit/process/synthetic_core.h"
#include "fuzz_image.h"
#include "fuzz_ops.h"
#include "pyspy/common/error.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/process/ptrace.h"
#include "pyspy/python/python_process.h"

namespace {

using namespace pyspy;

// Forwards reads to another ProcessMemory and remembers every byte that was read.
class RecordingMemory : public ProcessMemory {
  public:
    explicit RecordingMemory(const ProcessMemory& inner) : inner_(inner) {}
    Status read(std::uint64_t address, void* out, std::size_t size) const override {
        Status status = inner_.read(address, out, size);
        if (status.ok()) {
            const auto* bytes = static_cast<const std::uint8_t*>(out);
            for (std::size_t i = 0; i < size; ++i) bytes_[address + i] = bytes[i];
        }
        return status;
    }
    // Adjacent bytes merged into segments.
    std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> segments() const {
        std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> out;
        for (const auto& [address, byte] : bytes_) {
            if (out.empty() || out.back().first + out.back().second.size() != address) out.push_back({address, {}});
            out.back().second.push_back(byte);
        }
        return out;
    }

  private:
    const ProcessMemory& inner_;
    mutable std::map<std::uint64_t, std::uint8_t> bytes_;
};

std::uint64_t at(std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); }

// Every thread's current frame (PyFrameObject* or _PyInterpreterFrame*), main interpreter only.
std::vector<std::uint64_t> threadFrames(const ProcessMemory& memory, const PythonTarget& target) {
    const PyLayout& l = target.layout;
    std::vector<std::uint64_t> frames;
    std::uint64_t tstate = readPointer(memory, at(target.interpreter, l.interp_tstate_head)).valueOr(0);
    for (int i = 0; tstate != 0 && i < 64; ++i) {
        std::uint64_t frame = 0;
        if (l.tstate_frame != kAbsent) {
            frame = readPointer(memory, at(tstate, l.tstate_frame)).valueOr(0);
        } else if (l.tstate_cframe != kAbsent) {
            const std::uint64_t cframe = readPointer(memory, at(tstate, l.tstate_cframe)).valueOr(0);
            if (cframe != 0) frame = readPointer(memory, at(cframe, l.cframe_current_frame)).valueOr(0);
        } else if (l.tstate_current_frame != kAbsent) {
            frame = readPointer(memory, at(tstate, l.tstate_current_frame)).valueOr(0);
        }
        if (frame != 0) frames.push_back(frame);
        tstate = readPointer(memory, at(tstate, l.tstate_next)).valueOr(0);
    }
    return frames;
}

// Small cores (a few KB each) that reach every note parser and both read paths.
int writeSeedCores(const std::string& dir) {
    using test::SyntheticCore;
    SyntheticCore full;
    SyntheticCore::Thread crashing{4321, SIGSEGV, {}};
    crashing.registers[16] = 0x401010;
    crashing.registers[19] = 0x7ffc00000100;
    crashing.registers[15] = static_cast<std::uint64_t>(-1);
    full.threads = {crashing, {4322, 0, {}}};
    full.pid = 4321;
    full.command = "python3";
    full.arguments = "python3 app.py";
    full.crash = SyntheticCore::Crash{SIGSEGV, SEGV_MAPERR, 0x10};
    full.auxv = {{AT_PHDR, 0x400040}, {AT_PAGESZ, 4096}, {AT_ENTRY, 0x401000}};
    full.files = {{0x400000, 0x402000, 0, "/usr/bin/python3"}, {0x7f0000000000, 0x7f0000004000, 1, "/lib/libc.so.6"}};
    full.segments = {{0x400000, 0x1000, std::vector<std::uint8_t>(256, 0x11), PF_R},
                     {0x401000, 0x1000, std::vector<std::uint8_t>(512, 0x22), PF_R | PF_X},
                     {0x7f0000000000, 0x4000, std::vector<std::uint8_t>(256, 0x33), PF_R},
                     {0x7ffc00000000, 0x1000, std::vector<std::uint8_t>(1024, 0x44), PF_R | PF_W}};
    full.rawNotes = {{"LINUX", NT_X86_XSTATE, std::vector<std::uint8_t>(64, 0), {}}};

    SyntheticCore minimal;
    minimal.threads = {{77, 0, {}}};
    minimal.segments = {{0x10000, 0x100, std::vector<std::uint8_t>(0x100, 0x55), PF_R | PF_W}};

    // As gcore writes a live process: no signal, a file mapping whose pages are omitted.
    SyntheticCore live;
    live.threads = {{900, 0, {}}, {901, 0, {}}, {902, 0, {}}};
    live.pid = 900;
    live.command = "sleep";
    live.auxv = {{AT_ENTRY, 0x555555554100}};
    live.files = {{0x555555554000, 0x555555556000, 0, "/usr/bin/sleep"}};
    live.segments = {{0x555555554000, 0x1000, {}, PF_R},
                     {0x555555555000, 0x1000, {}, PF_R | PF_X},
                     {0x7ffe00000000, 0x2000, std::vector<std::uint8_t>(2048, 0x66), PF_R | PF_W}};

    const std::pair<const char*, const SyntheticCore*> seeds[] = {
        {"full.core", &full}, {"minimal.core", &minimal}, {"live.core", &live}};
    for (const auto& [name, core] : seeds) {
        const auto bytes = core->build();
        const std::string path = dir + "/" + name;
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "cores") return writeSeedCores(argv[2]);
    if (argc < 4 || (std::string(argv[1]) != "frames" && std::string(argv[1]) != "objects")) {
        std::fprintf(stderr, "usage: make_corpus frames|objects PID OUT [ADDRESS...] | cores DIR\n");
        return 2;
    }
    const std::string mode = argv[1];
    const pid_t pid = static_cast<pid_t>(std::atoi(argv[2]));
    try {
        auto process = PythonProcess::attach(pid);
        const PythonTarget& target = process->target();
        const PyLayout* layout = findGeneratedLayout(target.version.major, target.version.minor);
        if (layout == nullptr) {
            std::fprintf(stderr, "make_corpus: no generated layout for %s\n", target.version.toString().c_str());
            return 1;
        }
        auto paused = ThreadPause::pauseAll(pid);
        if (!paused.ok()) {
            std::fprintf(stderr, "make_corpus: cannot pause %d: %s\n", pid, paused.error().describe().c_str());
            return 1;
        }
        LiveProcessMemory live(pid);
        RecordingMemory recording(live);
        ObjectReader reader(recording, *layout, target.types);
        fuzz::Image image;
        image.major = target.version.major;
        image.minor = target.version.minor;
        image.types = target.types;
        std::size_t found = 0;
        if (mode == "frames") {
            image.roots = threadFrames(live, target);
            CodeCache codes(64);
            for (auto frame : image.roots) found += fuzz::exerciseFrames(recording, reader, codes, frame) > 0;
        } else {
            for (int i = 4; i < argc; ++i) image.roots.push_back(std::strtoull(argv[i], nullptr, 10));
            for (auto object : image.roots) found += fuzz::exerciseObject(reader, object) > 0;
        }
        paused.value().resume();
        image.segments = recording.segments();
        std::ofstream(argv[3], std::ios::binary) << fuzz::writeImage(image);
        std::size_t bytes = 0;
        for (const auto& s : image.segments) bytes += s.second.size();
        std::printf("%s: python %s, %zu roots (%zu read something), %zu segments, %zu bytes\n", argv[3],
                    target.version.toString().c_str(), image.roots.size(), found, image.segments.size(), bytes);
        return found > 0 ? 0 : 1;
    } catch (const FatalError& e) {
        std::fprintf(stderr, "make_corpus: %s\n", e.what());
        return 1;
    }
}
