// PauseGate: keeps job-control stops of pyspy-cpp (Ctrl-Z) out of target pauses.
//
// A tracer that stops while it holds target threads in a ptrace stop leaves them
// stopped until it is continued: a Ctrl-Z at the wrong moment would freeze the service
// being profiled. Every ThreadPause passes the gate (tryEnter) before its first ptrace
// request and leaves it once the last thread is let go. The thread that handles
// SIGTSTP (cli StopSignals) closes the gate, waits for the pauses in flight to end,
// stops the process, and opens the gate again once continued.
//
// Process-wide and lock-free; tryEnter never blocks (a thread may hold one pause while
// it asks for another), a refused pause is one lost sample around a Ctrl-Z.
#pragma once

#include <chrono>

namespace pyspy::pause_gate {

// Whether a pause may start; if true, leave() must follow when it ends.
bool tryEnter();
void leave();

// Refuses new pauses and waits up to `timeout` for the ones in flight to end. Returns
// whether none is left. open() must follow, whatever the result.
bool closeAndDrain(std::chrono::milliseconds timeout);
void open();

}  // namespace pyspy::pause_gate
