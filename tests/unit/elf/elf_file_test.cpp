// ElfFile on real interpreter files (compared with nm / readelf) and on bad files.
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "elf/elf_test_support.h"
#include "process/forked_child.h"
#include "pyspy/common/error.h"
#include "pyspy/elf/elf_file.h"

using namespace pyspy;
using namespace pyspy::test;

namespace {

std::uint64_t hex(const std::string& text) {
    return std::stoull(text, nullptr, 16);
}

std::uint64_t pageDown(std::uint64_t value) {
    return value & ~(static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) - 1);
}

// The ErrorKind and message ElfFile::open throws for `path`; kind 0 when it does not throw.
std::pair<int, std::string> openError(const std::string& path) {
    try {
        (void)ElfFile::open(path);
        return {0, ""};
    } catch (const FatalError& error) {
        return {static_cast<int>(error.kind()), error.what()};
    }
}

}  // namespace

TEST_CASE("ElfFile: symbols of real interpreter files match nm", "[elf]") {
    const auto files = realPythonElfs();
    REQUIRE_FALSE(files.empty());
    for (const auto& real : files) {
        INFO(real.path);
        const ElfFile elf = ElfFile::open(real.path);
        CHECK(elf.path() == real.path);
        const bool hasSymtab = runCommand("readelf -SW '" + real.path + "'").find(" .symtab ") != std::string::npos;
        CHECK(elf.hasSymbolTable() == hasSymtab);
        int compared = 0;
        for (const char* name : {"PyCode_Type", "_PyRuntime", "Py_Version", "PyObject_GetAttr", "Py_Initialize"}) {
            INFO(name);
            const auto dynamic = nmValue(real.path, name, true);
            const auto found = elf.findSymbol(name);
            if (!dynamic) continue;  // not in this version
            REQUIRE(found);
            CHECK(found->value == *dynamic);
            if (hasSymtab) {
                const auto full = nmValue(real.path, name, false);
                REQUIRE(full);
                CHECK(found->value == *full);
            }
            ++compared;
        }
        CHECK(compared >= 3);
        CHECK_FALSE(elf.findSymbol("no_such_symbol_pyspy"));
        CHECK_FALSE(elf.findSymbol(""));
    }
}

TEST_CASE("ElfFile: a stripped static python binary resolves symbols from .dynsym", "[elf]") {
    if (!fileExists("/usr/bin/python3.11")) {
        WARN("/usr/bin/python3.11 is not installed");
        return;
    }
    const ElfFile elf = ElfFile::open("/usr/bin/python3.11");
    CHECK_FALSE(elf.hasSymbolTable());
    CHECK(elf.type() == ET_EXEC);  // Debian's python3.11 is not position independent
    REQUIRE(elf.findSymbol("_PyRuntime"));
    CHECK(elf.findSymbol("_PyRuntime")->size > 0);
}

TEST_CASE("ElfFile: sections match readelf -S", "[elf]") {
    for (const auto& real : realPythonElfs()) {
        INFO(real.path);
        const ElfFile elf = ElfFile::open(real.path);
        std::vector<ElfSection> expected;
        for (const auto& line : splitLines(runCommand("readelf -SW '" + real.path + "'"))) {
            const auto close = line.find(']');
            if (line.find("  [") != 0 || close == std::string::npos) continue;
            const auto w = words(line.substr(close + 1));
            if (line.find("[ 0]") != std::string::npos || line.find("[Nr]") != std::string::npos || w.size() < 5) {
                continue;
            }
            expected.push_back(ElfSection{w[0], 0, 0, hex(w[2]), hex(w[3]), hex(w[4])});
        }
        REQUIRE(expected.size() > 20);
        REQUIRE(elf.sections().size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            INFO(expected[i].name);
            CHECK(elf.sections()[i].name == expected[i].name);
            CHECK(elf.sections()[i].address == expected[i].address);
            CHECK(elf.sections()[i].offset == expected[i].offset);
            CHECK(elf.sections()[i].size == expected[i].size);
        }
        for (const char* name : {".data", ".bss", ".text", ".dynsym"}) {
            INFO(name);
            REQUIRE(elf.findSection(name));
        }
        CHECK(elf.findSection(".bss")->type == SHT_NOBITS);
        CHECK((elf.findSection(".data")->flags & SHF_WRITE) != 0);
        CHECK_FALSE(elf.findSection(".no_such_section"));
        const bool hasRuntimeSection =
            std::any_of(expected.begin(), expected.end(), [](const ElfSection& s) { return s.name == ".PyRuntime"; });
        CHECK(elf.findSection(".PyRuntime").has_value() == hasRuntimeSection);
        if (hasRuntimeSection) {  // 3.11+: _PyRuntime lives alone in its own section
            CHECK(elf.findSection(".PyRuntime")->address == elf.findSymbol("_PyRuntime")->value);
        }
    }
}

TEST_CASE("ElfFile: load segments match readelf -l", "[elf]") {
    for (const auto& real : realPythonElfs()) {
        INFO(real.path);
        const ElfFile elf = ElfFile::open(real.path);
        std::vector<ElfSegment> expected;
        for (const auto& line : splitLines(runCommand("readelf -lW '" + real.path + "'"))) {
            const auto w = words(line);
            if (w.size() < 7 || w[0] != "LOAD") continue;
            expected.push_back(ElfSegment{hex(w[2]), hex(w[1]), hex(w[4]), hex(w[5]), 0});
        }
        REQUIRE(expected.size() >= 2);
        REQUIRE(elf.loadSegments().size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            CHECK(elf.loadSegments()[i].vaddr == expected[i].vaddr);
            CHECK(elf.loadSegments()[i].offset == expected[i].offset);
            CHECK(elf.loadSegments()[i].filesz == expected[i].filesz);
            CHECK(elf.loadSegments()[i].memsz == expected[i].memsz);
        }
        CHECK((elf.loadSegments().front().flags & PF_R) != 0);
    }
}

TEST_CASE("ElfFile: readAtAddress of Py_Version gives the interpreter's hexversion", "[elf]") {
    int checked = 0;
    for (const auto& real : realPythonElfs()) {
        INFO(real.path);
        const ElfFile elf = ElfFile::open(real.path);
        const auto symbol = elf.findSymbol("Py_Version");
        if (!symbol) continue;  // before 3.11
        if (!fileExists(real.interpreter) && !real.interpreter.empty() &&
            ::access(real.interpreter.c_str(), X_OK) != 0) {
            continue;
        }
        const std::string printed =
            runCommand("'" + real.interpreter + "' -c 'import sys; print(sys.hexversion)' 2>/dev/null");
        REQUIRE_FALSE(printed.empty());
        const auto bytes = elf.readAtAddress(symbol->value, 4);
        REQUIRE(bytes);
        std::uint32_t version = 0;
        std::memcpy(&version, bytes->data(), 4);
        CHECK(version == std::stoul(printed));
        ++checked;
    }
    CHECK(checked > 0);
}

TEST_CASE("ElfFile: readAtAddress is bounded", "[elf]") {
    const auto files = realPythonElfs();
    REQUIRE_FALSE(files.empty());
    const ElfFile elf = ElfFile::open(files.front().path);
    const auto& first = elf.loadSegments().front();
    const auto magic = elf.readAtAddress(first.vaddr, 4);  // the first segment starts with the ELF header
    REQUIRE(magic);
    CHECK(std::memcmp(magic->data(), ELFMAG, SELFMAG) == 0);
    CHECK_FALSE(elf.readAtAddress(first.vaddr, 0));
    CHECK_FALSE(elf.readAtAddress(first.vaddr, (64u << 20) + 1));
    CHECK_FALSE(elf.readAtAddress(~std::uint64_t{0} - 3, 8));
    CHECK_FALSE(elf.readAtAddress(first.vaddr + first.filesz - 2, 4));  // crosses the end of the file part
    const auto bss = elf.findSection(".bss");
    REQUIRE(bss);
    CHECK_FALSE(elf.readAtAddress(bss->address + bss->size - 8, 8));  // not backed by the file
    CHECK_FALSE(elf.readAtAddress(1, 8));
}

TEST_CASE("ElfFile: loadBias for every PT_LOAD of PIE, shared and non-PIE files", "[elf]") {
    for (const auto& real : realPythonElfs()) {
        INFO(real.path);
        const ElfFile elf = ElfFile::open(real.path);
        // Where the loader would map each segment for a chosen bias (0 for ET_EXEC).
        const std::uint64_t bias = elf.type() == ET_EXEC ? 0 : 0x7f1234560000ULL;
        for (const auto& segment : elf.loadSegments()) {
            INFO(segment.vaddr);
            const auto got = elf.loadBias(pageDown(segment.vaddr) + bias, pageDown(segment.offset));
            REQUIRE(got);
            CHECK(*got == bias);
            // A mapping split inside the segment (e.g. RELRO made read-only) agrees.
            const std::uint64_t inside = pageDown(segment.offset) + 0x1000;
            if (inside < segment.offset + segment.filesz) {
                const auto split = elf.loadBias(pageDown(segment.vaddr) + 0x1000 + bias, inside);
                REQUIRE(split);
                CHECK(*split == bias);
            }
        }
        const auto& last = elf.loadSegments().back();
        CHECK_FALSE(elf.loadBias(0x7f0000000000ULL, pageDown(last.offset + last.filesz) + 0x100000));
    }
}

TEST_CASE("ElfFile: files that are not 64-bit ELF are rejected with the path", "[elf]") {
    TempDir dir;
    REQUIRE_FALSE(dir.path().empty());
    const auto files = realPythonElfs();
    REQUIRE_FALSE(files.empty());
    const std::string real = readWholeFile(files.front().path, 4096);

    Elf32_Ehdr header32{};
    std::memcpy(header32.e_ident, ELFMAG, SELFMAG);
    header32.e_ident[EI_CLASS] = ELFCLASS32;
    header32.e_ident[EI_DATA] = ELFDATA2LSB;
    header32.e_ident[EI_VERSION] = EV_CURRENT;
    header32.e_type = ET_DYN;
    header32.e_machine = EM_386;
    header32.e_version = EV_CURRENT;
    header32.e_ehsize = sizeof(Elf32_Ehdr);
    std::string bytes32(reinterpret_cast<const char*>(&header32), sizeof header32);
    bytes32.resize(512, '\0');

    struct Case {
        std::string what;
        std::string path;
    };
    const std::vector<Case> cases = {
        {"missing", dir.path() + "/does-not-exist"},
        {"directory", dir.path()},
        {"empty", dir.write("empty", "")},
        {"text", dir.write("text", "#!/bin/sh\necho this is not an ELF file at all, but it is long enough\n")},
        {"truncated", dir.write("truncated", real.substr(0, 100))},
        {"half", dir.write("half", readWholeFile(files.front().path).substr(0, 65536))},
        {"elf32", dir.write("elf32", bytes32)},
        {"magic only", dir.write("magic", std::string(ELFMAG) + std::string(60, '\0'))},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const auto [kind, message] = openError(c.path);
        CHECK(kind == static_cast<int>(ErrorKind::NotPython));
        CHECK_THAT(message, Catch::Contains(c.path));
    }
    CHECK_THAT(openError(dir.path() + "/text").second, Catch::Contains("not a 64-bit ELF file"));
    CHECK_THAT(openError(dir.path() + "/elf32").second, Catch::Contains("not a 64-bit ELF file"));
    CHECK_THAT(openError(dir.path() + "/does-not-exist").second, Catch::Contains("No such file"));
}

TEST_CASE("ElfFile: corrupted headers and tables never crash", "[elf]") {
    TempDir dir;
    const auto files = realPythonElfs();
    REQUIRE_FALSE(files.empty());
    // A whole small ELF (this test binary's dynamic loader is overkill; /bin/true is small).
    const std::string original = readWholeFile("/bin/true");
    REQUIRE(original.size() > 4096);
    std::mt19937 random(12345);
    int opened = 0, rejected = 0;
    for (int round = 0; round < 300; ++round) {
        std::string bytes = original;
        const int flips = 1 + static_cast<int>(random() % 16);
        for (int i = 0; i < flips; ++i) {
            // Mostly the ELF header and program headers, sometimes anywhere (section headers, tables).
            const std::size_t limit = (random() % 4 == 0) ? bytes.size() : std::min<std::size_t>(bytes.size(), 512);
            bytes[random() % limit] = static_cast<char>(random());
        }
        const std::string path = dir.write("fuzz", bytes);
        try {
            const ElfFile elf = ElfFile::open(path);
            for (const auto& segment : elf.loadSegments()) {
                (void)elf.readAtAddress(segment.vaddr, 16);
                (void)elf.loadBias(0x7f0000000000ULL, pageDown(segment.offset));
            }
            ++opened;
        } catch (const FatalError& error) {
            CHECK_THAT(error.what(), Catch::Contains(path));
            ++rejected;
        }
    }
    CHECK(opened + rejected == 300);
    CHECK(opened > 0);
}

TEST_CASE("ElfFile: a file we may not read is PermissionDenied", "[elf]") {
    REQUIRE(::geteuid() == 0);  // the test drops from root to nobody
    TempDir dir;
    const std::string secret = dir.write("secret", readWholeFile("/bin/true"));
    REQUIRE(::chmod(secret.c_str(), 0600) == 0);
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    ForkedChild nobody([&secret](int toTest) {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return 1;
        const auto [kind, message] = openError(secret);
        sendValue(toTest, kind);
        sendValue(toTest, message.find(secret) != std::string::npos);
        return 0;
    });
    int kind = -1;
    bool named = false;
    REQUIRE(nobody.receive(kind));
    REQUIRE(nobody.receive(named));
    CHECK(kind == static_cast<int>(ErrorKind::PermissionDenied));
    CHECK(named);
}

TEST_CASE("ElfFile: moves keep the index and the handle", "[elf]") {
    const auto files = realPythonElfs();
    REQUIRE_FALSE(files.empty());
    ElfFile a = ElfFile::open(files.front().path);
    const auto symbol = a.findSymbol("PyCode_Type");
    REQUIRE(symbol);
    ElfFile b = std::move(a);
    CHECK(b.findSymbol("PyCode_Type")->value == symbol->value);
    CHECK(b.readAtAddress(b.loadSegments().front().vaddr, 4));
    ElfFile c = ElfFile::open("/bin/true");
    c = std::move(b);
    CHECK(c.findSymbol("PyCode_Type")->value == symbol->value);
}
