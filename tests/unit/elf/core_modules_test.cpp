// CoreModuleFiles on synthetic cores (process/synthetic_core.h) whose NT_FILE names
// files in a scratch directory: real programs (/bin/true, /bin/false: two build ids)
// copied there, the core keeping the first page of the one the process "ran".
#include "pyspy/elf/core_modules.h"

#include <elf.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <memory>

#include "elf/elf_test_support.h"
#include "process/synthetic_core.h"
#include "pyspy/elf/build_id.h"

using namespace pyspy;
using namespace pyspy::test;

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kExe = 0x555555554000;
constexpr std::uint64_t kLib = 0x7f0000000000;
constexpr std::uint64_t kData = 0x7f0000100000;
constexpr std::uint64_t kPage = 4096;

Bytes firstPage(const std::string& path) {
    const std::string data = readWholeFile(path, kPage);
    Bytes page(data.begin(), data.end());
    page.resize(kPage);
    return page;
}

// A core of one thread whose files are added with map(): each one mapped from file
// offset 0 over 3 pages, of which the core keeps the first (`kept`).
class TestCore {
  public:
    TestCore() {
        synthetic_.threads = {{4321, SIGSEGV, {}}};
        synthetic_.pid = 4321;
    }
    void map(std::uint64_t start, const std::string& path, Bytes kept) {
        synthetic_.files.push_back({start, start + 3 * kPage, 0, path});
        synthetic_.segments.push_back({start, 3 * kPage, std::move(kept), PF_R});
    }
    // The executable: the mapping that holds AT_ENTRY.
    void mapExecutable(const std::string& path, Bytes kept) {
        map(kExe, path, std::move(kept));
        synthetic_.auxv = {{AT_PAGESZ, kPage}, {AT_ENTRY, kExe + 0x1040}};
    }
    void build() {
        bytes_ = synthetic_.build();
        core_ = std::make_shared<const CoreFile>(CoreFile::fromBytes(bytes_, "core.test"));
        bare_ = std::make_unique<CoreMemory>(core_, [](const std::string&) { return std::string(); });
    }
    CoreModuleFiles files(CoreFileSearch search = {}) const {
        return CoreModuleFiles(*core_, *bare_, std::move(search));
    }
    const CoreFile& core() const { return *core_; }
    const ProcessMemory& memory() const { return *bare_; }

  private:
    SyntheticCore synthetic_;
    Bytes bytes_;
    std::shared_ptr<const CoreFile> core_;
    std::unique_ptr<CoreMemory> bare_;
};

// A scratch directory with copies of /bin/true (the build the core was made from) and
// /bin/false (another build).
struct Files {
    TempDir dir;
    std::string copy(const std::string& source, const std::string& name) const {
        return dir.write(name, readWholeFile(source));
    }
    std::string subdir(const std::string& name) const {
        const std::string path = dir.path() + "/" + name;
        ::mkdir(path.c_str(), 0755);
        return path;
    }
};

struct Ids {
    std::string right, wrong;
};

Ids trueAndFalse() {
    const auto right = buildIdOfFile("/bin/true");
    const auto wrong = buildIdOfFile("/bin/false");
    REQUIRE(right.has_value());
    REQUIRE(wrong.has_value());
    REQUIRE(*right != *wrong);
    return {*right, *wrong};
}

}  // namespace

TEST_CASE("CoreModuleFiles: the file at the recorded path, with the core's build id", "[elf][core]") {
    const Ids ids = trueAndFalse();
    const Files files;
    const std::string lib = files.copy("/bin/true", "libfoo.so");
    TestCore core;
    core.map(kLib, lib, firstPage("/bin/true"));
    core.build();
    // The core kept the headers, and so the build id.
    REQUIRE(buildIdInMemory(core.memory(), kLib) == ids.right);

    const CoreModuleFiles located = core.files();
    CHECK(located.problems().empty());  // nothing asked yet
    CHECK(located.locate(lib) == lib);
    CHECK(located.locate(lib) == lib);  // cached: the same answer
    CHECK_FALSE(located.problem(lib).has_value());
    CHECK(located.problems().empty());
    CHECK(located.locator()(lib) == lib);

    SECTION("a file the core does not name: taken as it is, nothing to check it against") {
        const std::string other = files.copy("/bin/false", "libother.so");
        CHECK(located.locate(other) == other);
        CHECK(located.problems().empty());
    }
}

TEST_CASE("CoreModuleFiles: a file whose build id differs is refused", "[elf][core]") {
    const Ids ids = trueAndFalse();
    const Files files;
    const std::string lib = files.copy("/bin/false", "libfoo.so");  // rebuilt since the core was written
    TestCore core;
    core.map(kLib, lib, firstPage("/bin/true"));
    core.build();

    const CoreModuleFiles located = core.files();
    CHECK(located.locate(lib).empty());
    const auto problem = located.problem(lib);
    REQUIRE(problem.has_value());
    CHECK(*problem ==
          lib + ": no file matches the core's build id " + ids.right + " (" + lib + ": build id " + ids.wrong + ")");
    CHECK(located.problems() == std::vector<std::string>{*problem});
}

TEST_CASE("CoreModuleFiles: a missing ELF file is a problem", "[elf][core]") {
    const Ids ids = trueAndFalse();
    const Files files;
    const std::string lib = files.dir.path() + "/libgone.so";
    TestCore core;
    core.map(kLib, lib, firstPage("/bin/true"));
    // ELF headers whose notes hold no build id: found or not found, nothing more to say.
    const std::string plain = files.dir.path() + "/libplain.so";
    core.map(kLib + 0x10000, plain, elfHeaderImage(0, {}));
    core.build();

    const CoreModuleFiles located = core.files();
    CHECK(located.locate(lib).empty());
    CHECK(located.problem(lib) ==
          lib + ": no file matches the core's build id " + ids.right + " (" + lib + ": not found)");
    CHECK(located.locate(plain).empty());
    CHECK(located.problem(plain) == plain + ": not found (" + plain + ": not found)");
    CHECK(located.problems().size() == 2);

    SECTION("without a build id in the core, any file there is taken") {
        files.copy("/bin/false", "libplain.so");
        const CoreModuleFiles again = core.files();
        CHECK(again.locate(plain) == plain);
        CHECK_FALSE(again.problem(plain).has_value());
    }
}

TEST_CASE("CoreModuleFiles: a \" (deleted)\" file is looked for without the suffix", "[elf][core]") {
    trueAndFalse();
    const Files files;
    const std::string lib = files.copy("/bin/true", "libfoo.so");
    TestCore core;
    core.map(kLib, lib + " (deleted)", firstPage("/bin/true"));
    core.build();
    const CoreModuleFiles located = core.files();
    CHECK(located.locate(lib + " (deleted)") == lib);
    CHECK(located.problems().empty());
}

TEST_CASE("CoreModuleFiles: --lib-search-path directories come first, by base name", "[elf][core]") {
    const Ids ids = trueAndFalse();
    const Files files;
    const std::string empty = files.subdir("empty");
    const std::string search = files.subdir("search");
    const std::string recorded = files.subdir("recorded") + "/libfoo.so";
    files.copy("/bin/true", "search/libfoo.so");
    TestCore core;
    core.map(kLib, recorded, firstPage("/bin/true"));
    core.build();

    SECTION("the right file in the search path, a wrong one at the recorded path") {
        files.copy("/bin/false", "recorded/libfoo.so");
        const CoreModuleFiles located = core.files({"", {empty, search}});
        CHECK(located.locate(recorded) == search + "/libfoo.so");
        CHECK(located.problems().empty());
    }
    SECTION("the right file in both: the search path wins") {
        files.copy("/bin/true", "recorded/libfoo.so");
        const CoreModuleFiles located = core.files({"", {search}});
        CHECK(located.locate(recorded) == search + "/libfoo.so");
    }
    SECTION("a wrong file in the search path: the recorded path is tried next") {
        files.copy("/bin/false", "search/libfoo.so");
        files.copy("/bin/true", "recorded/libfoo.so");
        const CoreModuleFiles located = core.files({"", {search}});
        CHECK(located.locate(recorded) == recorded);
        CHECK(located.problems().empty());
    }
    SECTION("no right file anywhere: every candidate in the problem, in the order tried") {
        files.copy("/bin/false", "search/libfoo.so");
        const CoreModuleFiles located = core.files({"", {empty, search}});
        CHECK(located.locate(recorded).empty());
        CHECK(located.problem(recorded) == recorded + ": no file matches the core's build id " + ids.right + " (" +
                                               empty + "/libfoo.so: not found; " + search + "/libfoo.so: build id " +
                                               ids.wrong + "; " + recorded + ": not found)");
    }
}

TEST_CASE("CoreModuleFiles: --executable is the only candidate for the executable", "[elf][core]") {
    const Ids ids = trueAndFalse();
    const Files files;
    const std::string search = files.subdir("search");
    const std::string exe = files.copy("/bin/true", "app");  // the recorded path holds the right file
    files.copy("/bin/true", "search/app");                   // and so does the search path
    const std::string lib = files.copy("/bin/true", "libfoo.so");
    TestCore core;
    core.mapExecutable(exe, firstPage("/bin/true"));
    core.map(kLib, lib, firstPage("/bin/true"));
    core.build();
    REQUIRE(core.core().executablePath() == exe);

    SECTION("the right file given") {
        const std::string given = files.copy("/bin/true", "app-copy");
        const CoreModuleFiles located = core.files({given, {search}});
        CHECK(located.locate(exe) == given);
        CHECK(located.locate(lib) == lib);  // a library is looked for as usual
        CHECK(located.problems().empty());
    }
    SECTION("a wrong file given: refused, and neither the search path nor the recorded path tried") {
        const std::string given = files.copy("/bin/false", "app-other");
        const CoreModuleFiles located = core.files({given, {search}});
        CHECK(located.locate(exe).empty());
        CHECK(located.problem(exe) == exe + ": no file matches the core's build id " + ids.right + " (" + given +
                                          ": build id " + ids.wrong + ")");
    }
    SECTION("a missing file given") {
        const std::string given = files.dir.path() + "/no-such-app";
        const CoreModuleFiles located = core.files({given, {}});
        CHECK(located.locate(exe).empty());
        CHECK(located.problem(exe) ==
              exe + ": no file matches the core's build id " + ids.right + " (" + given + ": not found)");
    }
    SECTION("without --executable, the search path then the recorded path") {
        const CoreModuleFiles located = core.files({"", {search}});
        CHECK(located.locate(exe) == search + "/app");
    }
}

TEST_CASE("CoreModuleFiles: a missing data file is no problem", "[elf][core]") {
    const Files files;
    const std::string archive = files.dir.path() + "/locale-archive";
    const std::string unnamed = files.dir.path() + "/not-in-the-core";
    TestCore core;
    core.map(kData, archive, Bytes(kPage, 0x5a));  // its first page, without ELF magic
    core.build();
    const CoreModuleFiles located = core.files();
    CHECK(located.locate(archive).empty());
    CHECK_FALSE(located.problem(archive).has_value());
    CHECK(located.locate(unnamed).empty());  // not named by the core, nor on disk
    CHECK(located.problems().empty());

    SECTION("present: taken as it is") {
        files.dir.write("locale-archive", "whatever the file holds now");
        const CoreModuleFiles again = core.files();
        CHECK(again.locate(archive) == archive);
        CHECK(again.problems().empty());
    }
}
