// parseMaps on fixed samples, readMaps and targetFilePath on real children.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>

#include "forked_child.h"
#include "pyspy/common/error.h"
#include "pyspy/common/fd.h"
#include "pyspy/process/maps.h"
#include "support/child_process.h"

using namespace pyspy;

TEST_CASE("parseMaps reads every field and odd paths", "[maps]") {
    const std::string_view text =
        "55d0c2a00000-55d0c2a28000 r--p 00000000 08:01 1835047                    /usr/bin/python3.12\n"
        "55d0c2a28000-55d0c2b00000 r-xp 00028000 08:01 1835047                    /usr/bin/python3.12\n"
        "55d0c4000000-55d0c4100000 rw-p 00000000 00:00 0                          [heap]\n"
        "7f1200000000-7f1200021000 rw-s 00001000 00:05 42                         /dev/shm/my file (1)\n"
        "7f1300000000-7f1300001000 r--p 00000000 fd:00 77                         /tmp/lib x.so (deleted)\n"
        "7f1400000000-7f1400010000 ---p 00000000 00:00 0 \n"
        "7f1500000000-7f1500010000 rw-p 00000000 00:00 0\n"
        "7ffc8e9f0000-7ffc8ea11000 rw-p 00000000 00:00 0                          [stack]\n"
        "7ffc8eb5c000-7ffc8eb5e000 r-xp 00000000 00:00 0                          [vdso]\n"
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";

    const auto maps = parseMaps(text);
    REQUIRE(maps.size() == 10);

    CHECK(maps[0].start == 0x55d0c2a00000ULL);
    CHECK(maps[0].end == 0x55d0c2a28000ULL);
    CHECK(maps[0].size() == 0x28000);
    CHECK(maps[0].readable);
    CHECK_FALSE(maps[0].writable);
    CHECK_FALSE(maps[0].executable);
    CHECK_FALSE(maps[0].shared);
    CHECK(maps[0].inode == 1835047);
    CHECK(maps[0].path == "/usr/bin/python3.12");
    CHECK(maps[1].executable);
    CHECK(maps[1].offset == 0x28000);
    CHECK(maps[2].path == "[heap]");
    CHECK(maps[2].writable);
    CHECK(maps[3].shared);
    CHECK(maps[3].offset == 0x1000);
    CHECK(maps[3].path == "/dev/shm/my file (1)");
    CHECK(maps[4].path == "/tmp/lib x.so (deleted)");
    CHECK_FALSE(maps[5].readable);
    CHECK(maps[5].path.empty());
    CHECK(maps[6].path.empty());
    CHECK(maps[7].path == "[stack]");
    CHECK(maps[8].path == "[vdso]");
    CHECK(maps[9].start == 0xffffffffff600000ULL);
    CHECK(maps[9].contains(0xffffffffff600fffULL));
    CHECK_FALSE(maps[9].contains(0xffffffffff601000ULL));
}

TEST_CASE("parseMaps skips malformed lines and keeps the rest", "[maps]") {
    const std::string_view text =
        "garbage\n"
        "\n"
        "1000-2000 r-xp 00000000 08:01 5 /ok/first\n"
        "2000 r-xp 00000000 08:01 5 /no/end\n"
        "3000-2000 r-xp 00000000 08:01 5 /end/before/start\n"
        "4000-5000 rx 00000000 08:01 5 /short/perms\n"
        "5000-6000 r-xp zz 08:01 5 /bad/offset\n"
        "6000-7000 r-xp 00000000 0801 5 /bad/device\n"
        "7000-8000 r-xp 00000000 08:01 x /bad/inode\n"
        "8000-9000 r-xp 00000000 08:01 5x/glued\n"
        "9000-a000 rw-p 00000000 00:00 0 /ok/last\r\n";
    const auto maps = parseMaps(text);
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].path == "/ok/first");
    CHECK(maps[1].start == 0x9000);
    CHECK(maps[1].path == "/ok/last");
}

TEST_CASE("readMaps of a real child finds its executable and stack", "[maps]") {
    test::ChildProcess child({"/bin/sh", "-c", "echo ready; sleep 30"});
    REQUIRE(child.waitFor("ready"));  // exec has finished
    const auto maps = readMaps(child.pid());
    REQUIRE_FALSE(maps.empty());
    const std::string exe = readExecutablePath(child.pid());
    REQUIRE_FALSE(exe.empty());
    const auto isExe = [&](const MemoryMapping& m) { return m.path == exe; };
    CHECK(std::any_of(maps.begin(), maps.end(), isExe));
    CHECK(std::any_of(maps.begin(), maps.end(), [](const MemoryMapping& m) { return m.path == "[stack]"; }));
    CHECK(std::is_sorted(maps.begin(), maps.end(), [](const auto& a, const auto& b) { return a.start < b.start; }));

    // The executable's first mapping opens through map_files (we are root) and is an ELF file.
    const auto first = std::find_if(maps.begin(), maps.end(), isExe);
    const std::string path = targetFilePath(child.pid(), *first);
    CHECK(path.find("/map_files/") != std::string::npos);
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd.valid());
    char magic[4] = {};
    REQUIRE(::read(fd.get(), magic, 4) == 4);
    CHECK(std::memcmp(magic,
                      "\x7f"
                      "ELF",
                      4) == 0);
}

TEST_CASE("readMaps and targetFilePath handle a deleted file with spaces in its name", "[maps]") {
    char dir[] = "/tmp/pyspy maps XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string file = std::string(dir) + "/mapped (file).bin";
    const std::string content = "content of a deleted file";

    test::ForkedChild child([&](int toTest) {
        FD fd(::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd || ::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) return 1;
        void* mapped = ::mmap(nullptr, content.size(), PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (mapped == MAP_FAILED) return 2;
        ::unlink(file.c_str());
        test::sendValue(toTest, reinterpret_cast<std::uint64_t>(mapped));
        test::sleepForever();
    });
    std::uint64_t address = 0;
    REQUIRE(child.receive(address));
    ::rmdir(dir);

    const auto maps = readMaps(child.pid());
    const auto it = std::find_if(maps.begin(), maps.end(), [&](const auto& m) { return m.contains(address); });
    REQUIRE(it != maps.end());
    CHECK(it->path == file + " (deleted)");

    const std::string path = targetFilePath(child.pid(), *it);
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd.valid());  // map_files still reaches the deleted file
    std::string read(content.size(), '\0');
    REQUIRE(::read(fd.get(), read.data(), read.size()) == static_cast<ssize_t>(read.size()));
    CHECK(read == content);
}

TEST_CASE("targetFilePath falls back to /proc/PID/root without the deleted marker", "[maps]") {
    MemoryMapping notMapped;
    notMapped.start = 0x1000;  // no such mapping, so map_files cannot open it
    notMapped.end = 0x2000;
    notMapped.path = "/usr/lib/lib python.so (deleted)";
    CHECK(targetFilePath(::getpid(), notMapped) ==
          "/proc/" + std::to_string(::getpid()) + "/root/usr/lib/lib python.so");
    notMapped.path = "[heap]";
    CHECK(targetFilePath(::getpid(), notMapped).empty());
}

TEST_CASE("readMaps of a missing process is NoSuchProcess", "[maps]") {
    const pid_t pid = test::deadPid();
    try {
        (void)readMaps(pid);
        FAIL("readMaps did not throw");
    } catch (const FatalError& error) {
        CHECK(error.kind() == ErrorKind::NoSuchProcess);
    }
}

TEST_CASE("mapsEmpty: false for a live process, true for a zombie and a missing one", "[maps]") {
    CHECK_FALSE(mapsEmpty(::getpid()));
    CHECK(mapsEmpty(test::deadPid()));
    const pid_t zombie = ::fork();
    if (zombie == 0) ::_exit(0);
    REQUIRE(zombie > 0);
    // An exited, unreaped child has released its memory: its maps file reads empty.
    bool empty = false;
    for (int i = 0; i < 1000 && !empty; ++i) {
        empty = mapsEmpty(zombie);
        if (!empty) ::usleep(1000);
    }
    CHECK(empty);
    int status = 0;
    ::waitpid(zombie, &status, 0);
    CHECK(mapsEmpty(zombie));  // reaped: no such process
}
