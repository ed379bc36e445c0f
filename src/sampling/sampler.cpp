#include "pyspy/sampling/sampler.h"

#include <algorithm>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "pyspy/common/error.h"

namespace pyspy {

namespace {

using Clock = std::chrono::steady_clock;

// Thread names are looked up (a walk of threading._active, costly) at most this often
// (a rename shows within this time), and whenever a thread not seen before shows up.
constexpr double kNameRefreshSeconds = 10.0;
// Lines remembered per code object in the frame cache (a linear scan: most functions
// are sampled at a handful of lines).
constexpr std::size_t kMaxLinesPerCode = 64;
constexpr std::size_t kMaxCachedCodes = 16384;  // each entry keeps a CodeInfo alive (~0.4 KB)

}  // namespace

std::string waitLeafName(ThreadState state, FdKind ioKind, std::int64_t syscall) {
    if (state == ThreadState::Io && ioKind != FdKind::Unknown) return fmt::format("[io: {}]", fdKindName(ioKind));
    if (state == ThreadState::Other && syscall >= 0) return fmt::format("[other: {}]", syscallName(syscall));
    return fmt::format("[{}]", stateName(state));
}

bool keepThread(const ThreadSample& sample, const SamplerOptions& options) {
    if (options.gilOnly && !sample.holdsGil) return false;
    if (!options.includeIdle && !options.waitStates && !sample.active && !sample.holdsGil) return false;
    return true;
}

ThreadFilter::ThreadFilter(const std::vector<std::string>& namePatterns, std::vector<pid_t> tids)
    : tids_(std::move(tids)) {
    for (const auto& pattern : namePatterns) {
        try {
            patterns_.emplace_back(pattern, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& e) {
            throw FatalError(ErrorKind::Usage, fmt::format("--thread-name '{}' is not a valid regular expression: {}",
                                                           pattern, e.what()));
        }
    }
}

bool ThreadFilter::keeps(const ProfiledThread& thread) const {
    if (empty()) return true;
    if (thread.nativeId && std::find(tids_.begin(), tids_.end(), *thread.nativeId) != tids_.end()) return true;
    return std::any_of(patterns_.begin(), patterns_.end(),
                       [&](const std::regex& pattern) { return std::regex_search(thread.name, pattern); });
}

std::string threadLabel(const ProfiledThread& thread) {
    const std::string id = thread.nativeId ? std::to_string(*thread.nativeId) : fmt::format("{:#x}", thread.threadId);
    if (thread.name.empty()) return fmt::format("Thread {}", id);
    return fmt::format("Thread {} \"{}\"", id, thread.name);
}

Sampler::Sampler(PythonProcess& process, SamplerOptions options) : process_(process), options_(std::move(options)) {
    if (!(options_.rateHz > 0)) options_.rateHz = 100;
    options_.jitter = std::clamp(options_.jitter, 0.0, 0.9);
}

std::uint32_t Sampler::threadIndex(const ThreadStack& stack) {
    auto [it, added] = threadByIdent_.try_emplace(stack.threadId, static_cast<std::uint32_t>(threads_.size()));
    if (added) {
        ProfiledThread thread;
        thread.threadId = stack.threadId;
        threads_.push_back(thread);
    }
    ProfiledThread& thread = threads_[it->second];
    if (stack.nativeId) thread.nativeId = stack.nativeId;
    if (stack.name && !stack.name->empty()) thread.name = *stack.name;
    return it->second;
}

bool Sampler::threadSelected(std::uint32_t index) {
    if (selected_.size() <= index) selected_.resize(index + 1);
    Selection& selection = selected_[index];
    const ProfiledThread& thread = threads_[index];
    // Regexes run once per thread and name, not per tick.
    if (!selection.decided || selection.name != thread.name) {
        selection.name = thread.name;
        selection.keep = options_.threads.keeps(thread);
        selection.decided = true;
    }
    return selection.keep;
}

FrameId Sampler::internFrame(const PyFrame& frame) {
    // Fast path: the same code object at the same line as before, no strings built.
    // The entry keeps the CodeInfo alive, so its address cannot be reused meanwhile.
    const int line = !options_.lineNumbers          ? 0
                     : options_.aggregateByFunction ? (frame.code ? frame.code->firstLineNo : 0)
                                                    : frame.line.value_or(0);
    CodeFrames* cached = nullptr;
    if (frame.code) {
        if (codeFrames_.size() >= kMaxCachedCodes) codeFrames_.clear();  // bound; refills from hot code
        auto [it, added] = codeFrames_.try_emplace(frame.code.get());
        if (added) it->second.code = frame.code;
        cached = &it->second;
        for (const auto& [cachedLine, id] : cached->lines) {
            if (cachedLine == line) return id;
        }
    }
    FrameKey key;
    key.kind = FrameKind::Python;
    if (frame.code) {
        key.name = frame.code->qualname.empty() ? frame.code->name : frame.code->qualname;
        key.filename = frame.code->filename;
        if (options_.lineNumbers) {
            key.line = options_.aggregateByFunction ? frame.code->firstLineNo : frame.line.value_or(0);
        }
    } else {
        key.name = "<unknown>";
    }
    const FrameId id = frames_.intern(key);
    if (cached != nullptr && cached->lines.size() < kMaxLinesPerCode) cached->lines.emplace_back(line, id);
    return id;
}

FrameId Sampler::stateFrame(const ThreadSample& sample) {
    const std::int64_t syscall = sample.state == ThreadState::Other ? sample.syscall : -1;
    const std::uint64_t key = (static_cast<std::uint64_t>(sample.state) << 56) |
                              (static_cast<std::uint64_t>(sample.ioKind) << 48) |
                              (static_cast<std::uint64_t>(syscall) & 0xffffffffffffULL);
    auto [it, added] = stateFrames_.try_emplace(key, 0);
    if (added)
        it->second = frames_.intern({FrameKind::State, waitLeafName(sample.state, sample.ioKind, syscall), "", 0});
    return it->second;
}

void Sampler::appendNativeFrames(const NativeFrame& frame, std::vector<FrameId>& out) {
    // Symbols are shared per address by the symbolizer: intern each symbol once.
    if (!frame.symbol) {
        out.push_back(frames_.intern({FrameKind::Native, fmt::format("{:#x}", frame.pc), "", 0}));
        return;
    }
    auto it = nativeFrames_.find(frame.symbol.get());
    if (it == nativeFrames_.end()) {
        const NativeSymbol& symbol = *frame.symbol;
        const bool lines = options_.lineNumbers && !options_.aggregateByFunction;
        // Its source file when DWARF says, else its module: exporters show either as the file.
        const auto key = [&](const std::string& function, const std::string& file, int line) {
            return FrameKey{FrameKind::Native, function, file.empty() ? symbol.module : file,
                            lines && !file.empty() ? line : 0};
        };
        NativeFrames entry{frame.symbol, {frames_.intern(key(symbol.function, symbol.file, symbol.line))}};
        for (auto inlined = symbol.inlined.rbegin(); inlined != symbol.inlined.rend(); ++inlined) {
            entry.ids.push_back(frames_.intern(key(inlined->function, inlined->file, inlined->line)));
        }
        if (nativeFrames_.size() >= kMaxCachedCodes) nativeFrames_.clear();  // bound; refills from hot code
        it = nativeFrames_.emplace(frame.symbol.get(), std::move(entry)).first;
    }
    out.insert(out.end(), it->second.ids.begin(), it->second.ids.end());
}

void Sampler::appendFrames(const ThreadStack& thread, std::vector<FrameId>& out) {
    if (thread.merged.empty()) {
        for (auto it = thread.frames.rbegin(); it != thread.frames.rend(); ++it) out.push_back(internFrame(*it));
        return;
    }
    for (auto it = thread.merged.rbegin(); it != thread.merged.rend(); ++it) {
        if (it->native) {
            appendNativeFrames(thread.nativeFrames[it->index], out);
        } else {
            out.push_back(internFrame(thread.frames[it->index]));
        }
    }
}

SamplerStats Sampler::run(SampleSink& sink, const std::atomic<bool>& stop,
                          const std::function<void(const std::string&)>& warn,
                          const std::function<void()>& betweenTicks) {
    begin(warn);
    while (!stop.load(std::memory_order_relaxed)) {
        if (betweenTicks) betweenTicks();
        const auto now = Clock::now();
        const auto due = nextDue();
        if (now < due) {
            // Sleep in short steps so a stop request is seen within ~50 ms.
            std::this_thread::sleep_until(std::min(due, now + std::chrono::milliseconds(50)));
            continue;
        }
        if (!tick(sink)) break;
    }
    return finish();
}

void Sampler::begin(std::function<void(const std::string&)> warn) {
    warn_ = std::move(warn);
    stats_ = SamplerStats{};
    rng_.seed(std::random_device{}());
    start_ = Clock::now();
    next_ = start_;
    startEpoch_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    attempts_ = 0;
    lastNames_ = -kNameRefreshSeconds;
    unnamedThread_ = false;
    warnedLag_ = false;
}

Clock::time_point Sampler::nextDue() const {
    if (!options_.durationSeconds) return next_;
    const auto end = start_ + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(std::clamp(*options_.durationSeconds, 0.0, 1e8)));
    return std::min(next_, end);
}

SamplerStats Sampler::statsSoFar() const {
    SamplerStats stats = stats_;
    stats.elapsedSeconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return stats;
}

SamplerStats Sampler::finish() {
    stats_.elapsedSeconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return stats_;
}

bool Sampler::tick(SampleSink& sink) {
    const double interval = 1.0 / options_.rateHz;
    std::uniform_real_distribution<double> jitter(1.0 - options_.jitter, 1.0 + options_.jitter);
    const auto now = Clock::now();
    const double t = std::chrono::duration<double>(now - start_).count();
    if (options_.durationSeconds && t >= *options_.durationSeconds) return false;
    if (now < next_) return true;  // not due yet
    const std::uint64_t tick = attempts_++;
    const double lag = std::chrono::duration<double>(now - next_).count();
    if (lag > interval) {
        ++stats_.lateTicks;
        stats_.maxLagSeconds = std::max(stats_.maxLagSeconds, lag);
        lag_.store(lag, std::memory_order_relaxed);
        // Say it once, and only when it matters: a busy machine delays a tick now and
        // then; one in twenty late (after a few), or a whole second late, is a trend.
        const bool trend = stats_.lateTicks >= 10 && stats_.lateTicks * 20 > tick;
        if (!warnedLag_ && warn_ && tick > 0 && (trend || lag > 1.0)) {
            warnedLag_ = true;
            warn_(
                fmt::format("sampling is falling behind the requested {} Hz ({} of {} samples late, the latest by "
                            "{:.1f} ms); late samples are skipped, not bunched",
                            options_.rateHz, stats_.lateTicks, tick, lag * 1000));
        }
        next_ = now;  // skip the missed ticks
    }
    next_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval * jitter(rng_)));

    SnapshotOptions snapOptions;
    snapOptions.pause = options_.pause;
    snapOptions.limits = options_.limits;
    snapOptions.native = options_.native;
    snapOptions.nativeAll = options_.nativeAll;
    snapOptions.processInfo = false;
    snapOptions.fdKinds = options_.waitStates;
    snapOptions.threadNames = unnamedThread_ || t - lastNames_ >= kNameRefreshSeconds;
    if (snapOptions.threadNames) lastNames_ = t;

    ProcessSnapshot snapshot;
    try {
        snapshot = process_.snapshot(snapOptions);
    } catch (const FatalError& e) {
        if (e.kind() == ErrorKind::TargetExited) {
            stats_.targetExited = true;
            return false;
        }
        if (e.kind() != ErrorKind::Internal) {
            if (stats_.ticks == 0) throw;
            stats_.failure = std::current_exception();
            return false;
        }
        // A torn thread list (normal without a pause): count it and go on.
        ++stats_.errors;
        errors_.store(stats_.errors, std::memory_order_relaxed);
        return true;
    }

    stats_.pausedSeconds += snapshot.pausedSeconds;
    Sample& sample = sample_;
    sample.tick = stats_.ticks;
    sample.time = t;
    unnamedThread_ = false;
    // The ThreadSamples of the last tick are reused, frame vectors included: a steady
    // sampler allocates nothing here.
    std::size_t used = 0;
    const bool filtered = !options_.threads.empty();
    // A thread's index; one seen for the first time has its name looked up on the next tick.
    const auto indexOf = [&](const ThreadStack& thread) {
        const std::size_t known = threads_.size();
        const std::uint32_t index = threadIndex(thread);
        if (threads_.size() > known && !snapOptions.threadNames) unnamedThread_ = true;
        return index;
    };
    for (const auto& thread : snapshot.threads) {
        // A thread the filter leaves out is not sampled at all, errors included; a new
        // one is judged once its name is known (it is looked up on the next tick).
        std::optional<std::uint32_t> index;
        if (filtered) {
            index = indexOf(thread);
            if (!threadSelected(*index)) continue;
        }
        if (thread.error) {
            ++stats_.errors;
            continue;
        }
        if (used == sample.threads.size()) sample.threads.emplace_back();
        ThreadSample& ts = sample.threads[used++];
        ts.frames.clear();
        ts.thread = index ? *index : indexOf(thread);
        ts.active = thread.active;
        ts.holdsGil = thread.holdsGil;
        ts.state = thread.state;
        ts.ioKind = thread.wait ? thread.wait->fdInfo.kind : FdKind::Unknown;
        ts.syscall = thread.wait ? thread.wait->syscallNumber : -1;
        ts.frames.reserve(thread.frames.size() + thread.merged.size() + 1);
        // A stack cut at the depth bound lacks its outermost frames: say so at its root
        // rather than let a middle frame pass for the entry point.
        if (thread.truncated) ts.frames.push_back(frames_.intern({FrameKind::Python, "(truncated stack)", "", 0}));
        // Not merged (the stacks did not line up, or no native stack was read): the
        // Python stack alone, and the miss is counted, never silent.
        if (thread.nativeRequested && (thread.mergeFailed || thread.nativeFrames.empty())) ++stats_.mergeErrors;
        appendFrames(thread, ts.frames);
        if (options_.waitStates && !ts.frames.empty()) ts.frames.push_back(stateFrame(ts));
    }
    sample.threads.resize(used);
    ++stats_.ticks;
    ticks_.store(stats_.ticks, std::memory_order_relaxed);
    errors_.store(stats_.errors, std::memory_order_relaxed);
    sink.onSample(sample, frames_, threads_);
    return true;
}

// ---------------------------------------------------------------------------------

ProfileBuilder::ProfileBuilder(const SamplerOptions& options, bool keepTimeline, std::size_t maxTimelineSpans)
    : options_(options), keepTimeline_(keepTimeline), maxTimelineSpans_(maxTimelineSpans) {}

void ProfileBuilder::onSample(const Sample& sample, const FrameTable& frames,
                              const std::vector<ProfiledThread>& threads) {
    // Frames the sampler interned since the last tick: copy them (ids stay aligned).
    for (std::size_t id = frameMap_.size(); id < frames.size(); ++id) {
        frameMap_.push_back(frames_.intern(frames[static_cast<FrameId>(id)]));
    }
    while (threadFrame_.size() < threads.size()) {
        FrameKey key;
        key.kind = FrameKind::Thread;
        key.name = fmt::format("#thread {}", threadFrame_.size());  // relabelled in finish()
        threadFrame_.push_back(frames_.intern(key));
        open_.push_back(Open{});
        paths_.emplace_back();
    }
    const double interval = 1.0 / options_.rateHz;
    for (const auto& ts : sample.threads) {
        // A thread with no Python frame (starting, or in C code that has no frame yet)
        // is not a sample of Python code.
        if (ts.frames.empty() || !keepThread(ts, options_)) continue;
        scratch_.clear();
        scratch_.push_back(threadFrame_[ts.thread]);
        for (FrameId f : ts.frames) scratch_.push_back(frameMap_[f]);
        const NodeId leaf = trie_.insert(scratch_, 1, paths_[ts.thread]);
        if (!keepTimeline_) continue;
        Open& open = open_[ts.thread];
        if (open.valid && open.tick + 1 == sample.tick && timeline_[open.span].leaf == leaf) {
            TimelineSpan& span = timeline_[open.span];
            span.end = sample.time + interval;
            ++span.samples;
        } else if (timeline_.size() < maxTimelineSpans_) {
            timeline_.push_back(TimelineSpan{ts.thread, leaf, sample.time, sample.time + interval, 1});
            open.span = timeline_.size() - 1;
            open.valid = true;
        } else {
            timelineTruncated_ = true;
            open.valid = false;
        }
        open.tick = sample.tick;
    }
}

RecordedProfile ProfileBuilder::describe(const Sampler& sampler, const SamplerStats& stats,
                                         const PythonProcess& process, FrameTable frames) const {
    RecordedProfile profile;
    profile.pid = process.pid();
    profile.commandLine = process.commandLine();
    profile.pythonVersion = process.target().version.toString();
    profile.rateHz = options_.rateHz;
    profile.startTime = sampler.startEpochSeconds() + cutSeconds_;
    profile.duration = std::max(0.0, stats.elapsedSeconds - cutSeconds_);
    profile.samples = stats.ticks - std::min(stats.ticks, cutTicks_);
    profile.errors = stats.errors - std::min(stats.errors, cutErrors_);
    profile.gilOnly = options_.gilOnly;
    profile.includeIdle = options_.includeIdle;
    const auto& threads = sampler.threads();
    std::set<std::string> usedLabels;
    for (std::size_t i = 0; i < threadFrame_.size() && i < threads.size(); ++i) {
        ProfiledThread thread = threads[i];
        thread.frame = threadFrame_[i];
        std::string label = threadLabel(thread);
        if (usedLabels.count(label) != 0) label += fmt::format(" #{}", i);  // a reused OS thread id
        usedLabels.insert(label);
        frames.rename(thread.frame, label);
        profile.threads.push_back(std::move(thread));
    }
    profile.frames = std::move(frames);
    return profile;
}

RecordedProfile ProfileBuilder::finish(const Sampler& sampler, const SamplerStats& stats,
                                       const PythonProcess& process) {
    RecordedProfile profile = describe(sampler, stats, process, std::move(frames_));
    profile.trie = std::move(trie_);
    profile.timeline = std::move(timeline_);
    return profile;
}

namespace {

// A timeline since `since` seconds into the run, its times made relative to that point.
std::vector<TimelineSpan> timelineSince(std::vector<TimelineSpan> spans, double since) {
    for (auto& span : spans) {
        span.start = std::max(0.0, span.start - since);
        span.end = std::max(span.start, span.end - since);
    }
    return spans;
}

}  // namespace

RecordedProfile ProfileBuilder::snapshot(const Sampler& sampler, const SamplerStats& stats,
                                         const PythonProcess& process) const {
    RecordedProfile profile = describe(sampler, stats, process, frames_);
    profile.trie = trie_;
    profile.timeline = timelineSince(timeline_, cutSeconds_);
    return profile;
}

RecordedProfile ProfileBuilder::cut(const Sampler& sampler, const SamplerStats& stats, const PythonProcess& process) {
    RecordedProfile profile = describe(sampler, stats, process, frames_);
    profile.trie = std::exchange(trie_, StackTrie{});
    profile.timeline = timelineSince(std::exchange(timeline_, {}), cutSeconds_);
    // The per-thread caches point into the old trie and timeline.
    for (auto& path : paths_) path = StackTrie::PathCache{};
    for (auto& open : open_) open = Open{};
    cutTicks_ = stats.ticks;
    cutErrors_ = stats.errors;
    cutSeconds_ = stats.elapsedSeconds;
    return profile;
}

}  // namespace pyspy
