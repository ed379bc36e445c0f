// CoreNativeStacks against a real core: a small C program, compiled here with gcc, blocks
// in pause() under f1 → f2 → f3 and is dumped with gdb's gcore. Its stack from the core
// must be the one the live path (NativeUnwinder + NativeSymbolizer) reads from the
// running program, frame for frame.
//
// ctest runs this on its own ("native: core stacks from a gcore", PYSPY_SKIP_EXIT=77):
// without gcc or gcore it exits 77, which ctest reports as skipped, never as passed.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pyspy/common/error.h"
#include "pyspy/native/core_stacks.h"
#include "pyspy/native/symbolizer.h"
#include "pyspy/native/unwinder.h"
#include "pyspy/process/ptrace.h"

using namespace pyspy;

namespace {

constexpr const char* kProgram = R"(#include <stdio.h>
#include <unistd.h>
__attribute__((noinline)) void f3(void) {
    fputs("ready\n", stdout);
    fflush(stdout);
    pause();
}
__attribute__((noinline)) void f2(void) { f3(); __asm__ volatile(""); }
__attribute__((noinline)) void f1(void) { f2(); __asm__ volatile(""); }
int main(void) {
    alarm(120); /* ends by itself if the test does not */
    f1();
    return 0;
}
)";

// Skips the test: exit 77 under ctest (PYSPY_SKIP_EXIT), a warning in a plain run.
bool skipWithout(const char* tool) {
    if (std::system(("command -v " + std::string(tool) + " >/dev/null 2>&1").c_str()) == 0) return false;
    if (std::getenv("PYSPY_SKIP_EXIT") != nullptr) {
        std::printf("SKIP: %s is not installed\n", tool);
        std::fflush(stdout);
        std::exit(77);
    }
    WARN("SKIP: " << tool << " is not installed");
    return true;
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char pattern[] = "/tmp/pyspy-core-XXXXXX";
        if (::mkdtemp(pattern) != nullptr) path = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// The program, started with its stdout on a pipe; killed and reaped at the end.
class Program {
  public:
    explicit Program(const std::string& path) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            ::execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[1]);
        out_ = fds[0];
    }
    ~Program() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (out_ >= 0) ::close(out_);
    }
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;

    pid_t pid() const { return pid_; }
    // Reads its stdout until `line` (with its newline) has come, for at most `timeout`.
    bool waitForLine(const std::string& line, std::chrono::seconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string seen;
        while (seen.find(line + "\n") == std::string::npos && seen.size() < 4096) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
            char buffer[256];
            const ssize_t n = ::read(out_, buffer, sizeof buffer);
            if (n <= 0) return false;
            seen.append(buffer, static_cast<std::size_t>(n));
        }
        return seen.find(line + "\n") != std::string::npos;
    }

  private:
    pid_t pid_ = -1;
    int out_ = -1;
};

std::string functionOf(const NativeFrame& frame) {
    return frame.symbol ? frame.symbol->function : "?";
}

std::vector<std::string> describe(const std::vector<NativeFrame>& frames) {
    std::vector<std::string> out;
    for (const auto& frame : frames) {
        out.push_back(functionOf(frame) + " [" + (frame.symbol ? moduleBaseName(frame.symbol->module) : "?") + "]");
    }
    return out;
}

}  // namespace

TEST_CASE("CoreNativeStacks reads a gcore's native stack as the live path reads the process", "[gcore]") {
    if (skipWithout("gcc") || skipWithout("gcore")) return;
    TempDir dir;
    REQUIRE(!dir.path.empty());
    const std::string source = dir.path / "blocked.c", program = dir.path / "blocked";
    std::ofstream(source) << kProgram;
    const std::string compile =
        "gcc -O0 -g -fno-omit-frame-pointer -o '" + program + "' '" + source + "' >'" + program + ".log' 2>&1";
    REQUIRE(std::system(compile.c_str()) == 0);

    Program running(program);
    REQUIRE(running.pid() > 0);
    REQUIRE(running.waitForLine("ready", std::chrono::seconds(30)));
    // "ready" is written before pause(): wait until the program sleeps in it (bounded).
    // The live stack, as dump --native reads it: paused, unwound, symbolized after.
    NativeStack live;
    bool inPause = false;
    for (int attempt = 0; attempt < 1000 && !inPause; ++attempt) {
        std::ifstream syscall("/proc/" + std::to_string(running.pid()) + "/syscall");
        std::string number;
        syscall >> number;
        inPause = number == "34";  // __NR_pause on x86-64
        if (!inPause) ::usleep(10 * 1000);
    }
    REQUIRE(inPause);
    {
        NativeUnwinder unwinder(running.pid());
        auto pause = ThreadPause::pauseAll(running.pid());
        REQUIRE(pause.ok());
        auto stack = unwinder.unwind(running.pid());
        REQUIRE(stack.ok());
        live = stack.value();
    }
    NativeSymbolizer liveSymbolizer(running.pid());
    for (auto& frame : live.frames) frame.symbol = liveSymbolizer.symbolize(frame.lookupAddress);

    const std::string prefix = dir.path / "core";
    const std::string dump =
        "gcore -o '" + prefix + "' " + std::to_string(running.pid()) + " >'" + prefix + ".log' 2>&1";
    REQUIRE(std::system(dump.c_str()) == 0);
    const std::string core = prefix + "." + std::to_string(running.pid());
    REQUIRE(std::filesystem::exists(core));

    // Every part below reads the same core (one gcore: it takes seconds).
    {  // with every file: the stack of the live process, symbolized the same
        CoreNativeStacks stacks(core, [](const std::string& path) { return path; });
        CHECK(stacks.moduleProblems().empty());
        auto unwound = stacks.unwind(running.pid());
        REQUIRE(unwound.ok());
        NativeStack fromCore = unwound.value();
        for (auto& frame : fromCore.frames) frame.symbol = stacks.symbolize(frame.lookupAddress);
        const auto shown = describe(fromCore.frames);
        INFO("core: " << Catch::Detail::stringify(shown));
        INFO("live: " << Catch::Detail::stringify(describe(live.frames)));
        CHECK(fromCore.complete);
        CHECK_FALSE(fromCore.stop.has_value());

        // f3 right under libc's pause frames, then its callers.
        std::size_t f3 = 0;
        while (f3 < fromCore.frames.size() && functionOf(fromCore.frames[f3]) != "f3") ++f3;
        REQUIRE(f3 + 3 < fromCore.frames.size());
        CHECK(f3 >= 1);
        for (std::size_t i = 0; i < f3; ++i) {
            CHECK(moduleBaseName(fromCore.frames[i].symbol->module).rfind("libc", 0) == 0);
        }
        CHECK(functionOf(fromCore.frames[f3 + 1]) == "f2");
        CHECK(functionOf(fromCore.frames[f3 + 2]) == "f1");
        CHECK(functionOf(fromCore.frames[f3 + 3]) == "main");
        const NativeSymbol& symbol = *fromCore.frames[f3].symbol;
        CHECK(symbol.hasSymbol);
        CHECK(symbol.file.find("blocked.c") != std::string::npos);
        CHECK(symbol.line == 6);  // pause();
        CHECK(fromCore.frames[0].lookupAddress == fromCore.frames[0].pc);
        CHECK(fromCore.frames[f3].lookupAddress == fromCore.frames[f3].pc - 1);

        // Frame for frame what the live path gave.
        REQUIRE(fromCore.frames.size() == live.frames.size());
        for (std::size_t i = 0; i < live.frames.size(); ++i) {
            INFO("frame " << i);
            CHECK(fromCore.frames[i].pc == live.frames[i].pc);
            CHECK(fromCore.frames[i].lookupAddress == live.frames[i].lookupAddress);
            CHECK(fromCore.frames[i].symbol->function == live.frames[i].symbol->function);
            CHECK(fromCore.frames[i].symbol->module == live.frames[i].symbol->module);
            CHECK(fromCore.frames[i].symbol->moduleOffset == live.frames[i].symbol->moduleOffset);
            CHECK(fromCore.frames[i].symbol->file == live.frames[i].symbol->file);
            CHECK(fromCore.frames[i].symbol->line == live.frames[i].symbol->line);
        }
        CHECK(live.complete == fromCore.complete);

        CHECK_FALSE(stacks.unwind(999999999).ok());  // no such thread in the core
    }

    {  // without the program's file: a module problem, its frames unsymbolized
        const std::string programPath = std::filesystem::canonical(program);
        CoreNativeStacks stacks(core, [&](const std::string& path) { return path == programPath ? "" : path; });
        const auto& problems = stacks.moduleProblems();
        INFO(Catch::Detail::stringify(problems));
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].find(programPath) != std::string::npos);
        auto unwound = stacks.unwind(running.pid());
        REQUIRE(unwound.ok());
        bool sawProgram = false;
        for (auto& frame : unwound.value().frames) {
            frame.symbol = stacks.symbolize(frame.lookupAddress);
            CHECK(frame.symbol->function != "f3");
            if (frame.symbol->module == programPath) {
                sawProgram = true;
                CHECK_FALSE(frame.symbol->hasSymbol);
            }
        }
        INFO(Catch::Detail::stringify(describe(unwound.value().frames))
             << " stop: " << unwound.value().stop.value_or(""));
        CHECK(sawProgram);
    }

    {  // another build of the program: refused by its build id, and said so
        const std::string programPath = std::filesystem::canonical(program);
        const std::string other = dir.path / "other";
        const std::string rebuild = "gcc -O0 -g -DOTHER=1 -o '" + other + "' '" + source + "' >/dev/null 2>&1";
        REQUIRE(std::system(rebuild.c_str()) == 0);
        CoreNativeStacks stacks(core, [&](const std::string& path) { return path == programPath ? other : path; });
        const auto& problems = stacks.moduleProblems();
        INFO(Catch::Detail::stringify(problems));
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].find(programPath) != std::string::npos);
        CHECK(problems[0].find("build id") != std::string::npos);
        auto unwound = stacks.unwind(running.pid());
        REQUIRE(unwound.ok());
        for (auto& frame : unwound.value().frames) CHECK(stacks.symbolize(frame.lookupAddress)->function != "f3");
    }

    {  // a file that is not a core is refused as a bad core
        try {
            CoreNativeStacks stacks(program, [](const std::string& path) { return path; });
            FAIL("no error");
        } catch (const FatalError& error) {
            CHECK(error.kind() == ErrorKind::BadCore);
        }
        CHECK_THROWS_AS(CoreNativeStacks(dir.path / "absent", [](const std::string& path) { return path; }),
                        FatalError);
    }
}
