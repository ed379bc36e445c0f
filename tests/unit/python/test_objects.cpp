#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fake_unicode.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/python/objects.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

// ---------------------------------------------------------------------------------
// Hand-built object images for BufferMemory. The layouts are synthetic (shaped like
// 3.12's and 2.7's) so these tests do not depend on the generated tables.

constexpr std::uint64_t kFlagsOffset = 168;
constexpr std::uint64_t kUnicodeSubclass = 1ull << 28;
constexpr std::uint64_t kLongSubclass = 1ull << 24;
constexpr std::uint64_t kBytesSubclass = 1ull << 27;
constexpr std::uint64_t kDictSubclass = 1ull << 29;

PyLayout layout312() {
    PyLayout l;
    l.major = 3;
    l.minor = 12;
    l.object_type = 8;
    l.type_flags = kFlagsOffset;
    test::setFakeUnicodeLayout(l);
    l.unicode_data = 56;
    l.bytes_size = 16;
    l.bytes_sval = 32;
    l.long_lv_tag = 16;
    l.long_digit = 24;
    l.long_digit_bits = 30;
    l.long_digit_size = 4;
    l.dict_used = 16;
    l.dict_keys = 32;
    l.dict_values = 40;
    l.dictkeys_log2_size = 8;
    l.dictkeys_log2_index_bytes = 9;
    l.dictkeys_kind = 10;
    l.dictkeys_nentries = 24;
    l.dictkeys_indices = 32;
    l.dictkeyentry_size = 24;
    l.dictunicodeentry_size = 16;
    l.dictkeys_kind_general = 0;
    l.dictvalues_values = 0;
    return l;
}

struct Image {
    std::vector<std::uint8_t> bytes;
    explicit Image(std::size_t size) : bytes(size) {}
    template <typename T>
    Image& set(std::size_t offset, T value) {
        if (bytes.size() < offset + sizeof(T)) bytes.resize(offset + sizeof(T));
        std::memcpy(bytes.data() + offset, &value, sizeof(T));
        return *this;
    }
    Image& append(const void* data, std::size_t size) {
        const auto* p = static_cast<const std::uint8_t*>(data);
        bytes.insert(bytes.end(), p, p + size);
        return *this;
    }
};

constexpr std::uint64_t kStrType = 0x1000;
constexpr std::uint64_t kIntType = 0x2000;
constexpr std::uint64_t kBytesType = 0x3000;
constexpr std::uint64_t kDictType = 0x4000;
constexpr std::uint64_t kStrSubType = 0x5000;
constexpr std::uint64_t kOtherType = 0x6000;

void mapTypes(BufferMemory& memory) {
    for (auto [type, flags] :
         std::initializer_list<std::pair<std::uint64_t, std::uint64_t>>{{kStrType, kUnicodeSubclass},
                                                                        {kIntType, kLongSubclass},
                                                                        {kBytesType, kBytesSubclass},
                                                                        {kDictType, kDictSubclass},
                                                                        {kStrSubType, kUnicodeSubclass},
                                                                        {kOtherType, 0}}) {
        memory.map(type, Image(kFlagsOffset).set<std::uint64_t>(kFlagsOffset, flags).bytes);
    }
}

std::uint32_t stateWord(unsigned kind, bool compact, bool ascii) {
    return (kind << 2) | (compact ? 1u << 5 : 0) | (ascii ? 1u << 6 : 0);
}

// A compact str of `kind` bytes per code point.
std::vector<std::uint8_t> compactStr(std::uint64_t type, unsigned kind, bool ascii,
                                     const std::vector<std::uint32_t>& cps,
                                     std::optional<std::int64_t> length = std::nullopt) {
    Image image(ascii ? 40 : 56);
    image.set<std::uint64_t>(0, 1).set<std::uint64_t>(8, type);
    image.set<std::int64_t>(16, length.value_or(static_cast<std::int64_t>(cps.size())));
    image.set<std::uint32_t>(32, stateWord(kind, true, ascii));
    for (auto cp : cps) image.append(&cp, kind);  // little-endian: the low bytes first
    std::uint32_t nul = 0;
    image.append(&nul, kind);
    return image.bytes;
}

TypeAddresses knownTypes() {
    TypeAddresses t;
    t.str = kStrType;
    t.integer = kIntType;
    t.bytes = kBytesType;
    t.dict = kDictType;
    return t;
}

}  // namespace

TEST_CASE("objects: compact str of every kind decodes to UTF-8", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    const PyLayout layout = layout312();
    memory.map(0x10000, compactStr(kStrType, 1, true, {'h', 'i', '!'}));
    memory.map(0x11000, compactStr(kStrType, 1, false, {'c', 'a', 'f', 0xe9}));
    memory.map(0x12000, compactStr(kStrType, 2, false, {0x65e5, 0xd800, 0x20ac}));  // lone surrogate
    memory.map(0x13000, compactStr(kStrType, 4, false, {0x1f600, 0x110000, 'z'}));  // beyond Unicode
    memory.map(0x14000, compactStr(kStrType, 1, true, {}));
    memory.map(0x15000, compactStr(kStrType, 1, true, {'a', 0xff}));  // "ASCII" with a high byte

    for (const TypeAddresses& types : {knownTypes(), TypeAddresses{}}) {
        ObjectReader reader(memory, layout, types);
        CHECK(reader.readString(0x10000).value() == "hi!");
        CHECK(reader.readString(0x11000).value() == "caf\xc3\xa9");
        CHECK(reader.readString(0x12000).value() == "\xe6\x97\xa5\xef\xbf\xbd\xe2\x82\xac");
        CHECK(reader.readString(0x13000).value() == "\xf0\x9f\x98\x80\xef\xbf\xbdz");
        CHECK(reader.readString(0x14000).value().empty());
        CHECK(reader.readString(0x15000).value() == "a\xef\xbf\xbd");
    }
}

TEST_CASE("objects: legacy str through its data pointer", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    Image image(64);
    image.set<std::uint64_t>(8, kStrSubType).set<std::int64_t>(16, 2);
    image.set<std::uint32_t>(32, stateWord(2, false, false)).set<std::uint64_t>(56, 0x21000);
    memory.map(0x20000, image.bytes);
    memory.map(0x21000, std::vector<std::uint8_t>{0xf1, 0x00, 0x41, 0x00});
    ObjectReader reader(memory, layout312(), knownTypes());
    CHECK(reader.readString(0x20000).value() ==
          "\xc3\xb1"
          "A");  // a str subclass, by its tp_flags
}

TEST_CASE("objects: str lengths are bounded and types checked", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    // A claimed length of 2^60 with 4096 readable bytes: cut, never allocated in full.
    std::vector<std::uint32_t> many(4096, 'a');
    memory.map(0x30000, compactStr(kStrType, 1, true, many, std::int64_t{1} << 60));
    // The same claim with nothing readable after the header: a read error.
    memory.map(0x40000, compactStr(kStrType, 1, true, {}, std::int64_t{1} << 60));
    memory.map(0x50000, compactStr(kStrType, 1, true, {'x'}, -5));
    memory.map(0x60000, compactStr(kOtherType, 1, true, {'x'}));
    memory.map(0x70000, compactStr(kStrType, 0, true, {'x'}));  // kind 0: a wchar_t string
    ObjectLimits limits;
    ObjectReader reader(memory, layout312(), knownTypes(), limits);
    auto cut = reader.readString(0x30000);
    REQUIRE(cut.ok());
    CHECK(cut.value() == std::string(limits.maxStringBytes, 'a') + "...");
    CHECK_FALSE(reader.readString(0x40000).ok());
    CHECK(reader.readString(0x50000).error().kind == ReadErrorKind::Invalid);
    CHECK(reader.readString(0x60000).error().kind == ReadErrorKind::Invalid);
    CHECK(reader.readString(0x70000).error().kind == ReadErrorKind::Invalid);
    CHECK_FALSE(reader.readString(0).ok());
    CHECK(reader.readString(0xdead0000).error().kind == ReadErrorKind::Fault);

    // A multi-byte string is cut at a character, not inside one.
    ObjectLimits small;
    small.maxStringBytes = 5;
    ObjectReader smallReader(memory, layout312(), knownTypes(), small);
    memory.map(0x80000, compactStr(kStrType, 2, false, {0x65e5, 0x672c, 0x8a9e}));
    CHECK(smallReader.readString(0x80000).value() == "\xe6\x97\xa5...");
}

TEST_CASE("objects: bytes", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    memory.map(0x10000, Image(32)
                            .set<std::uint64_t>(8, kBytesType)
                            .set<std::int64_t>(16, 3)
                            .append("\x00\xff"
                                    "a",
                                    3)
                            .bytes);
    memory.map(0x20000, Image(32).set<std::uint64_t>(8, kBytesType).set<std::int64_t>(16, std::int64_t{1} << 60).bytes);
    memory.map(0x30000, Image(32).set<std::uint64_t>(8, kStrType).set<std::int64_t>(16, 1).append("x", 1).bytes);
    ObjectReader reader(memory, layout312(), knownTypes());
    CHECK(reader.readBytesObject(0x10000).value() == std::vector<std::uint8_t>{0x00, 0xff, 'a'});
    CHECK(reader.readBytesObject(0x20000).error().kind == ReadErrorKind::Invalid);
    CHECK(reader.readBytesObject(0x30000).error().kind == ReadErrorKind::Invalid);
}

TEST_CASE("objects: ints in the 3.12 lv_tag and the older ob_size encodings", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    auto tagged = [](std::uint64_t tag, std::vector<std::uint32_t> digits) {
        Image image(24);
        image.set<std::uint64_t>(8, kIntType).set<std::uint64_t>(16, tag);
        for (auto d : digits) image.append(&d, 4);
        return image.bytes;
    };
    const std::uint32_t mask = (1u << 30) - 1;
    memory.map(0x10000, tagged(1, {0}));                             // zero
    memory.map(0x11000, tagged((1 << 3) | 2, {1}));                  // -1
    memory.map(0x12000, tagged((2 << 3) | 0, {0, 1024}));            // 2^40
    memory.map(0x13000, tagged((3 << 3) | 2, {0, 0, 8}));            // -(2^63)
    memory.map(0x14000, tagged((3 << 3) | 0, {mask, mask, 7}));      // 2^63 - 1
    memory.map(0x15000, tagged((3 << 3) | 0, {0, 0, 8}));            // 2^63: too big
    memory.map(0x16000, tagged((4 << 3) | 0, {1, 0, 0, 1}));         // 2^90: too big
    memory.map(0x17000, tagged((1 << 3) | 0, {1u << 30}));           // a digit out of range
    memory.map(0x18000, tagged((std::uint64_t{1} << 60) | 0, {1}));  // absurd digit count
    ObjectReader reader(memory, layout312(), knownTypes());
    CHECK(reader.readInt(0x10000).value() == 0);
    CHECK(reader.readInt(0x11000).value() == -1);
    CHECK(reader.readInt(0x12000).value() == (std::int64_t{1} << 40));
    CHECK(reader.readInt(0x13000).value() == std::numeric_limits<std::int64_t>::min());
    CHECK(reader.readInt(0x14000).value() == std::numeric_limits<std::int64_t>::max());
    CHECK_FALSE(reader.readInt(0x15000).ok());
    CHECK_FALSE(reader.readInt(0x16000).ok());
    CHECK_FALSE(reader.readInt(0x17000).ok());
    CHECK_FALSE(reader.readInt(0x18000).ok());
    CHECK_FALSE(reader.readInt(0x30000).ok());

    PyLayout older = layout312();  // <= 3.11: signed ob_size
    older.long_lv_tag = kAbsent;
    older.long_size = 16;
    ObjectReader olderReader(memory, older, knownTypes());
    memory.map(0x20000, tagged(static_cast<std::uint64_t>(-2), {5, 1}));
    CHECK(olderReader.readInt(0x20000).value() == -((std::int64_t{1} << 30) + 5));
}

TEST_CASE("objects: 3.11+ dicts, combined and split", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    const PyLayout layout = layout312();
    memory.map(0x10000, compactStr(kStrType, 1, true, {'a'}));
    memory.map(0x11000, compactStr(kStrType, 1, true, {'b', 'c'}));
    memory.map(0x12000, compactStr(kStrType, 2, false, {0xf1}));
    // Keys: log2 size 3 (8 slots), 1-byte indices, unicode entries; three entries, the second deleted.
    auto keys = [](std::uint8_t kind) {
        Image image(32);
        image.set<std::uint8_t>(8, 3).set<std::uint8_t>(9, 3).set<std::uint8_t>(10, kind).set<std::int64_t>(24, 3);
        image.bytes.resize(32 + 8);
        const std::uint64_t entries[] = {0x10000, 0xa1, 0, 0, 0x11000, 0xa3};
        image.append(entries, sizeof entries);
        return image.bytes;
    };
    memory.map(0x20000, keys(1));
    memory.map(0x30000, Image(48).set<std::uint64_t>(8, kDictType).set<std::uint64_t>(32, 0x20000).bytes);
    ObjectReader reader(memory, layout, knownTypes());
    using Items = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
    CHECK(reader.dictItems(0x30000).value() == Items{{0x10000, 0xa1}, {0x11000, 0xa3}});
    CHECK(reader.dictGetString(0x30000, "bc").value() == 0xa3);
    CHECK(reader.dictGetString(0x30000, "b").value() == 0);

    // Split: the same keys, the values in ma_values.
    memory.map(0x40000, std::vector<std::uint8_t>(24));
    const std::uint64_t values[] = {0xb1, 0xb2, 0xb3};
    std::vector<std::uint8_t> valueBytes(sizeof values);
    std::memcpy(valueBytes.data(), values, sizeof values);
    memory.map(0x50000, valueBytes);
    memory.map(0x60000, Image(48)
                            .set<std::uint64_t>(8, kDictType)
                            .set<std::uint64_t>(32, 0x20000)
                            .set<std::uint64_t>(40, 0x50000)
                            .bytes);
    CHECK(reader.dictItems(0x60000).value() == Items{{0x10000, 0xb1}, {0x11000, 0xb3}});
    CHECK(reader.dictGetString(0x60000, "a").value() == 0xb1);

    // A key count larger than the table is corrupt; a huge one is refused before reading.
    memory.map(0x70000, Image(40).set<std::uint8_t>(8, 3).set<std::uint8_t>(9, 3).set<std::int64_t>(24, 1000).bytes);
    memory.map(0x80000, Image(48).set<std::uint64_t>(8, kDictType).set<std::uint64_t>(32, 0x70000).bytes);
    CHECK(reader.dictItems(0x80000).error().kind == ReadErrorKind::Invalid);
    CHECK(reader.dictItems(0x10000).error().kind == ReadErrorKind::Invalid);  // a str is not a dict
}

TEST_CASE("objects: 3.6-3.10 dict index width follows dk_size", "[objects]") {
    BufferMemory memory;
    mapTypes(memory);
    PyLayout layout = layout312();
    layout.minor = 8;
    layout.dictkeys_log2_size = layout.dictkeys_log2_index_bytes = layout.dictkeys_kind = kAbsent;
    layout.dictkeys_size = 8;
    layout.dictkeys_nentries = 32;
    layout.dictkeys_indices = 40;
    memory.map(0x10000, compactStr(kStrType, 1, true, {'k'}));
    for (std::int64_t size : {8, 256, 65536}) {
        const std::size_t width = size <= 0xff ? 1 : size <= 0xffff ? 2 : 4;
        Image keys(40);
        keys.set<std::int64_t>(8, size).set<std::int64_t>(32, 1);
        keys.bytes.resize(40 + static_cast<std::size_t>(size) * width);
        const std::uint64_t entry[] = {0x1234, 0x10000, 0xc1};
        keys.append(entry, sizeof entry);
        memory.map(0x100000 * static_cast<std::uint64_t>(width), keys.bytes);
        const std::uint64_t dict = 0x20000 + 0x100 * width;
        memory.map(dict, Image(48)
                             .set<std::uint64_t>(8, kDictType)
                             .set<std::uint64_t>(32, 0x100000 * static_cast<std::uint64_t>(width))
                             .bytes);
        ObjectReader reader(memory, layout, knownTypes());
        CHECK(reader.dictGetString(dict, "k").value() == 0xc1);
    }
}

// ---------------------------------------------------------------------------------
// Live objects of a real interpreter.

namespace {

std::string fromHex(const std::string& hex) {
    std::string out;
    if (hex == "-") return out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    return out;
}

}  // namespace

TEST_CASE("objects: a live interpreter's str, bytes, int, dict, instance and thread names", "[interp]") {
    const std::string python = test::testPython();
    if (python.find('/') != std::string::npos && ::access(python.c_str(), X_OK) != 0) std::exit(77);
    test::ChildProcess child({python, PYSPY_TESTS_DIR "/unit/python/object_target.py"});

    std::vector<std::vector<std::string>> lines;
    for (;;) {
        auto line = child.readLine();
        REQUIRE(line);
        if (*line == "READY") break;
        std::istringstream words(*line);
        std::vector<std::string> fields;
        for (std::string w; words >> w;) fields.push_back(w);
        if (!fields.empty()) lines.push_back(fields);
    }
    REQUIRE(!lines.empty());
    REQUIRE(lines[0][0] == "VERSION");
    const int major = std::stoi(lines[0][1]);
    const int minor = std::stoi(lines[0][2]);
    const bool freeThreaded = lines[0].size() > 3 && lines[0][3] == "1";
    const PyLayout* layout = findGeneratedLayout(major, minor, freeThreaded);
    INFO("Python " << major << "." << minor << (freeThreaded ? "t" : ""));
    REQUIRE(layout != nullptr);

    TypeAddresses printedTypes;
    for (const auto& f : lines) {
        if (f[0] != "TYPES") continue;
        printedTypes.str = std::stoull(f[1]);
        printedTypes.unicode = std::stoull(f[2]);
        printedTypes.bytes = std::stoull(f[3]);
        printedTypes.integer = std::stoull(f[4]);
        printedTypes.long2 = std::stoull(f[5]);
        printedTypes.dict = std::stoull(f[6]);
        printedTypes.module = std::stoull(f[7]);
    }
    REQUIRE(printedTypes.str != 0);

    LiveProcessMemory memory(child.pid());
    for (const TypeAddresses& types : {printedTypes, TypeAddresses{}}) {
        INFO((types.str != 0 ? "type addresses known" : "type addresses unknown"));
        ObjectReader reader(memory, *layout, types);
        std::size_t checked = 0;
        std::uint64_t currentDict = 0;
        std::set<std::pair<std::uint64_t, std::uint64_t>> expectedItems;
        auto finishDict = [&] {
            if (currentDict == 0) return;
            auto items = reader.dictItems(currentDict);
            REQUIRE(items.ok());
            std::set<std::pair<std::uint64_t, std::uint64_t>> got(items->begin(), items->end());
            CHECK(got == expectedItems);
            CHECK(items->size() == expectedItems.size());
            CHECK(reader.dictGetString(currentDict, "no such key").value() == 0);
            ++checked;
            expectedItems.clear();
            currentDict = 0;
        };
        std::uint64_t modules = 0;
        std::vector<std::vector<std::string>> threads;
        for (const auto& f : lines) {
            const std::string& kind = f[0];
            if (kind != "ITEM") finishDict();
            if (kind == "STR") {
                INFO("str at " << f[1]);
                auto value = reader.readString(std::stoull(f[1]));
                REQUIRE(value.ok());
                CHECK(value.value() == fromHex(f[2]));
                ++checked;
            } else if (kind == "BYTES") {
                auto value = reader.readBytesObject(std::stoull(f[1]));
                REQUIRE(value.ok());
                const std::string expected = fromHex(f[2]);
                CHECK(std::string(value->begin(), value->end()) == expected);
                ++checked;
            } else if (kind == "INT") {
                INFO("int " << f[2]);
                auto value = reader.readInt(std::stoull(f[1]));
                REQUIRE(value.ok());
                CHECK(value.value() == std::stoll(f[2]));
                ++checked;
            } else if (kind == "BIGINT") {
                CHECK(reader.readInt(std::stoull(f[1])).error().kind == ReadErrorKind::Invalid);
                ++checked;
            } else if (kind == "DICT") {
                currentDict = std::stoull(f[1]);
            } else if (kind == "ITEM") {
                const std::uint64_t key = std::stoull(f[1]);
                const std::uint64_t value = std::stoull(f[2]);
                expectedItems.emplace(key, value);
                if (f[3] != "-") {
                    const std::string name = fromHex(f[3]);
                    CHECK(reader.readString(key).value() == name);
                    CHECK(reader.dictGetString(currentDict, name).value() == value);
                } else {
                    CHECK(reader.readInt(key).ok());
                }
            } else if (kind == "ATTR") {
                const std::string name = fromHex(f[2]);
                INFO("attribute " << name);
                auto value = reader.instanceAttribute(std::stoull(f[1]), name);
                INFO((value.ok() ? std::string() : value.error().describe()));
                REQUIRE(value.ok());
                CHECK(value.value() == std::stoull(f[3]));
                ++checked;
            } else if (kind == "MODULES") {
                modules = std::stoull(f[1]);
            } else if (kind == "THREAD") {
                threads.push_back(f);
            }
        }
        finishDict();

        // sys.modules -> threading -> _active -> Thread -> _name, as thread naming does it.
        REQUIRE(modules != 0);
        auto threading = reader.dictGetString(modules, "threading");
        REQUIRE(threading.ok());
        REQUIRE(threading.value() != 0);
        auto threadingDict = reader.moduleDict(threading.value());
        REQUIRE(threadingDict.ok());
        auto active = reader.dictGetString(threadingDict.value(), "_active");
        REQUIRE(active.ok());
        REQUIRE(active.value() != 0);
        auto activeItems = reader.dictItems(active.value());
        REQUIRE(activeItems.ok());
        std::map<std::uint64_t, std::string> names;
        for (const auto& [identObject, thread] : activeItems.value()) {
            auto ident = reader.readInt(identObject);
            REQUIRE(ident.ok());
            auto nameObject = reader.instanceAttribute(thread, threads.at(0).at(3));
            REQUIRE(nameObject.ok());
            auto name = reader.readString(nameObject.value());
            REQUIRE(name.ok());
            names[static_cast<std::uint64_t>(ident.value())] = name.value();
        }
        REQUIRE(threads.size() == 2);
        for (const auto& t : threads) {
            CHECK(names[std::stoull(t[1])] == fromHex(t[2]));
            ++checked;
        }
        WARN("Python " << major << "." << minor << (types.str != 0 ? " (known types)" : " (unknown types)") << ": "
                       << checked << " objects checked");
        CHECK(checked > 30);
    }
}
