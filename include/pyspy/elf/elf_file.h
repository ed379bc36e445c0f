// ElfFile: symbols, sections and loadable segments of one ELF file (the python
// executable or a libpython), read with elfutils' libelf. Move-only; the Elf handle
// and the file descriptor are released by RAII.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pyspy/common/fd.h"

namespace pyspy {

struct ElfSymbol {
    std::uint64_t value = 0;  // st_value: a virtual address in the file's address space
    std::uint64_t size = 0;
};

struct ElfSection {
    std::string name;
    std::uint32_t type = 0;   // SHT_*
    std::uint64_t flags = 0;  // SHF_*
    std::uint64_t address = 0;  // sh_addr
    std::uint64_t offset = 0;   // sh_offset
    std::uint64_t size = 0;
};

struct ElfSegment {  // a PT_LOAD program header
    std::uint64_t vaddr = 0;
    std::uint64_t offset = 0;
    std::uint64_t filesz = 0;
    std::uint64_t memsz = 0;
    std::uint32_t flags = 0;  // PF_*
};

class ElfFile {
  public:
    // Opens and indexes `path`. Throws FatalError(ErrorKind::NotPython) with the path
    // in the message when the file cannot be opened or is not a 64-bit ELF.
    static ElfFile open(const std::string& path);

    ElfFile(ElfFile&&) noexcept;
    ElfFile& operator=(ElfFile&&) noexcept;
    ~ElfFile();

    const std::string& path() const { return path_; }

    // Defined symbols from .symtab and .dynsym (both are indexed; .symtab wins).
    std::optional<ElfSymbol> findSymbol(std::string_view name) const;
    bool hasSymbolTable() const { return hasSymtab_; }  // .symtab present (not stripped)

    std::optional<ElfSection> findSection(std::string_view name) const;
    const std::vector<ElfSection>& sections() const { return sections_; }
    const std::vector<ElfSegment>& loadSegments() const { return segments_; }

    // Bytes of the file that back virtual address range [vaddr, vaddr+size), when the
    // whole range lies in one PT_LOAD segment's file part.
    std::optional<std::vector<std::uint8_t>> readAtAddress(std::uint64_t vaddr, std::size_t size) const;

    // The load bias for a mapping of this file at `mapStart` with file offset `mapOffset`
    // (from /proc/PID/maps): runtime address = file vaddr + bias.
    std::optional<std::uint64_t> loadBias(std::uint64_t mapStart, std::uint64_t mapOffset) const;

  private:
    struct Impl;
    explicit ElfFile(std::unique_ptr<Impl> impl);

    std::unique_ptr<Impl> impl_;
    std::string path_;
    bool hasSymtab_ = false;
    std::unordered_map<std::string, ElfSymbol> symbols_;
    std::vector<ElfSection> sections_;
    std::vector<ElfSegment> segments_;
};

}  // namespace pyspy
