// /proc/PID/maps: the target's memory mappings.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pyspy {

struct MemoryMapping {
    std::uint64_t start = 0;
    std::uint64_t end = 0;
    bool readable = false;
    bool writable = false;
    bool executable = false;
    bool shared = false;
    std::uint64_t offset = 0;
    std::uint64_t inode = 0;
    std::string path;  // empty for anonymous mappings; may end with " (deleted)"

    std::uint64_t size() const { return end - start; }
    bool contains(std::uint64_t address) const { return address >= start && address < end; }
};

// Parses the text of a maps file. Malformed lines are skipped.
std::vector<MemoryMapping> parseMaps(std::string_view text);

// Reads /proc/PID/maps. Throws FatalError (NoSuchProcess, PermissionDenied).
std::vector<MemoryMapping> readMaps(pid_t pid);

// Whether /proc/PID/maps is empty or gone with its process: an exiting process has
// released its memory before its pidfd reports the exit. An unreadable file (permission)
// says nothing: false. Reads one byte, never throws: for exit checks on error paths.
bool mapsEmpty(pid_t pid);

// A path through which this process can open the file behind `mapping` even when
// the target runs in another mount namespace or the file was deleted:
// /proc/PID/map_files/START-END when readable, else /proc/PID/root/PATH.
std::string targetFilePath(pid_t pid, const MemoryMapping& mapping);

}  // namespace pyspy
