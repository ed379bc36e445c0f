#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fake_unicode.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/locals.h"

using namespace pyspy;

namespace {

// ---------------------------------------------------------------------------------
// A hand-built 2.7-3.10 style frame in BufferMemory: f_localsplus with co_nlocals
// local slots, then the co_cellvars cells, then the co_freevars cells. The layout is
// synthetic (no generated table), its values are compact ASCII strs.

constexpr std::uint64_t kStrType = 0x1000;
constexpr std::uint64_t kCellType = 0x2000;

PyLayout layoutBefore311() {
    PyLayout l;
    l.major = 3;
    l.minor = 10;
    l.object_type = 8;
    l.varobject_size = 16;
    l.type_name = 24;
    l.tuple_item = 24;
    l.cell_ref = 16;
    test::setFakeUnicodeLayout(l);
    l.code_nlocals = 20;
    l.code_varnames = 32;
    l.code_cellvars = 40;
    l.code_freevars = 48;
    l.frame_localsplus = 64;
    return l;
}

class FakeTarget {
  public:
    FakeTarget() {
        type(kStrType, "str");
        type(kCellType, "cell");
    }

    const BufferMemory& memory() const { return memory_; }

    std::uint64_t str(const std::string& text) {
        std::vector<std::uint8_t> image(40 + text.size() + 1);
        put<std::uint64_t>(image, 8, kStrType);
        put<std::int64_t>(image, 16, static_cast<std::int64_t>(text.size()));
        put<std::uint32_t>(image, 32, test::kFakeAsciiState);
        std::memcpy(image.data() + 40, text.data(), text.size());
        return place(std::move(image));
    }

    // A tuple whose ob_size is `size` (default: its items' count).
    std::uint64_t tuple(const std::vector<std::uint64_t>& items, std::int64_t size = -1) {
        std::vector<std::uint8_t> image(24 + items.size() * 8);
        put<std::int64_t>(image, 16, size >= 0 ? size : static_cast<std::int64_t>(items.size()));
        for (std::size_t i = 0; i < items.size(); ++i) put<std::uint64_t>(image, 24 + i * 8, items[i]);
        return place(std::move(image));
    }

    std::uint64_t names(const std::vector<std::string>& texts) {
        std::vector<std::uint64_t> items;
        for (const auto& text : texts) items.push_back(str(text));
        return tuple(items);
    }

    std::uint64_t cell(std::uint64_t content) {
        std::vector<std::uint8_t> image(24);
        put<std::uint64_t>(image, 8, kCellType);
        put<std::uint64_t>(image, 16, content);
        return place(std::move(image));
    }

    std::uint64_t code(std::int32_t nlocals, std::uint64_t varnames, std::uint64_t cellvars, std::uint64_t freevars) {
        std::vector<std::uint8_t> image(56);
        put<std::int32_t>(image, 20, nlocals);
        put<std::uint64_t>(image, 32, varnames);
        put<std::uint64_t>(image, 40, cellvars);
        put<std::uint64_t>(image, 48, freevars);
        return place(std::move(image));
    }

    std::uint64_t frame(const std::vector<std::uint64_t>& slots) {
        std::vector<std::uint8_t> image(64 + slots.size() * 8);
        for (std::size_t i = 0; i < slots.size(); ++i) put<std::uint64_t>(image, 64 + i * 8, slots[i]);
        return place(std::move(image));
    }

  private:
    template <typename T>
    static void put(std::vector<std::uint8_t>& image, std::size_t offset, T value) {
        std::memcpy(image.data() + offset, &value, sizeof(T));
    }

    std::uint64_t place(std::vector<std::uint8_t> image) {
        const std::uint64_t address = next_;
        next_ += (image.size() + 0xff) & ~std::uint64_t{0xff};
        memory_.map(address, std::move(image));
        return address;
    }

    // A type object whose tp_name is `name` (mapped with room for readCString's chunk).
    void type(std::uint64_t address, const char* name) {
        std::vector<std::uint8_t> image(32);
        put<std::uint64_t>(image, 24, address + 0x800);
        memory_.map(address, std::move(image));
        std::vector<std::uint8_t> text(256, 0);
        std::memcpy(text.data(), name, std::strlen(name));
        memory_.map(address + 0x800, std::move(text));
    }

    BufferMemory memory_;
    std::uint64_t next_ = 0x100000;
};

std::vector<std::pair<std::string, std::string>> shown(const std::vector<LocalVariable>& locals) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& local : locals) out.emplace_back(local.name, local.repr);
    return out;
}

using Shown = std::vector<std::pair<std::string, std::string>>;

// A fake target, a reader of its 2.7-3.10 style objects and the -l bounds.
struct Before311 {
    FakeTarget t;
    const PyLayout layout = layoutBefore311();
    const TypeAddresses types = [] {
        TypeAddresses known;
        known.str = kStrType;
        return known;
    }();
    const ObjectReader reader{t.memory(), layout, types};
    const ReprLimits limits = ReprLimits::forLevel(1);
};

}  // namespace

TEST_CASE_METHOD(Before311, "locals: 2.7-3.10 cell and free variables are read through their cells", "[locals]") {
    // def f(arg, plain): local, unbound; cells arg (captured argument), captured, empty; free outer.
    const auto code = t.code(4, t.names({"arg", "plain", "local", "unbound"}), t.names({"arg", "captured", "empty"}),
                             t.names({"outer"}));
    const auto cellArg = t.cell(t.str("new"));
    const auto captured = t.cell(t.str("C"));
    const auto empty = t.cell(0);
    const auto outer = t.cell(t.str("F"));

    SECTION("3.x: the captured argument's slot was cleared; its cell is shown at its place") {
        const auto frame = t.frame({0, t.str("P"), t.str("L"), 0, cellArg, captured, empty, outer});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        CHECK(shown(locals.value()) ==
              Shown{{"arg", "'new'"}, {"plain", "'P'"}, {"local", "'L'"}, {"captured", "'C'"}, {"outer", "'F'"}});
    }
    SECTION("2.7: the argument's slot keeps the passed value; the cell's current value is shown, once") {
        const auto frame = t.frame({t.str("old"), t.str("P"), t.str("L"), 0, cellArg, captured, empty, outer});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        CHECK(shown(locals.value()) ==
              Shown{{"arg", "'new'"}, {"plain", "'P'"}, {"local", "'L'"}, {"captured", "'C'"}, {"outer", "'F'"}});
    }
    SECTION("an emptied argument cell leaves the argument out") {
        const auto frame = t.frame({t.str("old"), t.str("P"), 0, 0, t.cell(0), captured, 0, outer});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        CHECK(shown(locals.value()) == Shown{{"plain", "'P'"}, {"captured", "'C'"}, {"outer", "'F'"}});
    }
    SECTION("a cell slot that holds no cell is unreadable, not dereferenced") {
        const auto frame = t.frame({0, 0, 0, 0, cellArg, t.str("not a cell"), empty, outer});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        REQUIRE(locals.value().size() == 3);
        CHECK(locals.value()[0].repr == "'new'");
        CHECK(locals.value()[1].name == "captured");
        CHECK(locals.value()[1].repr.starts_with("<unreadable:"));
        CHECK(locals.value()[2].repr == "'F'");
    }
}

TEST_CASE_METHOD(Before311, "locals: 2.7-3.10 cell and free names are bounded", "[locals]") {
    const auto one = t.names({"x"});

    SECTION("a co_cellvars claiming more names than it has: the read fails, nothing is made up") {
        const auto code = t.code(1, one, t.tuple({t.str("c")}, 1000000), one);
        const auto frame = t.frame({t.str("X"), t.cell(t.str("C")), t.cell(t.str("F"))});
        CHECK_FALSE(readFrameLocals(reader, frame, code, limits).ok());
        const auto garbage = t.code(1, one, t.tuple({t.str("c")}, std::int64_t{1} << 50), one);
        CHECK_FALSE(readFrameLocals(reader, frame, garbage, limits).ok());
    }
    SECTION("a co_nlocals past the slot bound reads no cells; the named locals are still shown") {
        const auto code = t.code(1 << 30, one, one, one);
        const auto frame = t.frame({t.str("X")});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        CHECK(shown(locals.value()) == Shown{{"x", "'X'"}});
    }
    SECTION("a co_varnames shorter than co_nlocals: the cells are still found at co_nlocals") {
        const auto code = t.code(2, one, t.names({"c"}), t.names({"f"}));
        const auto frame = t.frame({t.str("X"), t.str("unnamed"), t.cell(t.str("C")), t.cell(t.str("F"))});
        auto locals = readFrameLocals(reader, frame, code, limits);
        REQUIRE(locals.ok());
        CHECK(shown(locals.value()) == Shown{{"x", "'X'"}, {"c", "'C'"}, {"f", "'F'"}});
    }
}
