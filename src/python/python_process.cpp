#include "pyspy/python/python_process.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/elf/module.h"
#include "pyspy/process/maps.h"
#include "pyspy/process/prefetched_memory.h"
#include "pyspy/process/process.h"
#include "pyspy/process/ptrace.h"
#include "pyspy/process/thread_activity.h"
#include "pyspy/python/locals.h"
#include "pyspy/python/native_merge.h"

namespace pyspy {

namespace {

constexpr std::size_t kMaxInterpreters = 64;
constexpr std::size_t kMaxThreadStateBytes = 64 * 1024;
constexpr std::size_t kMaxStackChunkBytes = 4 * 1024 * 1024;
constexpr std::size_t kMaxStackChunks = 8;
constexpr std::size_t kStackChunkFirstRead = 16 * 1024;  // CPython's DATA_STACK_CHUNK_SIZE
constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kPthreadScanBytes = 4096;

std::uint64_t at(std::uint64_t base, std::int64_t offset) {
    return base + static_cast<std::uint64_t>(offset);
}

// Whether `signal`'s default action dumps core: one of them ended a process whose core
// the kernel wrote. A core written by gcore records the stop it made (SIGSTOP) instead.
bool coreDumpSignal(int signal) {
    return signal == SIGQUIT || signal == SIGILL || signal == SIGTRAP || signal == SIGABRT || signal == SIGBUS ||
           signal == SIGFPE || signal == SIGSEGV || signal == SIGXCPU || signal == SIGXFSZ || signal == SIGSYS;
}

[[noreturn]] void throwGone(pid_t pid) {
    throw FatalError(ErrorKind::TargetExited, fmt::format("process {} exited", pid));
}

// Whether the process `handle` pins has exited or is exiting. An exiting process loses
// its memory before its pidfd says so: a read that found no process (ESRCH), or an
// empty /proc/PID/maps (mapsEmpty: one byte read, never a throw), already means it is
// going. A pid with no live process behind it cannot be ours either; the pidfd alone
// sees a pid given to another process.
bool processGone(const ProcessHandle& handle, pid_t pid, const ReadError* error) {
    return (error != nullptr && error->kind == ReadErrorKind::ProcessGone) || handle.exited() || !processAlive(pid) ||
           mapsEmpty(pid);
}

}  // namespace

std::unique_ptr<PythonProcess> PythonProcess::attach(pid_t pid, const LocateOptions& options) {
    ProcessHandle handle(pid);  // first: from here on a reuse of the pid is seen
    checkProcessAccessible(pid);
    auto memory = std::make_unique<LiveProcessMemory>(pid);
    PythonTarget target;
    try {
        target = locatePython(pid, *memory, options);
    } catch (const FatalError& e) {
        // A process that exits while we look for its interpreter fails the reads: that
        // is "exited", not "not Python".
        if ((e.kind() == ErrorKind::NotPython || e.kind() == ErrorKind::Internal) &&
            processGone(handle, pid, nullptr)) {
            throwGone(pid);
        }
        throw;
    }
    const bool scanned = target.foundByScan;
    if (!target.warning.empty()) std::fprintf(stderr, "pyspy-cpp: warning: %s\n", target.warning.c_str());
    auto process = std::make_unique<PythonProcess>(pid, std::move(memory), std::move(target), std::move(handle));
    if (scanned && !process->stacksReadable()) {
        if (process->gone()) throwGone(pid);
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("process {}: the interpreter found by scanning has no readable stack", pid));
    }
    return process;
}

std::unique_ptr<PythonProcess> PythonProcess::openCore(const std::string& path, const CoreOpenOptions& options) {
    auto state = std::make_unique<CoreState>();
    state->file = std::make_shared<const CoreFile>(CoreFile::open(path));
    const CoreFile& core = *state->file;
    if (core.truncated()) {
        // Memory past the cut reads as missing, and stacks would come out partly or not
        // at all: not worth a report that looks complete.
        throw FatalError(ErrorKind::BadCore,
                         fmt::format("{}: truncated core: the file ends before its memory does (still being "
                                     "written, or cut by a core size limit such as ulimit -c)",
                                     path));
    }
    state->bare = std::make_unique<CoreMemory>(state->file, [](const std::string&) { return std::string(); });
    state->files = std::make_unique<CoreModuleFiles>(core, *state->bare, options.files);
    const CoreModuleFiles& files = *state->files;
    auto memory = std::make_unique<CoreMemory>(state->file, files.locator());

    TargetImage image;
    image.pid = core.pid();
    image.name = fmt::format("core {}", path);
    image.maps = core.maps();
    image.executablePath = core.executablePath();
    image.commandLine = core.arguments();
    image.filePath = [&files](const MemoryMapping& mapping) { return files.locate(mapping.path); };
    image.alive = [] { return true; };
    // The interpreter's own files must be the ones the process ran: its code objects'
    // names and the layout of its structs are read through them.
    for (const auto& mapping : image.maps) {
        const bool interpreterFile = isPythonBinaryPath(mapping.path) || isLibPythonPath(mapping.path) ||
                                     (!options.files.executable.empty() && mapping.path == image.executablePath);
        if (!interpreterFile) continue;
        if (auto problem = files.problem(mapping.path)) {
            throw FatalError(ErrorKind::BadCore,
                             fmt::format("core {}: {}: give the files the process ran with --executable or "
                                         "--lib-search-path",
                                         path, *problem));
        }
    }
    PythonTarget target = locatePython(image, *memory, options.locate);
    if (!target.warning.empty()) std::fprintf(stderr, "pyspy-cpp: warning: %s\n", target.warning.c_str());
    const bool scanned = target.foundByScan;
    std::unique_ptr<PythonProcess> process(new PythonProcess(std::move(state), std::move(memory), std::move(target)));
    if (scanned && !process->stacksReadable()) {
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("core {}: the interpreter found by scanning has no readable stack", path));
    }
    return process;
}

std::vector<pid_t> PythonProcess::coreThreads(std::unordered_map<pid_t, ThreadActivity>& activities) const {
    std::vector<pid_t> tids;
    for (const CoreThread& thread : core_->file->threads()) {
        tids.push_back(thread.tid);
        ThreadActivity activity;
        activity.running = true;  // stopped outside a system call: it was running code
        if (const std::int64_t number = thread.syscall(); number >= 0) {
            // The registers say what /proc/PID/task/TID/syscall would have: parsed alike.
            const auto a = thread.syscallArgs();
            activity =
                parseSyscallActivity(fmt::format("{} 0x{:x} 0x{:x} 0x{:x} 0x{:x} 0x{:x} 0x{:x} 0x{:x} 0x{:x}", number,
                                                 a[0], a[1], a[2], a[3], a[4], a[5], thread.sp(), thread.pc()));
        }
        activities.emplace(thread.tid, activity);
    }
    return tids;
}

void PythonProcess::fillCoreCrash(ProcessSnapshot& snap) {
    const CoreFile& file = *core_->file;
    CoreCrashInfo info;
    info.path = file.path();
    info.signal = coreDumpSignal(file.crash().signal) ? file.crash().signal : 0;
    info.code = file.crash().code;
    info.codeKnown = file.crash().codeKnown;
    info.faultAddress = file.crash().faultAddress;
    info.tid = file.crash().tid;
    for (auto& thread : snap.threads) {
        if (info.signal != 0 && thread.nativeId == info.tid) {
            thread.crashed = true;
            info.tidIsPython = thread.threadId != 0;  // else the C thread addCrashedNativeThread added
        }
    }
    // The crash first: it is what a core is read for.
    std::stable_partition(snap.threads.begin(), snap.threads.end(), [](const ThreadStack& t) { return t.crashed; });
    info.moduleProblems = core_->files->problems();
    if (core_->native) {
        for (const auto& problem : core_->native->moduleProblems()) {
            if (std::find(info.moduleProblems.begin(), info.moduleProblems.end(), problem) == info.moduleProblems.end())
                info.moduleProblems.push_back(problem);
        }
    }
    snap.core = std::move(info);
}

void PythonProcess::addCrashedNativeThread(ProcessSnapshot& snap,
                                           const std::unordered_map<pid_t, ThreadActivity>& activities,
                                           const SnapshotOptions& options) {
    const CoreCrash& crash = core_->file->crash();
    if (!coreDumpSignal(crash.signal)) return;
    if (std::any_of(snap.threads.begin(), snap.threads.end(),
                    [&](const ThreadStack& t) { return t.nativeId == crash.tid; })) {
        return;
    }
    ThreadStack thread;  // threadId 0: no Python thread state
    thread.nativeId = crash.tid;
    if (auto it = activities.find(crash.tid); it != activities.end()) setWaitState(thread, it->second, false, options);
    unwindNative(thread);
    snap.threads.push_back(std::move(thread));
}

bool PythonProcess::stacksReadable() {
    // A candidate found by scanning is accepted only if some thread's stack walks.
    auto states = readThreadStates(kMaxInterpreters * 64);
    if (!states.ok()) return false;
    for (const auto& state : states.value()) {
        if (state.frame == 0) continue;
        FrameChain partial;
        auto chain = walkThread(state, WalkLimits{}, partial);
        if (chain.ok() && !chain.value().frames.empty()) return true;
    }
    return false;
}

bool PythonProcess::gone(const ReadError* error) const {
    return processGone(handle_, pid_, error);
}

PythonProcess::PythonProcess(pid_t pid, std::unique_ptr<ProcessMemory> memory, PythonTarget target,
                             ProcessHandle handle)
    : pid_(pid),
      handle_(handle.pinned() ? std::move(handle) : ProcessHandle(pid)),
      memory_(std::move(memory)),
      target_(std::move(target)),
      speculative_(*memory_),
      reader_(speculative_, target_.layout, target_.types),
      commandLine_(readCommandLine(pid)),
      versionText_(target_.version.toString()) {}

PythonProcess::PythonProcess(std::unique_ptr<CoreState> core, std::unique_ptr<ProcessMemory> memory,
                             PythonTarget target)
    : core_(std::move(core)),
      pid_(core_->file->pid()),
      memory_(std::move(memory)),
      target_(std::move(target)),
      speculative_(*memory_),
      reader_(speculative_, target_.layout, target_.types),
      commandLine_(core_->file->arguments()),
      versionText_(target_.version.toString()),
      threadStats_(0),  // no /proc for a core
      fds_(0) {}

Result<PythonProcess::ThreadStateInfo> PythonProcess::readThreadState(std::uint64_t address) const {
    const PyLayout& l = target_.layout;
    const auto size = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(l.tstate_size, 64)),
                                            kMaxThreadStateBytes);
    PYSPY_TRY(auto block, RemoteBlock::read(speculative_, address, size));
    ThreadStateInfo info;
    info.address = address;
    PYSPY_TRY(info.threadId, block.pointer(l.tstate_thread_id));
    if (l.tstate_native_thread_id != kAbsent) {
        PYSPY_TRY(auto tid, block.field<std::int64_t>(l.tstate_native_thread_id));
        if (tid > 0 && tid < (std::int64_t{1} << 31)) info.nativeId = static_cast<pid_t>(tid);
    }
    if (l.tstate_frame != kAbsent) {
        PYSPY_TRY(info.frame, block.pointer(l.tstate_frame));
    } else if (l.tstate_cframe != kAbsent) {
        PYSPY_TRY(auto cframe, block.pointer(l.tstate_cframe));
        if (cframe != 0) {
            PYSPY_TRY(info.frame, readPointer(speculative_, at(cframe, l.cframe_current_frame)));
        }
    } else if (l.tstate_current_frame != kAbsent) {
        PYSPY_TRY(info.frame, block.pointer(l.tstate_current_frame));
    }
    if (l.tstate_datastack_chunk != kAbsent) {
        PYSPY_TRY(info.datastackChunk, block.pointer(l.tstate_datastack_chunk));
        if (l.tstate_datastack_top != kAbsent) {
            PYSPY_TRY(info.datastackTop, block.pointer(l.tstate_datastack_top));
        }
    }
    return info;
}

Result<std::vector<PythonProcess::ThreadStateInfo>> PythonProcess::readThreadStates(std::size_t maxThreads) const {
    const PyLayout& l = target_.layout;
    std::vector<ThreadStateInfo> states;
    std::set<std::uint64_t> seen;
    std::uint64_t interp = target_.interpreter;
    for (std::size_t i = 0; interp != 0 && i < kMaxInterpreters; ++i) {
        // interp->threads.head and interp->next in one read.
        const std::int64_t first = std::min(l.interp_tstate_head, l.interp_next);
        const std::int64_t last = std::max(l.interp_tstate_head, l.interp_next);
        PYSPY_TRY(auto interpBlock,
                  RemoteBlock::read(speculative_, at(interp, first), static_cast<std::size_t>(last - first + 8)));
        PYSPY_TRY(auto tstate, interpBlock.pointer(l.interp_tstate_head - first));
        PYSPY_TRY(const std::uint64_t nextInterp, interpBlock.pointer(l.interp_next - first));
        while (tstate != 0 && states.size() < maxThreads) {
            if (!seen.insert(tstate).second) return Err{invalid("thread list loops", tstate)};
            PYSPY_TRY(auto info, readThreadState(tstate));
            states.push_back(info);
            PYSPY_TRY(tstate, readPointer(speculative_, at(tstate, l.tstate_next)));
        }
        interp = nextInterp;
    }
    return states;
}

bool PythonProcess::gilEnabled() const {
    const PyLayout& l = target_.layout;
    if (l.free_threaded == 0) return true;
    if (l.gil_enabled == kAbsent || l.interp_ceval_gil == kAbsent) return false;
    const std::uint64_t gil = readPointer(speculative_, at(target_.interpreter, l.interp_ceval_gil)).valueOr(0);
    return gil != 0 && readValue<std::int32_t>(speculative_, at(gil, l.gil_enabled)).valueOr(0) != 0;
}

std::uint64_t PythonProcess::gilHolder() const {
    const PyLayout& l = target_.layout;
    if (l.free_threaded != 0 && !gilEnabled()) return 0;  // no GIL: threads run Python code at once
    if (target_.tstateCurrentVar != 0) {                  // <=3.6
        return readPointer(speculative_, target_.tstateCurrentVar).valueOr(0);
    }
    if (l.runtime_gilstate_tstate_current != kAbsent && target_.runtime != 0) {  // 3.7-3.11
        return readPointer(speculative_, at(target_.runtime, l.runtime_gilstate_tstate_current)).valueOr(0);
    }
    if (l.interp_ceval_gil != kAbsent && l.gil_locked != kAbsent && l.gil_last_holder != kAbsent) {  // 3.12+
        const std::uint64_t gil = readPointer(speculative_, at(target_.interpreter, l.interp_ceval_gil)).valueOr(0);
        if (gil == 0) return 0;
        const auto locked = readValue<std::int32_t>(speculative_, at(gil, l.gil_locked));
        if (!locked.ok() || locked.value() == 0) return 0;
        return readPointer(speculative_, at(gil, l.gil_last_holder)).valueOr(0);
    }
    return 0;
}

std::uint64_t PythonProcess::gilAddress() const {
    const PyLayout& l = target_.layout;
    if (l.runtime_ceval_gil != kAbsent && target_.runtime != 0) return at(target_.runtime, l.runtime_ceval_gil);
    if (l.interp_ceval_gil != kAbsent)
        return readPointer(speculative_, at(target_.interpreter, l.interp_ceval_gil)).valueOr(0);
    return 0;
}

bool PythonProcess::gilWaitsKnown() const {
    if (target_.layout.free_threaded != 0) return false;
    return target_.layout.gil_cond != kAbsent || target_.gilCondVar != 0 || target_.gilLockVar != 0;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> PythonProcess::gilWaitRanges() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    const PyLayout& l = target_.layout;
    const auto add = [&ranges](std::uint64_t begin, std::uint64_t size) {
        if (begin != 0 && size != 0) ranges.emplace_back(begin, begin + size);
    };
    if (l.gil_cond != kAbsent) {  // 3.7+: in the _gil_runtime_state
        if (const std::uint64_t gil = gilAddress(); gil != 0) {
            const auto condSize = static_cast<std::uint64_t>(l.gil_cond_size);
            const auto mutexSize = static_cast<std::uint64_t>(l.gil_mutex_size);
            add(at(gil, l.gil_cond), condSize);
            // The mutex, then (FORCE_SWITCHING, every version since 3.2) switch_cond and
            // switch_mutex: a thread made to drop the GIL waits there until another took it.
            add(at(gil, l.gil_mutex), mutexSize + condSize + mutexSize);
        }
    } else if (target_.gilCondVar != 0) {  // 3.6: statics of ceval_gil.h
        add(target_.gilCondVar, target_.gilCondSize);
        add(target_.gilMutexVar, target_.gilMutexSize);
        add(target_.gilSwitchCondVar, target_.gilSwitchCondSize);
        add(target_.gilSwitchMutexVar, target_.gilSwitchMutexSize);
    } else if (target_.gilLockVar != 0) {
        // 2.7: the GIL is a PyThread lock, a malloc'ed POSIX semaphore (32 bytes in glibc);
        // a waiting thread sleeps in sem_wait, on a futex word inside it.
        constexpr std::uint64_t kSemaphoreSize = 32;
        add(readPointer(speculative_, target_.gilLockVar).valueOr(0), kSemaphoreSize);
    }
    return ranges;
}

bool PythonProcess::gcCollecting() const {
    // The GC runs in the thread that holds the GIL, with `collecting` set for the whole
    // collection: in _PyRuntime (3.7-3.8), in the interpreter (3.9+), or a static of
    // gcmodule.c (2.7, 3.6).
    const PyLayout& l = target_.layout;
    std::uint64_t flag = 0;
    if (l.runtime_gc_collecting != kAbsent && target_.runtime != 0) {
        flag = at(target_.runtime, l.runtime_gc_collecting);
    } else if (l.interp_gc_collecting != kAbsent && target_.interpreter != 0) {
        flag = at(target_.interpreter, l.interp_gc_collecting);
    } else {
        flag = target_.gcCollectingVar;
    }
    if (flag == 0) return false;
    return readValue<std::int32_t>(speculative_, flag).valueOr(0) != 0;
}

std::unordered_map<std::uint64_t, std::string> PythonProcess::threadNames() const {
    // sys.modules["threading"]._active: {ident: Thread}; Thread._name (2.7: _Thread__name).
    std::unordered_map<std::uint64_t, std::string> names;
    const PyLayout& l = target_.layout;
    if (l.interp_modules == kAbsent) return names;
    auto modules = readPointer(speculative_, at(target_.interpreter, l.interp_modules));
    if (!modules.ok() || modules.value() == 0) return names;
    auto threading = reader_.dictGetString(modules.value(), "threading");
    if (!threading.ok() || threading.value() == 0) return names;
    auto dict = reader_.moduleDict(threading.value());
    if (!dict.ok() || dict.value() == 0) return names;
    auto active = reader_.dictGetString(dict.value(), "_active");
    if (!active.ok() || active.value() == 0) return names;
    auto items = reader_.dictItems(active.value());
    if (!items.ok()) return names;
    const char* attribute = target_.version.major == 2 ? "_Thread__name" : "_name";
    for (const auto& [key, thread] : items.value()) {
        auto ident = reader_.readInt(key);
        if (!ident.ok()) continue;
        auto nameObject = reader_.instanceAttribute(thread, attribute);
        if (!nameObject.ok() || nameObject.value() == 0) continue;
        auto name = reader_.readString(nameObject.value());
        if (name.ok()) names[static_cast<std::uint64_t>(ident.value())] = name.value();
    }
    return names;
}

void PythonProcess::resolveNativeIds(std::vector<ThreadStateInfo>& states, const std::vector<pid_t>& tids) {
    // Before 3.8 a thread state knows only its pthread_t, which in glibc is the address
    // of the thread's struct pthread; the kernel tid sits at a fixed offset inside it.
    // Find that offset once: the one where every thread's struct holds a distinct live tid.
    if (target_.layout.tstate_native_thread_id != kAbsent || states.empty()) return;
    const std::set<pid_t> live(tids.begin(), tids.end());
    if (pthreadTidOffset_) {
        // Calibrated: one 4-byte read per thread.
        for (auto& state : states) {
            auto tid =
                readValue<std::int32_t>(speculative_, state.threadId + static_cast<std::uint64_t>(*pthreadTidOffset_));
            if (tid.ok() && live.count(tid.value()) != 0) state.nativeId = tid.value();
        }
        return;
    }
    std::vector<std::vector<std::uint8_t>> blocks;
    for (const auto& s : states) {
        // struct pthread may sit at the very end of the thread's stack mapping, so a
        // full-size read can fault: take the largest prefix that reads.
        std::vector<std::uint8_t> block;
        for (std::size_t size = kPthreadScanBytes; size >= 512 && block.empty(); size /= 2) {
            block = readBytes(speculative_, s.threadId, size).valueOr({});
        }
        blocks.push_back(std::move(block));
    }
    auto tidAt = [&](std::size_t i, std::int64_t offset) -> std::optional<pid_t> {
        if (blocks[i].size() < static_cast<std::size_t>(offset) + 4) return std::nullopt;
        pid_t tid;
        std::memcpy(&tid, blocks[i].data() + offset, 4);
        if (live.count(tid) == 0) return std::nullopt;
        return tid;
    };
    if (!pthreadTidOffset_) {
        std::size_t bestCount = 0;
        for (std::int64_t offset = 0; offset + 4 <= static_cast<std::int64_t>(kPthreadScanBytes); offset += 4) {
            std::set<pid_t> found;
            for (std::size_t i = 0; i < states.size(); ++i) {
                if (auto tid = tidAt(i, offset)) found.insert(*tid);
            }
            if (found.size() > bestCount) {
                bestCount = found.size();
                pthreadTidOffset_ = offset;
            }
        }
        if (bestCount == 0) return;
    }
    for (std::size_t i = 0; i < states.size(); ++i) {
        if (auto tid = tidAt(i, *pthreadTidOffset_)) states[i].nativeId = *tid;
    }
}

Result<FrameChain> PythonProcess::walkThread(const ThreadStateInfo& state, const WalkLimits& limits,
                                             FrameChain& partial) {
    if (state.frame == 0) return FrameChain{};
    const PyLayout& l = target_.layout;
    if (state.datastackChunk != 0 && l.stackchunk_size != kAbsent) {
        // 3.11+: the frames of a thread live in its data-stack chunks; copy them in
        // bulk so the walk itself costs no system call per frame.
        PrefetchedMemory& prefetched = framePrefetch_;
        prefetched.clear();
        std::uint64_t chunk = state.datastackChunk;
        for (std::size_t i = 0; chunk != 0 && i < kMaxStackChunks; ++i) {
            // The used part of the newest chunk ends at the thread's datastack_top; of an
            // older chunk at data + top slots (top is saved when a newer chunk is pushed).
            // Reads are rounded up to whole pages so that SpeculativeMemory can replay
            // them while the stack depth changes a little.
            std::size_t want = kStackChunkFirstRead;
            if (i == 0 && state.datastackTop > chunk && state.datastackTop - chunk <= kMaxStackChunkBytes) {
                want = static_cast<std::size_t>((state.datastackTop - chunk + kPage - 1) / kPage * kPage);
            }
            auto head = prefetched.prefetch(chunk, want);
            if (!head.ok()) head = prefetched.prefetch(chunk, static_cast<std::size_t>(l.stackchunk_data));
            if (!head.ok()) break;
            const std::span<const std::uint8_t> bytes = head.value();
            const auto word = [&](std::int64_t offset) {
                std::uint64_t v = 0;
                if (offset >= 0 && static_cast<std::size_t>(offset) + 8 <= bytes.size())
                    std::memcpy(&v, bytes.data() + offset, 8);
                return v;
            };
            const std::uint64_t previous = word(l.stackchunk_previous);
            const std::uint64_t size = word(l.stackchunk_size);
            const std::uint64_t top = word(l.stackchunk_top);
            if (size > kMaxStackChunkBytes) break;
            std::uint64_t used = size;
            if (i == 0 && state.datastackTop > chunk && state.datastackTop - chunk <= size) {
                used = state.datastackTop - chunk;
            } else if (i > 0 && top <= size / 8) {
                used = std::min<std::uint64_t>(size, static_cast<std::uint64_t>(l.stackchunk_data) + top * 8);
            }
            if (used > bytes.size()) (void)prefetched.extend(static_cast<std::size_t>(used - bytes.size()));
            chunk = previous;
        }
        ObjectReader reader(prefetched, l, target_.types);
        FrameWalker walker(prefetched, reader, codes_, limits, &walkScratch_, memory_.get());
        return walker.walk(state.frame, &partial);
    }
    FrameWalker walker(speculative_, reader_, codes_, limits, &walkScratch_, memory_.get());
    return walker.walk(state.frame, &partial);
}

void PythonProcess::readLocals(std::vector<PyFrame>& frames, int level) {
    // Values are read once, for dump: not worth replaying on a later snapshot.
    speculative_.setRecording(false);
    const ReprLimits limits = ReprLimits::forLevel(level);
    for (auto& frame : frames) {
        auto locals = readFrameLocals(reader_, frame.address, frame.codeAddress, limits);
        if (locals.ok()) {
            frame.locals = std::move(locals.value());
        } else {
            frame.localsError = locals.error().describe();
        }
    }
    speculative_.setRecording(true);
}

void PythonProcess::unwindNative(ThreadStack& thread) {
    thread.nativeRequested = true;
    if (!thread.nativeId) {
        thread.nativeError = "the thread's OS id is unknown: no native stack";
        return;
    }
    auto stack = core_ ? core_->native->unwind(*thread.nativeId) : unwinder_->unwind(*thread.nativeId);
    if (!stack.ok()) {
        thread.nativeError = stack.error().describe();
        return;
    }
    thread.nativeFrames = std::move(stack.value().frames);
    if (stack.value().stop) thread.nativeError = *stack.value().stop;
}

void PythonProcess::symbolizeAndMerge(ProcessSnapshot& snap, bool nativeAll) {
    NativeMergeRules rules;
    rules.version = target_.version;
    rules.interpreterModules = {target_.executable, target_.libpython};
    rules.showInterpreterFrames = nativeAll;
    for (auto& thread : snap.threads) {
        if (!thread.nativeRequested) continue;
        for (auto& frame : thread.nativeFrames) {
            frame.symbol =
                core_ ? core_->native->symbolize(frame.lookupAddress) : symbolizer_->symbolize(frame.lookupAddress);
        }
        if (!thread.nativeFrames.empty()) mergeNativeStack(thread, rules);
    }
}

void PythonProcess::setWaitState(ThreadStack& thread, const ThreadActivity& activity, bool onGil,
                                 const SnapshotOptions& options) {
    thread.active = activity.running;
    if (activity.running) {
        thread.state = ThreadState::Running;
        return;
    }
    if (!activity.call) {
        thread.state = ThreadState::Other;  // stopped, or its syscall file unreadable (stat fallback)
        return;
    }
    // A poll or select keeps its descriptors in memory: read live (not the snapshot's
    // speculative copy), a few bytes, only for threads blocked in one and only when the
    // descriptor's kind is wanted (dump, record --wait).
    const SyscallWait wait = waitFd(*activity.call, options.fdKinds ? memory_.get() : nullptr);
    thread.state = wait.state;
    // Asleep on the GIL's futex: waiting for it; or, for the thread the GIL's state names
    // as its holder, in the middle of a hand-over (the OS state is read before the GIL's).
    if (wait.state == ThreadState::Lock && onGil)
        thread.state = thread.holdsGil ? ThreadState::Running : ThreadState::Gil;
    thread.active = thread.state == ThreadState::Running;
    thread.waitingForGil = thread.state == ThreadState::Gil;
    WaitReason reason;
    reason.syscallNumber = activity.call->number;
    reason.syscall = syscallName(activity.call->number);
    reason.fd = wait.fd;
    if (wait.fd && options.fdKinds) reason.fdInfo = fds_.describe(*wait.fd, options.fdPeers);
    thread.wait = std::move(reason);
}

ProcessSnapshot PythonProcess::snapshot(const SnapshotOptions& options) {
    if (options.native && !options.pause && !core_) {
        throw FatalError(ErrorKind::Usage,
                         "--native needs the target paused: it cannot be combined with --nonblocking");
    }
    if (options.native && core_ && !core_->native) {
        core_->native = std::make_unique<CoreNativeStacks>(core_->file->path(), core_->files->locator());
    } else if (options.native && !core_ && !unwinder_) {
        unwinder_ = std::make_unique<NativeUnwinder>(pid_);
        symbolizer_ = std::make_unique<NativeSymbolizer>(pid_);
    }
    ProcessSnapshot snap;
    snap.pid = pid_;
    if (options.processInfo) {
        snap.commandLine = commandLine_;
        snap.pythonVersion = versionText_;
        snap.freeThreaded = target_.layout.free_threaded != 0;
        snap.gilEnabled = snap.freeThreaded && gilEnabled();
        snap.executable = target_.executable;
    }
    snap.timestamp = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

    // OS thread states first: once paused, every thread reads as stopped. (A core's are
    // in its registers.)
    std::unordered_map<pid_t, ThreadActivity> activities;
    const std::vector<pid_t> tids = core_ ? coreThreads(activities) : threadStats_.threads(relistThreads_);
    relistThreads_ = false;
    if (tids.empty() && !core_ && gone()) throwGone(pid_);
    // One read per thread says whether it runs and, if it is blocked, in which system
    // call: a thread waiting for the GIL sleeps on the GIL's condition variable or mutex.
    std::vector<pid_t> reentry;  // running now, blocked at the read before: see ThreadStatReader::reentering
    bool anyFutex = std::any_of(activities.begin(), activities.end(),
                                [](const auto& entry) { return entry.second.futexWord.has_value(); });
    if (!core_) {
        for (pid_t tid : tids) {
            if (tid == lastGilHolder_) continue;  // see lastGilHolder_: one pread less per sample
            auto activity = threadStats_.activity(tid);
            if (!activity.ok()) continue;
            anyFutex = anyFutex || activity.value().futexWord.has_value();
            if (activity.value().running && options.pause && threadStats_.wokeFromCall(tid)) reentry.push_back(tid);
            activities.emplace(tid, activity.value());
        }
    }

    std::optional<ThreadPause> pause;
    if (options.pause && !core_) {
        auto paused = ThreadPause::pauseAll(threadStats_.tasks(), tids);
        if (!paused.ok()) {
            if (gone(&paused.error())) throwGone(pid_);  // a dying process refuses ptrace too
            if (paused.error().kind == ReadErrorKind::Permission) {
                throw FatalError(ErrorKind::PermissionDenied,
                                 fmt::format("cannot pause process {} with ptrace: run as the same user or root, grant "
                                             "CAP_SYS_PTRACE, check /proc/sys/kernel/yama/ptrace_scope, or use "
                                             "--nonblocking",
                                             pid_));
            }
            if (gone(&paused.error())) throwGone(pid_);
            throw FatalError(ErrorKind::Internal,
                             fmt::format("cannot pause process {}: {}", pid_, paused.error().describe()));
        }
        pause.emplace(std::move(paused).value());
        snap.paused = true;
        // Woken by our last pause and not yet back in their call (a loaded machine): not running.
        for (pid_t tid : reentry) {
            if (auto blocked = threadStats_.reentering(tid)) {
                anyFutex = anyFutex || blocked->futexWord.has_value();
                activities[tid] = *blocked;
            }
        }
    }

    // Replay last tick's small reads in one batched read (see SpeculativeMemory).
    speculative_.begin();
    struct EndSpeculation {
        SpeculativeMemory& memory;
        ~EndSpeculation() { memory.end(); }
    } endSpeculation{speculative_};
    auto states = readThreadStates(options.maxThreads);
    if (!states.ok()) {
        if (core_) {
            throw FatalError(ErrorKind::BadCore, fmt::format("core {}: cannot read the thread list: {}",
                                                             core_->file->path(), states.error().describe()));
        }
        if (gone(&states.error())) throwGone(pid_);
        throw FatalError(ErrorKind::Internal,
                         fmt::format("cannot read the thread list of process {}: {}", pid_, states.error().describe()));
    }
    resolveNativeIds(states.value(), tids);
    const std::uint64_t holder = gilHolder();
    // The GC runs in one thread: with a GIL, its holder; on a free-threaded build, which
    // stops every other thread for a collection, the one thread still running.
    // (A free-threaded build that turned its GIL on has a holder: as with a GIL.)
    const bool freeThreaded = target_.layout.free_threaded != 0 && holder == 0;
    const bool collecting = (holder != 0 || freeThreaded) && gcCollecting();
    const auto gilRanges = anyFutex && gilWaitsKnown() ? gilWaitRanges() : decltype(gilWaitRanges()){};
    const auto inRanges = [](const auto& ranges, std::uint64_t address) {
        return std::any_of(ranges.begin(), ranges.end(),
                           [address](const auto& range) { return address >= range.first && address < range.second; });
    };
    const auto onGil = [&](std::uint64_t address) { return inRanges(gilRanges, address); };
    speculative_.setRecording(false);  // a names lookup is rare and large: not worth replaying
    auto names = options.threadNames ? threadNames() : std::unordered_map<std::uint64_t, std::string>{};
    speculative_.setRecording(true);

    std::optional<pid_t> holderTid;
    for (const auto& state : states.value()) {
        ThreadStack thread;
        thread.threadId = state.threadId;
        thread.nativeId = state.nativeId;
        thread.holdsGil = holder != 0 && holder == state.address;
        thread.collectingGarbage = collecting && thread.holdsGil;
        if (state.nativeId) {
            if (auto it = activities.find(*state.nativeId); it != activities.end()) {
                const auto& word = it->second.futexWord;
                setWaitState(thread, it->second, word && onGil(*word), options);
            } else if (*state.nativeId == lastGilHolder_) {
                // Not read before: running if it still holds the GIL (it runs Python code);
                // else read now. A thread we stopped shows where it stopped: outside a
                // system call (running or runnable), or inside one (asleep).
                if (thread.holdsGil) {
                    thread.active = true;
                    thread.state = ThreadState::Running;
                } else if (auto activity = threadStats_.activity(*state.nativeId, pause.has_value()); activity.ok()) {
                    const auto& word = activity.value().futexWord;
                    const bool gilWord =
                        word &&
                        (gilRanges.empty() ? gilWaitsKnown() && inRanges(gilWaitRanges(), *word) : onGil(*word));
                    setWaitState(thread, activity.value(), gilWord, options);
                }
            } else {
                relistThreads_ = true;  // a new thread: list the tasks again next time
            }
            if (thread.holdsGil) holderTid = state.nativeId;
        } else {
            thread.active = thread.holdsGil;
            if (thread.active) thread.state = ThreadState::Running;
        }
        if (freeThreaded) thread.collectingGarbage = collecting && thread.active;
        if (auto it = names.find(state.threadId); it != names.end()) thread.name = it->second;
        FrameChain partial;
        WalkLimits limits = options.limits;
        limits.evalGroups = options.native;
        auto chain = walkThread(state, limits, partial);
        if (chain.ok()) {
            thread.frames = std::move(chain.value().frames);
            thread.truncated = chain.value().truncated;
            thread.evalGroups = std::move(chain.value().evalGroups);
        } else {
            thread.frames = std::move(partial.frames);
            thread.error = chain.error().describe();
        }
        if (options.localsLevel > 0) readLocals(thread.frames, options.localsLevel);
        if (options.native) unwindNative(thread);
        snap.threads.push_back(std::move(thread));
    }
    if (!core_) lastGilHolder_ = holderTid;
    if (pause) {
        if (options.native) unwinder_->retainThreads(pause->threads());
        const auto stoppedAt = pause->stoppedAt();
        const auto released = pause->resume();
        snap.pausedSeconds = std::chrono::duration<double>(released - stoppedAt).count();
    }
    // Gone at any point while we read? Then some reads may have been of a process that
    // was given its pid since: drop them all. A failed walk may also mean it is exiting.
    const bool anyError =
        std::any_of(snap.threads.begin(), snap.threads.end(), [](const ThreadStack& t) { return t.error.has_value(); });
    if (!core_ && (handle_.exited() || (anyError && gone()))) throwGone(pid_);
    // Symbols come from the target's files, not its memory: no need to hold it stopped.
    if (core_ && options.native) addCrashedNativeThread(snap, activities, options);
    if (options.native) symbolizeAndMerge(snap, options.nativeAll);
    if (core_) fillCoreCrash(snap);
    return snap;
}

}  // namespace pyspy
