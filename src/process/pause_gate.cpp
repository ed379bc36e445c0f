// PauseGate implementation: two sequentially consistent atomics. tryEnter() counts
// itself in, then reads `closed`; closeAndDrain() sets `closed`, then reads the count.
// Of two such store-then-load pairs at least one sees the other's store, so a pause
// either sees the gate closed (and backs out) or is counted before the drain ends.
#include "pyspy/process/pause_gate.h"

#include <atomic>
#include <thread>

namespace pyspy::pause_gate {

namespace {

std::atomic<int> inFlight{0};
std::atomic<bool> closed{false};

}  // namespace

bool tryEnter() {
    inFlight.fetch_add(1);
    if (!closed.load()) return true;
    inFlight.fetch_sub(1);
    return false;
}

void leave() {
    inFlight.fetch_sub(1);
}

bool closeAndDrain(std::chrono::milliseconds timeout) {
    closed.store(true);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (inFlight.load() != 0) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
}

void open() {
    closed.store(false);
}

}  // namespace pyspy::pause_gate
