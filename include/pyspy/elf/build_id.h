// GNU build ids (NT_GNU_BUILD_ID): what tells a file on disk from another build of it.
// A core keeps the first page of every mapped ELF file, where the loader put its
// headers and (normally) its build-id note, so a core's modules can be checked against
// the files found for them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "pyspy/process/memory.h"

namespace pyspy {

// The build id (lower-case hex) in a block of ELF notes (a PT_NOTE segment or SHT_NOTE
// section, 4-byte aligned), or nullopt when it holds none. Bounded by the block.
std::optional<std::string> buildIdFromNotes(std::span<const std::uint8_t> notes);

// The build id of the ELF file mapped with its headers at `start` in `memory` (the
// mapping with file offset 0): from its program headers' PT_NOTE segments. nullopt when
// the headers are not there or hold no build id. Reads at most a few KiB.
std::optional<std::string> buildIdInMemory(const ProcessMemory& memory, std::uint64_t start);

}  // namespace pyspy
