#include "pyspy/sampling/stack_trie.h"

#include <algorithm>

namespace pyspy {

std::size_t FrameKeyHash::operator()(const FrameKey& key) const noexcept {
    std::size_t h = std::hash<std::string>{}(key.name);
    h ^= std::hash<std::string>{}(key.filename) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= std::hash<int>{}(key.line) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= static_cast<std::size_t>(key.kind) << 1;
    return h;
}

FrameId FrameTable::intern(const FrameKey& key) {
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    const auto id = static_cast<FrameId>(keys_.size());
    keys_.push_back(key);
    index_.emplace(key, id);
    return id;
}

void FrameTable::rename(FrameId id, std::string name) {
    index_.erase(keys_[id]);
    keys_[id].name = std::move(name);
    index_.emplace(keys_[id], id);
}

StackTrie::StackTrie() {
    nodes_.push_back(Node{});
    lastChild_.push_back(kNoNode);
}

NodeId StackTrie::child(NodeId parent, FrameId frame) {
    const auto k = key(parent, frame);
    if (auto it = index_.find(k); it != index_.end()) return it->second;
    const auto id = static_cast<NodeId>(nodes_.size());
    Node n;
    n.frame = frame;
    n.parent = parent;
    n.depth = nodes_[parent].depth + 1;
    nodes_.push_back(n);
    lastChild_.push_back(kNoNode);
    if (lastChild_[parent] == kNoNode) {
        nodes_[parent].firstChild = id;
    } else {
        nodes_[lastChild_[parent]].nextSibling = id;
    }
    lastChild_[parent] = id;
    index_.emplace(k, id);
    return id;
}

NodeId StackTrie::insert(std::span<const FrameId> outermostFirst, std::uint64_t count) {
    NodeId current = kRootNode;
    nodes_[kRootNode].total += count;
    for (const FrameId frame : outermostFirst) {
        current = child(current, frame);
        nodes_[current].total += count;
    }
    nodes_[current].self += count;
    return current;
}

NodeId StackTrie::insert(std::span<const FrameId> outermostFirst, std::uint64_t count, PathCache& cache) {
    if (cache.trie != this) {
        cache.trie = this;
        cache.frames.clear();
        cache.nodes.clear();
    }
    const std::size_t limit = std::min(outermostFirst.size(), cache.frames.size());
    std::size_t common = 0;
    while (common < limit && outermostFirst[common] == cache.frames[common]) ++common;
    cache.frames.assign(outermostFirst.begin(), outermostFirst.end());
    cache.nodes.resize(common);
    NodeId current = common == 0 ? kRootNode : cache.nodes[common - 1];
    for (std::size_t i = common; i < outermostFirst.size(); ++i) {
        current = child(current, outermostFirst[i]);
        cache.nodes.push_back(current);
    }
    nodes_[kRootNode].total += count;
    for (const NodeId node : cache.nodes) nodes_[node].total += count;
    nodes_[current].self += count;
    return current;
}

std::vector<FrameId> StackTrie::path(NodeId id) const {
    std::vector<FrameId> frames;
    for (NodeId n = id; n != kRootNode && n != kNoNode; n = nodes_[n].parent) frames.push_back(nodes_[n].frame);
    return {frames.rbegin(), frames.rend()};
}

void StackTrie::forEachStack(
    const std::function<void(std::span<const FrameId> outermostFirst, std::uint64_t self)>& f) const {
    // Iterative depth-first walk keeping the current path: no recursion on deep stacks.
    std::vector<FrameId> stack;
    std::vector<NodeId> pending{kRootNode};
    while (!pending.empty()) {
        const NodeId id = pending.back();
        pending.pop_back();
        const Node& n = nodes_[id];
        stack.resize(n.depth);
        if (id != kRootNode) stack[n.depth - 1] = n.frame;
        if (n.self > 0) f(std::span<const FrameId>(stack.data(), n.depth), n.self);
        // Push children in reverse so they are visited in insertion order.
        std::vector<NodeId> children;
        forEachChild(id, [&](NodeId c) { children.push_back(c); });
        for (auto it = children.rbegin(); it != children.rend(); ++it) pending.push_back(*it);
    }
}

StackTrie StackTrie::withoutFirstLevel() const {
    StackTrie merged;
    forEachStack([&](std::span<const FrameId> stack, std::uint64_t self) {
        merged.insert(stack.empty() ? stack : stack.subspan(1), self);
    });
    return merged;
}

std::size_t StackTrie::memoryBytes() const {
    // Nodes, the append helper, and the hash index (about two words per entry plus a bucket).
    return nodes_.capacity() * sizeof(Node) + lastChild_.capacity() * sizeof(NodeId) +
           index_.size() * (sizeof(std::uint64_t) + sizeof(NodeId) + 2 * sizeof(void*)) +
           index_.bucket_count() * sizeof(void*);
}

}  // namespace pyspy
