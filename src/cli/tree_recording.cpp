#include "pyspy/cli/tree_recording.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/process/process.h"
#include "pyspy/sampling/process_profiles.h"

namespace pyspy {

namespace {

constexpr std::chrono::milliseconds kChildAttachRetry{20};

}  // namespace

TreeRecording::TreeRecording(PythonProcess& root, const SamplerOptions& options, bool keepTimeline, bool subprocesses,
                             Notify warn, Notify note)
    : options_(options),
      keepTimeline_(keepTimeline),
      subprocesses_(subprocesses),
      warn_(std::move(warn)),
      note_(std::move(note)) {
    auto recording = std::make_unique<Recording>();
    recording->pid = root.pid();
    recording->process = &root;
    recordings_.push_back(std::move(recording));
    if (subprocesses_) tree_.emplace(root.pid());
}

TreeRecording::TreeRecording(PythonProcess& root, const SamplerOptions& options, bool subprocesses, ProcessSinks sinks,
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

void TreeRecording::sample(Recording& recording, const SamplerOptions& options) {
    SampleSink* sink = nullptr;
    try {
        if (sinks_) {
            recording.sink = sinks_->open(*recording.process);
            sink = recording.sink.get();
        } else {
            recording.builder = std::make_unique<ProfileBuilder>(options, keepTimeline_);
            sink = recording.builder.get();
        }
        recording.sampler = std::make_unique<Sampler>(*recording.process, options);
        recording.live.store(recording.sampler.get());
        // Under -s, say which process a warning is about.
        const Notify warn = !subprocesses_ ? warn_ : [this, pid = recording.pid](const std::string& message) {
            warn_(fmt::format("process {}: {}", pid, message));
        };
        recording.stats = recording.sampler->run(*sink, stop_, warn);
    } catch (...) {
        recording.failure = std::current_exception();
    }
    if (!recording.failure && recording.stats.failure) recording.failure = recording.stats.failure;
    if (sinks_ && recording.sink && sinks_->ended) sinks_->ended(*recording.sink);
}

void TreeRecording::runRoot(Recording& recording) {
    sample(recording, options_);
    recording.done.store(true);
}

void TreeRecording::runChild(Recording& recording) {
    const std::string command = readCommandLine(recording.pid);
    // Attach once the child is Python: right after a fork it may still be exec'ing, then
    // loading libpython and initializing. A short first wait lets an exec that follows
    // the fork at once (spawn, subprocess) happen before the first look.
    // A python executable may just be slow to start (a loaded machine): it gets longer.
    const bool pythonNamed = readExecutablePath(recording.pid).find("python") != std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(pythonNamed ? kPythonAttachSeconds : kChildAttachSeconds);
    // Retries every kChildAttachRetry: a child is usually ready tens of ms after its
    // exec, and every retry of the 1 s is time its samples are missed.
    // The first wait is longer: a child that execs after a fork (Python 2.7's subprocess
    // runs Python code in between) must not be read before its exec.
    auto delay = std::chrono::milliseconds(50);
    std::string whyNot;
    while (!stop_.load()) {
        std::this_thread::sleep_for(delay);
        delay = kChildAttachRetry;
        if (recording.handle.exited()) break;  // gone before it could be read: nothing to note
        try {
            recording.owned = PythonProcess::attach(recording.pid);
            // The pidfd says whether every read was of this process and not a reuse.
            if (recording.handle.exited()) recording.owned.reset();
            break;
        } catch (const FatalError& e) {
            whyNot = e.what();
            // A starting interpreter is a moving target: anything but a refusal may clear up.
            const bool starting = e.kind() != ErrorKind::PermissionDenied;
            if (!starting || std::chrono::steady_clock::now() >= deadline) {
                if (!recording.handle.exited()) {
                    note_(fmt::format("skipping process {} ({}): {}", recording.pid, command, whyNot));
                }
                break;
            }
        }
    }
    if (recording.owned) {
        recording.process = recording.owned.get();
        SamplerOptions options = options_;
        if (options.durationSeconds) {
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
            options.durationSeconds = std::max(0.0, *options.durationSeconds - elapsed);
        }
        sample(recording, options);
        if (recording.failure) {
            try {
                std::rethrow_exception(recording.failure);
            } catch (const std::exception& e) {
                warn_(fmt::format("process {}: sampling stopped: {}", recording.pid, e.what()));
            }
        }
    }
    recording.done.store(true);
}

bool TreeRecording::poll() {
    if (subprocesses_ && !stop_.load()) {
        for (const TreeMember& member : tree_->scan()) {
            if (recordings_.size() >= kMaxSampledProcesses) {
                // Each one named (scan() reports a member once): none is dropped silently.
                note_(fmt::format("process {} ({}) is not sampled: more than {} processes in the tree", member.pid,
                                  readCommandLine(member.pid), kMaxSampledProcesses));
                continue;
            }
            auto recording = std::make_unique<Recording>();
            recording->pid = member.pid;
            recording->handle = ProcessHandle(member.pid);
            Recording& added = *recording;
            recordings_.push_back(std::move(recording));
            added.thread = std::thread([this, &added] { runChild(added); });
        }
    }
    return std::any_of(recordings_.begin(), recordings_.end(), [](const auto& r) { return !r->done.load(); });
}

void TreeRecording::join() {
    for (auto& recording : recordings_) {
        if (recording->thread.joinable()) recording->thread.join();
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
    return mergeProcessProfiles(std::move(profiles));
}

}  // namespace pyspy
