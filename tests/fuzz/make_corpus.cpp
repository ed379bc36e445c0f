// make_corpus: saves, from a live Python process, the memory that the fuzz targets'
// calls read (fuzz_ops.h), as a memory image (fuzz_image.h) for the seed corpus.
//   make_corpus frames  PID OUT            roots = every thread's current frame
//   make_corpus objects PID OUT ADDRESS... roots = the given objects (decimal ids)
// The process is paused (ptrace) while it is read. Driven by snapshot_memory.py.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4 || (std::string(argv[1]) != "frames" && std::string(argv[1]) != "objects")) {
        std::fprintf(stderr, "usage: make_corpus frames|objects PID OUT [ADDRESS...]\n");
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
