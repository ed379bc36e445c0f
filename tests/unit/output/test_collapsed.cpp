// The raw (collapsed-stack) format: golden file, grammar of every line, counts.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <sstream>

#include "pyspy/output/collapsed.h"
#include "profile_fixture.h"

using namespace pyspy;
using namespace pyspy_test;

namespace {

std::string collapsed(const RecordedProfile& profile, const ExportOptions& options) {
    std::ostringstream out;
    writeCollapsed(profile, options, out);
    return out.str();
}

// Checks every line against the grammar; returns stack text -> count.
std::map<std::string, std::uint64_t> parseLines(const std::string& text) {
    static const std::regex line(R"(^(.+) (\d+)$)");
    // flamegraph.pl reads "stack count1 count2" as a differential line: no stack may
    // end in whitespace and a number.
    static const std::regex differential(R"(\s\d+(\.\d*)?$)");
    std::map<std::string, std::uint64_t> stacks;
    forEachLineMatching(text, line, [&](const std::smatch& m) {
        const std::string stack = m[1].str();
        CHECK_FALSE(std::regex_search(stack, differential));
        CHECK(validUtf8(stack));
        for (unsigned char c : stack) CHECK((c >= 0x20 && c != 0x7f));
        std::size_t begin = 0;
        while (true) {
            const std::size_t end = stack.find(';', begin);
            const std::string frame = stack.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
            CHECK_FALSE(frame.empty());
            if (end == std::string::npos) break;
            begin = end + 1;
        }
        CHECK(stacks.count(stack) == 0);  // one line per distinct stack
        stacks[stack] = std::stoull(m[2].str());
    });
    CHECK((text.empty() || text.back() == '\n'));
    return stacks;
}

std::uint64_t sum(const std::map<std::string, std::uint64_t>& stacks) {
    std::uint64_t total = 0;
    for (const auto& [stack, count] : stacks) total += count;
    return total;
}

}  // namespace

TEST_CASE("raw output matches the golden file", "[output][collapsed]") {
    compareGolden("profile.collapsed.txt", collapsed(sampleProfile(), ExportOptions{}));
}

TEST_CASE("raw output: every line parses and the counts add up", "[output][collapsed]") {
    const RecordedProfile profile = sampleProfile();
    REQUIRE(profile.trie.totalSamples() == 13);
    for (bool threads : {false, true}) {
        for (bool full : {false, true}) {
            for (bool lines : {false, true}) {
                ExportOptions options;
                options.showThreads = threads;
                options.fullFilenames = full;
                options.showLines = lines;
                INFO("threads " << threads << " full " << full << " lines " << lines);
                const auto stacks = parseLines(collapsed(profile, options));
                CHECK(sum(stacks) == profile.trie.totalSamples());
            }
        }
    }
}

TEST_CASE("raw output: frames as function (file:line), merged across threads", "[output][collapsed]") {
    const auto stacks = parseLines(collapsed(sampleProfile(), ExportOptions{}));
    CHECK(stacks.at("<module> (app.py:52);Server.serve (app.py:40)") == 6);
    CHECK(stacks.at("<module> (app.py:52);Server.serve (app.py:40);handle (lib/calc.py:10)") == 2);
    CHECK(stacks.at("(no frames)") == 1);  // the worker's sample without Python frames
    CHECK(stacks.at("wait 3 (w2.py)") == 1);  // no line
    const std::string weird = "Thread.run (threading.py:1010);we\\x3bird\\x0aname \"q\" <script>\xef\xbf\xbd( (w.py:7)";
    CHECK(stacks.at(weird) == 3);
    CHECK(stacks.size() == 5);
}

TEST_CASE("raw output: thread frames lead with showThreads, full filenames, no lines", "[output][collapsed]") {
    ExportOptions options;
    options.showThreads = true;
    options.fullFilenames = true;
    auto stacks = parseLines(collapsed(sampleProfile(), options));
    CHECK(stacks.at("Thread 4242 \"MainThread\";<module> (/srv/app.py:52);Server.serve (/srv/app.py:40)") == 6);
    CHECK(stacks.at("Thread_12;wait 3 (/srv/w2.py)") == 1);
    CHECK(stacks.at("Thread 0x7f0000002000 \"worker\\x3b\\x0a\"<script>\" \xef\xbf\xbd\xef\xbf\xbd\"") == 1);
    CHECK(stacks.size() == 5);

    options = ExportOptions{};
    options.showLines = false;
    stacks = parseLines(collapsed(sampleProfile(), options));
    CHECK(stacks.at("<module> (app.py);Server.serve (app.py)") == 6);
}

TEST_CASE("raw frame text escapes what would break a line", "[output][collapsed]") {
    const ExportOptions options;
    CHECK(collapsedFrameText({FrameKind::Python, "f", "/a/b.py", 3}, options) == "f (b.py:3)");
    CHECK(collapsedFrameText({FrameKind::Python, "a;b\tc\x7f", "", 0}, options) == "a\\x3bb\\x09c\\x7f");
    CHECK(collapsedFrameText({FrameKind::Python, "", "", 0}, options) == "?");
    CHECK(collapsedFrameText({FrameKind::Thread, "Thread 12", "", 0}, options) == "Thread_12");
    CHECK(collapsedFrameText({FrameKind::Thread, "Thread 1.5", "", 0}, options) == "Thread_1.5");
    CHECK(collapsedFrameText({FrameKind::Thread, "Thread 1.", "", 0}, options) == "Thread_1.");
    CHECK(collapsedFrameText({FrameKind::Thread, "Thread x12", "", 0}, options) == "Thread x12");
    CHECK(collapsedFrameText({FrameKind::Thread, "v .5", "", 0}, options) == "v .5");
    // Overlong, surrogate, truncated and stray bytes each become U+FFFD; valid UTF-8 stays.
    CHECK(collapsedFrameText({FrameKind::Python, "\xc0\xaf|\xed\xa0\x80|\xe2\x82|\x80|\xe2\x82\xac", "", 0}, options) ==
          "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd|\xe2\x82\xac");
}

TEST_CASE("raw output of an empty profile is empty", "[output][collapsed]") {
    CHECK(collapsed(RecordedProfile{}, ExportOptions{}).empty());
}
