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
    std::uint32_t type = 0;     // SHT_*
    std::uint64_t flags = 0;    // SHF_*
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
    // Opens and indexes `path`. Throws FatalError with the path in the message:
    // PermissionDenied when open() fails with EACCES/EPERM; NotPython when the file is
    // missing, not a regular file, not a 64-bit ELF, or malformed (truncated tables).
    // The file is untrusted: every count and offset from it is bounded.
    static ElfFile open(const std::string& path);

    ElfFile(ElfFile&&) noexcept;
    ElfFile& operator=(ElfFile&&) noexcept;
    ~ElfFile();

    const std::string& path() const { return path_; }
    std::uint16_t type() const { return type_; }  // e_type: ET_EXEC (non-PIE, bias 0) or ET_DYN

    // Defined symbols from .symtab and .dynsym (both are indexed; .symtab wins; within a
    // table a global/weak definition wins over a local one of the same name). Only
    // symbols with a section (not UND, not ABS), a non-zero value and a type other than
    // TLS/SECTION/FILE are indexed. A versioned name "foo@VER"/"foo@@VER" is also
    // indexed as "foo" when no plain "foo" exists.
    std::optional<ElfSymbol> findSymbol(std::string_view name) const;
    bool hasSymbolTable() const { return hasSymtab_; }  // .symtab present (not stripped)

    std::optional<ElfSection> findSection(std::string_view name) const;
    // The GNU build id (lower-case hex) from its SHT_NOTE sections, or nullopt.
    std::optional<std::string> buildId() const;
    const std::vector<ElfSection>& sections() const { return sections_; }
    const std::vector<ElfSegment>& loadSegments() const { return segments_; }

    // Bytes of the file that back virtual address range [vaddr, vaddr+size), when the
    // whole range lies in one PT_LOAD segment's file part (read with pread, so a file
    // truncated meanwhile gives nothing rather than SIGBUS). nullopt for size 0,
    // size > 64 MiB, an overflowing range or a range outside every segment's file part.
    std::optional<std::vector<std::uint8_t>> readAtAddress(std::uint64_t vaddr, std::size_t size) const;

    // The load bias for a mapping of this file at `mapStart` with file offset `mapOffset`
    // (from /proc/PID/maps): runtime address = file vaddr + bias. The PT_LOAD whose
    // page-aligned file offset equals `mapOffset` is preferred; else the one whose file
    // range [page_down(p_offset), p_offset+p_filesz) contains it. 0 for a non-PIE
    // executable mapped at its link address. The offset-0 mapping is the unambiguous one.
    std::optional<std::uint64_t> loadBias(std::uint64_t mapStart, std::uint64_t mapOffset) const;

  private:
    struct Impl;
    explicit ElfFile(std::unique_ptr<Impl> impl);

    std::unique_ptr<Impl> impl_;
    std::string path_;
    bool hasSymtab_ = false;
    std::uint16_t type_ = 0;
    std::unordered_map<std::string, ElfSymbol> symbols_;
    std::vector<ElfSection> sections_;
    std::vector<ElfSegment> segments_;
};

}  // namespace pyspy
