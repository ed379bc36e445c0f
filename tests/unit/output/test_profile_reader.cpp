// Reading profiles back (profile_reader.h, for `diff`): our own writers' raw, speedscope
// and pprof output (gzip'd or not) read back to the same stacks; the format told by the
// content; hostile, truncated and oversized input refused with an error, never a crash.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "profile_fixture.h"
#include "pyspy/common/error.h"
#include "pyspy/output/collapsed.h"
#include "pyspy/output/pprof.h"
#include "pyspy/output/profile_reader.h"
#include "pyspy/output/protobuf_writer.h"
#include "pyspy/output/speedscope.h"

using namespace pyspy;
using namespace pyspy_test;

namespace {

using Stacks = std::map<std::string, std::uint64_t>;  // frames joined by '|' -> samples

Stacks stacksOf(const LoadedProfile& profile) {
    Stacks stacks;
    profile.trie.forEachStack([&](std::span<const FrameId> frames, std::uint64_t count) {
        std::string key;
        for (const FrameId f : frames) key += (key.empty() ? "" : "|") + profile.frames.at(f);
        stacks[key] += count;
        UNSCOPED_INFO(key << " " << count);
    });
    return stacks;
}

LoadedProfile parsed(const std::string& bytes, const ProfileReadLimits& limits = {}) {
    auto result = parseProfile(bytes, limits);
    INFO((result ? std::string() : result.error().what));
    REQUIRE(result.ok());
    return std::move(result).value();
}

std::string errorOf(const std::string& bytes, const ProfileReadLimits& limits = {}) {
    auto result = parseProfile(bytes, limits);
    REQUIRE_FALSE(result.ok());
    return result.error().what;
}

template <typename Writer>
std::string written(Writer write, const RecordedProfile& profile, const ExportOptions& options = {}) {
    std::ostringstream out;
    write(profile, options, out);
    return out.str();
}

// What the fixture's profile (threads merged) holds, as every format should read back.
const Stacks& fixtureStacks() {
    static const Stacks stacks{
        {"<module> (app.py:52)|Server.serve (app.py:40)", 6},
        {"<module> (app.py:52)|Server.serve (app.py:40)|handle (lib/calc.py:10)", 2},
        {"Thread.run (threading.py:1010)|we;ird\nname \"q\" <script>\xef\xbf\xbd( (w.py:7)", 3},
        {"(no frames)", 1},
        {"wait 3 (w2.py)", 1},
    };
    return stacks;
}

}  // namespace

TEST_CASE("profile reader: raw, speedscope and pprof of one profile read back alike", "[output][reader]") {
    const RecordedProfile profile = sampleProfile();
    const std::string raw = written(writeCollapsed, profile);
    const std::string speedscope = written(writeSpeedscope, profile);
    const std::string pprof = written(writePprof, profile);

    const LoadedProfile fromRaw = parsed(raw);
    CHECK(fromRaw.format == ProfileInput::Collapsed);
    CHECK_FALSE(fromRaw.compressed);
    CHECK(stacksOf(fromRaw) == fixtureStacks());
    CHECK(fromRaw.samples() == 13);

    const LoadedProfile fromSpeedscope = parsed(speedscope);
    CHECK(fromSpeedscope.format == ProfileInput::Speedscope);
    CHECK(stacksOf(fromSpeedscope) == fixtureStacks());

    const LoadedProfile fromPprof = parsed(pprof);
    CHECK(fromPprof.format == ProfileInput::Pprof);
    CHECK(fromPprof.compressed);
    CHECK(stacksOf(fromPprof) == fixtureStacks());

    SECTION("uncompressed pprof, and gzip'd raw and speedscope") {
        const LoadedProfile plain = parsed(encodePprof(profile, {}));
        CHECK(plain.format == ProfileInput::Pprof);
        CHECK_FALSE(plain.compressed);
        CHECK(stacksOf(plain) == fixtureStacks());
        const LoadedProfile gzRaw = parsed(gzipCompress(raw));
        CHECK(gzRaw.format == ProfileInput::Collapsed);
        CHECK(gzRaw.compressed);
        CHECK(stacksOf(gzRaw) == fixtureStacks());
        CHECK(stacksOf(parsed(gzipCompress(speedscope))) == fixtureStacks());
    }
    SECTION("with --threads: thread frames lead the stacks of raw and pprof") {
        ExportOptions options;
        options.showThreads = true;
        const Stacks fromRawThreads = stacksOf(parsed(written(writeCollapsed, profile, options)));
        const Stacks fromPprofThreads = stacksOf(parsed(written(writePprof, profile, options)));
        CHECK(fromRawThreads.count("Thread 4242 \"MainThread\"|<module> (app.py:52)|Server.serve (app.py:40)") == 1);
        CHECK(fromPprofThreads.count("Thread 4242 \"MainThread\"|<module> (app.py:52)|Server.serve (app.py:40)") == 1);
    }
}

TEST_CASE("profile reader: raw lines, escapes and blank lines", "[output][reader]") {
    const LoadedProfile p = parsed("a (x.py:1);b\\x3bc\\x0a (y.py) 5\r\n\n   \na (x.py:1) 2\nkeep\\x41\\x5c 1\nz 0\n");
    CHECK(stacksOf(p) == Stacks{{"a (x.py:1)|b;c\n (y.py)", 5}, {"a (x.py:1)", 2}, {"keep\\x41\\x5c", 1}});
    CHECK(profileFrameLabel("", "f.py", 3) == "? (f.py:3)");
    CHECK(profileFrameLabel("g", "", 3) == "g");
    CHECK(profileFrameLabel("g", "f.py", 0) == "g (f.py)");
}

TEST_CASE("profile reader: hostile and malformed input is an error", "[output][reader]") {
    CHECK(errorOf("") == "an empty file");
    CHECK(errorOf("a;b x\n").find("line 1") != std::string::npos);
    CHECK(errorOf("ok 1\na;b\n").find("line 2") != std::string::npos);
    CHECK(errorOf("a;;b 1\n").find("an empty frame") != std::string::npos);
    CHECK(errorOf(" 1\n").find("line 1") != std::string::npos);
    CHECK(errorOf("a 1234567890123456789\n").find("line 1") != std::string::npos);  // 19 digits
    CHECK(!errorOf("{").empty());
    CHECK(errorOf("[1,2]").find("not a speedscope document") != std::string::npos);
    const std::string frames = R"("shared":{"frames":[{"name":"f","file":"a.py","line":3}]})";
    CHECK(errorOf("{" + frames + R"(,"profiles":[{"type":"sampled","samples":[[1]],"weights":[1]}]})")
              .find("out of range") != std::string::npos);
    CHECK(errorOf("{" + frames + R"(,"profiles":[{"type":"sampled","samples":[[0]],"weights":[]}]})").find("weights") !=
          std::string::npos);
    CHECK(
        errorOf("{" + frames + R"(,"profiles":[{"type":"sampled","samples":[[0]],"weights":[-1]}]})").find("weight") !=
        std::string::npos);
    CHECK(
        errorOf("{" + frames + R"(,"profiles":[{"type":"sampled","samples":[[0]],"weights":[0.5]}]})").find("weight") !=
        std::string::npos);
    CHECK(errorOf("{" + frames + R"(,"profiles":[{"type":"evented","events":[]}]})").find("sampled") !=
          std::string::npos);
    const LoadedProfile ok =
        parsed("{" + frames + R"(,"profiles":[{"type":"sampled","samples":[[0],[]],"weights":[2.0,1]}]})");
    CHECK(stacksOf(ok) == Stacks{{"f (a.py:3)", 2}, {"(no frames)", 1}});
    // A deeply nested JSON document is parsed without recursion and refused.
    CHECK(!errorOf(std::string(100000, '[') + std::string(100000, ']')).empty());
    CHECK(!errorOf("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}").empty());

    SECTION("pprof: bad indices, truncation, overlong varints") {
        protobuf::Writer w;
        w.bytes(6, "");
        w.bytes(6, "f");
        protobuf::Writer function;
        function.varint(1, 1);
        function.varint(2, 7);  // string index 7: out of range
        w.message(5, function);
        CHECK(parsed(w.data()).samples() == 0);  // no line uses it yet
        protobuf::Writer line;
        line.varint(1, 1);
        protobuf::Writer location;
        location.varint(1, 1);
        location.message(4, line);
        w.message(4, location);
        CHECK(errorOf(w.data()).find("string index out of range") != std::string::npos);

        protobuf::Writer sample;
        sample.varint(1, 99);  // no such location
        sample.varint(2, 1);
        protobuf::Writer w2;
        w2.bytes(6, "");
        w2.message(2, sample);
        CHECK(errorOf(w2.data()).find("location that is not there") != std::string::npos);
        CHECK(errorOf(std::string("\x12\x05\x08", 3)).find("length past the end") != std::string::npos);
        CHECK(errorOf(std::string("\x08") + std::string(11, '\xff')).find("varint") != std::string::npos);
        CHECK(errorOf(std::string("\x0b\x00", 2)).find("wire type") != std::string::npos);  // a group
        CHECK(errorOf(std::string("\x32\x01x", 3)).find("string_table[0]") != std::string::npos);
    }
    SECTION("every truncation of each format is read or refused, never a crash") {
        const RecordedProfile profile = sampleProfile();
        for (const std::string& whole : {written(writeCollapsed, profile), written(writeSpeedscope, profile),
                                         written(writePprof, profile), encodePprof(profile, {})}) {
            for (std::size_t n = 0; n < whole.size(); ++n) {
                (void)parseProfile(std::string_view(whole).substr(0, n));
            }
            std::string flipped = whole;
            for (std::size_t i = 0; i < flipped.size(); i += 7) {
                flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
                (void)parseProfile(flipped);
            }
        }
        CHECK(errorOf(written(writePprof, profile).substr(0, 40)).find("gzip") != std::string::npos);
    }
}

TEST_CASE("profile reader: limits on size, depth, frames and counts", "[output][reader]") {
    ProfileReadLimits limits;
    limits.maxStackDepth = 3;
    CHECK(parsed("a;b;c 1\n", limits).samples() == 1);
    CHECK(errorOf("a;b;c;d 1\n", limits).find("deeper than 3") != std::string::npos);
    limits = {};
    limits.maxFramesTotal = 5;
    CHECK(errorOf("a;b;c 1\na;b;d 1\n", limits).find("more than 5 frames") != std::string::npos);
    limits = {};
    CHECK(errorOf("a 9007199254740992\nb 1\n", limits).find("samples") != std::string::npos);
    limits.maxBytes = 1000;
    CHECK(errorOf(std::string(1001, 'a')).find("larger than") == std::string::npos);  // default limit
    CHECK(errorOf(std::string(1001, 'a'), limits).find("larger than 1000 bytes") != std::string::npos);
    // A gzip bomb: 10 MB of zeros, a few KB compressed, refused past the limit.
    limits.maxBytes = 1 << 20;
    const std::string bomb = gzipCompress(std::string(10 << 20, '\0'));
    CHECK(bomb.size() < limits.maxBytes);
    CHECK(errorOf(bomb, limits).find("decompressed") != std::string::npos);
}

TEST_CASE("profile reader: files, with one-line errors and exit codes", "[output][reader]") {
    const std::string dir = std::filesystem::temp_directory_path() / ("pyspy-reader-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto kindOf = [](const std::string& path) -> std::pair<ErrorKind, std::string> {
        try {
            (void)readProfileFile(path, "BASE");
        } catch (const FatalError& e) {
            CHECK(std::string(e.what()).find('\n') == std::string::npos);
            return {e.kind(), e.what()};
        }
        FAIL("no error for " << path);
        return {};
    };
    CHECK(kindOf(dir + "/missing.txt").first == ErrorKind::Io);
    CHECK(kindOf(dir + "/missing.txt").second.find("BASE") != std::string::npos);
    CHECK(kindOf(dir).first == ErrorKind::Io);
    std::ofstream(dir + "/garbage.txt") << "not\na profile\n";
    CHECK(kindOf(dir + "/garbage.txt").first == ErrorKind::Usage);
    std::ofstream(dir + "/empty.txt") << "\n\n";
    const auto empty = kindOf(dir + "/empty.txt");
    CHECK(empty.first == ErrorKind::Usage);
    CHECK(empty.second.find("no samples") != std::string::npos);
    std::ofstream(dir + "/ok.pb.txt", std::ios::binary) << written(writePprof, sampleProfile());
    CHECK(readProfileFile(dir + "/ok.pb.txt", "NEW").format == ProfileInput::Pprof);  // told by content
    std::filesystem::remove_all(dir);
}
