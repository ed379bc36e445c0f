// What the keys of `pyspy-cpp top` do to the view (pure state, testable without a
// terminal): 1-4 sort, r reverse, l lines, c cumulative, t threads, P processes,
// w / W next / previous view (functions running, then where threads wait: gil, lock,
// io, sleep, child, other), p pause, ? help, q quit. Ctrl-C arrives as SIGINT and is handled by the command.
#pragma once

#include "pyspy/ui/top_model.h"

namespace pyspy {

struct TopViewState {
    TopViewOptions view;
    bool paused = false;  // the display is frozen; sampling goes on
    bool help = false;    // the key list is shown
    bool quit = false;
};

// Applies one key (a character code as getch returns it); returns whether the screen
// must be redrawn. While the help is shown, any key closes it (q still quits).
bool applyTopKey(TopViewState& state, int key);

}  // namespace pyspy
