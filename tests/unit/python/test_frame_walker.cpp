// FrameWalker and CodeCache against a fake process memory: a hand-built 3.11-style
// frame chain, so corrupt links, shim frames and reused code addresses can be staged.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "fake_unicode.h"
#include "pyspy/process/memory.h"
#include "pyspy/process/prefetched_memory.h"
#include "pyspy/python/frame_walker.h"

using namespace pyspy;

namespace {

// A small synthetic layout (test data, not a CPython table): 3.11-style frames.
PyLayout fakeLayout() {
    PyLayout l;
    l.major = 3;
    l.minor = 12;
    l.object_type = 8;
    l.frame_code = 0;
    l.frame_back = 8;
    l.frame_prev_instr = 16;
    l.frame_owner = 24;
    l.owner_thread = 0;
    l.owner_generator = 1;
    l.owner_cstack = 3;
    l.code_filename = 16;
    l.code_name = 24;
    l.code_qualname = 32;
    l.code_linetable = 40;
    l.code_firstlineno = 48;
    l.code_firsttraceable = 52;
    l.code_code_adaptive = 64;
    test::setFakeUnicodeLayout(l);
    l.bytes_size = 16;
    l.bytes_sval = 32;
    l.varobject_size = 16;
    return l;
}

constexpr std::uint64_t kStrType = 0x1000, kBytesType = 0x2000, kCodeType = 0x3000;

struct FakeProcess {
    BufferMemory memory;
    PyLayout layout = fakeLayout();

    void putString(std::uint64_t at, const std::string& text) {
        // Padded like a pymalloc block in its pool: FrameWalker fingerprints 128 bytes.
        std::vector<std::uint8_t> obj(std::max<std::size_t>(40 + text.size() + 1, 256), 0);
        std::uint64_t type = kStrType, length = text.size();
        std::uint32_t state = test::kFakeAsciiState;
        std::memcpy(obj.data() + 8, &type, 8);
        std::memcpy(obj.data() + 16, &length, 8);
        std::memcpy(obj.data() + 32, &state, 4);
        std::memcpy(obj.data() + 40, text.data(), text.size());
        memory.map(at, std::move(obj));
    }
    void putBytes(std::uint64_t at, const std::vector<std::uint8_t>& bytes) {
        std::vector<std::uint8_t> obj(std::max<std::size_t>(32 + bytes.size() + 1, 256), 0);
        std::uint64_t type = kBytesType, size = bytes.size();
        std::memcpy(obj.data() + 8, &type, 8);
        std::memcpy(obj.data() + 16, &size, 8);
        std::memcpy(obj.data() + 32, bytes.data(), bytes.size());
        memory.map(at, std::move(obj));
    }
    // A code object at `at` whose strings live at strings+0x100.. (`strings` 0: at), line
    // table: every instruction on firstLine + lineDelta (0 <= lineDelta < 32).
    void putCode(std::uint64_t at, const std::string& name, const std::string& file, int firstLine,
                 std::uint8_t lineDelta = 2, std::uint64_t strings = 0) {
        if (strings == 0) strings = at;
        std::vector<std::uint8_t> obj(64 + 32, 0);
        auto put64 = [&](std::size_t off, std::uint64_t v) { std::memcpy(obj.data() + off, &v, 8); };
        put64(8, kCodeType);
        put64(16, strings + 0x100);
        put64(24, strings + 0x200);
        put64(32, strings + 0x200);
        put64(40, strings + 0x300);
        std::int32_t line = firstLine;
        std::memcpy(obj.data() + 48, &line, 4);
        memory.map(at, std::move(obj));
        putString(strings + 0x100, file);
        putString(strings + 0x200, name);
        // One no-column entry covering 16 code units, the line delta as a signed varint.
        putBytes(strings + 0x300, {0x80 | (13 << 3) | 15, static_cast<std::uint8_t>(lineDelta << 1)});
    }
    static std::vector<std::uint8_t> frameBytes(std::uint64_t code, std::uint64_t back, std::uint64_t instrOffset,
                                                std::int8_t owner) {
        std::vector<std::uint8_t> frame(32, 0);
        std::uint64_t instr = code + 64 + instrOffset;
        std::memcpy(frame.data() + 0, &code, 8);
        std::memcpy(frame.data() + 8, &back, 8);
        std::memcpy(frame.data() + 16, &instr, 8);
        std::memcpy(frame.data() + 24, &owner, 1);
        return frame;
    }
    void putFrame(std::uint64_t at, std::uint64_t code, std::uint64_t back, std::uint64_t instrOffset,
                  std::int8_t owner) {
        memory.map(at, frameBytes(code, back, instrOffset, owner));
    }
    TypeAddresses types() const {
        TypeAddresses t;
        t.str = kStrType;
        t.bytes = kBytesType;
        t.code = kCodeType;
        return t;
    }
};

}  // namespace

TEST_CASE("FrameWalker walks a chain innermost first and skips C-stack shim frames", "[frames]") {
    FakeProcess fake;
    fake.putCode(0x10000, "inner", "/app/a.py", 10);
    fake.putCode(0x20000, "outer", "/app/b.py", 20);
    fake.putFrame(0x90000, 0x10000, 0x90100, 4, 0);
    fake.putFrame(0x90100, 0x20000, 0x90200, 6, 0);
    fake.putFrame(0x90200, 0x20000, 0, 0, 3);  // a shim frame owned by the C stack
    ObjectReader reader(fake.memory, fake.layout, fake.types());
    CodeCache codes;
    FrameWalker walker(fake.memory, reader, codes);

    auto chain = walker.walk(0x90000);
    REQUIRE(chain.ok());
    REQUIRE(chain.value().frames.size() == 2);
    CHECK(chain.value().frames[0].function() == "inner");
    CHECK(chain.value().frames[0].filename() == "/app/a.py");
    CHECK(chain.value().frames[0].line == 12);
    CHECK(chain.value().frames[1].function() == "outer");
    CHECK(chain.value().frames[1].line == 22);
    CHECK_FALSE(chain.value().truncated);
}

TEST_CASE("FrameWalker refuses a cyclic chain instead of reporting a deep stack", "[frames]") {
    FakeProcess fake;
    fake.putCode(0x10000, "loop", "/app/a.py", 1);
    fake.putFrame(0x90000, 0x10000, 0x90100, 0, 0);
    fake.putFrame(0x90100, 0x10000, 0x90000, 0, 0);  // corrupt (or freed and reused): points back
    ObjectReader reader(fake.memory, fake.layout, fake.types());
    CodeCache codes;
    FrameWalker walker(fake.memory, reader, codes, WalkLimits{50});
    auto chain = walker.walk(0x90000);
    REQUIRE_FALSE(chain.ok());
    CHECK(chain.error().kind == ReadErrorKind::Invalid);
    CHECK(chain.error().what == "frame chain loops");
}

TEST_CASE("FrameWalker fails cleanly on unmapped frames and non-code objects", "[frames]") {
    FakeProcess fake;
    fake.putCode(0x10000, "f", "/app/a.py", 1);
    fake.putFrame(0x90000, 0x10000, 0xdead0000, 0, 0);  // back pointer into nothing
    ObjectReader reader(fake.memory, fake.layout, fake.types());
    CodeCache codes;
    FrameWalker walker(fake.memory, reader, codes);
    FrameChain partial;
    auto chain = walker.walk(0x90000, &partial);
    REQUIRE_FALSE(chain.ok());
    CHECK(chain.error().kind == ReadErrorKind::Fault);

    // A "code" pointer whose type is not PyCode_Type is refused, not decoded.
    // (Big enough that the batched code-header read succeeds and the type is what fails.)
    std::vector<std::uint8_t> notCode(4096, 0);
    const std::uint64_t strType = kStrType;
    std::memcpy(notCode.data() + 8, &strType, 8);
    fake.memory.map(0x50000, std::move(notCode));
    fake.putFrame(0x91000, 0x50000, 0, 0, 0);
    auto bad = walker.walk(0x91000);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == ReadErrorKind::Invalid);
}

TEST_CASE("CodeCache never returns a stale entry for a reused address", "[frames]") {
    FakeProcess first;
    first.putCode(0x10000, "old_function", "/app/a.py", 5);
    first.putFrame(0x90000, 0x10000, 0, 0, 0);
    CodeCache codes;
    {
        ObjectReader reader(first.memory, first.layout, first.types());
        FrameWalker walker(first.memory, reader, codes);
        auto chain = walker.walk(0x90000);
        REQUIRE(chain.ok());
        CHECK(chain.value().frames[0].function() == "old_function");
    }
    // The same address now holds another code object (other name and file objects).
    FakeProcess second;
    second.putCode(0x10000, "new_function", "/app/b.py", 5);
    // Move its strings so the identity pointers differ from the first object's.
    second.memory = BufferMemory();
    {
        std::vector<std::uint8_t> obj(96, 0);
        auto put64 = [&](std::size_t off, std::uint64_t v) { std::memcpy(obj.data() + off, &v, 8); };
        put64(8, kCodeType);
        put64(16, 0x70100);
        put64(24, 0x70200);
        put64(32, 0x70200);
        put64(40, 0x70300);
        std::int32_t line = 5;
        std::memcpy(obj.data() + 48, &line, 4);
        second.memory.map(0x10000, std::move(obj));
        second.putString(0x70100, "/app/b.py");
        second.putString(0x70200, "new_function");
        second.putBytes(0x70300, {0x80 | (13 << 3) | 15, 0x04});
    }
    second.putFrame(0x90000, 0x10000, 0, 0, 0);
    ObjectReader reader(second.memory, second.layout, second.types());
    FrameWalker walker(second.memory, reader, codes);
    auto chain = walker.walk(0x90000);
    REQUIRE(chain.ok());
    CHECK(chain.value().frames[0].function() == "new_function");
    CHECK(chain.value().frames[0].filename() == "/app/b.py");
    CHECK(codes.misses() == 2);
}

TEST_CASE("CodeCache misses when the code object and all it points to are reallocated in place", "[frames]") {
    // pymalloc can give a new code object, its filename and its line table the very
    // addresses of the ones just freed (exec of near-identical sources in a loop): every
    // pointer of the identity is then unchanged, only the contents differ.
    CodeCache codes;
    const auto walkOnce = [&codes](FakeProcess& process) {
        ObjectReader reader(process.memory, process.layout, process.types());
        FrameWalker walker(process.memory, reader, codes);
        auto chain = walker.walk(0x90000);
        REQUIRE(chain.ok());
        REQUIRE(chain.value().frames.size() == 1);
        return chain.value().frames[0];
    };
    FakeProcess first;
    first.putCode(0x10000, "<module>", "<churn-25>", 1);
    first.putFrame(0x90000, 0x10000, 0, 0, 0);
    CHECK(walkOnce(first).filename() == "<churn-25>");
    CHECK(walkOnce(first).filename() == "<churn-25>");
    CHECK(codes.misses() == 1);  // the second walk was a hit

    FakeProcess second;  // same addresses, same lengths, another file name
    second.putCode(0x10000, "<module>", "<churn-26>", 1);
    second.putFrame(0x90000, 0x10000, 0, 0, 0);
    CHECK(walkOnce(second).filename() == "<churn-26>");
    CHECK(codes.misses() == 2);

    FakeProcess third;  // same file name, another line table at the same address
    third.putCode(0x10000, "<module>", "<churn-26>", 1, 4);
    third.putFrame(0x90000, 0x10000, 0, 0, 0);
    const PyFrame frame = walkOnce(third);
    CHECK(codes.misses() == 3);
    CHECK(frame.line == std::optional<int>(5));
}

TEST_CASE("FrameWalker reads all code headers of a stack in one batched read", "[frames]") {
    FakeProcess fake;
    fake.putCode(0x10000, "f", "/app/a.py", 1);
    std::vector<std::uint8_t> stack(0x100 * 10, 0);  // ten frames in one contiguous region, like a data stack
    for (int i = 0; i < 10; ++i) {
        auto frame = FakeProcess::frameBytes(0x10000, i == 9 ? 0 : 0x90000 + 0x100 * (i + 1), 0, 0);
        std::memcpy(stack.data() + 0x100 * i, frame.data(), frame.size());
    }
    fake.memory.map(0x90000, std::move(stack));
    ObjectReader reader(fake.memory, fake.layout, fake.types());
    CodeCache codes;
    // Prefetch every frame: then the walk needs only the batched code-header read
    // (BufferMemory's default readMany counts one read per range; a cache hit reads nothing else).
    PrefetchedMemory prefetched(fake.memory);
    REQUIRE(prefetched.prefetch(0x90000, 0x100 * 9 + 32).ok());
    FrameWalker warm(prefetched, reader, codes);
    REQUIRE(warm.walk(0x90000).ok());
    const auto before = fake.memory.readCount();
    auto chain = warm.walk(0x90000);
    REQUIRE(chain.ok());
    CHECK(chain.value().frames.size() == 10);
    // Once for the ten frames of the same code object: its header, and the fingerprint
    // of its filename and line table (two ranges); the frames came from the prefetch.
    CHECK(fake.memory.readCount() - before == 3);
    // The second walk's one distinct code object is one cache lookup, a hit.
    CHECK(codes.hits() == 1);
    CHECK(codes.misses() == 1);
}

TEST_CASE("FrameWalker drops a walk whose frame no longer runs the code it decoded", "[frames]") {
    // The walk reads a copy; the live process has since returned from `inner` and put
    // another code object in that frame: names read from the first may be of freed memory.
    FakeProcess copy;
    copy.putCode(0x10000, "inner", "/app/a.py", 10);
    copy.putCode(0x20000, "outer", "/app/b.py", 20);
    copy.putFrame(0x90000, 0x10000, 0x90100, 4, 0);
    copy.putFrame(0x90100, 0x20000, 0, 6, 0);
    ObjectReader reader(copy.memory, copy.layout, copy.types());

    // The live process: the same code objects; its frames as given.
    const auto liveWith = [](std::uint64_t innermostCode) {
        auto process = std::make_unique<FakeProcess>();
        process->putCode(0x10000, "inner", "/app/a.py", 10);
        process->putCode(0x20000, "outer", "/app/b.py", 20);
        process->putFrame(0x90000, innermostCode, 0x90100, 4, 0);
        process->putFrame(0x90100, 0x20000, 0, 6, 0);
        return process;
    };
    const auto same = liveWith(0x10000);  // the live frames, unchanged
    CodeCache codes;
    auto chain = FrameWalker(copy.memory, reader, codes, {}, nullptr, &same->memory).walk(0x90000);
    REQUIRE(chain.ok());
    CHECK(chain->frames.size() == 2);

    const auto changed = liveWith(0x30000);  // the innermost frame now runs other code
    CodeCache fresh;
    auto torn = FrameWalker(copy.memory, reader, fresh, {}, nullptr, &changed->memory).walk(0x90000);
    REQUIRE_FALSE(torn.ok());
    CHECK(torn.error().describe().find("changed while it was read") != std::string::npos);
    // Once cached (validated against its header since), a code object is not re-checked.
    auto cached = FrameWalker(copy.memory, reader, codes, {}, nullptr, &changed->memory).walk(0x90000);
    CHECK(cached.ok());
}

TEST_CASE("FrameWalker decodes a new code object from live memory, not from an older copy", "[frames]") {
    // Without a pause the walk reads a copy taken when the snapshot began (SpeculativeMemory)
    // and, for what the copy does not hold, the live process. A code object made after the
    // copy points to strings made after it too; where the copy happens to cover one of
    // them it still shows what was there before (a freed temporary string), not the name.
    // Seen on free-threaded 3.14 under churn: "    pad_2 = 2" decoded as the name of
    // gen_13758 in <churn-13758>, with the frame still running that code object.
    FakeProcess live;
    live.putCode(0x10000, "gen_7", "<churn-7>", 1);
    live.putFrame(0x90000, 0x10000, 0x90100, 4, 0);
    live.putFrame(0x90100, 0x20000, 0, 6, 0);
    live.putCode(0x20000, "churn_code", "/app/target.py", 20);
    FakeProcess copy;  // the same objects, but where the name now is, the copy has an older string
    copy.putCode(0x10000, "    pad_2 = 2", "<churn-7>", 1);
    copy.putFrame(0x90000, 0x10000, 0x90100, 4, 0);
    copy.putFrame(0x90100, 0x20000, 0, 6, 0);
    copy.putCode(0x20000, "churn_code", "/app/target.py", 20);
    ObjectReader reader(copy.memory, copy.layout, copy.types());
    CodeCache codes;
    FrameWalker walker(copy.memory, reader, codes, {}, nullptr, &live.memory);

    for (int walk = 0; walk < 2; ++walk) {  // decoded, then a cache hit
        auto chain = walker.walk(0x90000);
        REQUIRE(chain.ok());
        REQUIRE(chain->frames.size() == 2);
        CHECK(chain->frames[0].function() == "gen_7");
        CHECK(chain->frames[0].filename() == "<churn-7>");
        CHECK(chain->frames[1].function() == "churn_code");
    }
    CHECK(codes.misses() == 2);
    CHECK(codes.hits() == 2);
}

TEST_CASE("FrameWalker drops a walk whose frame runs a new code object at the decoded one's address", "[frames]") {
    // The frame that ran gen_1 returned, gen_1's code object was freed, and the next call
    // took the same frame slot with a new code object at the very same address: the
    // frame's code pointer alone cannot tell, the code object's identity fields can.
    FakeProcess copy;
    copy.putCode(0x10000, "gen_1", "<churn-1>", 1);
    copy.putFrame(0x90000, 0x10000, 0, 4, 0);
    ObjectReader reader(copy.memory, copy.layout, copy.types());

    // In the live process the first segment mapped at an address wins.
    FakeProcess live;
    live.putCode(0x10000, "gen_2", "<churn-2>", 2, 2, 0x70000);  // the new code object over the old
    live.putCode(0x10000, "gen_1", "<churn-1>", 1);              // the old strings, freed but intact
    live.putFrame(0x90000, 0x10000, 0, 4, 0);
    CodeCache codes;
    auto torn = FrameWalker(copy.memory, reader, codes, {}, nullptr, &live.memory).walk(0x90000);
    REQUIRE_FALSE(torn.ok());
    CHECK(torn.error().describe().find("changed while it was read") != std::string::npos);
    CHECK(codes.size() == 0);  // the stale decode is not kept

    FakeProcess same;  // the same code object still there: the walk stands
    same.putCode(0x10000, "gen_1", "<churn-1>", 1);
    same.putFrame(0x90000, 0x10000, 0, 4, 0);
    auto chain = FrameWalker(copy.memory, reader, codes, {}, nullptr, &same.memory).walk(0x90000);
    REQUIRE(chain.ok());
    CHECK(chain->frames[0].function() == "gen_1");
}
