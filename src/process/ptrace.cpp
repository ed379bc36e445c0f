// ThreadPause implementation.
//
// Threading contract: the kernel accepts ptrace requests only from the thread that
// attached (the tracer thread), so a ThreadPause must be created, resumed and
// destroyed on the same thread. Moving it to another thread and destroying it there
// would fail to detach, leaving the target stopped until this process exits.
//
// A thread that is seized but never stops within the bound (an uninterruptible sleep,
// e.g. a vfork parent or a stuck NFS read) cannot be detached yet: the kernel only
// detaches stopped tracees. Such threads are remembered per tracer thread and detached
// by the next pauseAll() or resume() on that thread once they have stopped; if this
// process exits first, the kernel detaches them.
#include "pyspy/process/ptrace.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <ctime>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "pyspy/process/pause_gate.h"
#include "pyspy/process/process.h"
#include "pyspy/process/thread_stats.h"

namespace pyspy {

namespace {

using Clock = std::chrono::steady_clock;

// Threads can be created while we stop the others, so /proc/PID/task is listed again
// after every round of stops. A stopped thread creates nothing, so a few rounds
// converge; the bound only guards against a pathological target.
constexpr int kMaxRounds = 50;
// Extra time given on failure paths to threads that were seized but have not stopped
// yet: a seized thread can only be detached once it is stopped.
constexpr std::chrono::milliseconds kDetachGrace{500};
// How long resume() keeps the other threads stopped for the main thread to take a
// signal queued during the pause. It needs a CPU: tens of microseconds when one is free,
// milliseconds when every CPU is busy (2 ms was too short with both CPUs of the test VM
// spinning: 2 of 20 `faults signals` runs missed a signal; 20 ms: 0 of 30).
constexpr std::chrono::milliseconds kSignalHandOver{20};
// How long waitForStops polls without sleeping when it cannot block (no wait alarm).
constexpr std::chrono::microseconds kSpinBeforeSleep{100};

struct Tracee {
    pid_t tid = 0;
    bool stopped = false;
};

long ptraceRequest(enum __ptrace_request request, pid_t tid, long data = 0) {
    return ::ptrace(request, tid, nullptr, reinterpret_cast<void*>(data));  // NOLINT(performance-no-int-to-ptr)
}

// The value of field `key` ("Tgid:") in the /proc status file `path`; empty if absent.
std::string statusField(const std::string& path, std::string_view key) {
    std::ifstream status(path);
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with(key)) return line.substr(key.size());
    }
    return {};
}

// Whether `tid` is its thread group's leader (its tid is the process id).
bool isGroupLeader(pid_t tid) {
    const std::string tgid = statusField("/proc/" + std::to_string(tid) + "/status", "Tgid:");
    return !tgid.empty() && std::stoi(tgid) == tid;
}

// waitpid(tid, __WALL | WNOHANG) for a tracee, except that the exit of a thread-group
// leader is only peeked at, never reaped: its real parent (maybe this process, for
// `record -- PROGRAM`) must still collect its exit status. Returns like waitpid.
// Whether a waitid report is an exit (not a stop or a continue).
bool reportsExit(const siginfo_t& info) {
    return info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
}

// A stop of `tid` to report, consumed: WSTOPPED without WEXITED can never reap an exit.
bool takeStop(pid_t tid, int& status) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(tid), &info, WSTOPPED | __WALL | WNOHANG) != 0 || info.si_pid == 0) {
        return false;
    }
    status = (info.si_status << 8) | 0x7f;  // as waitpid encodes a stop (event << 16 included)
    return true;
}

pid_t waitTracee(pid_t tid, int& status) {
    if (takeStop(tid, status)) return tid;  // the usual answer, in one call
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | __WALL | WNOHANG | WNOWAIT) != 0) return -1;
    if (info.si_pid == 0) return 0;
    if (reportsExit(info) && isGroupLeader(tid)) {
        status = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8 : info.si_status & 0x7f;
        return tid;
    }
    return ::waitpid(tid, &status, __WALL | WNOHANG);
}

// A deadline for blocking waits. waitid(2) has no timeout, so a POSIX timer of this
// thread sends it a real-time signal whose handler does nothing (installed without
// SA_RESTART): a blocked waitid then fails with EINTR. The signal goes to this thread
// only (SIGEV_THREAD_ID); one that fires just after the wait ended is delivered, and
// does nothing, on the next return from the kernel (timer_settime's own, at the latest).
class WaitAlarm {
  public:
    // This thread's alarm, created on first use; nullptr if the system refuses a timer.
    static WaitAlarm* forThisThread() {
        thread_local WaitAlarm alarm;
        return alarm.ok_ ? &alarm : nullptr;
    }
    WaitAlarm(const WaitAlarm&) = delete;
    WaitAlarm& operator=(const WaitAlarm&) = delete;
    ~WaitAlarm() {
        if (ok_) ::timer_delete(timer_);
    }
    bool arm(Clock::duration after) {
        const auto ns =
            std::max<std::int64_t>(1000, std::chrono::duration_cast<std::chrono::nanoseconds>(after).count());
        itimerspec spec{};
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
        return ::timer_settime(timer_, 0, &spec, nullptr) == 0;
    }
    void disarm() {
        const itimerspec zero{};
        ::timer_settime(timer_, 0, &zero, nullptr);
    }

  private:
    static int signalNumber() { return SIGRTMIN + 3; }  // glibc keeps the first two
    static void onAlarm(int /*signal*/) {}

    WaitAlarm() {
        static const bool installed = [] {
            struct sigaction action {};
            action.sa_handler = &WaitAlarm::onAlarm;
            sigemptyset(&action.sa_mask);
            action.sa_flags = 0;  // no SA_RESTART: the point is to interrupt waitid
            return ::sigaction(signalNumber(), &action, nullptr) == 0;
        }();
        if (!installed) return;
        // Threads inherit their creator's mask; the CLI blocks only SIGINT and SIGTERM,
        // but a blocked alarm would make a wait unbounded, so unblock it here.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, signalNumber());
        if (::pthread_sigmask(SIG_UNBLOCK, &set, nullptr) != 0) return;
        sigevent event{};
        event.sigev_notify = SIGEV_THREAD_ID;
        event.sigev_signo = signalNumber();
        event._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
        ok_ = ::timer_create(CLOCK_MONOTONIC, &event, &timer_) == 0;
    }

    timer_t timer_{};
    bool ok_ = false;
};

enum class Blocked { Unable, Woken, Exited };

// Sleeps until `tid` has a state change to report (a stop or its exit; it is not
// consumed) or the deadline passes. Unable: it cannot block (no alarm).
Blocked blockUntilReportable(pid_t tid, Clock::time_point deadline) {
    WaitAlarm* alarm = WaitAlarm::forThisThread();
    if (alarm == nullptr || !alarm->arm(deadline - Clock::now())) return Blocked::Unable;
    siginfo_t info{};
    const int r = ::waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WSTOPPED | __WALL | WNOWAIT);
    alarm->disarm();
    const bool exited = r == 0 && info.si_pid != 0 && reportsExit(info);
    return exited || (r != 0 && errno == ECHILD) ? Blocked::Exited : Blocked::Woken;
}

// Collects the ptrace stops of every tracee not yet stopped, until all have stopped
// or exited (exited ones are removed) or the deadline passes. Returns false on timeout.
// `firstStop`, when given and unset, receives the time the first tracee was seen stopped.
bool waitForStops(std::vector<Tracee>& tracees, Clock::time_point deadline,
                  std::optional<Clock::time_point>* firstStop = nullptr) {
    // A running thread stops within tens of microseconds of PTRACE_INTERRUPT (an IPI to
    // its CPU). Waiting for it blocks in waitid, so the sampler burns no CPU meanwhile
    // (polling cost ~50 us of CPU per sample at 100 Hz on the 2-vCPU test VM, a third
    // of the profiler's CPU); the kernel wakes us when the stop is reported. Only
    // without a wait alarm does it poll, then sleep with backoff.
    const auto spinUntil = Clock::now() + kSpinBeforeSleep;
    auto backoff = std::chrono::microseconds(50);
    // While blocking works, a pass only takes stops (one call per thread); exits are
    // looked for once a blocking wait has reported one, or on every pass without it.
    bool checkExits = false;
    // The thread interrupted last is likely the last to stop: wait for it before the
    // first pass, which then usually finds every thread stopped (no pass that finds none).
    if (!tracees.empty() && !tracees.back().stopped && tracees.back().tid != 0 &&
        blockUntilReportable(tracees.back().tid, deadline) == Blocked::Exited) {
        checkExits = true;
    }
    for (;;) {
        bool pending = false;
        bool progressed = false;
        pid_t firstPending = 0;
        for (auto& tracee : tracees) {
            if (tracee.stopped || tracee.tid == 0) continue;
            int status = 0;
            const pid_t r = takeStop(tracee.tid, status) ? tracee.tid : checkExits ? waitTracee(tracee.tid, status) : 0;
            if (r == 0 || (r < 0 && errno == EINTR)) {
                pending = true;
                if (firstPending == 0) firstPending = tracee.tid;
                continue;
            }
            progressed = true;
            if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
                tracee.tid = 0;  // exited (ECHILD: exited and already reaped); dropped below
            } else if (WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP) {
                tracee.stopped = true;  // our interrupt, or a group-stop: either way it is stopped
                if (firstStop && !*firstStop) *firstStop = Clock::now();
            } else if (WIFSTOPPED(status)) {
                // A signal-delivery-stop came first. Deliver the signal as if we were not
                // there, and ask again for the stop we want.
                ptraceRequest(PTRACE_CONT, tracee.tid, WSTOPSIG(status));
                ptraceRequest(PTRACE_INTERRUPT, tracee.tid);
                pending = true;
            }
        }
        std::erase_if(tracees, [](const Tracee& t) { return t.tid == 0; });
        if (!pending) return true;
        if (Clock::now() >= deadline) {
            if (checkExits) return false;
            checkExits = true;  // one last pass that also sees exits
            continue;
        }
        if (progressed || firstPending == 0) continue;
        switch (blockUntilReportable(firstPending, deadline)) {
            case Blocked::Woken:
                continue;
            case Blocked::Exited:
                checkExits = true;
                continue;
            case Blocked::Unable:
                checkExits = true;
                break;
        }
        if (Clock::now() < spinUntil) continue;  // poll again: each waitid is a microsecond
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(2000));
    }
}

// Threads this tracer thread seized and gave up on before they stopped; see the top.
thread_local std::vector<pid_t> abandonedTracees;

// Detaches abandoned threads that have stopped (or reaps them if they exited).
void retryAbandoned() {
    std::erase_if(abandonedTracees, [](pid_t tid) {
        int status = 0;
        const pid_t r = waitTracee(tid, status);
        if (r == 0 || (r < 0 && errno == EINTR)) return false;  // still not stopped
        if (r > 0 && WIFSTOPPED(status)) {
            // A signal-delivery-stop hands its signal back; an interrupt or group-stop has none to give.
            const int signal = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
            ptraceRequest(PTRACE_DETACH, tid, signal);
        }
        return true;
    });
}

// Detaches one stopped tracee. A thread killed meanwhile cannot be detached (ESRCH)
// and stays a traced zombie until we reap it: reap it now, or on a later call.
void detachThread(pid_t tid) {
    if (ptraceRequest(PTRACE_DETACH, tid) != 0 && errno == ESRCH) {
        int status = 0;
        if (waitTracee(tid, status) == 0) abandonedTracees.push_back(tid);  // not reaped yet
    }
}

// Failure path: every seized thread must end up detached, never stopped.
void detachAll(std::vector<Tracee>& tracees) {
    waitForStops(tracees, Clock::now() + kDetachGrace);
    for (const auto& tracee : tracees) {
        if (tracee.stopped) {
            detachThread(tracee.tid);
        } else if (ptraceRequest(PTRACE_DETACH, tracee.tid) != 0) {
            abandonedTracees.push_back(tracee.tid);  // still running: detach it once it stops
        }
    }
    tracees.clear();
}

// The first process-directed signal queued and not yet taken by any thread, or 0.
// `tid` must be a stopped tracee of that process. One system call.
int pendingSharedSignal(pid_t tid) {
    __ptrace_peeksiginfo_args args{0, PTRACE_PEEKSIGINFO_SHARED, 1};
    siginfo_t info{};
    return ::ptrace(PTRACE_PEEKSIGINFO, tid, &args, &info) == 1 ? info.si_signo : 0;
}

// Whether thread `tid` of `pid` blocks `signal` (SigBlk in its status; read only when a
// signal is pending, which is rare).
bool blocksSignal(pid_t pid, pid_t tid, int signal) {
    const std::string mask =
        statusField("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status", "SigBlk:");
    std::uint64_t bits = 0;
    const auto begin = mask.find_first_not_of(" \t");
    if (begin == std::string::npos ||
        std::from_chars(mask.data() + begin, mask.data() + mask.size(), bits, 16).ec != std::errc{}) {
        return true;  // unknown: do not wait for a thread that may never take it
    }
    return signal < 1 || signal > 64 || ((bits >> (signal - 1)) & 1U) != 0;
}

bool isDeadThread(pid_t pid, pid_t tid) {
    const auto stat = readThreadStat(pid, tid);
    return !stat.ok() || stat->state == 'Z' || stat->state == 'X' || stat->state == 'x';
}

ReadError pauseError(ReadErrorKind kind, pid_t pid, const std::string& what) {
    return ReadError{kind, 0, "cannot pause process " + std::to_string(pid) + ": " + what};
}

}  // namespace

Result<ThreadPause> ThreadPause::pauseAll(pid_t pid, std::chrono::milliseconds timeout) {
    const TaskDirectory tasks(pid);  // pid <= 0: no such directory; the overload refuses it
    return pauseAll(tasks, {}, timeout);
}

Result<ThreadPause> ThreadPause::pauseAll(const TaskDirectory& tasks, std::vector<pid_t> recent,
                                          std::chrono::milliseconds timeout) {
    retryAbandoned();
    const pid_t pid = tasks.pid();
    if (pid <= 0) return Err{pauseError(ReadErrorKind::ProcessGone, pid, "no such process")};
    // Counted in the gate from before the first request until resume(): a Ctrl-Z waits
    // for this pause to end (pause_gate.h). Refused while pyspy-cpp is being stopped.
    if (!pause_gate::tryEnter()) {
        return Err{pauseError(ReadErrorKind::Fault, pid, "not paused: pyspy-cpp is stopping (job control)")};
    }
    struct GateTicket {
        bool held = true;
        ~GateTicket() {
            if (held) pause_gate::leave();
        }
    } ticket;
    const auto deadline = Clock::now() + timeout;
    // A recent list is only a guess: at least one listing taken during this pause must
    // show nothing new, and every tracee must be in it (see below).
    const bool listedFirst = recent.empty();
    std::vector<pid_t> listed = listedFirst ? tasks.list() : std::move(recent);
    // The main thread is interrupted last (and resumed first, see resume()). While it is
    // stopped the kernel routes a process-directed signal (kill, Ctrl-C, SIGTERM) to any
    // other thread that is not; CPython only runs handlers in the main thread, so if that
    // one sleeps (time.sleep, select) the handler waits for its wake-up: seconds, for a
    // signal sent during a 100 us pause (docs/reliability.md, bug 8). A signal sent while
    // every thread is stopped stays queued for the process and is taken by the first
    // thread to run after the pause; resume() makes that the main thread.
    if (const auto main = std::ranges::find(listed, pid); main != listed.end()) {
        std::rotate(main, main + 1, listed.end());
    }
    std::vector<Tracee> tracees;
    std::vector<pid_t> skipped;  // zombie threads: listed by /proc but never able to stop
    const auto fail = [&tracees](ReadError error) {
        detachAll(tracees);
        return Err{std::move(error)};
    };
    const auto known = [&](pid_t tid) {
        return std::ranges::find(skipped, tid) != skipped.end() ||
               std::ranges::any_of(tracees, [tid](const Tracee& t) { return t.tid == tid; });
    };

    std::vector<pid_t> refused;  // PTRACE_SEIZE gave EPERM
    std::optional<Clock::time_point> firstStop;
    bool converged = false;
    for (int round = 0; round < kMaxRounds && !converged; ++round) {
        bool added = false;
        if (round > 0) listed = tasks.list();
        for (const pid_t tid : listed) {
            if (known(tid)) continue;
            if (const auto it = std::ranges::find(abandonedTracees, tid); it != abandonedTracees.end()) {
                // Seized and interrupted by an earlier, failed pause: just wait for it again.
                abandonedTracees.erase(it);
                tracees.push_back(Tracee{tid, false});
                added = true;
                continue;
            }
            if (ptraceRequest(PTRACE_SEIZE, tid) != 0) {
                const int err = errno;
                if (err == ESRCH) continue;  // the thread exited meanwhile
                if (err == EPERM) {
                    skipped.push_back(tid);
                    // An exited leader stays listed while other threads run; the kernel
                    // refuses to seize it, as any thread that has begun to exit.
                    if (isDeadThread(pid, tid)) continue;
                    // Not permitted, traced by someone else, or just starting to exit.
                    // Decided below, once we know whether any thread could be seized.
                    refused.push_back(tid);
                    continue;
                }
                return fail(pauseError(ReadErrorKind::Fault, pid,
                                       "PTRACE_SEIZE of thread " + std::to_string(tid) + ": " + std::strerror(err)));
            }
            tracees.push_back(Tracee{tid, false});
            added = true;
            // ESRCH here means the thread is exiting: waitForStops sees its exit.
            if (ptraceRequest(PTRACE_INTERRUPT, tid) != 0 && errno != ESRCH) {
                const int err = errno;
                return fail(
                    pauseError(ReadErrorKind::Fault, pid,
                               "PTRACE_INTERRUPT of thread " + std::to_string(tid) + ": " + std::strerror(err)));
            }
        }
        converged = !added && (round > 0 || listedFirst);
        if (added && !waitForStops(tracees, deadline, &firstStop)) {
            return fail(pauseError(
                ReadErrorKind::Fault, pid,
                "timed out after " + std::to_string(timeout.count()) + " ms waiting for its threads to stop"));
        }
    }
    if (!converged) return fail(pauseError(ReadErrorKind::Fault, pid, "threads kept appearing"));
    // A tid from a stale list that the process's own directory no longer shows belongs
    // to no thread of it (or, after a pid wrap, to another process): let it go.
    std::erase_if(tracees, [&listed](const Tracee& tracee) {
        if (std::ranges::find(listed, tracee.tid) != listed.end()) return false;
        detachThread(tracee.tid);
        return true;
    });
    if (tracees.empty() && !refused.empty() && !tasks.list().empty()) {
        // Not one thread could be seized: that is a refusal, not threads exiting.
        return fail(pauseError(ReadErrorKind::Permission, pid,
                               "ptrace of thread " + std::to_string(refused.front()) +
                                   " refused (not permitted, or already traced by a debugger)"));
    }
    // Some threads seized, others refused: the refused ones were exiting (or one is held
    // by another tracer); they are left running.
    if (tracees.empty()) return Err{pauseError(ReadErrorKind::ProcessGone, pid, "the process has exited")};

    std::vector<pid_t> threads;
    threads.reserve(tracees.size());
    for (const auto& tracee : tracees) threads.push_back(tracee.tid);
    // Same order as listThreads: main thread first, then ascending.
    std::ranges::sort(threads, [pid](pid_t a, pid_t b) { return (a == pid) != (b == pid) ? a == pid : a < b; });
    ticket.held = false;  // the ThreadPause leaves the gate when it resumes
    return ThreadPause(pid, std::move(threads), firstStop.value_or(Clock::now()));
}

ThreadPause::ThreadPause(ThreadPause&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)),
      threads_(std::exchange(other.threads_, {})),
      stoppedAt_(other.stoppedAt_),
      inGate_(std::exchange(other.inGate_, false)) {}

ThreadPause& ThreadPause::operator=(ThreadPause&& other) noexcept {
    if (this != &other) {
        resume();
        pid_ = std::exchange(other.pid_, 0);
        threads_ = std::exchange(other.threads_, {});
        stoppedAt_ = other.stoppedAt_;
        inGate_ = std::exchange(other.inGate_, false);
    }
    return *this;
}

ThreadPause::~ThreadPause() {
    resume();
}

std::chrono::steady_clock::time_point ThreadPause::resume() {
    auto released = Clock::now();
    // The main thread goes first. A process-directed signal sent while every thread was
    // stopped is still queued for the process, and the first thread to run takes it: if
    // that is not the main thread, CPython's handler waits until the main thread wakes
    // (see pauseAll). So when one is queued, and the main thread does not block it, the
    // others are held until the main thread has taken it (bounded: kSignalHandOver).
    std::size_t next = 0;
    if (threads_.size() > 1 && threads_.front() == pid_) {
        const pid_t witness = threads_.back();  // still stopped: a tracee we may ask
        if (const int signal = pendingSharedSignal(witness); signal != 0 && !blocksSignal(pid_, pid_, signal)) {
            detachThread(pid_);
            next = 1;
            const auto until = Clock::now() + kSignalHandOver;
            while (pendingSharedSignal(witness) == signal && Clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        }
    }
    for (const pid_t tid : std::span(threads_).subspan(next)) {
        released = Clock::now();
        detachThread(tid);
    }
    threads_.clear();
    retryAbandoned();
    if (std::exchange(inGate_, false)) pause_gate::leave();
    return released;
}

}  // namespace pyspy
