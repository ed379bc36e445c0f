// GNU build ids: buildIdFromNotes on note blocks (good, cut short, absurd sizes),
// buildIdInMemory on ELF headers placed in a BufferMemory, and ElfFile::buildId /
// buildIdOfFile on real files, against readelf -n when binutils is there.
#include "pyspy/elf/build_id.h"

#include <elf.h>
#include <limits.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <memory>

#include "elf/elf_test_support.h"
#include "process/synthetic_core.h"
#include "pyspy/elf/core_modules.h"
#include "pyspy/elf/elf_file.h"

using namespace pyspy;
using namespace pyspy::test;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes note(const std::string& name, std::uint32_t type, const Bytes& desc,
           std::optional<std::uint32_t> declaredSize = {}) {
    Bytes out;
    SyntheticCore::addNote(out, name, type, desc, declaredSize);
    return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

const Bytes kId = {0xc8, 0x91, 0x56, 0xeb, 0xda, 0xbf, 0x85, 0x9f, 0x4e, 0xe7,
                   0x0c, 0xb0, 0xc3, 0x03, 0x00, 0x4d, 0xcc, 0xf1, 0xae, 0x51};
const std::string kIdHex = "c89156ebdabf859f4ee70cb0c303004dccf1ae51";

// The notes of a typical executable: a property note, the ABI tag, then the build id.
Bytes typicalNotes() {
    return concat({note("GNU", NT_GNU_PROPERTY_TYPE_0, Bytes(16, 0x11)),
                   note("GNU", NT_GNU_ABI_TAG, {0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}),
                   note("GNU", NT_GNU_BUILD_ID, kId)});
}

// `bytes` in a heap block of exactly their size, so that a read past the end is one past
// the allocation (caught by the sanitizer build).
std::optional<std::string> fromExactCopy(const Bytes& bytes, std::size_t size) {
    auto copy = std::make_unique<std::uint8_t[]>(std::max<std::size_t>(size, 1));
    std::copy_n(bytes.begin(), size, copy.get());
    return buildIdFromNotes(std::span<const std::uint8_t>(copy.get(), size));
}

std::string realPath(const std::string& path) {
    char resolved[PATH_MAX];
    return ::realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : path;
}

}  // namespace

TEST_CASE("buildIdFromNotes finds NT_GNU_BUILD_ID among other notes", "[elf][build-id]") {
    CHECK(buildIdFromNotes(typicalNotes()) == kIdHex);
    CHECK(buildIdFromNotes(note("GNU", NT_GNU_BUILD_ID, {0x00, 0x0a, 0xff})) == "000aff");

    SECTION("no build id note, or no notes at all") {
        CHECK_FALSE(buildIdFromNotes(concat({note("GNU", NT_GNU_PROPERTY_TYPE_0, Bytes(16, 0x11)),
                                             note("GNU", NT_GNU_ABI_TAG, Bytes(16, 0))}))
                        .has_value());
        CHECK_FALSE(buildIdFromNotes({}).has_value());
    }
    SECTION("a note of the build id's type under another name is not one") {
        // NT_GNU_BUILD_ID is 3, the number of other owners' notes too (NT_PRPSINFO of CORE).
        const Bytes notes = concat({note("CORE", NT_GNU_BUILD_ID, Bytes(20, 0xee)),
                                    note("GNUX", NT_GNU_BUILD_ID, Bytes(20, 0xdd)), note("GNU", NT_GNU_BUILD_ID, kId)});
        CHECK(buildIdFromNotes(notes) == kIdHex);
        CHECK_FALSE(buildIdFromNotes(note("LINUX", NT_GNU_BUILD_ID, kId)).has_value());
    }
    SECTION("an empty or overlong descriptor is not a build id; a later note still is") {
        CHECK_FALSE(buildIdFromNotes(note("GNU", NT_GNU_BUILD_ID, {})).has_value());
        CHECK(buildIdFromNotes(concat(
                  {note("GNU", NT_GNU_BUILD_ID, Bytes(65, 0xab)), note("GNU", NT_GNU_BUILD_ID, kId)})) == kIdHex);
        std::string longest;
        for (int i = 0; i < 64; ++i) longest += "ab";
        CHECK(buildIdFromNotes(note("GNU", NT_GNU_BUILD_ID, Bytes(64, 0xab))) == longest);  // the longest taken
    }
}

TEST_CASE("buildIdFromNotes stays inside a block cut short or with absurd sizes", "[elf][build-id]") {
    const Bytes notes = typicalNotes();
    REQUIRE(fromExactCopy(notes, notes.size()) == kIdHex);
    // Every cut before the build id's last byte: no build id, and no read past the cut.
    for (std::size_t size = 0; size < notes.size(); ++size) {
        INFO("cut at " << size << " of " << notes.size());
        CHECK_FALSE(fromExactCopy(notes, size).has_value());
    }

    SECTION("an absurd n_descsz before the build id ends the walk") {
        for (const std::uint32_t size : {0xffffffffu, 0xfffffffdu, 0x80000000u, 4096u}) {
            INFO("n_descsz " << size);
            const Bytes bad =
                concat({note("GNU", NT_GNU_ABI_TAG, Bytes(16, 0), size), note("GNU", NT_GNU_BUILD_ID, kId)});
            CHECK_FALSE(fromExactCopy(bad, bad.size()).has_value());
        }
    }
    SECTION("an absurd n_descsz of the build id note itself") {
        const Bytes bad = note("GNU", NT_GNU_BUILD_ID, kId, 0xfffffff0u);
        CHECK_FALSE(fromExactCopy(bad, bad.size()).has_value());
    }
    SECTION("an absurd n_namesz") {
        Bytes bad = concat({note("GNU", NT_GNU_ABI_TAG, Bytes(16, 0)), note("GNU", NT_GNU_BUILD_ID, kId)});
        Elf64_Nhdr header;
        std::memcpy(&header, bad.data(), sizeof header);
        header.n_namesz = 0xffffffffu;
        std::memcpy(bad.data(), &header, sizeof header);
        CHECK_FALSE(fromExactCopy(bad, bad.size()).has_value());
    }
}

TEST_CASE("buildIdInMemory reads the build id of ELF headers mapped at an address", "[elf][build-id]") {
    constexpr std::uint64_t kStart = 0x7f1234560000;
    // A non-PIE layout: the first PT_LOAD at 0x400000, so a note's p_vaddr is not its
    // offset from the mapping.
    const Bytes image = elfHeaderImage(
        0x400000, {note("GNU", NT_GNU_PROPERTY_TYPE_0, Bytes(16, 0x11)),
                   concat({note("GNU", NT_GNU_ABI_TAG, Bytes(16, 0)), note("GNU", NT_GNU_BUILD_ID, kId)})});
    BufferMemory memory;
    memory.map(kStart, image);
    CHECK(buildIdInMemory(memory, kStart) == kIdHex);

    SECTION("at file offset 0 of a PIE: the same bytes at vaddr 0") {
        BufferMemory pie;
        pie.map(kStart, elfHeaderImage(0, {note("GNU", NT_GNU_BUILD_ID, kId)}));
        CHECK(buildIdInMemory(pie, kStart) == kIdHex);
    }
    SECTION("not at the start address: nothing") {
        CHECK_FALSE(buildIdInMemory(memory, kStart + 0x1000).has_value());
        CHECK_FALSE(buildIdInMemory(memory, kStart - 0x1000).has_value());
        CHECK_FALSE(buildIdInMemory(BufferMemory{}, kStart).has_value());
    }
    SECTION("wrong magic") {
        Bytes bad = image;
        bad[1] = 'X';
        BufferMemory other;
        other.map(kStart, bad);
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
    SECTION("a 32-bit class is not read as a 64-bit header") {
        Bytes bad = image;
        bad[EI_CLASS] = ELFCLASS32;
        BufferMemory other;
        other.map(kStart, bad);
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
    SECTION("only the ELF header there, not its program headers") {
        BufferMemory other;
        other.map(kStart, Bytes(image.begin(), image.begin() + sizeof(Elf64_Ehdr)));
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
    SECTION("headers there but not the notes") {
        BufferMemory other;
        other.map(kStart, Bytes(image.begin(), image.begin() + 0x200));
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
    SECTION("no PT_LOAD of file offset 0: no way to place the notes") {
        Bytes bad = image;
        Elf64_Phdr load;
        std::memcpy(&load, bad.data() + sizeof(Elf64_Ehdr), sizeof load);
        load.p_offset = 0x1000;
        std::memcpy(bad.data() + sizeof(Elf64_Ehdr), &load, sizeof load);
        BufferMemory other;
        other.map(kStart, bad);
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
    SECTION("notes without a build id") {
        BufferMemory other;
        other.map(kStart, elfHeaderImage(0x400000, {note("GNU", NT_GNU_ABI_TAG, Bytes(16, 0))}));
        CHECK_FALSE(buildIdInMemory(other, kStart).has_value());
    }
}

TEST_CASE("ElfFile::buildId and buildIdOfFile agree on real files, and with readelf -n", "[elf][build-id]") {
    const auto readelfAvailable = readelfBuildId("/bin/ls").has_value();
    for (const std::string& path : {std::string("/bin/ls"), realPath("/proc/self/exe")}) {
        INFO(path);
        const auto fromSections = ElfFile::open(path).buildId();
        const auto fromSegments = buildIdOfFile(path);
        CHECK(fromSections == fromSegments);
        if (const auto expected = readelfBuildId(path)) {
            if (expected->empty()) {
                CHECK_FALSE(fromSections.has_value());
            } else {
                CHECK(fromSections == *expected);
            }
        } else {
            CHECK_FALSE(readelfAvailable);
        }
    }
    // Two different programs: two different ids (what tells a file from another).
    const auto ls = buildIdOfFile("/bin/ls");
    const auto self = buildIdOfFile(realPath("/proc/self/exe"));
    REQUIRE(ls.has_value());
    REQUIRE(self.has_value());
    CHECK(*ls != *self);
}

TEST_CASE("buildIdOfFile: nothing for a missing file or one that is not ELF", "[elf][build-id]") {
    const TempDir dir;
    REQUIRE_FALSE(dir.path().empty());
    CHECK_FALSE(buildIdOfFile(dir.path() + "/missing").has_value());
    CHECK_FALSE(buildIdOfFile(dir.write("text", "not an ELF file, just some text\n")).has_value());
    CHECK_FALSE(buildIdOfFile(dir.write("empty", "")).has_value());
    CHECK_FALSE(buildIdOfFile(dir.path()).has_value());  // a directory
    // Made-up headers written to disk: the same id as read from memory.
    const Bytes image = elfHeaderImage(0x400000, {note("GNU", NT_GNU_BUILD_ID, kId)});
    CHECK(buildIdOfFile(dir.write("made-up", std::string(image.begin(), image.end()))) == kIdHex);
}
