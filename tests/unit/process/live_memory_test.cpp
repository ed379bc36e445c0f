// LiveProcessMemory against a forked child that fills a buffer with a known pattern
// and reports its address: both backends, batched reads, faults and dead targets.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <vector>

#include "forked_child.h"
#include "pyspy/process/live_memory.h"

using namespace pyspy;

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;

std::uint8_t patternAt(std::size_t i) {
    return static_cast<std::uint8_t>((i * 7 + 3) & 0xff);
}

// A child whose heap holds kBufferSize pattern bytes; it sends their address.
test::ForkedChild patternChild() {
    return test::ForkedChild([](int toTest) {
        auto* buffer = static_cast<std::uint8_t*>(std::malloc(kBufferSize));
        for (std::size_t i = 0; i < kBufferSize; ++i) buffer[i] = patternAt(i);
        test::sendValue(toTest, reinterpret_cast<std::uint64_t>(buffer));
        test::sleepForever();
    });
}

const char* backendName(LiveProcessMemory::Backend backend) {
    return backend == LiveProcessMemory::Backend::ProcMem ? "/proc/PID/mem" : "process_vm_readv";
}

}  // namespace

TEST_CASE("LiveProcessMemory reads a child's memory with both backends", "[live_memory]") {
    auto child = patternChild();
    std::uint64_t buffer = 0;
    REQUIRE(child.receive(buffer));

    for (const auto backend : {LiveProcessMemory::Backend::Auto, LiveProcessMemory::Backend::ProcMem}) {
        INFO("backend " << backendName(backend));
        const LiveProcessMemory memory(child.pid(), backend);
        CHECK(memory.pid() == child.pid());

        std::vector<std::uint8_t> whole(kBufferSize);
        REQUIRE(memory.read(buffer, whole.data(), whole.size()).ok());
        std::size_t mismatches = 0;
        for (std::size_t i = 0; i < kBufferSize; ++i) mismatches += whole[i] != patternAt(i);
        CHECK(mismatches == 0);
        CHECK(memory.usingProcMem() == (backend == LiveProcessMemory::Backend::ProcMem));

        const auto value = readValue<std::uint32_t>(memory, buffer + 1001);
        REQUIRE(value.ok());
        CHECK((*value & 0xff) == patternAt(1001));

        SECTION("readMany into destinations that are not back to back") {
            std::uint8_t first[4] = {}, second[4] = {}, third[2] = {};
            // Consecutive requests whose destinations do not follow each other in memory.
            const std::vector<ReadRequest> requests{{buffer + 10, first, 2},
                                                    {buffer + 300, second + 1, 3},
                                                    {buffer + 20, first + 2, 2},
                                                    {buffer + 7, third, 2}};
            REQUIRE(memory.readMany(requests).ok());
            CHECK(first[0] == patternAt(10));
            CHECK(first[1] == patternAt(11));
            CHECK(first[2] == patternAt(20));
            CHECK(first[3] == patternAt(21));
            CHECK(second[0] == 0);
            CHECK(second[1] == patternAt(300));
            CHECK(second[3] == patternAt(302));
            CHECK(third[1] == patternAt(8));
        }
        SECTION("readMany with several ranges, more than one batch (destinations back to back)") {
            constexpr std::size_t kRanges = 1200;  // > the 512 ranges of one process_vm_readv batch
            std::vector<std::uint8_t> out(kRanges * 3);
            std::vector<ReadRequest> requests;
            for (std::size_t i = 0; i < kRanges; ++i) {
                requests.push_back(ReadRequest{buffer + i * 50, out.data() + i * 3, 3});
            }
            REQUIRE(memory.readMany(requests).ok());
            std::size_t wrong = 0;
            for (std::size_t i = 0; i < kRanges; ++i) {
                for (std::size_t k = 0; k < 3; ++k) wrong += out[i * 3 + k] != patternAt(i * 50 + k);
            }
            CHECK(wrong == 0);
        }
        SECTION("an unmapped address is a fault, alone or inside readMany") {
            std::uint64_t word = 0;
            const Status status = memory.read(0x10, &word, sizeof word);
            REQUIRE_FALSE(status.ok());
            CHECK(status.error().kind == ReadErrorKind::Fault);

            std::uint8_t a = 0, b = 0, c = 0;
            const std::vector<ReadRequest> requests{{buffer, &a, 1}, {0x20, &b, 1}, {buffer + 1, &c, 1}};
            const Status many = memory.readMany(requests);
            REQUIRE_FALSE(many.ok());
            CHECK(many.error().kind == ReadErrorKind::Fault);
            CHECK(many.error().address == 0x20);
        }
    }
}

TEST_CASE("LiveProcessMemory reports a dead target as ProcessGone", "[live_memory]") {
    SECTION("a pid that no longer exists") {
        const pid_t pid = test::deadPid();
        for (const auto backend : {LiveProcessMemory::Backend::Auto, LiveProcessMemory::Backend::ProcMem}) {
            INFO("backend " << backendName(backend));
            const LiveProcessMemory memory(pid, backend);
            std::uint64_t word = 0;
            const Status status = memory.read(0x400000, &word, sizeof word);
            REQUIRE_FALSE(status.ok());
            CHECK(status.error().kind == ReadErrorKind::ProcessGone);
        }
    }
    SECTION("a target that exits after reads succeeded (open /proc/PID/mem, zombie)") {
        auto child = patternChild();
        std::uint64_t buffer = 0;
        REQUIRE(child.receive(buffer));
        const LiveProcessMemory auto_(child.pid());
        const LiveProcessMemory procMem(child.pid(), LiveProcessMemory::Backend::ProcMem);
        std::uint64_t word = 0;
        REQUIRE(auto_.read(buffer, &word, sizeof word).ok());
        REQUIRE(procMem.read(buffer, &word, sizeof word).ok());

        ::kill(child.pid(), SIGKILL);
        REQUIRE(child.waitUntilZombie());
        const Status viaSyscall = auto_.read(buffer, &word, sizeof word);
        const Status viaFile = procMem.read(buffer, &word, sizeof word);
        REQUIRE_FALSE(viaSyscall.ok());
        REQUIRE_FALSE(viaFile.ok());
        CHECK(viaSyscall.error().kind == ReadErrorKind::ProcessGone);
        CHECK(viaFile.error().kind == ReadErrorKind::ProcessGone);
    }
}
