// CoreFile and CoreMemory on synthetic cores (synthetic_core.h): notes, segments, maps,
// reads from the core and from the files it omits, broken cores; and on a real core of
// a `sleep` written by gdb's gcore.
#include "pyspy/process/core_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "pyspy/common/error.h"
#include "synthetic_core.h"

using namespace pyspy;
using pyspy::test::SyntheticCore;

namespace {

// A file under /tmp, removed when the test ends.
class TempFile {
  public:
    explicit TempFile(const std::vector<std::uint8_t>& bytes) {
        char name[] = "/tmp/pyspy-core-test-XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        path_ = name;
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
            REQUIRE(n > 0);
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

std::vector<std::uint8_t> pattern(std::size_t size, std::uint8_t seed) {
    std::vector<std::uint8_t> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(i * 7 + seed + (i >> 8));
    return bytes;
}

constexpr std::uint64_t kExe = 0x400000;          // two adjacent segments, both in the core
constexpr std::uint64_t kLib = 0x7f0000000000;    // 3 pages, only the first in the core
constexpr std::uint64_t kGap = 0x7f0000010000;    // a file mapping with no segment
constexpr std::uint64_t kStack = 0x7ffd00000000;  // anonymous, in the core
constexpr std::uint64_t kLibFileOffset = 2 * 4096;

// The library's file: kLib maps it from kLibFileOffset, kGap from 0.
std::vector<std::uint8_t> libraryFile() {
    return pattern(kLibFileOffset + 3 * 4096, 99);
}

SyntheticCore sampleCore(const std::string& libraryPath) {
    SyntheticCore core;
    SyntheticCore::Thread crashing{1234, SIGSEGV, {}};
    crashing.registers[16] = 0x401040;                        // rip
    crashing.registers[19] = kStack + 0x800;                  // rsp
    crashing.registers[15] = static_cast<std::uint64_t>(-1);  // orig_rax: not in a system call
    SyntheticCore::Thread waiting{1240, 0, {}};
    waiting.registers[16] = 0x401100;
    waiting.registers[15] = 202;     // futex
    waiting.registers[14] = 0x1111;  // rdi
    waiting.registers[7] = 0x4444;   // r10
    core.threads = {crashing, waiting};
    core.pid = 1234;
    core.command = "python3";
    core.arguments = "python3 -c crash()";
    core.crash = SyntheticCore::Crash{SIGSEGV, SEGV_MAPERR, 0xdead0};
    core.auxv = {{AT_PHDR, kExe + 0x40}, {AT_PAGESZ, 4096}, {AT_ENTRY, 0x401020}};
    core.files = {{kExe, kExe + 0x2000, 0, "/usr/bin/python3"},
                  {kLib, kLib + 0x3000, kLibFileOffset / 4096, libraryPath},
                  {kGap, kGap + 0x1000, 0, libraryPath}};
    core.segments = {{kStack, 0x1000, pattern(0x1000, 3), PF_R | PF_W},
                     {kExe, 0x1000, pattern(0x1000, 1), PF_R},
                     {kExe + 0x1000, 0x1000, pattern(0x1000, 2), PF_R | PF_X},
                     {kLib, 0x3000, pattern(0x1000, 4), PF_R}};
    // Not named CORE: ignored, even with a type CORE notes use.
    core.rawNotes = {{"LINUX", NT_X86_XSTATE, std::vector<std::uint8_t>(64, 0xab), {}},
                     {"LINUX", NT_PRSTATUS, std::vector<std::uint8_t>(sizeof(elf_prstatus), 0), {}}};
    return core;
}

void checkBadCore(const std::vector<std::uint8_t>& bytes, const std::string& expected) {
    try {
        (void)CoreFile::fromBytes(bytes, "core.bad");
        FAIL("no error, expected: " << expected);
    } catch (const FatalError& e) {
        CHECK(e.kind() == ErrorKind::BadCore);
        CHECK_THAT(e.what(), Catch::Contains(expected));
    }
}

}  // namespace

TEST_CASE("CoreFile reads threads, crash, process and files from the notes", "[core]") {
    const auto bytes = sampleCore("/lib/libx.so").build();
    const CoreFile core = CoreFile::fromBytes(bytes, "core.1234");
    CHECK(core.path() == "core.1234");
    CHECK(core.pid() == 1234);
    CHECK(core.command() == "python3");
    CHECK(core.arguments() == "python3 -c crash()");
    CHECK_FALSE(core.truncated());

    REQUIRE(core.threads().size() == 2);
    const CoreThread& first = core.threads()[0];
    CHECK(first.tid == 1234);
    CHECK(first.signal == SIGSEGV);
    CHECK(first.pc() == 0x401040);
    CHECK(first.sp() == kStack + 0x800);
    CHECK(first.syscall() == -1);
    const CoreThread& second = core.threads()[1];
    CHECK(second.tid == 1240);
    CHECK(second.signal == 0);
    CHECK(second.syscall() == 202);
    CHECK(second.syscallArgs()[0] == 0x1111);
    CHECK(second.syscallArgs()[3] == 0x4444);

    CHECK(core.crash().signal == SIGSEGV);
    CHECK(core.crash().code == SEGV_MAPERR);
    REQUIRE(core.crash().faultAddress.has_value());
    CHECK(*core.crash().faultAddress == 0xdead0);
    CHECK(core.crash().tid == 1234);

    CHECK(core.auxv(AT_ENTRY) == 0x401020);
    CHECK(core.auxv(AT_PAGESZ) == 4096);
    CHECK_FALSE(core.auxv(AT_BASE).has_value());
    CHECK(core.executablePath() == "/usr/bin/python3");

    REQUIRE(core.fileMappings().size() == 3);
    CHECK(core.fileMappings()[1].start == kLib);
    CHECK(core.fileMappings()[1].end == kLib + 0x3000);
    CHECK(core.fileMappings()[1].fileOffset == kLibFileOffset);
    CHECK(core.fileMappings()[1].path == "/lib/libx.so");

    REQUIRE(core.segments().size() == 4);
    CHECK(std::is_sorted(core.segments().begin(), core.segments().end(),
                         [](const CoreSegment& a, const CoreSegment& b) { return a.vaddr < b.vaddr; }));
    CHECK(core.segments()[2].fileSize == 0x1000);
    CHECK(core.segments()[2].memSize == 0x3000);

    const auto maps = core.maps();
    REQUIRE(maps.size() == 4);
    CHECK(maps[0].start == kExe);
    CHECK(maps[0].end == kExe + 0x1000);
    CHECK(maps[0].path == "/usr/bin/python3");
    CHECK(maps[0].offset == 0);
    CHECK((maps[0].readable && !maps[0].writable && !maps[0].executable));
    CHECK(maps[1].path == "/usr/bin/python3");
    CHECK(maps[1].offset == 0x1000);
    CHECK(maps[1].executable);
    CHECK(maps[2].path == "/lib/libx.so");
    CHECK(maps[2].offset == kLibFileOffset);
    CHECK(maps[2].end == kLib + 0x3000);
    CHECK(maps[3].start == kStack);
    CHECK(maps[3].path.empty());
    CHECK((maps[3].readable && maps[3].writable));

    SECTION("without NT_SIGINFO or NT_PRPSINFO, the first thread says") {
        auto plain = sampleCore("/lib/libx.so");
        plain.crash.reset();
        plain.pid.reset();
        const auto plainBytes = plain.build();
        const CoreFile other = CoreFile::fromBytes(plainBytes);
        CHECK(other.crash().signal == SIGSEGV);
        CHECK(other.crash().code == 0);
        CHECK_FALSE(other.crash().faultAddress.has_value());
        CHECK(other.pid() == 1234);
        CHECK(other.command().empty());
    }
    SECTION("bytes() is bounded by the file") {
        CHECK(core.bytes(0, 4).size() == 4);
        CHECK(core.bytes(bytes.size() - 1, 1).size() == 1);
        CHECK(core.bytes(bytes.size(), 1).empty());
        CHECK(core.bytes(1, ~std::uint64_t{0}).empty());
    }
}

TEST_CASE("CoreMemory reads the core, then the files it omits", "[core]") {
    const auto fileBytes = libraryFile();
    const TempFile library(fileBytes);
    const auto bytes = sampleCore("/lib/libx.so").build();
    auto core = std::make_shared<const CoreFile>(CoreFile::fromBytes(bytes));
    int lookups = 0;
    const CoreMemory memory(core, [&](const std::string& path) {
        ++lookups;
        return path == "/lib/libx.so" ? library.path() : std::string();
    });
    const auto exe1 = pattern(0x1000, 1);
    const auto exe2 = pattern(0x1000, 2);
    const auto lib = pattern(0x1000, 4);

    SECTION("inside one segment") {
        std::array<std::uint8_t, 16> out{};
        REQUIRE(memory.read(kExe + 0x100, out.data(), out.size()).ok());
        CHECK(std::equal(out.begin(), out.end(), exe1.begin() + 0x100));
        CHECK(memory.read(kExe, out.data(), 0).ok());
        CHECK(lookups == 0);
    }
    SECTION("across two adjacent segments") {
        std::vector<std::uint8_t> out(0x2000);
        REQUIRE(memory.read(kExe, out.data(), out.size()).ok());
        CHECK(std::equal(exe1.begin(), exe1.end(), out.begin()));
        CHECK(std::equal(exe2.begin(), exe2.end(), out.begin() + 0x1000));
    }
    SECTION("past the core's bytes of a segment, from the file") {
        std::vector<std::uint8_t> out(0x3000);
        REQUIRE(memory.read(kLib, out.data(), out.size()).ok());
        CHECK(std::equal(lib.begin(), lib.end(), out.begin()));
        CHECK(std::equal(out.begin() + 0x1000, out.end(), fileBytes.begin() + kLibFileOffset + 0x1000));
        // A second read opens nothing more.
        REQUIRE(memory.read(kLib + 0x2ff0, out.data(), 16).ok());
        CHECK(lookups == 1);
    }
    SECTION("in a file mapping with no segment, from the file") {
        std::array<std::uint8_t, 64> out{};
        REQUIRE(memory.read(kGap + 0x10, out.data(), out.size()).ok());
        CHECK(std::equal(out.begin(), out.end(), fileBytes.begin() + 0x10));
    }
    SECTION("outside every segment and file: a fault at the first unreadable byte") {
        std::array<std::uint8_t, 16> out{};
        const Status outside = memory.read(0x1000, out.data(), out.size());
        REQUIRE_FALSE(outside.ok());
        CHECK(outside.error().kind == ReadErrorKind::Fault);
        CHECK(outside.error().address == 0x1000);
        const Status past = memory.read(kStack + 0xff8, out.data(), out.size());
        REQUIRE_FALSE(past.ok());
        CHECK(past.error().address == kStack + 0x1000);
        CHECK_FALSE(memory.read(kGap + 0xff8, out.data(), out.size()).ok());
        CHECK_FALSE(memory.read(~std::uint64_t{0} - 4, out.data(), out.size()).ok());
    }
    SECTION("a file the locator cannot find: a fault") {
        const CoreMemory blind(core, [](const std::string&) { return std::string(); });
        std::array<std::uint8_t, 16> out{};
        CHECK(blind.read(kLib + 0xff0, out.data(), 16).ok());  // still in the core
        const Status status = blind.read(kLib + 0xff8, out.data(), 16);
        REQUIRE_FALSE(status.ok());
        CHECK(status.error().kind == ReadErrorKind::Fault);
        CHECK(status.error().address == kLib + 0x1000);
    }
    SECTION("a file shorter than its mapping: a fault") {
        const TempFile shortFile(pattern(kLibFileOffset + 0x1800, 99));
        const CoreMemory cut(core, [&](const std::string&) { return shortFile.path(); });
        std::array<std::uint8_t, 16> out{};
        CHECK(cut.read(kLib + 0x17f0, out.data(), 16).ok());
        CHECK_FALSE(cut.read(kLib + 0x17f8, out.data(), 16).ok());
    }
}

TEST_CASE("CoreFile::open maps a core file, or says why it cannot", "[core]") {
    const auto bytes = sampleCore("/lib/libx.so").build();
    const TempFile file(bytes);
    const CoreFile core = CoreFile::open(file.path());
    CHECK(core.path() == file.path());
    CHECK(core.threads().size() == 2);
    CHECK(core.bytes(0, 4).size() == 4);
    CoreFile moved = CoreFile::open(file.path());
    moved = CoreFile::open(file.path());  // the previous mapping is released
    CHECK(moved.segments().size() == 4);

    try {
        (void)CoreFile::open("/nonexistent/core.1");
        FAIL("opened a missing file");
    } catch (const FatalError& e) {
        CHECK(e.kind() == ErrorKind::NoSuchProcess);
        CHECK(std::string(e.what()) == "no such core file: /nonexistent/core.1");
    }
    const TempFile empty({});
    try {
        (void)CoreFile::open(empty.path());
        FAIL("opened an empty file");
    } catch (const FatalError& e) {
        CHECK(e.kind() == ErrorKind::BadCore);
        CHECK_THAT(e.what(), Catch::Contains("empty file"));
    }
}

TEST_CASE("CoreFile rejects what is not an intact x86-64 core", "[core]") {
    SECTION("not ELF") {
        const std::string text = "this is not a core";
        checkBadCore({text.begin(), text.end()}, "core.bad is not an ELF file");
    }
    SECTION("empty") {
        checkBadCore({}, "core.bad: empty file");
    }
    SECTION("an executable") {
        auto exe = sampleCore("/lib/libx.so");
        exe.elfType = ET_EXEC;
        checkBadCore(exe.build(), "core.bad is not a core file (an ELF executable)");
    }
    SECTION("ELF header cut off") {
        auto bytes = sampleCore("/lib/libx.so").build();
        bytes.resize(40);
        checkBadCore(bytes, "truncated core");
    }
    SECTION("program headers cut off") {
        auto bytes = sampleCore("/lib/libx.so").build();
        bytes.resize(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 20);
        checkBadCore(bytes, "core.bad: truncated core: program headers cut off");
    }
    SECTION("a note larger than its segment") {
        auto core = sampleCore("/lib/libx.so");
        core.rawNotes.push_back({"CORE", 0x4242, {1, 2, 3, 4}, 0xfffffff0u});
        checkBadCore(core.build(), "runs past its segment");
    }
    // An NT_FILE note of `count` mappings holding one, with `tail` for its paths.
    auto withFileNote = [](std::uint64_t count, std::vector<std::uint8_t> tail) {
        auto core = sampleCore("/lib/libx.so");
        core.files.clear();
        std::vector<std::uint8_t> desc;
        SyntheticCore::appendU64s(desc, {count, 4096, kExe, kExe + 0x1000, 0});
        desc.insert(desc.end(), tail.begin(), tail.end());
        core.rawNotes.push_back({"CORE", NT_FILE, desc, {}});
        return core.build();
    };
    SECTION("NT_FILE declares more mappings than it holds") {
        checkBadCore(withFileNote(1000, {'/', 'x', 0}), "bad NT_FILE note: 1000 mappings do not fit");
    }
    SECTION("NT_FILE paths cut off") {
        checkBadCore(withFileNote(1, {'/', 'x'}), "paths cut off");
    }
    SECTION("no thread") {
        auto core = sampleCore("/lib/libx.so");
        core.threads.clear();
        checkBadCore(core.build(), "core.bad: core has no NT_PRSTATUS note (no threads)");
    }
}

TEST_CASE("CoreFile: a segment beyond the end of a cut core is truncated", "[core]") {
    auto bytes = sampleCore("/lib/libx.so").build();
    // The last segment in the file is the library's first page; cut half of it.
    bytes.resize(bytes.size() - 0x800);
    auto core = std::make_shared<const CoreFile>(CoreFile::fromBytes(bytes));
    CHECK(core->truncated());
    const CoreSegment& lib = core->segments()[2];
    CHECK(lib.vaddr == kLib);
    CHECK(lib.fileSize == 0x800);
    const CoreMemory memory(core, [](const std::string&) { return std::string(); });
    std::array<std::uint8_t, 16> out{};
    CHECK(memory.read(kLib + 0x7f0, out.data(), 16).ok());
    CHECK_FALSE(memory.read(kLib + 0x7f8, out.data(), 16).ok());
}

TEST_CASE("CoreFile opens a core of sleep written by gdb's gcore", "[core][gcore]") {
    if (::access("/usr/bin/gcore", X_OK) != 0) {
        WARN("SKIPPED: /usr/bin/gcore is not installed: no real core to check");
        return;
    }
    // The pipe closes on exec: once it reads EOF, the child is sleep.
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[1]);
    char byte = 0;
    while (::read(fds[0], &byte, 1) > 0) {
    }
    ::close(fds[0]);

    char dir[] = "/tmp/pyspy-gcore-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string prefix = std::string(dir) + "/core";
    const std::string command = "/usr/bin/gcore -o " + prefix + " " + std::to_string(child) + " >/dev/null 2>&1";
    const int status = std::system(command.c_str());
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    const std::string corePath = prefix + "." + std::to_string(child);
    struct Cleanup {
        std::string dir;
        ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{dir};
    if (status != 0 || ::access(corePath.c_str(), R_OK) != 0) {
        WARN("SKIPPED: gcore could not dump a child (exit status " << status << "; ptrace not allowed?)");
        return;
    }

    auto core = std::make_shared<const CoreFile>(CoreFile::open(corePath));
    REQUIRE_FALSE(core->threads().empty());
    for (const auto& thread : core->threads()) CHECK(thread.tid == child);
    CHECK(core->pid() == child);
    const std::string exe = core->executablePath();
    INFO("executable: " << exe);
    REQUIRE(exe.size() > 6);
    CHECK(exe.ends_with("/sleep"));
    CHECK_FALSE(core->maps().empty());

    std::uint64_t start = ~std::uint64_t{0};
    for (const auto& file : core->fileMappings()) {
        if (file.path == exe) start = std::min(start, file.start);
    }
    REQUIRE(start != ~std::uint64_t{0});
    const CoreMemory memory(core, [](const std::string& path) { return path; });
    std::array<char, 4> magic{};
    REQUIRE(memory.read(start, magic.data(), magic.size()).ok());
    CHECK(std::string(magic.data(), 4) ==
          "\x7f"
          "ELF");
}
