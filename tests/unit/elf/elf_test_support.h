// Helpers for the elf tests: run a tool (nm, readelf) and capture its output, find the
// real ELF files to test against, scratch directories.
#pragma once

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace pyspy::test
