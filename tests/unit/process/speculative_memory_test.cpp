#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <thread>

#include "pyspy/process/memory.h"
#include "pyspy/process/prefetched_memory.h"
#include "pyspy/process/speculative_memory.h"
#include "pyspy/process/thread_stats.h"

using namespace pyspy;

namespace {

std::vector<std::uint8_t> pattern(std::size_t size, std::uint8_t seed) {
    std::vector<std::uint8_t> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(seed + i);
    return bytes;
}

}  // namespace

TEST_CASE("SpeculativeMemory replays last snapshot's reads from one batched read", "[speculative]") {
    BufferMemory memory;
    memory.map(0x1000, pattern(256, 1));
    memory.map(0x5000, pattern(256, 7));
    SpeculativeMemory speculative(memory);

    const auto readBoth = [&] {
        std::uint64_t a = 0, b = 0;
        REQUIRE(speculative.read(0x1010, &a, 8).ok());
        REQUIRE(speculative.read(0x5020, &b, 8).ok());
        return std::make_pair(a, b);
    };
    std::uint64_t expectA = 0, expectB = 0;
    REQUIRE(memory.read(0x1010, &expectA, 8).ok());
    REQUIRE(memory.read(0x5020, &expectB, 8).ok());

    speculative.begin();  // nothing recorded yet: reads go through
    const auto before = memory.readCount();
    CHECK(readBoth() == std::make_pair(expectA, expectB));
    CHECK(memory.readCount() - before == 2);
    speculative.end();

    speculative.begin();  // the two ranges are fetched now, in one batch
    CHECK(speculative.lastPrefetchRanges() == 2);
    const auto batched = memory.readCount();
    CHECK(readBoth() == std::make_pair(expectA, expectB));
    CHECK(memory.readCount() == batched);  // served from the copy
    speculative.end();

    // Outside begin/end every read is live.
    const auto live = memory.readCount();
    (void)readBoth();
    CHECK(memory.readCount() - live == 2);
}

TEST_CASE("SpeculativeMemory falls back to live reads when a replayed range is gone", "[speculative]") {
    BufferMemory memory;
    memory.map(0x1000, pattern(64, 3));
    SpeculativeMemory speculative(memory);
    speculative.begin();
    std::uint64_t value = 0;
    REQUIRE(speculative.read(0x1000, &value, 8).ok());
    CHECK_FALSE(speculative.read(0x9000, &value, 8).ok());  // unmapped: fails, and is recorded
    speculative.end();
    speculative.begin();  // the batch fails on 0x9000: nothing is served from a copy
    CHECK(speculative.lastPrefetchRanges() == 0);
    std::uint64_t again = 0;
    REQUIRE(speculative.read(0x1000, &again, 8).ok());
    std::uint64_t expect = 0;
    REQUIRE(memory.read(0x1000, &expect, 8).ok());
    CHECK(again == expect);
    speculative.end();
}

TEST_CASE("SpeculativeMemory does not replay large reads", "[speculative]") {
    BufferMemory memory;
    memory.map(0x100000, pattern(SpeculativeMemory::kMaxRangeBytes + 16, 0));
    SpeculativeMemory speculative(memory);
    std::vector<std::uint8_t> big(SpeculativeMemory::kMaxRangeBytes + 8);
    speculative.begin();
    REQUIRE(speculative.read(0x100000, big.data(), big.size()).ok());
    speculative.end();
    speculative.begin();
    CHECK(speculative.lastPrefetchRanges() == 0);
    speculative.end();
}

TEST_CASE("ThreadStatReader reads the states of this process's threads repeatedly", "[process]") {
    std::atomic<bool> stop{false};
    std::atomic<pid_t> spinnerTid{0};
    std::thread spinner([&] {
        spinnerTid = static_cast<pid_t>(::syscall(SYS_gettid));
        while (!stop.load()) {
        }
    });
    while (spinnerTid == 0) std::this_thread::yield();
    ThreadStatReader reader(::getpid());
    const auto tids = reader.threads(true);
    REQUIRE(tids.size() >= 2);
    CHECK(tids.front() == ::getpid());
    for (int round = 0; round < 3; ++round) {
        for (pid_t tid : tids) {
            auto activity = reader.activity(tid);
            REQUIRE(activity.ok());
            if (tid == spinnerTid) CHECK(activity.value().running);
        }
    }
    stop = true;
    spinner.join();
    CHECK_FALSE(reader.activity(999999999).ok());
}

TEST_CASE("SpeculativeMemory reads ranges closer than kMaxGap as one", "[speculative]") {
    BufferMemory memory;
    memory.map(0x10000, pattern(4 * 4096, 5));
    SpeculativeMemory speculative(memory);
    constexpr std::uint64_t kNear = 0x10000 + 16 + SpeculativeMemory::kMaxGap;  // gap of kMaxGap - 8 after the first
    constexpr std::uint64_t kFar = kNear + 8 + SpeculativeMemory::kMaxGap + 1;  // one byte too far from the second
    const auto readAll = [&] {
        std::array<std::uint64_t, 3> values{};
        REQUIRE(speculative.read(0x10010, &values[0], 8).ok());
        REQUIRE(speculative.read(kNear, &values[1], 8).ok());
        REQUIRE(speculative.read(kFar, &values[2], 8).ok());
        return values;
    };
    std::array<std::uint64_t, 3> expect{};
    REQUIRE(memory.read(0x10010, &expect[0], 8).ok());
    REQUIRE(memory.read(kNear, &expect[1], 8).ok());
    REQUIRE(memory.read(kFar, &expect[2], 8).ok());
    speculative.begin();
    CHECK(readAll() == expect);
    speculative.end();
    speculative.begin();
    CHECK(speculative.lastPrefetchRanges() == 2);  // the first two merged, the third apart
    const auto batched = memory.readCount();
    CHECK(readAll() == expect);
    CHECK(memory.readCount() == batched);
    speculative.end();
}

TEST_CASE("PrefetchedMemory serves its regions from the copy and forgets them on clear", "[prefetched]") {
    BufferMemory memory;
    memory.map(0x1000, pattern(512, 3));
    memory.map(0x9000, pattern(256, 9));
    PrefetchedMemory prefetched(memory);
    std::array<std::uint8_t, 16> expect{}, got{};

    for (int round = 0; round < 2; ++round) {  // the second round reuses the first's buffers
        prefetched.clear();
        auto head = prefetched.prefetch(0x1000, 128);
        REQUIRE(head.ok());
        CHECK(head.value().size() == 128);
        CHECK(head.value()[5] == static_cast<std::uint8_t>(3 + 5));
        REQUIRE(prefetched.extend(256).ok());                // now [0x1000, 0x1180)
        CHECK_FALSE(prefetched.extend(4096).ok());           // past the mapping: the region stays as it was
        CHECK_FALSE(prefetched.prefetch(0x20000, 64).ok());  // unmapped: nothing kept

        const auto before = memory.readCount();
        REQUIRE(memory.read(0x1170, expect.data(), expect.size()).ok());
        REQUIRE(prefetched.read(0x1170, got.data(), got.size()).ok());
        CHECK(got == expect);
        std::array<std::uint8_t, 8> pair{};
        const std::array<ReadRequest, 2> requests{ReadRequest{0x1010, pair.data(), 4},
                                                  ReadRequest{0x9000, pair.data() + 4, 4}};
        REQUIRE(prefetched.readMany(requests).ok());
        CHECK(pair[0] == static_cast<std::uint8_t>(3 + 0x10));
        CHECK(pair[4] == 9);
        // One read of our own for `expect`, and one for the range outside the regions.
        CHECK(memory.readCount() - before == 2);
        // A read running past the end of the region goes to the memory.
        REQUIRE(prefetched.read(0x1178, got.data(), got.size()).ok());
        CHECK(memory.readCount() - before == 3);
    }
    prefetched.clear();
    const auto before = memory.readCount();
    REQUIRE(prefetched.read(0x1010, got.data(), 8).ok());
    CHECK(memory.readCount() - before == 1);  // forgotten: read live
}
