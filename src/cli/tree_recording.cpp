#include "pyspy/cli/tree_recording.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include "pyspy/cli/cli_common.h"
#include "pyspy/common/error.h"
#include "pyspy/process/process.h"
#include "pyspy/sampling/process_profiles.h"

namespace pyspy {

namespace {

using Clock = std::chrono::steady_clock;

// A child's first attach waits this long: a child that execs after a fork (Python 2.7's
// subprocess runs Python code in between) must not be read before its exec.
constexpr std::chrono::milliseconds kChildFirstAttachWait{50};
constexpr std::chrono::milliseconds kChildAttachRetry{20};
// A waiting sampler thread looks at stop requests (and a shared one at new processes)
// at least this often.
constexpr std::chrono::milliseconds kWakeInterval{50};

constexpr const char* kMaxSamplerThreadsVariable = "PYSPY_MAX_SAMPLER_THREADS";

std::size_t maxSamplerThreadsFromEnvironment() {
    const char* value = std::getenv(kMaxSamplerThreadsVariable);
    if (value == nullptr || *value == '\0') return TreeRecording::kDefaultMaxSamplerThreads;
    char* end = nullptr;
    errno = 0;
    const unsigned long parsed = std::strtoul(value, &end, 10);
    if (errno != 0 || *end != '\0' || parsed < 1 || parsed > ProcessTree::kMaxTreeMembers || value[0] == '-') {
        throw FatalError(ErrorKind::Usage,
                         fmt::format("{} must be a number from 1 to {}, not '{}'", kMaxSamplerThreadsVariable,
                                     ProcessTree::kMaxTreeMembers, value));
    }
    return parsed;
}

}  // namespace

TreeRecording::TreeRecording(Root root, const SamplerOptions& options, bool keepTimeline, bool subprocesses,
                             Notify warn, Notify note)
    : options_(options),
      rootIsPython_(root.process != nullptr),
      rootMayBecomePython_(root.mayBecomePython),
      rootNoted_(root.process == nullptr && !root.mayBecomePython),
      keepTimeline_(keepTimeline),
      subprocesses_(subprocesses),
      warn_(std::move(warn)),
      note_(std::move(note)) {
    if (!rootIsPython_ && !subprocesses_) {
        throw FatalError(ErrorKind::Internal, "a recording of a root that is not Python needs -s");
    }
    auto recording = std::make_unique<Recording>();
    recording->pid = root.pid;
    recording->process = root.process;
    if (!rootIsPython_) {
        recording->handle = ProcessHandle(root.pid);
        rootCommand_ = readCommandLine(root.pid);
    }
    recordings_.push_back(std::move(recording));
    if (subprocesses_) {
        maxSamplerThreads_ = maxSamplerThreadsFromEnvironment();
        tree_.emplace(root.pid);
    }
}

TreeRecording::TreeRecording(Root root, const SamplerOptions& options, bool subprocesses, ProcessSinks sinks,
                             Notify warn, Notify note)
    : TreeRecording(root, options, false, subprocesses, std::move(warn), std::move(note)) {
    sinks_ = std::move(sinks);
}

TreeRecording::~TreeRecording() {
    stop();
    join();
}

void TreeRecording::start() {
    started_ = std::chrono::steady_clock::now();
    Recording& root = *recordings_.front();
    root.thread = std::thread([this, &root] { runRoot(root); });
    if (subprocesses_) poll();  // children that exist already start now
}

TreeRecording::Notify TreeRecording::processWarn(pid_t pid) const {
    // Under -s, say which process a warning is about.
    if (!subprocesses_) return warn_;
    return [this, pid](const std::string& message) { warn_(fmt::format("process {}: {}", pid, message)); };
}

SampleSink& TreeRecording::openSampling(Recording& recording, const SamplerOptions& options) {
    SampleSink* sink = nullptr;
    if (sinks_) {
        recording.sink = sinks_->open(*recording.process);
        sink = recording.sink.get();
    } else {
        recording.builder = std::make_unique<ProfileBuilder>(options, keepTimeline_);
        sink = recording.builder.get();
    }
    recording.sampler = std::make_unique<Sampler>(*recording.process, options);
    recording.live.store(recording.sampler.get());
    return *sink;
}

void TreeRecording::endSampling(Recording& recording) {
    if (!recording.failure && recording.stats.failure) recording.failure = recording.stats.failure;
    if (sinks_ && recording.sink && sinks_->ended) sinks_->ended(*recording.sink);
}

void TreeRecording::sample(Recording& recording, const SamplerOptions& options) {
    try {
        SampleSink& sink = openSampling(recording, options);
        recording.stats = recording.sampler->run(sink, stop_, processWarn(recording.pid),
                                                 [this, &recording] { serveCheckpoint(recording); });
    } catch (...) {
        recording.failure = std::current_exception();
    }
    endSampling(recording);
}

void TreeRecording::runRoot(Recording& recording) {
    if (rootIsPython_) {
        sample(recording, options_);
    } else {
        watchRoot(recording);
    }
    recording.done.store(true);
}

void TreeRecording::watchRoot(Recording& recording) {
    if (rootMayBecomePython_ && attachAndSample(recording)) return;
    // Not Python: the tree lasts as long as the root runs, which may still start Python
    // processes, or become one (a shell script's `exec python app.py`, common in a
    // container's entry point): a new executable is tried as a new child is.
    std::string executable = readExecutablePath(recording.pid);
    while (!stop_.load() && !recording.handle.exited()) {
        std::this_thread::sleep_for(kWakeInterval);
        const std::string now = readExecutablePath(recording.pid);
        if (now.empty() || now == executable) continue;
        executable = now;
        if (attachAndSample(recording)) return;
    }
    recording.stats.elapsedSeconds = std::chrono::duration<double>(Clock::now() - started_).count();
    recording.stats.targetExited = !stop_.load();
}

// Attach once the child is Python: right after a fork it may still be exec'ing, then
// loading libpython and initializing. A python executable may just be slow to start (a
// loaded machine): it gets longer. Retries come every kChildAttachRetry: a child is
// usually ready tens of ms after its exec, and every retry is time its samples are missed.
void TreeRecording::beginAttach(Recording& recording) const {
    recording.command = readCommandLine(recording.pid);
    const bool pythonNamed = readExecutablePath(recording.pid).find("python") != std::string::npos;
    recording.attachDeadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                                  pythonNamed ? kPythonAttachSeconds : kChildAttachSeconds));
}

bool TreeRecording::tryAttach(Recording& recording) const {
    if (recording.handle.exited()) return true;  // gone before it could be read: nothing to note
    try {
        recording.owned = PythonProcess::attach(recording.pid);
        // The pidfd says whether every read was of this process and not a reuse.
        if (recording.handle.exited()) recording.owned.reset();
        return true;
    } catch (const FatalError& e) {
        // A starting interpreter is a moving target: anything but a refusal may clear up.
        const bool starting = e.kind() != ErrorKind::PermissionDenied;
        if (starting && Clock::now() < recording.attachDeadline) return false;
        if (&recording == recordings_.front().get() && e.kind() == ErrorKind::NotPython) {
            // Read now: right after a spawn the arguments may not be in place yet.
            if (!rootNoted_) note_(notPythonRootNote(recording.pid, readCommandLine(recording.pid)));
            rootNoted_ = true;
        } else if (!recording.handle.exited()) {
            note_(fmt::format("skipping process {} ({}): {}", recording.pid, recording.command, e.what()));
        }
        return true;
    }
}

SamplerOptions TreeRecording::childOptions() const {
    SamplerOptions options = options_;
    if (options.durationSeconds) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
        options.durationSeconds = std::max(0.0, *options.durationSeconds - elapsed);
    }
    return options;
}

void TreeRecording::endChild(Recording& recording) {
    if (recording.failure) {
        try {
            std::rethrow_exception(recording.failure);
        } catch (const std::exception& e) {
            warn_(fmt::format("process {}: sampling stopped: {}", recording.pid, e.what()));
        }
    }
    recording.done.store(true);
}

bool TreeRecording::attachAndSample(Recording& recording) {
    beginAttach(recording);
    auto delay = std::chrono::milliseconds(kChildFirstAttachWait);
    while (!stop_.load()) {
        std::this_thread::sleep_for(delay);
        delay = kChildAttachRetry;
        if (tryAttach(recording)) break;
    }
    if (!recording.owned) return false;
    recording.process = recording.owned.get();
    sample(recording, childOptions());
    return true;
}

void TreeRecording::runChild(Recording& recording) {
    (void)attachAndSample(recording);
    endChild(recording);
}

void TreeRecording::runShared(SharedThread& shared) {
    // Each process here is attaching (retried at `due`) or sampling (its sampler's next
    // tick is `due`); the earliest due goes first, so under load every process is late
    // by about as much, and a slow tick delays the others here by its own length only.
    struct Entry {
        Recording* recording = nullptr;
        Clock::time_point due;
        bool sampling = false;
    };
    std::vector<Entry> entries;
    const auto end = [this](Entry& entry) {
        Recording& recording = *entry.recording;
        if (entry.sampling) recording.stats = recording.sampler->finish();
        endSampling(recording);
        endChild(recording);
    };
    std::vector<Recording*> taken;
    for (;;) {
        // Read before the hand-over: once poll() is over, everything it handed is there.
        const bool noMoreComing = joining_.load();
        {
            std::lock_guard<std::mutex> lock(shared.mutex);
            taken.swap(shared.incoming);
        }
        for (Recording* recording : taken) {
            beginAttach(*recording);
            entries.push_back(Entry{recording, Clock::now() + kChildFirstAttachWait, false});
        }
        taken.clear();
        for (Entry& entry : entries) {
            if (entry.sampling) serveCheckpoint(*entry.recording);
        }
        if (stop_.load() || (noMoreComing && entries.empty())) break;
        const auto now = Clock::now();
        const auto next = std::min_element(entries.begin(), entries.end(),
                                           [](const Entry& a, const Entry& b) { return a.due < b.due; });
        if (next == entries.end() || next->due > now) {
            const auto wake = now + kWakeInterval;
            std::this_thread::sleep_until(next == entries.end() ? wake : std::min(next->due, wake));
            continue;
        }
        Entry& entry = *next;
        Recording& recording = *entry.recording;
        bool ended = false;
        try {
            if (!entry.sampling) {
                if (!tryAttach(recording)) {
                    entry.due = Clock::now() + kChildAttachRetry;
                    continue;
                }
                ended = recording.owned == nullptr;
                if (!ended) {
                    recording.process = recording.owned.get();
                    openSampling(recording, childOptions());
                    recording.sampler->begin(processWarn(recording.pid));
                    entry.sampling = true;
                    entry.due = recording.sampler->nextDue();
                }
            } else {
                SampleSink& sink = sinks_ ? *recording.sink : static_cast<SampleSink&>(*recording.builder);
                if (recording.sampler->tick(sink)) {
                    entry.due = recording.sampler->nextDue();
                } else {
                    ended = true;
                }
            }
        } catch (...) {
            // As sample() does: a fatal error before any tick is the process's failure.
            recording.failure = std::current_exception();
            entry.sampling = false;
            ended = true;
        }
        if (ended) {
            end(entry);
            entries.erase(next);
        }
    }
    // Stopped (or nothing left to come): end what still samples, as a stopped run() does.
    for (Entry& entry : entries) end(entry);
    std::lock_guard<std::mutex> lock(shared.mutex);
    shared.closed = true;
    for (Recording* recording : shared.incoming) recording->done.store(true);
    shared.incoming.clear();
}

void TreeRecording::handToSharedThread(Recording& recording) {
    const std::size_t threads =
        std::clamp<std::size_t>(maxSamplerThreads_ / kSamplerThreadsPerSharedThread, 1, kMaxSharedSamplerThreads);
    const std::size_t index = handedToShared_++ % threads;
    if (index == shared_.size()) {
        shared_.push_back(std::make_unique<SharedThread>());
        SharedThread& added = *shared_.back();
        added.thread = std::thread([this, &added] { runShared(added); });
    }
    SharedThread& shared = *shared_[index];
    std::lock_guard<std::mutex> lock(shared.mutex);
    if (shared.closed) {
        recording.done.store(true);
        return;
    }
    shared.incoming.push_back(&recording);
}

bool TreeRecording::poll() {
    if (subprocesses_ && !stop_.load()) {
        for (const TreeMember& member : tree_->scan()) {
            const bool ownThread = recordings_.size() < maxSamplerThreads_;
            auto recording = std::make_unique<Recording>();
            recording->pid = member.pid;
            recording->handle = ProcessHandle(member.pid);
            Recording& added = *recording;
            recordings_.push_back(std::move(recording));
            if (ownThread) {
                added.thread = std::thread([this, &added] { runChild(added); });
            } else {
                handToSharedThread(added);
            }
        }
    }
    return std::any_of(recordings_.begin(), recordings_.end(), [](const auto& r) { return !r->done.load(); });
}

void TreeRecording::join() {
    for (auto& recording : recordings_) {
        if (recording->thread.joinable()) recording->thread.join();
    }
    joining_.store(true);  // poll() is over: a shared thread ends once its processes have
    for (auto& shared : shared_) {
        if (shared->thread.joinable()) shared->thread.join();
    }
}

std::size_t TreeRecording::pythonProcesses() const {
    return static_cast<std::size_t>(
        std::count_if(recordings_.begin(), recordings_.end(), [](const auto& r) { return r->live.load() != nullptr; }));
}

void TreeRecording::checkPythonFound(std::optional<double> waitSeconds, bool ended) {
    if (rootIsPython_ || pythonProcesses() > 0) return;
    const Recording& root = *recordings_.front();
    refreshRootCommand();
    const double waited = std::chrono::duration<double>(Clock::now() - started_).count();
    if (ended) {
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("process {} ({}) is not Python and {}", root.pid, rootCommand_,
                                     root.handle.exited() ? "exited without starting a Python process"
                                                          : "has started no Python process so far"));
    }
    if (waitSeconds && waited >= *waitSeconds) {
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("process {} ({}) is not Python and started no Python process within {} s "
                                     "(--wait-for-python SECONDS to wait longer)",
                                     root.pid, rootCommand_, *waitSeconds));
    }
}

std::uint64_t TreeRecording::ticksSoFar() const {
    std::uint64_t ticks = 0;
    for (const auto& r : recordings_) {
        if (const Sampler* s = r->live.load()) ticks += s->ticksSoFar();
    }
    return ticks;
}

std::uint64_t TreeRecording::errorsSoFar() const {
    std::uint64_t errors = 0;
    for (const auto& r : recordings_) {
        if (const Sampler* s = r->live.load()) errors += s->errorsSoFar();
    }
    return errors;
}

double TreeRecording::lagSoFar() const {
    double lag = 0;
    for (const auto& r : recordings_) {
        if (const Sampler* s = r->live.load()) lag = std::max(lag, s->lagSoFar());
    }
    return lag;
}

const SamplerStats& TreeRecording::rootStats() const {
    const Recording& root = *recordings_.front();
    return root.stats;
}

std::exception_ptr TreeRecording::rootFailure() const {
    return recordings_.front()->failure;
}

bool TreeRecording::timelineTruncated() const {
    return std::any_of(recordings_.begin(), recordings_.end(),
                       [](const auto& r) { return r->builder && r->builder->timelineTruncated(); });
}

std::size_t TreeRecording::sampledProcesses() const {
    return static_cast<std::size_t>(
        std::count_if(recordings_.begin(), recordings_.end(), [](const auto& r) { return r->stats.ticks > 0; }));
}

std::vector<TreeRecording::ProcessStats> TreeRecording::processStats() const {
    std::vector<ProcessStats> stats;
    for (const auto& r : recordings_) {
        if (r->stats.ticks > 0) stats.push_back(ProcessStats{r->pid, r->stats});
    }
    return stats;
}

void TreeRecording::serveCheckpoint(Recording& recording) {
    if (!recording.builder || !recording.sampler) return;
    if (checkpointWanted_.load() == recording.checkpointServed.load()) return;  // nothing asked: no lock
    {
        // Under the lock, the piece included: a request that checkpoint() has stopped
        // collecting (its timeout) is not cut at all, so its samples go to the next one
        // rather than to a piece nobody takes.
        std::lock_guard lock(checkpointMutex_);
        const std::uint64_t wanted = checkpointWanted_.load();
        if (wanted == checkpointCollecting_) {
            const SamplerStats stats = recording.sampler->statsSoFar();
            recording.checkpointPiece =
                checkpointCut_ ? recording.builder->cut(*recording.sampler, stats, *recording.process)
                               : recording.builder->snapshot(*recording.sampler, stats, *recording.process);
        }
        recording.checkpointServed = wanted;
    }
    checkpointAnswered_.notify_all();
}

std::optional<RecordedProfile> TreeRecording::checkpoint(bool cut, std::chrono::milliseconds timeout) {
    std::unique_lock lock(checkpointMutex_);
    checkpointCut_ = cut;
    const std::uint64_t wanted = checkpointWanted_.load() + 1;
    checkpointWanted_.store(wanted);
    checkpointCollecting_ = wanted;
    // Who answers: every process whose sampler runs, and a Python root even before its
    // first tick (a SIGUSR1 right after the start). One that has ended is read here (its
    // thread no longer touches its builder once `done`); a process still attaching (or a
    // root that is not Python) has nothing yet. A sampler thread may end meanwhile
    // without answering: poll.
    const auto answered = [&](const Recording& r) {
        const bool awaited = &r == recordings_.front().get() && rootIsPython_;
        return r.checkpointServed == wanted || r.done.load() || (!awaited && r.live.load() == nullptr);
    };
    const auto deadline = Clock::now() + timeout;
    while (!std::all_of(recordings_.begin(), recordings_.end(), [&](const auto& r) { return answered(*r); }) &&
           Clock::now() < deadline) {
        checkpointAnswered_.wait_for(lock, std::chrono::milliseconds(10));
    }
    std::vector<RecordedProfile> pieces;
    for (auto& r : recordings_) {
        std::optional<RecordedProfile> piece;
        if (r->checkpointServed == wanted) {
            piece = std::move(r->checkpointPiece);
            r->checkpointPiece.reset();
        } else if (r->done.load() && r->builder && r->sampler) {
            piece = cut ? r->builder->cut(*r->sampler, r->stats, *r->process)
                        : r->builder->snapshot(*r->sampler, r->stats, *r->process);
            r->checkpointServed = wanted;
        }
        // The root always (it heads the profile); a child only when it has samples.
        if (piece && (r == recordings_.front() || piece->samples > 0)) pieces.push_back(std::move(*piece));
    }
    checkpointCollecting_ = 0;  // a late answer to this request now leaves its builder alone
    lock.unlock();
    if (pieces.empty()) return std::nullopt;
    if (!subprocesses_) return std::move(pieces.front());
    return mergeTree(std::move(pieces));
}

void TreeRecording::refreshRootCommand() {
    if (!rootCommand_.starts_with('[')) return;
    // Read right after a spawn, before exec had set the arguments up: read again.
    if (std::string now = readCommandLine(recordings_.front()->pid); !now.empty() && !now.starts_with('[')) {
        rootCommand_ = std::move(now);
    }
}

RecordedProfile TreeRecording::mergeTree(std::vector<RecordedProfile> profiles) {
    refreshRootCommand();
    const Recording& root = *recordings_.front();
    const bool rootSampled = !profiles.empty() && profiles.front().pid == root.pid;
    RecordedProfile merged = mergeProcessProfiles(std::move(profiles));
    if (!rootSampled) {
        // A root that is not Python heads the profile all the same: it is what was asked for.
        merged.pid = root.pid;
        merged.commandLine = rootCommand_;
    }
    return merged;
}

RecordedProfile TreeRecording::finish() {
    if (!subprocesses_) {
        Recording& root = *recordings_.front();
        return root.builder->finish(*root.sampler, root.stats, *root.process);
    }
    std::vector<RecordedProfile> profiles;
    for (auto& r : recordings_) {
        // The root always (it heads the profile); a child only once it was sampled.
        if (!r->builder || !r->sampler || (r != recordings_.front() && r->stats.ticks == 0)) continue;
        profiles.push_back(r->builder->finish(*r->sampler, r->stats, *r->process));
    }
    return mergeTree(std::move(profiles));
}

}  // namespace pyspy
