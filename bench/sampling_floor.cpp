// bench_sampling_floor: what the kernel and the machine charge a 100 Hz sampler before
// any profiler logic runs. For a spinning child process (plain C++, no Python), the CPU
// time of the sampling thread per tick (CLOCK_THREAD_CPUTIME_ID, the same clock as
// /proc/.../schedstat) for:
//   sleep    clock_nanosleep to the next tick, nothing else: the wake-up itself
//   read     + one process_vm_readv of 9 ranges of 1 KiB in the child (a --nonblocking
//              sample of a 31-deep 3.12 stack reads 9 ranges, ~10 KiB)
//   pause    + PTRACE_SEIZE, PTRACE_INTERRUPT, a blocking waitid for the stop,
//              PTRACE_DETACH (what the default blocking mode adds per thread)
//   both     read inside the pause (a blocking sample without the Python walk)
// each with the child on the sampler's CPU and on the other one (sched_setaffinity),
// so the cost of cross-CPU interrupts on this machine is visible.
//
//   build/bench/bench_sampling_floor [--seconds 3] [--rate 100]
//
// Prints a Markdown table: µs of sampler CPU per tick, and as % of one core at the rate.
// The difference between a pyspy-cpp sample and the matching row here is what the
// profiler's own code costs (docs/performance.md).
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

constexpr int kRanges = 9;
constexpr std::size_t kRangeBytes = 1024;
alignas(4096) char spinnerData[kRanges * 4096];  // the child reads... nothing; we read it

double threadCpuSeconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void pinTo(pid_t pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(pid, sizeof set, &set) != 0) {
        std::perror("sched_setaffinity");
        std::exit(1);
    }
}

pid_t startSpinner(int cpu) {
    const pid_t pid = fork();
    if (pid == 0) {
        pinTo(0, cpu);
        volatile unsigned long n = 0;
        for (;;) n = n + 1;
    }
    return pid;
}

bool readRanges(pid_t pid) {
    static char local[kRanges * kRangeBytes];
    iovec localIov{local, sizeof local};
    iovec remote[kRanges];
    for (int i = 0; i < kRanges; ++i) remote[i] = {spinnerData + i * 4096 + 128, kRangeBytes};
    return process_vm_readv(pid, &localIov, 1, remote, kRanges, 0) == static_cast<ssize_t>(sizeof local);
}

bool pause(pid_t pid, bool alsoRead) {
    if (ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) return false;
    if (ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) return false;
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WSTOPPED | __WALL) != 0) return false;
    const bool ok = !alsoRead || readRanges(pid);
    return ptrace(PTRACE_DETACH, pid, nullptr, nullptr) == 0 && ok;
}

// µs of this thread's CPU per tick over `seconds` at `rate`, doing `what` each tick.
double measure(const std::string& what, pid_t child, double seconds, double rate) {
    const long periodNs = static_cast<long>(1e9 / rate);
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    const long ticks = static_cast<long>(seconds * rate);
    // One warm-up second's worth of ticks is not counted.
    double start = 0;
    for (long i = -static_cast<long>(rate); i < ticks; ++i) {
        if (i == 0) start = threadCpuSeconds();
        next.tv_nsec += periodNs;
        while (next.tv_nsec >= 1'000'000'000L) {
            next.tv_nsec -= 1'000'000'000L;
            ++next.tv_sec;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
        }
        bool ok = true;
        if (what == "read") ok = readRanges(child);
        if (what == "pause") ok = pause(child, false);
        if (what == "both") ok = pause(child, true);
        if (!ok) {
            std::fprintf(stderr, "%s failed: %s\n", what.c_str(), std::strerror(errno));
            std::exit(1);
        }
    }
    return (threadCpuSeconds() - start) * 1e6 / static_cast<double>(ticks);
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = 3;
    double rate = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
        if (std::strcmp(argv[i], "--rate") == 0) rate = std::atof(argv[i + 1]);
    }
    std::memset(spinnerData, 1, sizeof spinnerData);  // mapped before the fork
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pinTo(0, 0);
    std::printf("| tick | child on the sampler's CPU: µs per tick (%% of a core) | child on another CPU |\n");
    std::printf("|---|---|---|\n");
    for (const char* what : {"sleep", "read", "pause", "both"}) {
        std::string cells[2];
        for (int other = 0; other < 2; ++other) {
            if (other == 1 && cpus < 2) {
                cells[other] = "(one CPU)";
                continue;
            }
            const pid_t child = startSpinner(other);
            usleep(100'000);
            const double us = measure(what, child, seconds, rate);
            kill(child, SIGKILL);
            waitpid(child, nullptr, 0);
            char cell[64];
            std::snprintf(cell, sizeof cell, "%.1f (%.2f%%)", us, us * rate / 1e4);
            cells[other] = cell;
        }
        std::printf("| %s | %s | %s |\n", what, cells[0].c_str(), cells[1].c_str());
        std::fflush(stdout);
    }
    return 0;
}
