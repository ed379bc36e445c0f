// Module discovery: path classification tables, findModules on this test process and
// on a live interpreter of the matrix (the symbol addresses it prints itself prove the
// load bias for shared libraries, PIE and non-PIE executables).
#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "elf/elf_test_support.h"
#include "pyspy/elf/module.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/process/maps.h"
#include "support/child_process.h"

using namespace pyspy;

extern "C" __attribute__((noinline, used)) int pyspy_elf_test_marker(int x) {
    return x * 3 + 1;
}

namespace {

std::string realPath(const std::string& path) {
    char buffer[PATH_MAX];
    return ::realpath(path.c_str(), buffer) != nullptr ? std::string(buffer) : path;
}

}  // namespace

TEST_CASE("isPythonBinaryPath", "[elf]") {
    const std::vector<std::pair<std::string, bool>> table = {
        {"/usr/bin/python", true},
        {"/usr/bin/python2", true},
        {"/usr/bin/python2.7", true},
        {"/usr/bin/python3", true},
        {"/usr/bin/python3.11", true},
        {"/root/.pyenv/versions/3.13.0/bin/python3.13", true},
        {"/opt/py/bin/python3.13t", true},
        {"/opt/py/bin/python3.11d", true},
        {"/opt/py/bin/python3.6m", true},
        {"/opt/py/bin/python3.6dm", true},
        {"/opt/py/bin/python3.13td", true},
        {"python3.12", true},
        {"/usr/bin/python3.11 (deleted)", true},
        {"/usr/bin/python3.11-config", false},
        {"/usr/bin/python-config", false},
        {"/usr/bin/python3-config", false},
        {"/usr/bin/pythonw", false},
        {"/usr/bin/python3.", false},
        {"/usr/bin/python3.11.py", false},
        {"/usr/bin/python3.11dd", false},
        {"/usr/bin/python3.11x", false},
        {"/usr/bin/pythont", false},
        {"/usr/bin/ipython3", false},
        {"/usr/bin/python3/", false},
        {"/usr/lib/python3.11/lib-dynload/_ssl.so", false},
        {"/usr/lib/libpython3.11.so.1.0", false},
        {"", false},
        {"/", false},
    };
    for (const auto& [path, expected] : table) {
        INFO(path);
        CHECK(isPythonBinaryPath(path) == expected);
    }
}

TEST_CASE("isLibPythonPath", "[elf]") {
    const std::vector<std::pair<std::string, bool>> table = {
        {"/root/.pyenv/versions/2.7.18/lib/libpython2.7.so.1.0", true},
        {"/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", true},
        {"/root/.pyenv/versions/3.6.15/lib/libpython3.6m.so.1.0", true},
        {"/usr/lib/x86_64-linux-gnu/libpython3.11.so.1", true},
        {"/opt/lib/libpython3.13t.so", true},
        {"/opt/lib/libpython3.12.so", true},
        {"/opt/lib/libpython3.12d.so.1.0", true},
        {"/opt/lib/libpython3.11.so.1.0 (deleted)", true},
        {"libpython3.10.so.1.0", true},
        {"/root/.pyenv/versions/3.11.7/lib/libpython3.so", false},  // stable-ABI shim
        {"/opt/lib/libpython3.11.a", false},
        {"/opt/lib/libpython3.11.so.", false},
        {"/opt/lib/libpython3.11.so.1.x", false},
        {"/opt/lib/libpython3.11.sox", false},
        {"/opt/lib/libpython.so", false},
        {"/opt/lib/libpython3..so", false},
        {"/opt/lib/libpython3.11.so.1.0.debug", false},
        {"/usr/bin/python3.11", false},
        {"/usr/lib/libpythonic.so", false},
        {"/opt/libpython3.11.so.1.0/python", false},
        {"", false},
    };
    for (const auto& [path, expected] : table) {
        INFO(path);
        CHECK(isLibPythonPath(path) == expected);
    }
}

TEST_CASE("findModules on this process: libc's bias is right", "[elf]") {
    const auto maps = readMaps(::getpid());
    std::vector<std::string> skipped;
    const auto modules = findModules(
        ::getpid(), maps, [](std::string_view path) { return path.find("/libc.so") != std::string_view::npos; },
        &skipped);
    CHECK(skipped.empty());
    REQUIRE(modules.size() == 1);
    const LoadedModule& libc = modules.front();
    CHECK(libc.elf != nullptr);
    CHECK(libc.start < libc.end);
    CHECK_FALSE(libc.openPath.empty());
    // Look the names up in libc itself: a sanitizer build interposes malloc and free.
    void* libcHandle = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(libcHandle != nullptr);
    // Functions only: a data symbol the executable uses is copy-relocated into it, and
    // an IFUNC (strlen) resolves to an implementation, so dlsym would differ for them.
    for (const char* name : {"getpid", "malloc", "free", "fork"}) {
        INFO(name);
        const auto address = libc.symbolAddress(name);
        REQUIRE(address);
        CHECK(*address == reinterpret_cast<std::uint64_t>(::dlsym(libcHandle, name)));
        CHECK(libc.contains(*address));
    }
    CHECK_FALSE(libc.symbolAddress("no_such_symbol_pyspy"));
    const auto text = libc.sectionRange(".text");
    REQUIRE(text);
    const auto getpidAddress = reinterpret_cast<std::uint64_t>(::dlsym(libcHandle, "getpid"));
    ::dlclose(libcHandle);
    CHECK(text->first <= getpidAddress);
    CHECK(getpidAddress < text->second);
    const auto section = libc.section(".text");
    REQUIRE(section);
    CHECK(section->address == text->first);
    CHECK(section->address == libc.elf->findSection(".text")->address + libc.bias);
    CHECK_FALSE(libc.sectionRange(".comment"));  // not allocated
    CHECK(libc.section(".comment").value_or(ElfSection{}).address == 0);
    CHECK_FALSE(libc.section(".no_such_section"));
}

TEST_CASE("findModules: nothing wanted, nothing found; pseudo mappings are never offered", "[elf]") {
    const auto maps = readMaps(::getpid());
    bool sawPseudo = false;
    const auto none = findModules(::getpid(), maps, [&](std::string_view path) {
        if (path.empty() || path.front() != '/') sawPseudo = true;
        return false;
    });
    CHECK(none.empty());
    CHECK_FALSE(sawPseudo);
}

TEST_CASE("findExecutableModule on this (PIE) test binary", "[elf]") {
    const auto maps = readMaps(::getpid());
    const auto exe = findExecutableModule(::getpid(), maps);
    REQUIRE(exe);
    CHECK(realPath(exe->path) == realPath("/proc/self/exe"));
    const auto marker = exe->symbolAddress("pyspy_elf_test_marker");
    REQUIRE(marker);
    CHECK(*marker == reinterpret_cast<std::uint64_t>(&pyspy_elf_test_marker));
    CHECK(exe->contains(*marker));
    if (exe->elf->type() == ET_DYN) CHECK(exe->bias != 0);
}

TEST_CASE("findModules on a live interpreter: symbol addresses match what it prints", "[elf][interp]") {
    const std::string python = test::testPython();
    // Works on 2.7 too: no print function, no f-strings.
    const std::string script =
        "import ctypes, sys, time\n"
        "def addr(name):\n"
        "    try:\n"
        "        return ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, name))\n"
        "    except ValueError:\n"
        "        return 0\n"
        "sys.stdout.write('addr %d %d %d %d\\n' % (addr('PyCode_Type'), addr('_PyRuntime'), addr('Py_Version'),"
        " sys.hexversion))\n"
        "sys.stdout.flush()\n"
        "time.sleep(60)\n";
    test::ChildProcess child({python, "-c", script});
    const auto line = child.waitFor("addr ");
    REQUIRE(line);
    const auto w = test::words(*line);
    REQUIRE(w.size() == 4);
    const std::uint64_t codeType = std::stoull(w[0]);
    const std::uint64_t runtime = std::stoull(w[1]);
    const std::uint64_t version = std::stoull(w[2]);
    const std::uint32_t hexversion = static_cast<std::uint32_t>(std::stoul(w[3]));
    REQUIRE(codeType != 0);
    INFO(python << " hexversion " << std::hex << hexversion);

    const auto maps = readMaps(child.pid());
    std::vector<std::string> skipped;
    const auto modules = findModules(
        child.pid(), maps, [](std::string_view path) { return isPythonBinaryPath(path) || isLibPythonPath(path); },
        &skipped);
    CHECK(skipped.empty());
    REQUIRE_FALSE(modules.empty());
    CHECK(modules.size() <= 2);  // the executable, and libpython for a shared build

    // Exactly one module defines the interpreter's symbols: libpython if there is one,
    // else the (possibly non-PIE) executable.
    const LoadedModule* owner = nullptr;
    for (const auto& module : modules) {
        if (module.symbolAddress("PyCode_Type")) {
            CHECK(owner == nullptr);
            owner = &module;
        }
    }
    REQUIRE(owner != nullptr);
    INFO(owner->path << " bias 0x" << std::hex << owner->bias);
    CHECK(*owner->symbolAddress("PyCode_Type") == codeType);
    CHECK(owner->contains(codeType));
    const auto data = owner->sectionRange(".data");
    REQUIRE(data);
    CHECK(data->first <= codeType);
    CHECK(codeType < data->second);
    if (runtime != 0) CHECK(*owner->symbolAddress("_PyRuntime") == runtime);
    if (version != 0) {
        CHECK(*owner->symbolAddress("Py_Version") == version);
        // The file's bytes and the live process's bytes agree.
        const auto fileBytes = owner->elf->readAtAddress(owner->elf->findSymbol("Py_Version")->value, 4);
        REQUIRE(fileBytes);
        std::uint32_t fromFile = 0;
        std::memcpy(&fromFile, fileBytes->data(), 4);
        CHECK(fromFile == hexversion);
        LiveProcessMemory memory(child.pid());
        const auto live = readValue<std::uint32_t>(memory, version);
        REQUIRE(live.ok());
        CHECK(*live == hexversion);
    }
    if (hexversion >= 0x030b0000) CHECK(version != 0);

    // The executable module is the file the interpreter runs as.
    const auto exe = findExecutableModule(child.pid(), maps);
    REQUIRE(exe);
    // PYSPY_TEST_PYTHON is an absolute path; a bare "python3" may be a pyenv shim script.
    const std::string expectedExe = python.find('/') != std::string::npos
                                        ? realPath(python)
                                        : realPath("/proc/" + std::to_string(child.pid()) + "/exe");
    CHECK(realPath(exe->path) == expectedExe);
    CHECK(isPythonBinaryPath(exe->path));
    if (exe->elf->type() == ET_EXEC) CHECK(exe->bias == 0);  // non-PIE: loaded at its link address
    const bool sharedBuild =
        std::any_of(modules.begin(), modules.end(), [](const LoadedModule& m) { return isLibPythonPath(m.path); });
    CHECK((owner->path == exe->path) == !sharedBuild);
}
