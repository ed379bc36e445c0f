// pprof export: the protobuf encoder against known bytes, the profile decoded back by a
// small test-side protobuf reader, and the real consumer (`go tool pprof`, [pprof-go]).
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "pyspy/output/pprof.h"
#include "pyspy/output/protobuf_writer.h"
#include "pyspy/sampling/sampler.h"

using namespace pyspy;

namespace {

std::string hex(const std::string& bytes) {
    std::string out;
    char buf[4];
    for (const unsigned char c : bytes) {
        std::snprintf(buf, sizeof buf, "%02x ", c);
        out += buf;
    }
    if (!out.empty()) out.pop_back();
    return out;
}

// --- a small protobuf reader (test side, independent of the writer) ------------------

std::uint64_t readVarint(const std::string& data, std::size_t& pos) {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= data.size()) throw std::runtime_error("truncated varint");
        const auto byte = static_cast<unsigned char>(data[pos++]);
        value |= std::uint64_t{byte & 0x7fu} << shift;
        if ((byte & 0x80) == 0) return value;
    }
    throw std::runtime_error("varint too long");
}

struct Field {
    std::uint32_t number = 0;
    unsigned wire = 0;
    std::uint64_t varint = 0;  // wire type 0
    std::string bytes;         // wire type 2
};

std::vector<Field> parseMessage(const std::string& data) {
    std::vector<Field> fields;
    std::size_t pos = 0;
    while (pos < data.size()) {
        const std::uint64_t tag = readVarint(data, pos);
        Field f;
        f.number = static_cast<std::uint32_t>(tag >> 3);
        f.wire = static_cast<unsigned>(tag & 7);
        if (f.wire == 0) {
            f.varint = readVarint(data, pos);
        } else if (f.wire == 2) {
            const std::uint64_t length = readVarint(data, pos);
            if (pos + length > data.size()) throw std::runtime_error("truncated field");
            f.bytes = data.substr(pos, length);
            pos += length;
        } else {
            throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
        }
        fields.push_back(std::move(f));
    }
    return fields;
}

// A repeated varint field, packed (wire type 2) or not.
void appendRepeated(const Field& f, std::vector<std::uint64_t>& out) {
    if (f.wire == 0) {
        out.push_back(f.varint);
        return;
    }
    std::size_t pos = 0;
    while (pos < f.bytes.size()) out.push_back(readVarint(f.bytes, pos));
}

struct DecodedSample {
    std::vector<std::uint64_t> locations;  // leaf first
    std::vector<std::uint64_t> values;
    std::map<std::string, std::string> strLabels;
    std::map<std::string, std::int64_t> numLabels;
};
struct DecodedFunction {
    std::string name, systemName, filename;
};
struct DecodedLine {
    std::uint64_t function = 0;
    std::int64_t line = 0;
};

struct DecodedProfile {
    std::vector<std::string> strings;
    std::vector<std::pair<std::string, std::string>> sampleTypes;
    std::vector<DecodedSample> samples;
    std::map<std::uint64_t, std::vector<DecodedLine>> locations;
    std::map<std::uint64_t, DecodedFunction> functions;
    std::pair<std::string, std::string> periodType;
    std::int64_t period = 0, timeNanos = 0, durationNanos = 0;
    std::vector<std::string> comments;
    int mappings = 0;

    // The function name of a location's (only) line.
    std::string functionOf(std::uint64_t location) const {
        return functions.at(locations.at(location).at(0).function).name;
    }
    std::vector<std::string> names(const DecodedSample& s) const {
        std::vector<std::string> out;
        for (auto id : s.locations) out.push_back(functionOf(id));
        return out;
    }
};

DecodedProfile decode(const std::string& raw) {
    DecodedProfile p;
    std::vector<std::uint64_t> comments;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> sampleTypes;
    std::pair<std::uint64_t, std::uint64_t> periodType{0, 0};
    struct RawSample {
        std::vector<std::uint64_t> locations, values;
        std::vector<std::vector<Field>> labels;
    };
    std::vector<RawSample> rawSamples;
    std::vector<std::pair<std::uint64_t, std::vector<Field>>> rawFunctions;
    auto valueType = [](const std::string& bytes) {
        std::pair<std::uint64_t, std::uint64_t> vt{0, 0};
        for (const Field& f : parseMessage(bytes)) {
            if (f.number == 1) vt.first = f.varint;
            if (f.number == 2) vt.second = f.varint;
        }
        return vt;
    };
    for (const Field& f : parseMessage(raw)) {
        switch (f.number) {
            case 1:
                sampleTypes.push_back(valueType(f.bytes));
                break;
            case 2: {
                RawSample s;
                for (const Field& sf : parseMessage(f.bytes)) {
                    if (sf.number == 1) appendRepeated(sf, s.locations);
                    if (sf.number == 2) appendRepeated(sf, s.values);
                    if (sf.number == 3) s.labels.push_back(parseMessage(sf.bytes));
                }
                rawSamples.push_back(std::move(s));
                break;
            }
            case 3:
                ++p.mappings;
                break;
            case 4: {
                std::uint64_t id = 0;
                std::vector<DecodedLine> lines;
                for (const Field& lf : parseMessage(f.bytes)) {
                    if (lf.number == 1) id = lf.varint;
                    if (lf.number == 4) {
                        DecodedLine line;
                        for (const Field& x : parseMessage(lf.bytes)) {
                            if (x.number == 1) line.function = x.varint;
                            if (x.number == 2) line.line = static_cast<std::int64_t>(x.varint);
                        }
                        lines.push_back(line);
                    }
                }
                REQUIRE(id != 0);
                REQUIRE(p.locations.count(id) == 0);
                p.locations[id] = lines;
                break;
            }
            case 5: {
                std::uint64_t id = 0;
                auto fields = parseMessage(f.bytes);
                for (const Field& x : fields) {
                    if (x.number == 1) id = x.varint;
                }
                rawFunctions.emplace_back(id, std::move(fields));
                break;
            }
            case 6:
                p.strings.push_back(f.bytes);
                break;
            case 9:
                p.timeNanos = static_cast<std::int64_t>(f.varint);
                break;
            case 10:
                p.durationNanos = static_cast<std::int64_t>(f.varint);
                break;
            case 11:
                periodType = valueType(f.bytes);
                break;
            case 12:
                p.period = static_cast<std::int64_t>(f.varint);
                break;
            case 13:
                comments.push_back(f.varint);
                break;
            default:
                break;
        }
    }
    auto str = [&](std::uint64_t index) { return p.strings.at(index); };
    for (auto [type, unit] : sampleTypes) p.sampleTypes.emplace_back(str(type), str(unit));
    p.periodType = {str(periodType.first), str(periodType.second)};
    for (auto c : comments) p.comments.push_back(str(c));
    for (auto& [id, fields] : rawFunctions) {
        DecodedFunction fn;
        for (const Field& x : fields) {
            if (x.number == 2) fn.name = str(x.varint);
            if (x.number == 3) fn.systemName = str(x.varint);
            if (x.number == 4) fn.filename = str(x.varint);
        }
        REQUIRE(id != 0);
        REQUIRE(p.functions.count(id) == 0);
        p.functions[id] = fn;
    }
    for (const RawSample& rs : rawSamples) {
        DecodedSample s;
        s.locations = rs.locations;
        s.values = rs.values;
        for (const auto& label : rs.labels) {
            std::string key, strValue;
            std::int64_t num = 0;
            bool hasStr = false;
            for (const Field& x : label) {
                if (x.number == 1) key = str(x.varint);
                if (x.number == 2) strValue = str(x.varint), hasStr = true;
                if (x.number == 3) num = static_cast<std::int64_t>(x.varint);
            }
            if (hasStr) {
                s.strLabels[key] = strValue;
            } else {
                s.numLabels[key] = num;
            }
        }
        p.samples.push_back(std::move(s));
    }
    return p;
}

std::string gunzip(const std::string& compressed) {
    z_stream stream{};
    REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);  // gzip only, not zlib
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(compressed.size());
    std::string out;
    char buffer[4096];
    int rc = Z_OK;
    while (rc == Z_OK) {
        stream.next_out = reinterpret_cast<Bytef*>(buffer);
        stream.avail_out = sizeof buffer;
        rc = inflate(&stream, Z_NO_FLUSH);
        out.append(buffer, sizeof buffer - stream.avail_out);
    }
    inflateEnd(&stream);
    REQUIRE(rc == Z_STREAM_END);
    return out;
}

// Two threads: MainThread main -> busy_λ (3) and main -> idle<invalid UTF-8> (1); a
// worker thread main -> busy_λ (2) through another full path of the same short file.
RecordedProfile sampleProfile() {
    RecordedProfile p;
    p.pid = 4242;
    p.commandLine = "python3 app.py";
    p.pythonVersion = "3.12.1";
    p.rateHz = 100;
    p.startTime = 1732435200.25;
    p.duration = 0.05;
    p.samples = 5;
    p.errors = 1;
    const FrameId mainThread = p.frames.intern({FrameKind::Thread, "thread 0x7f01 (MainThread)", "", 0});
    const FrameId worker = p.frames.intern({FrameKind::Thread, "thread 0x7f02 (worker)", "", 0});
    const FrameId main = p.frames.intern({FrameKind::Python, "main", "/srv/app/main.py", 10});
    const FrameId busy = p.frames.intern({FrameKind::Python, "busy_\xce\xbb", "/srv/app/main.py", 20});
    const FrameId idle = p.frames.intern({FrameKind::Python, "idle\xff\xfe", "/srv/app/work.py", 30});
    const FrameId main2 = p.frames.intern({FrameKind::Python, "main", "/opt/app/main.py", 10});
    const FrameId busy2 = p.frames.intern({FrameKind::Python, "busy_\xce\xbb", "/opt/app/main.py", 20});
    const FrameId s1[] = {mainThread, main, busy};
    const FrameId s2[] = {mainThread, main, idle};
    const FrameId s3[] = {worker, main2, busy2};
    p.trie.insert(s1, 3);
    p.trie.insert(s2, 1);
    p.trie.insert(s3, 2);
    p.threads = {{0x7f01, 4242, "MainThread", mainThread}, {0x7f02, std::nullopt, "worker", worker}};
    return p;
}

std::string pprofBytes(const RecordedProfile& profile, const ExportOptions& options) {
    std::ostringstream out;
    writePprof(profile, options, out);
    return out.str();
}

}  // namespace

TEST_CASE("protobuf varints match the wire format", "[output][pprof]") {
    using protobuf::encodeVarint;
    CHECK(hex(encodeVarint(0)) == "00");
    CHECK(hex(encodeVarint(1)) == "01");
    CHECK(hex(encodeVarint(127)) == "7f");
    CHECK(hex(encodeVarint(128)) == "80 01");
    CHECK(hex(encodeVarint(150)) == "96 01");
    CHECK(hex(encodeVarint(300)) == "ac 02");
    CHECK(hex(encodeVarint(16384)) == "80 80 01");
    CHECK(hex(encodeVarint(0xffffffffu)) == "ff ff ff ff 0f");
    CHECK(hex(encodeVarint(~std::uint64_t{0})) == "ff ff ff ff ff ff ff ff ff 01");
}

TEST_CASE("protobuf fields: tags, lengths, packed and nested", "[output][pprof]") {
    protobuf::Writer w;
    w.varint(1, 150);  // the protobuf documentation's examples
    CHECK(hex(w.data()) == "08 96 01");
    w.clear();
    w.bytes(2, "testing");
    CHECK(hex(w.data()) == "12 07 74 65 73 74 69 6e 67");
    w.clear();
    const std::uint64_t values[] = {3, 270, 86942};
    w.packed<std::uint64_t>(4, values);
    CHECK(hex(w.data()) == "22 06 03 8e 02 9e a7 05");
    w.clear();
    w.packed<std::uint64_t>(4, std::span<const std::uint64_t>());
    CHECK(w.data().empty());
    w.int64(1, -1);  // int64: ten bytes of two's complement
    CHECK(hex(w.data()) == "08 ff ff ff ff ff ff ff ff ff 01");
    w.clear();
    w.bytes(6, "");
    CHECK(hex(w.data()) == "32 00");
    protobuf::Writer inner;
    inner.varint(1, 150);
    w.clear();
    w.message(3, inner);
    CHECK(hex(w.data()) == "1a 03 08 96 01");
    w.clear();
    w.varint(16, 1);  // a two-byte tag
    CHECK(hex(w.data()) == "80 01 01");
    // A 200-byte string: a two-byte length.
    w.clear();
    w.bytes(1, std::string(200, 'x'));
    CHECK(hex(w.data().substr(0, 3)) == "0a c8 01");
    CHECK(w.size() == 203);
}

TEST_CASE("validUtf8 keeps UTF-8 and replaces everything else", "[output][pprof]") {
    const std::string fffd = "\xef\xbf\xbd";
    CHECK(validUtf8("plain") == "plain");
    CHECK(validUtf8("busy_\xce\xbb \xe2\x82\xac \xf0\x9f\x90\x8d") == "busy_\xce\xbb \xe2\x82\xac \xf0\x9f\x90\x8d");
    CHECK(validUtf8("idle\xff\xfe") == "idle" + fffd + fffd);
    CHECK(validUtf8("a\xce") == "a" + fffd);                            // truncated at the end
    CHECK(validUtf8("\xe2\x82x") == fffd + fffd + "x");                 // truncated in the middle
    CHECK(validUtf8("\xc0\xaf") == fffd + fffd);                        // overlong '/'
    CHECK(validUtf8("\xed\xa0\x80") == fffd + fffd + fffd);             // a UTF-16 surrogate
    CHECK(validUtf8("\xf4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // past U+10FFFF
    CHECK(validUtf8(std::string("a\0b", 3)) == std::string("a\0b", 3));
}

TEST_CASE("pprof output is gzip'd profile.proto with leaf-first locations", "[output][pprof]") {
    const RecordedProfile profile = sampleProfile();
    const std::string bytes = pprofBytes(profile, ExportOptions{});
    REQUIRE(bytes.size() > 18);
    CHECK(static_cast<unsigned char>(bytes[0]) == 0x1f);  // gzip magic
    CHECK(static_cast<unsigned char>(bytes[1]) == 0x8b);
    const std::string raw = gunzip(bytes);
    CHECK(raw == encodePprof(profile, ExportOptions{}));
    const DecodedProfile p = decode(raw);

    REQUIRE(!p.strings.empty());
    CHECK(p.strings[0].empty());
    for (std::size_t i = 1; i < p.strings.size(); ++i) CHECK(p.strings[i] == validUtf8(p.strings[i]));
    REQUIRE(p.sampleTypes.size() == 2);
    CHECK(p.sampleTypes[0] == std::pair<std::string, std::string>{"samples", "count"});
    CHECK(p.sampleTypes[1] == std::pair<std::string, std::string>{"cpu", "nanoseconds"});
    CHECK(p.periodType == std::pair<std::string, std::string>{"cpu", "nanoseconds"});
    CHECK(p.period == 10'000'000);
    CHECK(p.timeNanos == 1'732'435'200'250'000'000);
    CHECK(p.durationNanos == 50'000'000);
    CHECK(p.mappings == 1);
    CHECK(std::find(p.comments.begin(), p.comments.end(), "command: python3 app.py") != p.comments.end());

    std::uint64_t total = 0;
    for (const DecodedSample& s : p.samples) {
        REQUIRE(s.values.size() == 2);
        CHECK(s.values[1] == s.values[0] * 10'000'000);
        total += s.values[0];
        for (auto id : s.locations) CHECK(p.locations.count(id) == 1);
    }
    CHECK(total == profile.trie.totalSamples());
    REQUIRE(p.samples.size() == 3);

    // Leaf first; the thread is a label, not a frame (no showThreads).
    const std::string idle = "idle\xef\xbf\xbd\xef\xbf\xbd";
    CHECK(p.names(p.samples[0]) == std::vector<std::string>{"busy_\xce\xbb", "main"});
    CHECK(p.samples[0].values[0] == 3);
    CHECK(p.samples[0].strLabels.at("thread") == "thread 0x7f01 (MainThread)");
    CHECK(p.samples[0].numLabels.at("thread_id") == 0x7f01);
    CHECK(p.samples[0].numLabels.at("native_thread_id") == 4242);
    CHECK(p.names(p.samples[1]) == std::vector<std::string>{idle, "main"});
    CHECK(p.samples[1].values[0] == 1);
    CHECK(p.names(p.samples[2]) == std::vector<std::string>{"busy_\xce\xbb", "main"});
    CHECK(p.samples[2].strLabels.at("thread") == "thread 0x7f02 (worker)");
    CHECK(p.samples[2].numLabels.count("native_thread_id") == 0);

    // One Function per (name, shown filename), one Location per (function, line): the
    // worker's /opt/app/main.py frames are the same as MainThread's /srv/app/main.py.
    CHECK(p.functions.size() == 3);
    CHECK(p.locations.size() == 3);
    CHECK(p.samples[2].locations == p.samples[0].locations);
    const auto& busyLine = p.locations.at(p.samples[0].locations[0]).at(0);
    CHECK(busyLine.line == 20);
    CHECK(p.functions.at(busyLine.function).filename == "main.py");
    CHECK(p.functions.at(busyLine.function).systemName == "busy_\xce\xbb");
}

TEST_CASE("pprof options: threads as root frames, full filenames, no lines", "[output][pprof]") {
    const RecordedProfile profile = sampleProfile();
    ExportOptions options;
    options.showThreads = true;
    options.fullFilenames = true;
    options.showLines = false;
    options.title = "pyspy-cpp record: python3 app.py (pid 4242)";
    const DecodedProfile p = decode(gunzip(pprofBytes(profile, options)));
    REQUIRE(p.samples.size() == 3);
    CHECK(p.names(p.samples[0]) == std::vector<std::string>{"busy_\xce\xbb", "main", "thread 0x7f01 (MainThread)"});
    CHECK(p.names(p.samples[2]) == std::vector<std::string>{"busy_\xce\xbb", "main", "thread 0x7f02 (worker)"});
    CHECK(p.samples[0].strLabels.at("thread") == "thread 0x7f01 (MainThread)");
    // Full filenames keep /srv and /opt apart: 2 threads + main, busy twice + idle.
    CHECK(p.functions.size() == 7);
    for (const auto& [id, lines] : p.locations) {
        REQUIRE(lines.size() == 1);
        CHECK(lines[0].line == 0);
    }
    const auto& busy = p.functions.at(p.locations.at(p.samples[0].locations[0]).at(0).function);
    CHECK(busy.filename == "/srv/app/main.py");
    const auto& thread = p.functions.at(p.locations.at(p.samples[0].locations[2]).at(0).function);
    CHECK(thread.filename.empty());
    REQUIRE(!p.comments.empty());
    CHECK(p.comments[0] == options.title);
}

TEST_CASE("pprof labels record --wait's samples with their state", "[output][pprof]") {
    RecordedProfile profile;
    profile.rateHz = 100;
    ProfiledThread thread;
    thread.threadId = 0x7f01;
    thread.name = "MainThread";
    thread.frame = profile.frames.intern({FrameKind::Thread, "thread 0x7f01 (MainThread)", "", 0});
    profile.threads.push_back(thread);
    const FrameId query = profile.frames.intern({FrameKind::Python, "query", "/srv/app.py", 31});
    const FrameId io =
        profile.frames.intern({FrameKind::State, waitLeafName(ThreadState::Io, FdKind::Socket, -1), "", 0});
    const FrameId lock =
        profile.frames.intern({FrameKind::State, waitLeafName(ThreadState::Lock, FdKind::Unknown, 202), "", 0});
    profile.trie.insert(std::vector<FrameId>{thread.frame, query, io}, 5);
    profile.trie.insert(std::vector<FrameId>{thread.frame, query, lock}, 2);
    profile.trie.insert(std::vector<FrameId>{thread.frame, query}, 1);  // without --wait: no state label
    profile.samples = 8;
    const DecodedProfile p = decode(gunzip(pprofBytes(profile, ExportOptions{})));
    REQUIRE(p.samples.size() == 3);
    std::map<std::string, std::uint64_t> byWait;
    for (const DecodedSample& s : p.samples) {
        if (s.strLabels.count("state") == 0) {
            CHECK(s.strLabels.count("wait") == 0);
            CHECK(p.names(s) == std::vector<std::string>{"query"});
            continue;
        }
        CHECK(s.strLabels.at("wait").starts_with(s.strLabels.at("state")));
        CHECK(p.names(s).front() == "[" + s.strLabels.at("wait") + "]");
        byWait[s.strLabels.at("wait")] += static_cast<std::uint64_t>(s.values[0]);
    }
    CHECK(byWait == std::map<std::string, std::uint64_t>{{"io: socket", 5}, {"lock", 2}});
}

TEST_CASE("pprof of an empty profile is still a valid profile", "[output][pprof]") {
    RecordedProfile profile;
    const DecodedProfile p = decode(gunzip(pprofBytes(profile, ExportOptions{})));
    CHECK(p.strings.at(0).empty());
    CHECK(p.samples.empty());
    CHECK(p.sampleTypes.size() == 2);
}

namespace {

std::string run(const std::string& command) {
    std::string output;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    const int status = ::pclose(pipe);
    INFO(command << "\n" << output);
    REQUIRE(status == 0);
    return output;
}

}  // namespace

// The real consumer. ctest runs this on its own ("formats: pprof output read by go tool
// pprof", with PYSPY_SKIP_EXIT=77): without `go` it exits 77, which ctest reports as
// skipped. In a plain run of unit_output it only warns.
TEST_CASE("go tool pprof reads the pprof output", "[output][pprof-go]") {
    if (std::system("command -v go >/dev/null 2>&1") != 0) {
        if (std::getenv("PYSPY_SKIP_EXIT") != nullptr) {
            std::printf("SKIP: go not installed (Debian package golang-go)\n");
            std::fflush(stdout);
            std::exit(77);
        }
        WARN("SKIP: go not installed (Debian package golang-go)");
        return;
    }
    char dirTemplate[] = "/tmp/pyspy-pprof-XXXXXX";
    REQUIRE(::mkdtemp(dirTemplate) != nullptr);
    const std::filesystem::path dir = dirTemplate;
    struct Cleanup {
        std::filesystem::path dir;
        ~Cleanup() {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    } cleanup{dir};

    // main -> busy (3 samples), main -> idle (1): names with unicode and invalid UTF-8.
    RecordedProfile profile;
    profile.pid = 99;
    profile.rateHz = 100;
    profile.startTime = 1732435200;
    profile.duration = 0.04;
    const FrameId thread = profile.frames.intern({FrameKind::Thread, "thread 0x1 (MainThread)", "", 0});
    const FrameId main = profile.frames.intern({FrameKind::Python, "main", "/srv/app/main.py", 5});
    const FrameId busy = profile.frames.intern({FrameKind::Python, "busy_\xce\xbb\xe2\x82\xac", "/srv/app/main.py", 9});
    const FrameId idle = profile.frames.intern({FrameKind::Python, "idle_\xff_wait", "/srv/app/main.py", 14});
    const FrameId s1[] = {thread, main, busy};
    const FrameId s2[] = {thread, main, idle};
    profile.trie.insert(s1, 3);
    profile.trie.insert(s2, 1);
    profile.threads = {{0x1, 99, "MainThread", thread}};
    const std::filesystem::path file = dir / "profile.pb.gz";
    {
        std::ofstream out(file, std::ios::binary);
        writePprof(profile, ExportOptions{}, out);
        REQUIRE(out.good());
    }

    // Everything go might write goes to the temporary directory; nothing needs a network.
    const std::string env = "env HOME=" + dir.string() + " GOCACHE=" + (dir / "gocache").string() +
                            " GOPATH=" + (dir / "gopath").string() +
                            " GOTOOLCHAIN=local GOPROXY=off GOFLAGS= PPROF_TMPDIR=" + dir.string() +
                            " PPROF_BINARY_PATH=" + dir.string() + " ";
    const std::string pprof = env + "go tool pprof ";
    const std::string busyName = "busy_\xce\xbb\xe2\x82\xac";
    const std::string idleName = "idle_\xef\xbf\xbd_wait";

    const std::string raw = run(pprof + "-raw " + file.string());
    INFO(raw);
    CHECK(raw.find("samples/count cpu/nanoseconds") != std::string::npos);
    CHECK(raw.find("3   30000000:") != std::string::npos);
    CHECK(raw.find("1   10000000:") != std::string::npos);
    CHECK(raw.find(busyName) != std::string::npos);
    CHECK(raw.find(idleName) != std::string::npos);
    CHECK(raw.find("thread:[thread 0x1 (MainThread)]") != std::string::npos);
    CHECK(raw.find("Main binary filename not available") == std::string::npos);  // the Mapping

    const std::string top = run(pprof + "-top " + file.string());
    INFO(top);
    CHECK(top.find("40ms total") != std::string::npos);
    CHECK(top.find(busyName) != std::string::npos);
    CHECK(top.find(idleName) != std::string::npos);

    const std::string topCount = run(pprof + "-top -sample_index=samples " + file.string());
    INFO(topCount);
    CHECK(topCount.find("4 total") != std::string::npos);
    CHECK(topCount.find(busyName) != std::string::npos);
    if (std::getenv("PYSPY_PPROF_SHOW") != nullptr)
        std::printf("%s\n%s\n%s\n", raw.c_str(), top.c_str(), topCount.c_str());
}
