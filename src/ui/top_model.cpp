#include "pyspy/ui/top_model.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace pyspy {

namespace {

std::uint64_t rowKey(std::uint32_t thread, std::uint32_t id) { return (std::uint64_t{thread} << 32) | id; }

}  // namespace

double TopWindow::secondsPerTick(double rateHz) const {
    if (ticks > 1 && lastTime > firstTime) return (lastTime - firstTime) / double(ticks - 1);
    return rateHz > 0 ? 1.0 / rateHz : 0.01;
}

TopAggregator::TopAggregator(const SamplerOptions& options) : options_(options) {}

void TopAggregator::onSample(const Sample& sample, const FrameTable& frames,
                             const std::vector<ProfiledThread>& threads) {
    std::lock_guard lock(mutex_);
    // New frames: copy their keys, and map each to its function.
    for (std::size_t id = lines_.size(); id < frames.size(); ++id) {
        const FrameKey& key = frames[static_cast<FrameId>(id)];
        lines_.push_back(TopFunction{key.name, key.filename, key.line});
        std::string fkey = key.name;
        fkey.push_back('\0');
        fkey += key.filename;
        auto [it, added] = functionIndex_.try_emplace(std::move(fkey), static_cast<std::uint32_t>(functions_.size()));
        if (added) functions_.push_back(TopFunction{key.name, key.filename, 0});
        lineToFunction_.push_back(it->second);
    }
    seenLine_.resize(lines_.size(), 0);
    seenFunction_.resize(functions_.size(), 0);
    // Threads: new ones, and names learnt since.
    for (std::size_t i = 0; i < threads.size(); ++i) {
        if (i == threads_.size()) {
            threads_.emplace_back();
            threadStates_.emplace_back();
        }
        TopThread& t = threads_[i];
        t.threadId = threads[i].threadId;
        if (threads[i].nativeId) t.nativeId = *threads[i].nativeId;
        if (t.name != threads[i].name) t.name = threads[i].name;
    }
    liveThreads_ = sample.threads.size();

    for (TopWindow* w : {&interval_, &cumulative_}) {
        if (w->ticks == 0) w->firstTime = sample.time;
        w->lastTime = sample.time;
        ++w->ticks;
    }
    bool gil = false;
    for (const ThreadSample& ts : sample.threads) {
        if (ts.holdsGil) gil = true;
        if (ts.thread >= threadStates_.size()) continue;
        // The thread's state: running, waiting for the GIL, or idle (see top_model.h).
        bool gilFunction = false;
        if (!ts.frames.empty() && ts.frames.back() < lineToFunction_.size()) {
            auto& [gilCount, all] = threadStates_[ts.thread].leafGil[lineToFunction_[ts.frames.back()]];
            ++all;
            if (ts.holdsGil) ++gilCount;
            gilFunction = all >= kGilMinSamples && double(gilCount) >= kGilShare * double(all);
        }
        std::uint64_t TopWindow::*state = &TopWindow::idle;
        if (ts.holdsGil) {
            state = &TopWindow::running;
        } else if (gilFunction) {
            state = &TopWindow::waiting;
        } else if (ts.active) {
            state = &TopWindow::running;
        }
        for (TopWindow* w : {&interval_, &cumulative_}) {
            ++w->threadSamples;
            ++(w->*state);
            if (ts.active || ts.holdsGil) ++w->active;
        }
        if (!keepThread(ts, options_)) continue;
        for (TopWindow* w : {&interval_, &cumulative_}) {
            ++w->kept;
            count(*w, ts.thread, ts);
        }
    }
    if (gil) {
        ++interval_.gilTicks;
        ++cumulative_.gilTicks;
    }
}

void TopAggregator::count(TopWindow& window, std::uint32_t thread, const ThreadSample& ts) {
    if (ts.frames.empty()) return;
    const FrameId leaf = ts.frames.back();
    if (leaf >= lines_.size()) return;
    ++window.byLine[rowKey(thread, leaf)].own;
    ++window.byFunction[rowKey(thread, lineToFunction_[leaf])].own;
    // Totals: each frame (and function) once per stack, however often it recurses.
    if (++stamp_ == 0) {
        std::fill(seenLine_.begin(), seenLine_.end(), 0);
        std::fill(seenFunction_.begin(), seenFunction_.end(), 0);
        stamp_ = 1;
    }
    for (FrameId f : ts.frames) {
        if (f >= lines_.size()) continue;
        if (seenLine_[f] != stamp_) {
            seenLine_[f] = stamp_;
            ++window.byLine[rowKey(thread, f)].total;
        }
        const std::uint32_t fn = lineToFunction_[f];
        if (seenFunction_[fn] != stamp_) {
            seenFunction_[fn] = stamp_;
            ++window.byFunction[rowKey(thread, fn)].total;
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
    snap.liveThreads = liveThreads_;
    snap.rateHz = options_.rateHz;
    if (endInterval) interval_ = TopWindow{};
    return snap;
}

std::string topThreadLabel(const TopThread& thread) {
    const std::string id = thread.nativeId ? std::to_string(*thread.nativeId) : fmt::format("{:#x}", thread.threadId);
    if (thread.name.empty()) return id;
    return fmt::format("{} {}", thread.name, id);
}

std::vector<TopRow> buildTopTable(const TopSnapshot& snapshot, const TopViewOptions& view) {
    const TopWindow& window = view.cumulative ? snapshot.cumulative : snapshot.interval;
    const auto& counts = view.lineNumbers ? window.byLine : window.byFunction;
    const auto& allCounts = view.lineNumbers ? snapshot.cumulative.byLine : snapshot.cumulative.byFunction;
    const auto& table = view.lineNumbers ? snapshot.lines : snapshot.functions;
    const double perTick = snapshot.cumulative.secondsPerTick(snapshot.rateHz);
    const double ticks = double(window.ticks);

    // Merge threads unless asked not to: key by id alone.
    std::unordered_map<std::uint64_t, std::pair<TopCounts, TopCounts>> merged;  // window, since start
    for (const auto& [key, c] : counts) {
        const std::uint64_t k = view.perThread ? key : (key & 0xffffffffu);
        auto& m = merged[k].first;
        m.own += c.own;
        m.total += c.total;
    }
    for (const auto& [key, c] : allCounts) {
        const std::uint64_t k = view.perThread ? key : (key & 0xffffffffu);
        auto it = merged.find(k);
        if (it == merged.end()) continue;
        it->second.second.own += c.own;
        it->second.second.total += c.total;
    }

    std::vector<TopRow> rows;
    rows.reserve(merged.size());
    for (const auto& [key, c] : merged) {
        const std::uint32_t id = static_cast<std::uint32_t>(key & 0xffffffffu);
        if (id >= table.size()) continue;
        TopRow row;
        row.function = &table[id];
        if (view.perThread) row.thread = static_cast<std::uint32_t>(key >> 32);
        row.ownPercent = ticks > 0 ? 100.0 * double(c.first.own) / ticks : 0.0;
        row.totalPercent = ticks > 0 ? 100.0 * double(c.first.total) / ticks : 0.0;
        row.ownSeconds = double(c.second.own) * perTick;
        row.totalSeconds = double(c.second.total) * perTick;
        rows.push_back(row);
    }

    const auto value = [](const TopRow& r, TopColumn col) {
        switch (col) {
            case TopColumn::Own: return r.ownPercent;
            case TopColumn::Total: return r.totalPercent;
            case TopColumn::OwnTime: return r.ownSeconds;
            case TopColumn::TotalTime: return r.totalSeconds;
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
