#include "pyspy/ui/top_view.h"

namespace pyspy {

namespace {

// The next (or previous) view of the cycle running, gil, lock, io, sleep, child, other.
ThreadState nextView(ThreadState view, bool forward) {
    const std::size_t i = static_cast<std::size_t>(view);
    return static_cast<ThreadState>(forward ? (i + 1) % kThreadStateCount
                                            : (i + kThreadStateCount - 1) % kThreadStateCount);
}

}  // namespace

bool applyTopKey(TopViewState& state, int key) {
    if (key == 'q' || key == 'Q' || key == 3 /* Ctrl-C in raw mode */) {
        state.quit = true;
        return false;
    }
    if (state.help) {
        state.help = false;
        return true;
    }
    switch (key) {
        case '1':
            state.view.sort = TopColumn::Own;
            break;
        case '2':
            state.view.sort = TopColumn::Total;
            break;
        case '3':
            state.view.sort = TopColumn::OwnTime;
            break;
        case '4':
            state.view.sort = TopColumn::TotalTime;
            break;
        case 'r':
        case 'R':
            state.view.reverse = !state.view.reverse;
            break;
        case 'l':
        case 'L':
            state.view.lineNumbers = !state.view.lineNumbers;
            break;
        case 'c':
        case 'C':
            state.view.cumulative = !state.view.cumulative;
            break;
        case 't':
        case 'T':
            state.view.perThread = !state.view.perThread;
            break;
        case 'P':
            state.view.perProcess = !state.view.perProcess;
            break;
        case 'w':
            state.view.state = nextView(state.view.state, true);
            break;
        case 'W':
            state.view.state = nextView(state.view.state, false);
            break;
        case 'p':
        case ' ':
            state.paused = !state.paused;
            break;
        case '?':
        case 'h':
        case 'H':
            state.help = true;
            break;
        default:
            return false;
    }
    return true;
}

}  // namespace pyspy
