#include "pyspy/ui/top_model.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace pyspy {

namespace {

std::uint64_t rowKey(std::uint32_t thread, std::uint32_t id) {
    return (std::uint64_t{thread} << 32) | id;
}

}  // namespace

ThreadState topSampleState(const ThreadSample& sample) {
    return sample.active || sample.holdsGil ? ThreadState::Running : sample.state;
}

double TopWindow::secondsPerTick(double rateHz) const {
    if (ticks > 1 && lastTime > firstTime) return (lastTime - firstTime) / double(ticks - 1);
    return rateHz > 0 ? 1.0 / rateHz : 0.01;
}

TopAggregator::TopAggregator(const SamplerOptions& options) : options_(options) {}

void TopAggregator::onSample(const Sample& sample, const FrameTable& frames,
                             const std::vector<ProfiledThread>& threads) {
    onProcessSample(0, sample, frames, threads);
}

std::uint32_t TopAggregator::addProcess(pid_t pid, std::string commandLine, double startCpuSeconds, double startTime) {
    std::lock_guard lock(mutex_);
    TopProcess process;
    process.pid = pid;
    process.commandLine = std::move(commandLine);
    process.startCpuSeconds = startCpuSeconds;
    process.startTime = startTime;
    processes_.push_back(std::move(process));
    processStates_.emplace_back();
    return static_cast<std::uint32_t>(processes_.size() - 1);
}

void TopAggregator::processEnded(std::uint32_t process) {
    std::lock_guard lock(mutex_);
    if (process >= processes_.size()) return;
    processes_[process].ended = true;
    liveThreads_ -= processStates_[process].liveThreads;
    processStates_[process].liveThreads = 0;
}

std::uint32_t TopAggregator::lineId(const FrameKey& key) {
    std::string fkey = key.name;
    fkey.push_back('\0');
    fkey += key.filename;
    auto [fit, fadded] = functionIndex_.try_emplace(fkey, static_cast<std::uint32_t>(functions_.size()));
    if (fadded) functions_.push_back(TopFunction{key.name, key.filename, 0});
    fkey.push_back('\0');
    fkey += std::to_string(key.line);
    auto [lit, ladded] = lineIndex_.try_emplace(std::move(fkey), static_cast<std::uint32_t>(lines_.size()));
    if (ladded) {
        lines_.push_back(TopFunction{key.name, key.filename, key.line});
        lineToFunction_.push_back(fit->second);
    }
    return lit->second;
}

void TopAggregator::onProcessSample(std::uint32_t process, const Sample& sample, const FrameTable& frames,
                                    const std::vector<ProfiledThread>& threads) {
    std::lock_guard lock(mutex_);
    if (process >= processStates_.size()) {  // onSample without addProcess: the one process
        processes_.resize(process + 1);
        processStates_.resize(process + 1);
    }
    ProcessState& ps = processStates_[process];
    // New frames of this process: map each to its line (shared by every process).
    for (std::size_t id = ps.lines.size(); id < frames.size(); ++id) {
        ps.lines.push_back(lineId(frames[static_cast<FrameId>(id)]));
    }
    seenLine_.resize(lines_.size(), 0);
    seenFunction_.resize(functions_.size(), 0);
    // Threads: new ones, and names learnt since.
    for (std::size_t i = 0; i < threads.size(); ++i) {
        if (i == ps.threads.size()) {
            ps.threads.push_back(static_cast<std::uint32_t>(threads_.size()));
            threads_.emplace_back();
            threads_.back().process = process;
            threads_.back().pid = processes_[process].pid;
        }
        TopThread& t = threads_[ps.threads[i]];
        t.threadId = threads[i].threadId;
        if (threads[i].nativeId) t.nativeId = *threads[i].nativeId;
        if (t.name != threads[i].name) t.name = threads[i].name;
    }
    liveThreads_ = liveThreads_ - ps.liveThreads + sample.threads.size();
    ps.liveThreads = sample.threads.size();

    for (TopWindow* w : {&interval_, &cumulative_}) {
        if (w->processes.size() <= process) w->processes.resize(process + 1);
        TopProcessCounts& pc = w->processes[process];
        if (pc.ticks == 0) pc.firstTime = sample.time;
        pc.lastTime = sample.time;
        ++pc.ticks;
        ++w->processTicks;
        // The window's ticks and clock are those of the process sampled most often.
        if (pc.ticks > w->ticks) {
            w->ticks = pc.ticks;
            w->firstTime = pc.firstTime;
            w->lastTime = pc.lastTime;
        }
    }
    bool gil = false;
    for (const ThreadSample& ts : sample.threads) {
        if (ts.holdsGil) gil = true;
        if (ts.thread >= ps.threads.size()) continue;
        const std::uint32_t thread = ps.threads[ts.thread];
        stack_.clear();
        for (FrameId f : ts.frames) {
            if (f < ps.lines.size()) stack_.push_back(ps.lines[f]);
        }
        const ThreadState state = topSampleState(ts);
        const auto stateIndex = static_cast<std::size_t>(state);
        const bool kept = keepThread(ts, options_);
        for (TopWindow* w : {&interval_, &cumulative_}) {
            ++w->threadSamples;
            ++w->states[stateIndex];
            ++w->processes[process].states[stateIndex];
            if (ts.active || ts.holdsGil) ++w->active;
            // The running view: what the filters keep; a wait view: the samples in its state.
            if (kept) {
                ++w->kept;
                count(w->tables[static_cast<std::size_t>(ThreadState::Running)], thread, stack_);
            }
            if (state != ThreadState::Running) count(w->tables[stateIndex], thread, stack_);
        }
    }
    if (gil) {
        for (TopWindow* w : {&interval_, &cumulative_}) {
            ++w->gilTicks;
            ++w->processes[process].gilTicks;
        }
    }
}

void TopAggregator::count(TopTable& table, std::uint32_t thread, const std::vector<std::uint32_t>& stack) {
    if (stack.empty()) return;
    const std::uint32_t leaf = stack.back();
    ++table.byLine[rowKey(thread, leaf)].own;
    ++table.byFunction[rowKey(thread, lineToFunction_[leaf])].own;
    // Totals: each frame (and function) once per stack, however often it recurses.
    if (++stamp_ == 0) {
        std::fill(seenLine_.begin(), seenLine_.end(), 0);
        std::fill(seenFunction_.begin(), seenFunction_.end(), 0);
        stamp_ = 1;
    }
    for (std::uint32_t f : stack) {
        if (seenLine_[f] != stamp_) {
            seenLine_[f] = stamp_;
            ++table.byLine[rowKey(thread, f)].total;
        }
        const std::uint32_t fn = lineToFunction_[f];
        if (seenFunction_[fn] != stamp_) {
            seenFunction_[fn] = stamp_;
            ++table.byFunction[rowKey(thread, fn)].total;
        }
    }
}

TopSnapshot TopAggregator::snapshot(bool endInterval) {
    std::lock_guard lock(mutex_);
    TopSnapshot snap;
    snap.interval = interval_;
    snap.cumulative = cumulative_;
    snap.lines = lines_;
    snap.functions = functions_;
    snap.threads = threads_;
    snap.processes = processes_;
    snap.liveThreads = liveThreads_;
    snap.rateHz = options_.rateHz;
    if (endInterval) interval_ = TopWindow{};
    return snap;
}

void TopCpuMeter::measure(TopSnapshot& snapshot, double now, const CpuReader& cpuSeconds) {
    last_.resize(snapshot.processes.size());
    for (std::size_t i = 0; i < snapshot.processes.size(); ++i) {
        TopProcess& process = snapshot.processes[i];
        const std::optional<double> cpu = process.ended ? std::nullopt : cpuSeconds(process.pid);
        if (!cpu) {
            last_[i].reset();
            continue;
        }
        // A process added before any reading (onSample alone) starts now.
        const Reading start =
            process.startTime > 0 ? Reading{process.startCpuSeconds, process.startTime} : Reading{*cpu, now};
        const Reading previous = last_[i].value_or(start);
        if (now > previous.time)
            process.cpuInterval = std::max(0.0, (*cpu - previous.cpuSeconds) / (now - previous.time));
        if (now > start.time) process.cpuCumulative = std::max(0.0, (*cpu - start.cpuSeconds) / (now - start.time));
        last_[i] = Reading{*cpu, now};
    }
}

std::string topThreadLabel(const TopThread& thread) {
    const std::string id = thread.nativeId ? std::to_string(*thread.nativeId) : fmt::format("{:#x}", thread.threadId);
    if (thread.name.empty()) return id;
    return fmt::format("{} {}", thread.name, id);
}

std::vector<TopRow> buildTopTable(const TopSnapshot& snapshot, const TopViewOptions& view) {
    const TopWindow& window = view.cumulative ? snapshot.cumulative : snapshot.interval;
    const TopTable& current = window.table(view.state);
    const TopTable& sinceStart = snapshot.cumulative.table(view.state);
    const auto& counts = view.lineNumbers ? current.byLine : current.byFunction;
    const auto& allCounts = view.lineNumbers ? sinceStart.byLine : sinceStart.byFunction;
    const auto& table = view.lineNumbers ? snapshot.lines : snapshot.functions;
    const double perTick = snapshot.cumulative.secondsPerTick(snapshot.rateHz);
    const double ticks = double(window.ticks);

    // Merge threads unless asked not to: key by id alone.
    struct Merged {
        TopCounts window, sinceStart;
        std::vector<std::uint32_t> processes;  // distinct, in the window
    };
    std::unordered_map<std::uint64_t, Merged> merged;
    for (const auto& [key, c] : counts) {
        const std::uint64_t k = view.perThread ? key : (key & 0xffffffffu);
        Merged& m = merged[k];
        m.window.own += c.own;
        m.window.total += c.total;
        const auto thread = static_cast<std::uint32_t>(key >> 32);
        const std::uint32_t process = thread < snapshot.threads.size() ? snapshot.threads[thread].process : 0;
        if (std::find(m.processes.begin(), m.processes.end(), process) == m.processes.end()) {
            m.processes.push_back(process);
        }
    }
    for (const auto& [key, c] : allCounts) {
        const std::uint64_t k = view.perThread ? key : (key & 0xffffffffu);
        auto it = merged.find(k);
        if (it == merged.end()) continue;
        it->second.sinceStart.own += c.own;
        it->second.sinceStart.total += c.total;
    }

    std::vector<TopRow> rows;
    rows.reserve(merged.size());
    for (const auto& [key, c] : merged) {
        const std::uint32_t id = static_cast<std::uint32_t>(key & 0xffffffffu);
        if (id >= table.size()) continue;
        TopRow row;
        row.function = &table[id];
        if (view.perThread) row.thread = static_cast<std::uint32_t>(key >> 32);
        row.ownPercent = ticks > 0 ? 100.0 * double(c.window.own) / ticks : 0.0;
        row.totalPercent = ticks > 0 ? 100.0 * double(c.window.total) / ticks : 0.0;
        row.ownSeconds = double(c.sinceStart.own) * perTick;
        row.totalSeconds = double(c.sinceStart.total) * perTick;
        row.processCount = c.processes.size();
        if (c.processes.size() == 1) row.process = c.processes.front();
        rows.push_back(row);
    }

    const auto value = [](const TopRow& r, TopColumn col) {
        switch (col) {
            case TopColumn::Own:
                return r.ownPercent;
            case TopColumn::Total:
                return r.totalPercent;
            case TopColumn::OwnTime:
                return r.ownSeconds;
            case TopColumn::TotalTime:
                return r.totalSeconds;
        }
        return 0.0;
    };
    const TopColumn order[] = {view.sort, TopColumn::Own, TopColumn::Total, TopColumn::OwnTime, TopColumn::TotalTime};
    const auto before = [&](const TopRow& a, const TopRow& b) {
        for (TopColumn col : order) {
            const double va = value(a, col), vb = value(b, col);
            if (va != vb) return va > vb;
        }
        const auto ka = std::tie(a.function->name, a.function->filename, a.function->line);
        const auto kb = std::tie(b.function->name, b.function->filename, b.function->line);
        if (ka != kb) return ka < kb;
        return a.thread.value_or(0) < b.thread.value_or(0);
    };
    std::sort(rows.begin(), rows.end(), before);
    if (view.reverse) std::reverse(rows.begin(), rows.end());
    return rows;
}

}  // namespace pyspy

namespace pyspy {

std::vector<TopProcessRow> buildTopProcessTable(const TopSnapshot& snapshot, const TopViewOptions& view) {
    const TopWindow& window = view.cumulative ? snapshot.cumulative : snapshot.interval;
    std::vector<TopProcessRow> rows;
    rows.reserve(snapshot.processes.size());
    for (std::size_t i = 0; i < snapshot.processes.size(); ++i) {
        const TopProcess& process = snapshot.processes[i];
        TopProcessRow row;
        row.process = &process;
        const std::optional<double> cpu = view.cumulative ? process.cpuCumulative : process.cpuInterval;
        if (cpu) row.cpuPercent = 100.0 * *cpu;
        if (i < window.processes.size()) {
            const TopProcessCounts& counts = window.processes[i];
            row.samples = counts.ticks;
            row.gilPercent = counts.ticks ? 100.0 * double(counts.gilTicks) / double(counts.ticks) : 0.0;
            row.states = counts.states;
        }
        rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end(), [](const TopProcessRow& a, const TopProcessRow& b) {
        const double ca = a.cpuPercent.value_or(-1), cb = b.cpuPercent.value_or(-1);
        if (ca != cb) return ca > cb;
        if (a.samples != b.samples) return a.samples > b.samples;
        return a.process->pid < b.process->pid;
    });
    if (view.reverse) std::reverse(rows.begin(), rows.end());
    return rows;
}

}  // namespace pyspy
