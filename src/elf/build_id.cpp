#include "pyspy/elf/build_id.h"

#include <elf.h>

#include <cstring>

#include <fmt/format.h>

namespace pyspy {

namespace {

constexpr std::size_t kMaxBuildIdBytes = 64;  // SHA-1 is 20; anything much longer is not one
constexpr std::uint16_t kMaxProgramHeaders = 128;
constexpr std::uint64_t kMaxNoteBytes = 64 * 1024;

std::size_t align4(std::size_t n) {
    return (n + 3) & ~std::size_t{3};
}

}  // namespace

std::optional<std::string> buildIdFromNotes(std::span<const std::uint8_t> notes) {
    std::size_t at = 0;
    while (at + sizeof(Elf64_Nhdr) <= notes.size()) {
        Elf64_Nhdr header;
        std::memcpy(&header, notes.data() + at, sizeof header);
        at += sizeof header;
        const std::size_t nameBytes = align4(header.n_namesz);
        const std::size_t descBytes = align4(header.n_descsz);
        if (header.n_namesz > notes.size() || header.n_descsz > notes.size() || nameBytes > notes.size() - at ||
            descBytes > notes.size() - at - nameBytes) {
            return std::nullopt;
        }
        const bool gnu = header.n_namesz == 4 && std::memcmp(notes.data() + at, "GNU", 4) == 0;
        if (gnu && header.n_type == NT_GNU_BUILD_ID && header.n_descsz > 0 && header.n_descsz <= kMaxBuildIdBytes) {
            std::string hex;
            for (std::size_t i = 0; i < header.n_descsz; ++i) hex += fmt::format("{:02x}", notes[at + nameBytes + i]);
            return hex;
        }
        at += nameBytes + descBytes;
    }
    return std::nullopt;
}

std::optional<std::string> buildIdInMemory(const ProcessMemory& memory, std::uint64_t start) {
    auto header = readValue<Elf64_Ehdr>(memory, start);
    if (!header.ok()) return std::nullopt;
    const Elf64_Ehdr& ehdr = header.value();
    if (std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0 || ehdr.e_ident[EI_CLASS] != ELFCLASS64 ||
        ehdr.e_phentsize != sizeof(Elf64_Phdr) || ehdr.e_phnum == 0 || ehdr.e_phnum > kMaxProgramHeaders ||
        ehdr.e_phoff > kMaxNoteBytes) {
        return std::nullopt;
    }
    auto table = readBytes(memory, start + ehdr.e_phoff, std::size_t{ehdr.e_phnum} * sizeof(Elf64_Phdr));
    if (!table.ok()) return std::nullopt;
    std::vector<Elf64_Phdr> headers(ehdr.e_phnum);
    std::memcpy(headers.data(), table.value().data(), table.value().size());
    // The mapping at `start` holds file offset 0: the PT_LOAD with offset 0 says which
    // virtual address that is, so a note's p_vaddr can be turned into a runtime address.
    std::optional<std::uint64_t> firstVaddr;
    for (const auto& phdr : headers) {
        if (phdr.p_type == PT_LOAD && phdr.p_offset == 0) {
            firstVaddr = phdr.p_vaddr;
            break;
        }
    }
    if (!firstVaddr) return std::nullopt;
    for (const auto& phdr : headers) {
        if (phdr.p_type != PT_NOTE || phdr.p_filesz == 0 || phdr.p_filesz > kMaxNoteBytes ||
            phdr.p_vaddr < *firstVaddr || phdr.p_vaddr - *firstVaddr > kMaxNoteBytes * 16) {
            continue;
        }
        auto notes = readBytes(memory, start + (phdr.p_vaddr - *firstVaddr), phdr.p_filesz);
        if (!notes.ok()) continue;
        if (auto id = buildIdFromNotes(notes.value())) return id;
    }
    return std::nullopt;
}

}  // namespace pyspy
