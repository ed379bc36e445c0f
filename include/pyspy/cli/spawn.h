// SpawnedProgram: `record -- PROGRAM ARGS` / `top -- PROGRAM ARGS` start the program
// themselves, attach once its interpreter is up, and end with its exit status.
#pragma once

#include <sys/types.h>

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
    ~SpawnedProgram();  // kills (SIGKILL) and reaps the program if still running
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

  private:
    pid_t pid_ = -1;
    std::optional<int> exitCode_;
};

}  // namespace pyspy
