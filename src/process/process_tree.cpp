#include "pyspy/process/process_tree.h"

#include <dirent.h>

#include <charconv>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "pyspy/common/error.h"

namespace pyspy {

namespace {

// Every process in /proc (numeric entries), at most kMaxScannedProcesses.
std::vector<pid_t> listProcesses() {
    std::vector<pid_t> pids;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc"), ::closedir);
    if (!dir) return pids;
    while (const dirent* entry = ::readdir(dir.get())) {
        if (pids.size() >= ProcessTree::kMaxScannedProcesses) break;
        pid_t pid = 0;
        const char* name = entry->d_name;
        const char* end = name + std::strlen(name);
        const auto [ptr, ec] = std::from_chars(name, end, pid);
        if (ec == std::errc() && ptr == end && pid > 0) pids.push_back(pid);
    }
    return pids;
}

}  // namespace

ProcessTree::ProcessTree(pid_t root) {
    const auto status = readProcessStatus(root);
    if (!status) throw FatalError(ErrorKind::NoSuchProcess, "process " + std::to_string(root) + " does not exist");
    members_.push_back(TreeMember{root, 0, status->startTime, {root}});
    indexByPid_[root] = 0;
}

std::vector<TreeMember> ProcessTree::scan() {
    // Children by parent, from one pass over /proc.
    std::unordered_map<pid_t, std::vector<ProcessStatus>> childrenOf;
    std::unordered_map<pid_t, unsigned long long> startOf;
    for (const pid_t pid : listProcesses()) {
        const auto status = readProcessStatus(pid);
        if (!status) continue;
        startOf[pid] = status->startTime;
        if (status->parent > 0) childrenOf[status->parent].push_back(*status);
    }
    // Breadth-first from every member still alive under its identity: each process is
    // visited at most once (a child starts after its parent, so no cycles).
    std::vector<TreeMember> found;
    std::deque<std::size_t> queue;
    for (std::size_t i = 0; i < members_.size(); ++i) queue.push_back(i);
    while (!queue.empty()) {
        const TreeMember parent = members_[queue.front()];
        queue.pop_front();
        // An exited member has no children to find; its pid may now be someone else's.
        const auto alive = startOf.find(parent.pid);
        if (alive == startOf.end() || alive->second != parent.startTime) continue;
        const auto children = childrenOf.find(parent.pid);
        if (children == childrenOf.end()) continue;
        for (const ProcessStatus& child : children->second) {
            const auto known = indexByPid_.find(child.pid);
            if (known != indexByPid_.end() && members_[known->second].startTime == child.startTime) continue;
            if (members_.size() >= kMaxTreeMembers) {
                overBound_ = true;
                continue;
            }
            TreeMember member{child.pid, parent.pid, child.startTime, parent.chain};
            member.chain.push_back(child.pid);
            members_.push_back(member);
            indexByPid_[child.pid] = members_.size() - 1;
            queue.push_back(members_.size() - 1);
            found.push_back(std::move(member));
        }
    }
    return found;
}

}  // namespace pyspy
