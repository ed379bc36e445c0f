#include <catch2/catch.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "pyspy/python/line_table.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

std::vector<std::uint8_t> fromHex(const std::string& hex) {
    std::vector<std::uint8_t> bytes;
    if (hex == "-") return bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
}

// Runs a command and returns everything it wrote on stdout, or nothing if it failed.
std::optional<std::string> runAndCapture(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return std::nullopt;
    std::string output;
    char chunk[65536];
    std::size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) output.append(chunk, n);
    const int status = ::pclose(pipe);
    if (status != 0) return std::nullopt;
    return output;
}

}  // namespace

TEST_CASE("line tables decode exactly as the interpreter reports", "[interp]") {
    const std::string python = test::testPython();
    if (::access(python.c_str(), X_OK) != 0 && python.find('/') != std::string::npos) std::exit(77);
    auto output = runAndCapture("'" + python + "' '" PYSPY_TESTS_DIR "/unit/python/gen_line_expectations.py'");
    REQUIRE(output);

    std::istringstream in(*output);
    std::string tag;
    int major = 0;
    int minor = 0;
    in >> tag >> major >> minor;
    REQUIRE(tag == "V");
    const LineTableFormat format = lineTableFormatFor(major, minor);

    std::size_t codeObjects = 0;
    std::size_t offsetsChecked = 0;
    std::size_t offsetsWithoutLine = 0;
    std::size_t mismatches = 0;
    bool ended = false;
    while (in >> tag) {
        if (tag == "END") {
            ended = true;
            break;
        }
        REQUIRE(tag == "C");
        int firstLine = 0;
        std::string hex;
        in >> firstLine >> hex;
        const auto table = fromHex(hex);
        std::string offsetsLine;
        in >> tag;
        REQUIRE(tag == "O");
        std::getline(in, offsetsLine);
        std::istringstream pairs(offsetsLine);
        std::string pair;
        ++codeObjects;
        while (pairs >> pair) {
            const auto eq = pair.find('=');
            REQUIRE(eq != std::string::npos);
            const int offset = std::stoi(pair.substr(0, eq));
            const std::string expected = pair.substr(eq + 1);
            const auto line = lineForOffset(format, table, firstLine, offset);
            const std::string got = line ? std::to_string(*line) : "-";
            if (expected == "-") ++offsetsWithoutLine;
            ++offsetsChecked;
            if (got != expected) {
                if (++mismatches <= 10) {
                    UNSCOPED_INFO("first line " << firstLine << " table " << hex << " offset " << offset
                                                << ": expected " << expected << ", decoded " << got);
                }
            }
        }
    }
    REQUIRE(ended);
    WARN("Python " << major << "." << minor << ": " << offsetsChecked << " offsets of " << codeObjects
                   << " code objects checked (" << offsetsWithoutLine << " without a line)");
    CHECK(codeObjects > 200);
    CHECK(offsetsChecked > 10000);
    CHECK(mismatches == 0);
}

TEST_CASE("line tables: an empty table", "[line_table]") {
    const std::span<const std::uint8_t> empty;
    // Without pairs, every offset is on the first line (the table cannot say where the code ends).
    CHECK(lineForOffset(LineTableFormat::Lnotab27, empty, 10, 0) == 10);
    CHECK(lineForOffset(LineTableFormat::Lnotab36, empty, 10, 100) == 10);
    // The 3.10+ tables cover the whole bytecode: an empty one covers nothing.
    CHECK_FALSE(lineForOffset(LineTableFormat::Linetable310, empty, 10, 0));
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, empty, 10, 0));
}

TEST_CASE("line tables: a negative offset is the first line", "[line_table]") {
    const std::vector<std::uint8_t> table{0x80 | (13 << 3), 0x04};
    CHECK(lineForOffset(LineTableFormat::Locations311, table, 7, -1) == 7);
    CHECK(lineForOffset(LineTableFormat::Lnotab36, table, 7, -2) == 7);
}

TEST_CASE("line tables: lnotab increments", "[line_table]") {
    // (6 bytes, +1 line), (0 bytes, +100) twice: a jump of 200 lines split, (4 bytes, -3 or +253)
    const std::vector<std::uint8_t> table{6, 1, 0, 100, 0, 100, 4, 0xfd};
    CHECK(lineForOffset(LineTableFormat::Lnotab36, table, 1, 0) == 1);
    CHECK(lineForOffset(LineTableFormat::Lnotab36, table, 1, 5) == 1);
    CHECK(lineForOffset(LineTableFormat::Lnotab36, table, 1, 6) == 202);
    CHECK(lineForOffset(LineTableFormat::Lnotab36, table, 1, 10) == 199);
    CHECK(lineForOffset(LineTableFormat::Lnotab27, table, 1, 9) == 202);
    CHECK(lineForOffset(LineTableFormat::Lnotab27, table, 1, 10) == 455);
    CHECK(lineForOffset(LineTableFormat::Lnotab27, table, 1, 1000) == 455);
    // An odd trailing byte is ignored.
    const std::vector<std::uint8_t> odd{2, 1, 7};
    CHECK(lineForOffset(LineTableFormat::Lnotab36, odd, 1, 100) == 2);
}

TEST_CASE("line tables: 3.10 ranges and lines without code", "[line_table]") {
    // [0,4) line +0 -> 5; [4,8) no line; [8,10) +2 -> 7; [10,10) empty +1 -> 8; [10,14) -3 -> 5
    const std::vector<std::uint8_t> table{4, 0, 4, 0x80, 2, 2, 0, 1, 4, 0xfd};
    CHECK(lineForOffset(LineTableFormat::Linetable310, table, 5, 0) == 5);
    CHECK(lineForOffset(LineTableFormat::Linetable310, table, 5, 3) == 5);
    CHECK_FALSE(lineForOffset(LineTableFormat::Linetable310, table, 5, 4));
    CHECK_FALSE(lineForOffset(LineTableFormat::Linetable310, table, 5, 6));
    CHECK(lineForOffset(LineTableFormat::Linetable310, table, 5, 8) == 7);
    CHECK(lineForOffset(LineTableFormat::Linetable310, table, 5, 10) == 5);
    CHECK(lineForOffset(LineTableFormat::Linetable310, table, 5, 13) == 5);
    CHECK_FALSE(lineForOffset(LineTableFormat::Linetable310, table, 5, 14));
}

TEST_CASE("line tables: every 3.11 entry form", "[line_table]") {
    auto entry = [](int code, int units) { return static_cast<std::uint8_t>(0x80 | (code << 3) | (units - 1)); };
    const std::vector<std::uint8_t> table{
        entry(3, 2), 0x12,               // units 0-1: short form, line 100
        entry(12, 1), 4, 9,              // unit 2: one-line form, +2 -> 102
        entry(13, 3), 0x03,              // units 3-5: no columns, svarint 3 = -1 -> 101
        entry(14, 1), 0x48, 0x03, 0, 1, 2,  // unit 6: long form, +100 (varint 200) -> 201
        entry(15, 2),                    // units 7-8: no location
        entry(11, 8), 0, 0,              // units 9-16: one-line form, +1 -> 202
    };
    auto at = [&](int unit) { return lineForOffset(LineTableFormat::Locations311, table, 100, unit * 2); };
    CHECK(at(0) == 100);
    CHECK(at(1) == 100);
    CHECK(lineForOffset(LineTableFormat::Locations311, table, 100, 3) == 100);  // odd byte: same unit
    CHECK(at(2) == 102);
    CHECK(at(3) == 101);
    CHECK(at(5) == 101);
    CHECK(at(6) == 201);
    CHECK_FALSE(at(7));
    CHECK_FALSE(at(8));
    CHECK(at(9) == 202);
    CHECK(at(16) == 202);
    CHECK_FALSE(at(17));  // past the end
}

TEST_CASE("line tables: truncated and corrupt 3.11 tables give nothing", "[line_table]") {
    auto entry = [](int code, int units) { return static_cast<std::uint8_t>(0x80 | (code << 3) | (units - 1)); };
    // A varint whose continuation bit runs off the end of the table.
    const std::vector<std::uint8_t> truncatedVarint{entry(13, 1), 0x41, 0x41};
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, truncatedVarint, 1, 0));
    // A long form cut after its line delta.
    const std::vector<std::uint8_t> truncatedLong{entry(14, 1), 0x02};
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, truncatedLong, 1, 0));
    // A short form without its column byte.
    const std::vector<std::uint8_t> truncatedShort{entry(0, 1)};
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, truncatedShort, 1, 0));
    // A varint of endless continuation chunks is refused, not looped on.
    std::vector<std::uint8_t> endless{entry(13, 1)};
    endless.insert(endless.end(), 64, 0x7f);
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, endless, 1, 0));
    // A table that does not start with an entry byte.
    const std::vector<std::uint8_t> notAnEntry{0x12, entry(0, 1), 0};
    CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, notAnEntry, 1, 0));
    // Entries before the truncation still decode.
    const std::vector<std::uint8_t> goodThenCut{entry(10, 2), 0, 0, entry(14, 1), 0x02};
    CHECK(lineForOffset(LineTableFormat::Locations311, goodThenCut, 1, 2) == 1);
}

TEST_CASE("line tables: garbage bytes never hang or crash", "[line_table]") {
    std::uint32_t state = 12345;
    auto next = [&] {
        state = state * 1664525u + 1013904223u;
        return static_cast<std::uint8_t>(state >> 24);
    };
    const LineTableFormat formats[] = {LineTableFormat::Lnotab27, LineTableFormat::Lnotab36,
                                       LineTableFormat::Linetable310, LineTableFormat::Locations311};
    std::size_t decoded = 0;
    for (int round = 0; round < 2000; ++round) {
        std::vector<std::uint8_t> table(static_cast<std::size_t>(next()) + static_cast<std::size_t>(round % 3));
        for (auto& b : table) b = next();
        for (auto format : formats) {
            for (int offset : {0, 1, 2, 17, 254, 255, 256, 4096, 1 << 30}) {
                if (lineForOffset(format, table, 1 << 30, offset)) ++decoded;
            }
        }
        // Offsets past everything a table could describe have no line in the 3.10+ forms.
        const int past = static_cast<int>(table.size()) * 8 * 255 + 2;
        CHECK_FALSE(lineForOffset(LineTableFormat::Linetable310, table, 1, past));
        CHECK_FALSE(lineForOffset(LineTableFormat::Locations311, table, 1, past));
    }
    CHECK(decoded > 0);
}
