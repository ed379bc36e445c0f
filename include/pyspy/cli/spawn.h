// SpawnedProgram: `record -- PROGRAM ARGS` / `top -- PROGRAM ARGS` start the program
// themselves, attach once its interpreter is up, and end it when they end: a program
// pyspy-cpp started never outlives it by accident, nor does anything it started.
// pyspy-cpp makes itself their subreaper (PR_SET_CHILD_SUBREAPER), so a process the
// program started stays a descendant of pyspy-cpp even when its parent (a wrapper
// script, `sh -c`) exits first.
#pragma once

#include <sys/types.h>

#include <chrono>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pyspy/python/python_process.h"

namespace pyspy {

class SpawnedProgram {
  public:
    // Starts `argv` (PATH is searched) with our stdin/stdout/stderr. Throws
    // FatalError(Usage) when it cannot be started (not found, not executable).
    explicit SpawnedProgram(const std::vector<std::string>& argv);
    // Kills (SIGKILL) and reaps the program and its descendants if still running. Runs
    // after the samplers have ended (declare it before them), as end() must.
    ~SpawnedProgram();
    SpawnedProgram(const SpawnedProgram&) = delete;
    SpawnedProgram& operator=(const SpawnedProgram&) = delete;

    pid_t pid() const { return pid_; }

    // Attaches to the program once its interpreter is initialized, retrying while it
    // is still starting. Throws FatalError: NotPython when it is no Python after
    // `timeoutSeconds`, TargetExited when it exits first (its status is kept).
    std::unique_ptr<PythonProcess> attachWhenReady(double timeoutSeconds = 10.0);

    // Waits for the program to end and returns the exit code the shell would give:
    // its exit status, or 128 + signal number.
    int wait();
    // The exit code if it has ended already (reaping it), else nothing.
    std::optional<int> poll();

    // Ends the program and every process it started, as Ctrl-C would and then harder:
    // SIGINT to each, SIGTERM to those left after `grace`, SIGKILL after another
    // `grace`; reaps them. Returns the program's exit code (see wait()); one that had
    // exited by itself keeps its own, and what it left running is ended all the same.
    // Only once no sampler runs: it reaps any child (waitpid(-1)), and a sampler
    // thread's ptrace stops are reported to waits too.
    int end(std::chrono::milliseconds grace);

  private:
    // Reaps every exited child (orphans re-parented to us included), keeping the
    // program's status; returns the descendants still running.
    std::vector<pid_t> reapAndListDescendants();

    pid_t pid_ = -1;
    std::optional<int> exitCode_;
};

}  // namespace pyspy
