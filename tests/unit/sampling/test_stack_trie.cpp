#include <catch2/catch.hpp>

#include <map>
#include <vector>

#include "pyspy/sampling/stack_trie.h"

using namespace pyspy;

TEST_CASE("FrameTable interns equal keys once", "[trie]") {
    FrameTable table;
    const FrameId a = table.intern({FrameKind::Python, "f", "/a.py", 3});
    const FrameId b = table.intern({FrameKind::Python, "f", "/a.py", 4});
    const FrameId c = table.intern({FrameKind::Thread, "f", "/a.py", 3});
    CHECK(table.intern({FrameKind::Python, "f", "/a.py", 3}) == a);
    CHECK(a != b);
    CHECK(a != c);
    CHECK(table.size() == 3);
    CHECK(table[b].line == 4);
}

TEST_CASE("StackTrie counts self and total and grows with distinct stacks only", "[trie]") {
    StackTrie trie;
    const std::vector<FrameId> ab{1, 2}, abc{1, 2, 3}, ad{1, 4};
    for (int i = 0; i < 1000; ++i) {
        trie.insert(abc);
        trie.insert(ab);
    }
    const NodeId leaf = trie.insert(ad, 5);
    CHECK(trie.size() == 5);  // root, 1, 2, 3, 4
    CHECK(trie.totalSamples() == 2005);
    CHECK(trie.path(leaf) == ad);
    CHECK(trie.node(leaf).self == 5);
    const NodeId n1 = trie.child(kRootNode, 1);
    CHECK(trie.node(n1).total == 2005);
    CHECK(trie.node(n1).self == 0);
    CHECK(trie.node(trie.child(n1, 2)).self == 1000);
    CHECK(trie.node(trie.child(n1, 2)).total == 2000);

    std::map<std::vector<FrameId>, std::uint64_t> stacks;
    trie.forEachStack([&](std::span<const FrameId> s, std::uint64_t self) {
        stacks[std::vector<FrameId>(s.begin(), s.end())] = self;
    });
    CHECK(stacks == std::map<std::vector<FrameId>, std::uint64_t>{{ab, 1000}, {abc, 1000}, {ad, 5}});
}

TEST_CASE("StackTrie::withoutFirstLevel merges the threads' stacks", "[trie]") {
    StackTrie trie;
    trie.insert(std::vector<FrameId>{100, 1, 2}, 3);  // thread 100
    trie.insert(std::vector<FrameId>{101, 1, 2}, 4);  // thread 101, same stack
    trie.insert(std::vector<FrameId>{101}, 2);        // a thread sample with no frames
    StackTrie merged = trie.withoutFirstLevel();
    CHECK(merged.totalSamples() == 9);
    const NodeId n2 = merged.child(kRootNode, 1);
    CHECK(merged.node(n2).total == 7);
    CHECK(merged.node(kRootNode).self == 2);
}

TEST_CASE("StackTrie handles a very deep stack without recursion", "[trie]") {
    StackTrie trie;
    std::vector<FrameId> deep(100000);
    for (std::size_t i = 0; i < deep.size(); ++i) deep[i] = static_cast<FrameId>(i % 7);
    const NodeId leaf = trie.insert(deep);
    CHECK(trie.node(leaf).depth == deep.size());
    std::size_t seen = 0;
    trie.forEachStack([&](std::span<const FrameId> s, std::uint64_t) { seen = s.size(); });
    CHECK(seen == deep.size());
    CHECK(trie.withoutFirstLevel().totalSamples() == 1);
}

TEST_CASE("StackTrie::insert through a PathCache builds the same trie as without", "[trie]") {
    // Stacks that share prefixes of every length with the one before, an empty one, a
    // shorter and a longer one, and a cache carried over to a second trie.
    const std::vector<std::vector<FrameId>> stacks{
        {1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 5}, {1, 2}, {1, 2, 6, 7, 8}, {}, {9}, {1, 2, 3, 4}, {1, 9, 3, 4}};
    StackTrie plain, cached, other;
    StackTrie::PathCache cache;
    std::vector<NodeId> leavesPlain, leavesCached;
    for (const auto& stack : stacks) {
        other.insert(stack, 1, cache);  // the cache moves between tries: each must start afresh
        leavesPlain.push_back(plain.insert(stack, 2));
        leavesCached.push_back(cached.insert(stack, 2, cache));
    }
    CHECK(leavesCached == leavesPlain);
    REQUIRE(cached.size() == plain.size());
    for (NodeId id = 0; id < plain.size(); ++id) {
        CHECK(cached.node(id).frame == plain.node(id).frame);
        CHECK(cached.node(id).parent == plain.node(id).parent);
        CHECK(cached.node(id).self == plain.node(id).self);
        CHECK(cached.node(id).total == plain.node(id).total);
    }
    CHECK(other.totalSamples() * 2 == plain.totalSamples());
    CHECK(other.size() == plain.size());
}
