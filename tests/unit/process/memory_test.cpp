// BufferMemory, RemoteBlock and readCString, including a string that ends at the edge
// of the last mapped page of this very process.
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstring>

#include "pyspy/process/live_memory.h"
#include "pyspy/process/memory.h"

using namespace pyspy;

TEST_CASE("BufferMemory serves reads wholly inside one segment", "[memory]") {
    BufferMemory memory;
    memory.map(0x1000, {1, 2, 3, 4, 5, 6, 7, 8});
    memory.map(0x2000, {9, 10});

    std::array<std::uint8_t, 4> out{};
    REQUIRE(memory.read(0x1002, out.data(), 4).ok());
    CHECK(out == std::array<std::uint8_t, 4>{3, 4, 5, 6});
    REQUIRE(memory.read(0x1004, out.data(), 4).ok());  // ends exactly at the segment end
    CHECK(out[3] == 8);
    REQUIRE(memory.read(0x2000, out.data(), 2).ok());
    CHECK(out[1] == 10);

    SECTION("a read past a segment end is a fault, even when another segment follows") {
        const Status past = memory.read(0x1006, out.data(), 4);
        REQUIRE_FALSE(past.ok());
        CHECK(past.error().kind == ReadErrorKind::Fault);
        CHECK(past.error().address == 0x1006);
    }
    SECTION("a read before or between segments is a fault") {
        CHECK(memory.read(0xfff, out.data(), 1).error().kind == ReadErrorKind::Fault);
        CHECK(memory.read(0x1008, out.data(), 1).error().kind == ReadErrorKind::Fault);
        CHECK(memory.read(0x2001, out.data(), 2).error().kind == ReadErrorKind::Fault);
    }
    SECTION("typed reads and read counting") {
        BufferMemory values;
        values.put<std::uint64_t>(0x5000, 0x1122334455667788ULL);
        const auto pointer = readPointer(values, 0x5000);
        REQUIRE(pointer.ok());
        CHECK(*pointer == 0x1122334455667788ULL);
        CHECK_FALSE(readValue<std::uint32_t>(values, 0x5006).ok());
        CHECK(values.readCount() == 2);
    }
    SECTION("readMany is all-or-nothing and names the failing range") {
        std::uint8_t a = 0, b = 0;
        const std::array ok{ReadRequest{0x1000, &a, 1}, ReadRequest{0x2001, &b, 1}};
        REQUIRE(memory.readMany(ok).ok());
        CHECK(a == 1);
        CHECK(b == 10);
        const std::array bad{ReadRequest{0x1000, &a, 1}, ReadRequest{0x3000, &b, 1}};
        const Status status = memory.readMany(bad);
        REQUIRE_FALSE(status.ok());
        CHECK(status.error().address == 0x3000);
    }
}

TEST_CASE("RemoteBlock reads once and bounds every field", "[memory]") {
    BufferMemory memory;
    std::vector<std::uint8_t> bytes(16);
    const std::uint32_t small = 0xdeadbeef;
    const std::uint64_t pointer = 0x7f0000001000ULL;
    std::memcpy(bytes.data() + 4, &small, 4);
    std::memcpy(bytes.data() + 8, &pointer, 8);
    memory.map(0x4000, bytes);

    const auto block = RemoteBlock::read(memory, 0x4000, 16);
    REQUIRE(block.ok());
    CHECK(block->address() == 0x4000);
    CHECK(block->size() == 16);
    CHECK(memory.readCount() == 1);
    CHECK(block->field<std::uint32_t>(4).value() == 0xdeadbeef);
    CHECK(block->pointer(8).value() == pointer);
    CHECK(memory.readCount() == 1);  // fields come from the local copy

    const auto pastEnd = block->field<std::uint64_t>(9);
    REQUIRE_FALSE(pastEnd.ok());
    CHECK(pastEnd.error().kind == ReadErrorKind::Invalid);
    CHECK(block->field<std::uint8_t>(15).ok());
    CHECK_FALSE(block->field<std::uint8_t>(16).ok());
    CHECK_FALSE(block->field<std::uint8_t>(-1).ok());

    const auto tooBig = RemoteBlock::read(memory, 0x4000, 17);
    REQUIRE_FALSE(tooBig.ok());
    CHECK(tooBig.error().kind == ReadErrorKind::Fault);
}

TEST_CASE("readCString stops at the NUL and at the bound", "[memory]") {
    // readCString reads up to the next page boundary at once (real memory is mapped by
    // whole pages), so the fake segment spans a whole page.
    BufferMemory memory;
    std::vector<std::uint8_t> page(0x1000, 'z');
    std::memcpy(page.data(), "hello\0", 6);
    std::memcpy(page.data() + 0x1000 - 5, "world", 5);  // the page's last bytes, no NUL
    memory.map(0x1000, page);
    CHECK(readCString(memory, 0x1000, 100).value() == "hello");
    CHECK(readCString(memory, 0x1000, 3).value() == "hel");
    CHECK(readCString(memory, 0x1ffb, 5).value() == "world");  // at the bound, no NUL needed
    CHECK(readCString(memory, 0x1ffb, 6).error().kind == ReadErrorKind::Fault);

    // A string that crosses a page boundary inside one segment.
    std::vector<std::uint8_t> twoPages(0x2000, 'a');
    twoPages[0x1000 + 10] = 0;
    memory.map(0x10000, twoPages);
    const auto crossing = readCString(memory, 0x10000 + 0xff0, 1000);
    REQUIRE(crossing.ok());
    CHECK(crossing->size() == 16 + 10);
}

TEST_CASE("readCString reads a string that ends just before an unmapped page", "[memory]") {
    const auto pageSize = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    auto* base = static_cast<char*>(::mmap(nullptr, 2 * pageSize, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    REQUIRE(base != MAP_FAILED);
    // Unmap (not PROT_NONE: /proc/PID/mem may read PROT_NONE pages) the second page.
    REQUIRE(::munmap(base + pageSize, pageSize) == 0);
    std::memset(base, 'x', pageSize);
    const std::string text = "ends at the page edge";
    char* lastPage = base + pageSize;
    std::memcpy(lastPage - text.size() - 1, text.c_str(), text.size() + 1);
    const auto address = reinterpret_cast<std::uint64_t>(lastPage - text.size() - 1);

    for (const auto backend : {LiveProcessMemory::Backend::Auto, LiveProcessMemory::Backend::ProcMem}) {
        const LiveProcessMemory memory(::getpid(), backend);
        const auto read = readCString(memory, address, 4 * pageSize);
        REQUIRE(read.ok());
        CHECK(*read == text);

        // Without the NUL the read runs into the unmapped page: a fault, not garbage.
        lastPage[-1] = 'x';
        const auto unterminated = readCString(memory, address, 4 * pageSize);
        REQUIRE_FALSE(unterminated.ok());
        CHECK(unterminated.error().kind == ReadErrorKind::Fault);
        lastPage[-1] = '\0';
    }
    ::munmap(base, pageSize);
}
