// Profiles of a process tree (`record -s`): one RecordedProfile per process, merged
// into one the exporters read like any other.
//
// In the merged profile every stack is [thread frame, process frame, Python frames...]:
// the process frame `process PID: COMMAND LINE` is the root once exporters drop the
// thread level (flamegraph, raw, pprof), and the thread frames, one per process-thread,
// are labelled `process PID Thread TID "name"`, so speedscope and chrometrace show one
// profile per process-thread named with its pid.
#pragma once

#include <string>
#include <vector>

#include "pyspy/sampling/profile.h"

namespace pyspy {

// The root frame of one process's stacks.
std::string processFrameLabel(pid_t pid, const std::string& commandLine);

// `processes` front() is the root of the tree (its pid, command line and version head
// the result); counts are summed, timelines shifted onto the earliest start.
RecordedProfile mergeProcessProfiles(std::vector<RecordedProfile> processes);

}  // namespace pyspy
