// Helpers for the elf tests: run a tool (nm, readelf) and capture its output, find the
// real ELF files to test against, scratch directories, made-up ELF headers.
#pragma once

#include <dirent.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "process/synthetic_core.h"

namespace pyspy::test {

// stdout of a shell command (bounded), or "" when it cannot run.
inline std::string runCommand(const std::string& command) {
    std::string out;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return out;
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0 && out.size() < (64u << 20)) out.append(buffer, n);
    ::pclose(pipe);
    return out;
}

inline std::vector<std::string> splitLines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

inline std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

inline bool fileExists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline std::string pyenvRoot() {
    if (const char* root = std::getenv("PYENV_ROOT"); root != nullptr && *root != '\0') return root;
    const char* home = std::getenv("HOME");
    return std::string(home != nullptr ? home : "/root") + "/.pyenv";
}

// A real ELF file to test against, and the interpreter whose sys.hexversion it holds.
struct RealElf {
    std::string path;
    std::string interpreter;
};

// /usr/bin/python3.11 and every pyenv versions/*/lib/libpythonX.Y*.so.1.0 present.
inline std::vector<RealElf> realPythonElfs() {
    std::vector<RealElf> out;
    if (fileExists("/usr/bin/python3.11")) out.push_back({"/usr/bin/python3.11", "/usr/bin/python3.11"});
    const std::string versions = pyenvRoot() + "/versions";
    std::vector<std::string> names;
    if (DIR* dir = ::opendir(versions.c_str()); dir != nullptr) {
        while (const dirent* entry = ::readdir(dir)) {
            if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
        }
        ::closedir(dir);
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        const std::string lib = versions + "/" + name + "/lib";
        DIR* dir = ::opendir(lib.c_str());
        if (dir == nullptr) continue;
        while (const dirent* entry = ::readdir(dir)) {
            const std::string file = entry->d_name;
            if (file.starts_with("libpython") && file.ends_with(".so.1.0") && file != "libpython3.so") {
                out.push_back({lib + "/" + file, versions + "/" + name + "/bin/python"});
            }
        }
        ::closedir(dir);
    }
    return out;
}

// Symbol value as `nm` prints it (defined symbols only); `dynamic` selects nm -D.
inline std::optional<std::uint64_t> nmValue(const std::string& path, const std::string& symbol, bool dynamic) {
    const std::string out =
        runCommand(std::string("nm ") + (dynamic ? "-D " : "") + "--defined-only '" + path + "' 2>/dev/null");
    for (const auto& line : splitLines(out)) {
        const auto w = words(line);
        if (w.size() == 3 && w[2] == symbol) return std::stoull(w[0], nullptr, 16);
    }
    return std::nullopt;
}

// A scratch directory removed (with its files) when the test ends.
class TempDir {
  public:
    TempDir() {
        char pattern[] = "/tmp/pyspy-elf-test-XXXXXX";
        if (::mkdtemp(pattern) != nullptr) path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        if (!path_.empty()) runCommand("rm -rf '" + path_ + "'");
    }
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& bytes) const {
        const std::string file = path_ + "/" + name;
        std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        return file;
    }

  private:
    std::string path_;
};

inline std::string readWholeFile(const std::string& path, std::size_t limit = 64u << 20) {
    std::ifstream in(path, std::ios::binary);
    std::string data;
    char buffer[65536];
    while (in && data.size() < limit) {
        in.read(buffer, sizeof buffer);
        data.append(buffer, static_cast<std::size_t>(in.gcount()));
    }
    if (data.size() > limit) data.resize(limit);
    return data;
}

// The first bytes of a made-up x86-64 ELF file as its loader would map them: the ELF
// header, one PT_LOAD of file offset 0 at `loadVaddr`, and one PT_NOTE per block of
// `noteBlocks` (each placed after the previous, 4-byte aligned, from file offset 0x200).
inline std::vector<std::uint8_t> elfHeaderImage(std::uint64_t loadVaddr,
                                                const std::vector<std::vector<std::uint8_t>>& noteBlocks,
                                                std::size_t size = 4096) {
    std::vector<std::uint8_t> out(size);
    // The ELF header of SyntheticCore (x86-64, little-endian), as a shared object.
    SyntheticCore shape;
    shape.elfType = ET_DYN;
    Elf64_Ehdr header;
    std::memcpy(&header, shape.build().data(), sizeof header);
    header.e_phnum = static_cast<std::uint16_t>(1 + noteBlocks.size());
    std::memcpy(out.data(), &header, sizeof header);
    auto putPhdr = [&](std::size_t index, const Elf64_Phdr& phdr) {
        std::memcpy(out.data() + sizeof(Elf64_Ehdr) + index * sizeof(Elf64_Phdr), &phdr, sizeof phdr);
    };
    Elf64_Phdr load{};
    load.p_type = PT_LOAD;
    load.p_flags = PF_R;
    load.p_vaddr = loadVaddr;
    load.p_filesz = load.p_memsz = size;
    load.p_align = 4096;
    putPhdr(0, load);
    std::size_t at = 0x200;
    for (std::size_t i = 0; i < noteBlocks.size(); ++i) {
        const auto& block = noteBlocks[i];
        Elf64_Phdr note{};
        note.p_type = PT_NOTE;
        note.p_flags = PF_R;
        note.p_offset = at;
        note.p_vaddr = loadVaddr + at;
        note.p_filesz = note.p_memsz = block.size();
        note.p_align = 4;
        putPhdr(1 + i, note);
        if (at + block.size() > out.size()) out.resize(at + block.size());
        std::copy(block.begin(), block.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
        at = (at + block.size() + 3) & ~std::size_t{3};
    }
    return out;
}

// The build id `readelf -n` prints for `path`: "" when it prints none, nullopt when
// readelf (binutils) is not installed.
inline std::optional<std::string> readelfBuildId(const std::string& path) {
    if (runCommand("command -v readelf").empty()) return std::nullopt;
    for (const auto& line : splitLines(runCommand("readelf -n '" + path + "' 2>/dev/null"))) {
        const auto w = words(line);
        if (w.size() == 3 && w[0] == "Build" && w[1] == "ID:") return w[2];
    }
    return std::string();
}

}  // namespace pyspy::test
