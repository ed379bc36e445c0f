// FrameTable and StackTrie: how samples are aggregated. Frames are interned once
// (FrameId); a stack is a path from the root of a prefix tree of frames (NodeId), so
// memory grows with the number of distinct stacks, never with the number of samples.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace pyspy {

enum class FrameKind : std::uint8_t {
    Python,  // a Python function: name (qualified on 3.11+), filename, line
    Thread,  // the pseudo-frame at the root of one thread's stacks: name is its label
    Native,  // a native (C) function (--native)
    State,   // record --wait: the leaf naming the thread's state, "[io: socket]" (no file, no line)
};

struct FrameKey {
    FrameKind kind = FrameKind::Python;
    std::string name;
    std::string filename;  // full path as the interpreter has it ("" for Thread)
    int line = 0;          // 0 when unknown or aggregated away (--nolineno)

    bool operator==(const FrameKey&) const = default;
};

struct FrameKeyHash {
    std::size_t operator()(const FrameKey& key) const noexcept;
};

using FrameId = std::uint32_t;

class FrameTable {
  public:
    FrameId intern(const FrameKey& key);
    // Changes the name of an interned frame (thread frames get their label once the
    // thread's name is known). The new key must not be interned already.
    void rename(FrameId id, std::string name);
    const FrameKey& operator[](FrameId id) const { return keys_[id]; }
    std::size_t size() const { return keys_.size(); }

  private:
    std::vector<FrameKey> keys_;
    std::unordered_map<FrameKey, FrameId, FrameKeyHash> index_;
};

using NodeId = std::uint32_t;
inline constexpr NodeId kRootNode = 0;
inline constexpr NodeId kNoNode = 0xffffffffu;

class StackTrie {
  public:
    struct Node {
        FrameId frame = 0;  // meaningless for the root
        NodeId parent = kNoNode;
        std::uint32_t depth = 0;  // root 0, its children 1, ...
        std::uint64_t self = 0;   // samples whose innermost frame is this node
        std::uint64_t total = 0;  // samples passing through this node (self included)
        NodeId firstChild = kNoNode;
        NodeId nextSibling = kNoNode;  // children are in insertion order
    };

    StackTrie();

    // Adds `count` samples of the stack `outermostFirst`; returns its innermost node
    // (the root for an empty stack).
    NodeId insert(std::span<const FrameId> outermostFirst, std::uint64_t count = 1);
    // The path of the stack last inserted through it. Inserting one thread's stacks
    // through its own cache looks up only the frames below where the new stack departs
    // from the last one (a loop that spends its time in one place: one or two), instead
    // of one hash lookup per frame. A cache is tied to one trie; used with another (or
    // after this one moved) it starts afresh.
    struct PathCache {
        const StackTrie* trie = nullptr;
        std::vector<FrameId> frames;
        std::vector<NodeId> nodes;  // nodes[i] is the node of frames[0..i]
    };
    // Same result as insert(outermostFirst, count).
    NodeId insert(std::span<const FrameId> outermostFirst, std::uint64_t count, PathCache& cache);
    // The child of `parent` for `frame`, created (with zero counts) when missing.
    NodeId child(NodeId parent, FrameId frame);

    const Node& node(NodeId id) const { return nodes_[id]; }
    std::size_t size() const { return nodes_.size(); }
    std::uint64_t totalSamples() const { return nodes_[kRootNode].total; }

    // The frames from the root's child down to `id`, outermost first.
    std::vector<FrameId> path(NodeId id) const;

    template <typename F>
    void forEachChild(NodeId id, F&& f) const {
        for (NodeId c = nodes_[id].firstChild; c != kNoNode; c = nodes_[c].nextSibling) f(c);
    }
    // Every node with self > 0, with its stack (outermost first), in depth-first order.
    void forEachStack(const std::function<void(std::span<const FrameId> outermostFirst, std::uint64_t self)>& f) const;

    // A copy with the first level (the per-thread root frames) removed and the stacks
    // of all threads merged: what the flame graph shows without --threads.
    StackTrie withoutFirstLevel() const;

    std::size_t memoryBytes() const;  // an estimate, for the memory bound

  private:
    static std::uint64_t key(NodeId parent, FrameId frame) { return (std::uint64_t{parent} << 32) | frame; }
    std::vector<Node> nodes_;
    std::vector<NodeId> lastChild_;  // per node, to append children in O(1)
    std::unordered_map<std::uint64_t, NodeId> index_;
};

}  // namespace pyspy
