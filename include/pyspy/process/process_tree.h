// ProcessTree: the target and its descendants, for `-s/--subprocesses`.
//
// Discovery is a scan of /proc (every process's stat: pid, ppid, start time), not
// /proc/PID/task/TID/children: that file needs CONFIG_PROC_CHILDREN and lists only
// children, so a child whose parent has already exited (re-parented to init or a
// subreaper) would vanish from it. The tree instead remembers every process it has seen
// by (pid, start time): a member stays a member after its parent exits, its children
// join through it, and a reused pid (a later start time) is never taken for it.
// A child must be seen once while its parent is in the tree: one that is forked and
// orphaned between two scans (at most one scan interval) is missed.
//
// Bounds: a scan reads at most kMaxScannedProcesses /proc entries, and the tree keeps
// at most kMaxTreeMembers processes (later ones are reported as over the bound).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <vector>

#include "pyspy/process/process.h"

namespace pyspy {

struct TreeMember {
    pid_t pid = 0;
    pid_t parent = 0;                  // the parent when first seen (0 for the root)
    unsigned long long startTime = 0;  // with pid, the process's identity
    std::vector<pid_t> chain;          // root ... parent, pid: how it hangs under the root
};

class ProcessTree {
  public:
    static constexpr std::size_t kMaxScannedProcesses = 1 << 22;  // the kernel's pid_max limit
    static constexpr std::size_t kMaxTreeMembers = 4096;

    // Throws FatalError(NoSuchProcess) when `root` does not exist.
    explicit ProcessTree(pid_t root);

    // Scans /proc once; returns the members found for the first time, parents before
    // their children. Processes that exited stay members (members() keeps them).
    std::vector<TreeMember> scan();

    const TreeMember& root() const { return members_.front(); }
    const std::vector<TreeMember>& members() const { return members_; }  // root first, then by discovery
    bool overBound() const { return overBound_; }  // some descendant was not added (kMaxTreeMembers)

  private:
    std::vector<TreeMember> members_;
    std::map<pid_t, std::size_t> indexByPid_;  // the latest member with that pid
    bool overBound_ = false;
};

}  // namespace pyspy
