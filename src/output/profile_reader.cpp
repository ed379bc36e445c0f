#include "pyspy/output/profile_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pyspy/common/error.h"
#include "pyspy/common/fd.h"
#include "pyspy/output/dump.h"
#include "pyspy/output/protobuf_reader.h"

namespace pyspy {

namespace {

// Thrown inside this file only; parseProfile turns it into a ReadError.
struct ParseFailure {
    std::string what;
};

[[noreturn]] void fail(std::string what) {
    throw ParseFailure{std::move(what)};
}

// Interns labels and adds stacks, within the limits.
class Builder {
  public:
    Builder(ProfileInput format, const ProfileReadLimits& limits) : limits_(limits) { profile_.format = format; }

    FrameId frame(std::string label) {
        if (auto it = index_.find(label); it != index_.end()) return it->second;
        const auto id = static_cast<FrameId>(profile_.frames.size());
        profile_.frames.push_back(label);
        index_.emplace(std::move(label), id);
        return id;
    }

    void checkDepth(std::size_t depth) const {
        if (depth > limits_.maxStackDepth) fail(fmt::format("a stack deeper than {} frames", limits_.maxStackDepth));
    }

    void add(std::span<const FrameId> outermostFirst, std::uint64_t count) {
        if (count == 0) return;
        if (outermostFirst.empty()) {  // a sample without frames: as raw output writes it
            const FrameId none = frame("(no frames)");
            outermostFirst = std::span<const FrameId>(&none, 1);
            add(outermostFirst, count);
            return;
        }
        checkDepth(outermostFirst.size());
        frames_ += outermostFirst.size();
        if (frames_ > limits_.maxFramesTotal) fail(fmt::format("more than {} frames in all", limits_.maxFramesTotal));
        if (count > limits_.maxSamples || profile_.trie.totalSamples() > limits_.maxSamples - count) {
            fail(fmt::format("more than {} samples", limits_.maxSamples));
        }
        profile_.trie.insert(outermostFirst, count);
    }

    LoadedProfile take() { return std::move(profile_); }

  private:
    const ProfileReadLimits& limits_;
    LoadedProfile profile_;
    std::unordered_map<std::string, FrameId> index_;
    std::uint64_t frames_ = 0;
};

// ---- gzip ----------------------------------------------------------------------------

bool isGzip(std::string_view data) {
    return data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1f &&
           static_cast<unsigned char>(data[1]) == 0x8b;
}

std::string gunzip(std::string_view data, std::size_t maxBytes) {
    if (data.size() > std::numeric_limits<uInt>::max()) fail("compressed data too large");
    z_stream stream{};
    if (inflateInit2(&stream, 15 + 16) != Z_OK) fail("zlib inflateInit2 failed");  // 16: gzip only
    std::string out;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (stream.total_out == out.size()) {
            if (out.size() >= maxBytes) {
                inflateEnd(&stream);
                fail(fmt::format("more than {} bytes once decompressed", maxBytes));
            }
            out.resize(std::min(maxBytes, std::max<std::size_t>(out.size() * 2, 64 << 10)));
        }
        stream.next_out = reinterpret_cast<Bytef*>(out.data() + stream.total_out);
        stream.avail_out = static_cast<uInt>(out.size() - stream.total_out);
        rc = inflate(&stream, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && stream.avail_in == 0) break;  // input ended before the stream did
    }
    const std::size_t produced = stream.total_out;
    const char* message = stream.msg;
    inflateEnd(&stream);
    if (rc != Z_STREAM_END) {
        fail(rc == Z_BUF_ERROR ? std::string("truncated gzip data")
                               : fmt::format("corrupt gzip data ({})", message != nullptr ? message : "zlib error"));
    }
    out.resize(produced);
    return out;
}

// ---- collapsed -----------------------------------------------------------------------

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Undoes raw output's escapes: \xNN of ';' and of control characters (only those: any
// other \x.. is text of the name).
std::string unescapeFrame(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'x') {
            const int hi = hexValue(text[i + 2]), lo = hexValue(text[i + 3]);
            const int value = hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
            if (value >= 0 && (value < 0x20 || value == 0x7f || value == ';')) {
                out += static_cast<char>(value);
                i += 3;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

void parseCollapsed(std::string_view text, Builder& builder) {
    std::vector<FrameId> stack;
    std::size_t lineNumber = 0;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++lineNumber;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
        const std::size_t space = line.rfind(' ');
        const std::string_view digits = space == std::string_view::npos ? line : line.substr(space + 1);
        if (space == std::string_view::npos || space == 0 || digits.empty() || digits.size() > 18 ||
            digits.find_first_not_of("0123456789") != std::string_view::npos) {
            fail(fmt::format("line {}: not a collapsed stack ('frame;frame;... COUNT')", lineNumber));
        }
        std::uint64_t count = 0;
        for (const char c : digits) count = count * 10 + static_cast<std::uint64_t>(c - '0');
        const std::string_view frames = line.substr(0, space);
        stack.clear();
        for (std::size_t begin = 0;;) {
            const std::size_t semicolon = frames.find(';', begin);
            const std::string_view frame = frames.substr(begin, semicolon - begin);
            if (frame.empty()) fail(fmt::format("line {}: an empty frame", lineNumber));
            builder.checkDepth(stack.size() + 1);
            stack.push_back(builder.frame(unescapeFrame(frame)));
            if (semicolon == std::string_view::npos) break;
            begin = semicolon + 1;
        }
        builder.add(stack, count);
    }
}

// ---- speedscope ----------------------------------------------------------------------

using nlohmann::json;

const json& member(const json& object, const char* name, json::value_t type, const char* what) {
    const auto it = object.find(name);
    if (it == object.end() || it->type() != type) fail(fmt::format("{}: no '{}' of the expected type", what, name));
    return *it;
}

// A count: a whole, non-negative number.
std::uint64_t sampleWeight(const json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_float()) {
        const double d = value.get<double>();
        if (std::isfinite(d) && d >= 0 && d <= 9007199254740992.0 && d == std::floor(d)) {
            return static_cast<std::uint64_t>(d);
        }
    }
    fail("a weight that is not a whole, non-negative number of samples");
}

void parseSpeedscope(std::string_view text, Builder& builder) {
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        fail(fmt::format("not valid JSON ({})", e.what()));
    }
    if (!doc.is_object()) fail("not a speedscope document (not a JSON object)");
    const json& shared = member(doc, "shared", json::value_t::object, "speedscope document");
    const json& frames = member(shared, "frames", json::value_t::array, "speedscope shared");
    std::vector<FrameId> ids;
    ids.reserve(frames.size());
    for (const json& frame : frames) {
        if (!frame.is_object()) fail("a speedscope frame that is not an object");
        const auto name = frame.find("name");
        const auto file = frame.find("file");
        const auto line = frame.find("line");
        std::int64_t lineNumber = 0;
        if (line != frame.end() && line->is_number_integer()) lineNumber = line->get<std::int64_t>();
        ids.push_back(builder.frame(profileFrameLabel(
            name != frame.end() && name->is_string() ? name->get_ref<const std::string&>() : "",
            file != frame.end() && file->is_string() ? file->get_ref<const std::string&>() : "", lineNumber)));
    }
    std::vector<FrameId> stack;
    for (const json& profile : member(doc, "profiles", json::value_t::array, "speedscope document")) {
        if (!profile.is_object()) fail("a speedscope profile that is not an object");
        const auto type = profile.find("type");
        if (type == profile.end() || *type != "sampled") {
            fail("a speedscope profile that is not of type \"sampled\" (pyspy-cpp writes sampled ones)");
        }
        const json& samples = member(profile, "samples", json::value_t::array, "speedscope profile");
        const json& weights = member(profile, "weights", json::value_t::array, "speedscope profile");
        if (samples.size() != weights.size()) fail("a speedscope profile with more samples than weights or fewer");
        for (std::size_t i = 0; i < samples.size(); ++i) {
            if (!samples[i].is_array()) fail("a speedscope sample that is not an array");
            builder.checkDepth(samples[i].size());
            stack.clear();
            for (const json& index : samples[i]) {
                if (!index.is_number_unsigned() || index.get<std::uint64_t>() >= ids.size()) {
                    fail("a speedscope sample with a frame index out of range");
                }
                stack.push_back(ids[index.get<std::size_t>()]);
            }
            builder.add(stack, sampleWeight(weights[i]));
        }
    }
}

// ---- pprof ---------------------------------------------------------------------------

// Field numbers of github.com/google/pprof proto/profile.proto (those read here).
namespace field {
constexpr std::uint64_t kValueTypeType = 1;
constexpr std::uint64_t kSampleLocationId = 1, kSampleValue = 2;
constexpr std::uint64_t kLocationId = 1, kLocationAddress = 3, kLocationLine = 4;
constexpr std::uint64_t kLineFunctionId = 1, kLineLine = 2;
constexpr std::uint64_t kFunctionId = 1, kFunctionName = 2, kFunctionSystemName = 3, kFunctionFilename = 4;
}  // namespace field

void check(const protobuf::Reader& reader, const char* what) {
    if (reader.failed()) fail(fmt::format("not a pprof profile: {}: {}", what, reader.error()));
}

struct PprofFunction {
    std::uint64_t name = 0, systemName = 0, filename = 0;
};

void parsePprof(std::string_view data, Builder& builder) {
    std::vector<std::string_view> strings, sampleTypes, samples, locations, functions;
    protobuf::Reader profile(data);
    // Profile's fields by number: sample_type 1, sample 2, location 4, function 5, string_table 6.
    std::vector<std::string_view>* const byField[] = {nullptr,    &sampleTypes, &samples, nullptr,
                                                      &locations, &functions,   &strings};
    while (profile.next()) {
        if (profile.isBytes() && profile.field() < std::size(byField) && byField[profile.field()] != nullptr) {
            byField[profile.field()]->push_back(profile.bytes());
        }
    }
    check(profile, "profile");
    if (strings.empty() || !strings[0].empty()) fail("not a pprof profile: string_table[0] is not \"\"");
    auto string = [&](std::uint64_t index) {
        if (index >= strings.size()) fail("not a pprof profile: a string index out of range");
        return strings[index];
    };

    // Which value is the sample count: the sample_type "samples" (what record writes
    // first), else the first.
    std::size_t valueIndex = 0;
    for (std::size_t i = 0; i < sampleTypes.size(); ++i) {
        protobuf::Reader type(sampleTypes[i]);
        std::uint64_t name = 0;
        while (type.next()) {
            if (type.field() == field::kValueTypeType) name = type.varint();
        }
        check(type, "sample_type");
        if (string(name) == "samples") {
            valueIndex = i;
            break;
        }
    }

    std::unordered_map<std::uint64_t, PprofFunction> functionById;
    for (const std::string_view bytes : functions) {
        protobuf::Reader f(bytes);
        std::uint64_t id = 0;
        PprofFunction function;
        while (f.next()) {
            switch (f.field()) {
                case field::kFunctionId:
                    id = f.varint();
                    break;
                case field::kFunctionName:
                    function.name = f.varint();
                    break;
                case field::kFunctionSystemName:
                    function.systemName = f.varint();
                    break;
                case field::kFunctionFilename:
                    function.filename = f.varint();
                    break;
                default:
                    break;
            }
        }
        check(f, "function");
        if (!functionById.emplace(id, function).second) fail("not a pprof profile: two functions with one id");
    }

    // Each location's frames, innermost first (a location's lines: inlined callees
    // before the function they were inlined into).
    std::unordered_map<std::uint64_t, std::vector<FrameId>> locationById;
    for (const std::string_view bytes : locations) {
        protobuf::Reader loc(bytes);
        std::uint64_t id = 0, address = 0;
        std::vector<FrameId> frames;
        while (loc.next()) {
            if (loc.field() == field::kLocationId) id = loc.varint();
            if (loc.field() == field::kLocationAddress) address = loc.varint();
            if (loc.field() != field::kLocationLine || !loc.isBytes()) continue;
            protobuf::Reader line(loc.bytes());
            std::uint64_t functionId = 0;
            std::int64_t number = 0;
            while (line.next()) {
                if (line.field() == field::kLineFunctionId) functionId = line.varint();
                if (line.field() == field::kLineLine) number = static_cast<std::int64_t>(line.varint());
            }
            check(line, "line");
            const auto it = functionById.find(functionId);
            if (it == functionById.end()) fail("not a pprof profile: a line of a function that is not there");
            const std::string_view name = string(it->second.name);
            builder.checkDepth(frames.size() + 1);
            frames.push_back(builder.frame(profileFrameLabel(name.empty() ? string(it->second.systemName) : name,
                                                             string(it->second.filename), number)));
        }
        check(loc, "location");
        if (frames.empty()) frames.push_back(builder.frame(fmt::format("0x{:x}", address)));  // not symbolized
        if (!locationById.emplace(id, std::move(frames)).second) {
            fail("not a pprof profile: two locations with one id");
        }
    }

    std::vector<FrameId> stack;
    for (const std::string_view bytes : samples) {
        protobuf::Reader sample(bytes);
        stack.clear();
        std::size_t valueAt = 0;
        std::int64_t count = -1;
        while (sample.next()) {
            if (sample.field() == field::kSampleLocationId) {
                sample.forEachVarint([&](std::uint64_t id) {
                    const auto it = locationById.find(id);
                    if (it == locationById.end()) fail("not a pprof profile: a sample of a location that is not there");
                    builder.checkDepth(stack.size() + it->second.size());
                    stack.insert(stack.end(), it->second.begin(), it->second.end());
                });
            } else if (sample.field() == field::kSampleValue) {
                sample.forEachVarint([&](std::uint64_t value) {
                    if (valueAt++ == valueIndex) count = static_cast<std::int64_t>(value);
                });
            }
        }
        check(sample, "sample");
        if (count < 0) fail("not a pprof profile: a sample without its count, or a negative one");
        std::reverse(stack.begin(), stack.end());  // leaf first in pprof, outermost first here
        builder.add(stack, static_cast<std::uint64_t>(count));
    }
}

// ---- detection -----------------------------------------------------------------------

// Control bytes other than tab, CR and LF near the start: not text, so a protobuf.
bool looksBinary(std::string_view data) {
    const std::string_view head = data.substr(0, 4096);
    for (const char c : head) {
        const auto b = static_cast<unsigned char>(c);
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f) return true;
    }
    return false;
}

LoadedProfile parse(std::string_view bytes, const ProfileReadLimits& limits) {
    if (bytes.empty()) fail("an empty file");
    if (bytes.size() > limits.maxBytes) fail(fmt::format("larger than {} bytes", limits.maxBytes));
    std::string decompressed;
    const bool compressed = isGzip(bytes);
    if (compressed) {
        decompressed = gunzip(bytes, limits.maxBytes);
        bytes = decompressed;
    }
    ProfileInput format = ProfileInput::Collapsed;
    const std::size_t start = bytes.find_first_not_of(" \t\r\n");
    if (start != std::string_view::npos && (bytes[start] == '{' || bytes[start] == '[')) {
        format = ProfileInput::Speedscope;
    } else if (looksBinary(bytes)) {
        format = ProfileInput::Pprof;
    }
    Builder builder(format, limits);
    switch (format) {
        case ProfileInput::Collapsed:
            parseCollapsed(bytes, builder);
            break;
        case ProfileInput::Speedscope:
            parseSpeedscope(bytes, builder);
            break;
        case ProfileInput::Pprof:
            parsePprof(bytes, builder);
            break;
    }
    LoadedProfile profile = builder.take();
    profile.compressed = compressed;
    return profile;
}

}  // namespace

const char* profileInputName(ProfileInput format) {
    switch (format) {
        case ProfileInput::Collapsed:
            return "raw";
        case ProfileInput::Speedscope:
            return "speedscope";
        case ProfileInput::Pprof:
            return "pprof";
    }
    return "?";
}

std::string profileFrameLabel(std::string_view name, std::string_view file, std::int64_t line) {
    std::string label(name.empty() ? std::string_view("?") : name);
    if (!file.empty()) {
        label += " (";
        label += file;
        if (line > 0) label += fmt::format(":{}", line);
        label += ')';
    }
    return label;
}

Result<LoadedProfile> parseProfile(std::string_view bytes, const ProfileReadLimits& limits) {
    try {
        return parse(bytes, limits);
    } catch (const ParseFailure& failure) {
        return Err{invalid(failure.what)};
    } catch (const std::bad_alloc&) {
        return Err{invalid("out of memory")};
    }
}

LoadedProfile readProfileFile(const std::string& path, std::string_view role, const ProfileReadLimits& limits) {
    const std::string shown = terminalSafe(path);
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
        throw FatalError(ErrorKind::Io,
                         fmt::format("cannot read {} profile {}: {}", role, shown, std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) {
        throw FatalError(ErrorKind::Io, fmt::format("cannot read {} profile {}: not a regular file", role, shown));
    }
    if (static_cast<std::uint64_t>(st.st_size) > limits.maxBytes) {
        throw FatalError(ErrorKind::Usage, fmt::format("{} profile {}: larger than {} bytes, the most diff reads", role,
                                                       shown, limits.maxBytes));
    }
    std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            throw FatalError(ErrorKind::Io,
                             fmt::format("cannot read {} profile {}: {}", role, shown, std::strerror(errno)));
        }
        if (n == 0) break;  // it shrank meanwhile: parse what is there
        got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
    Result<LoadedProfile> profile = parseProfile(bytes, limits);
    if (!profile) {
        throw FatalError(ErrorKind::Usage,
                         fmt::format("{} profile {} is not a profile diff reads (raw, speedscope or pprof): {}", role,
                                     shown, terminalSafe(profile.error().what)));
    }
    if (profile->samples() == 0) {
        throw FatalError(ErrorKind::Usage, fmt::format("{} profile {} ({}) holds no samples", role, shown,
                                                       profileInputName(profile->format)));
    }
    return std::move(profile).value();
}

}  // namespace pyspy
