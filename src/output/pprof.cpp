#include "pyspy/output/pprof.h"

#include <zlib.h>

#include <cmath>
#include <map>
#include <ostream>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pyspy/output/dump.h"
#include "pyspy/output/protobuf_writer.h"

namespace pyspy {

namespace {

// Field numbers of github.com/google/pprof proto/profile.proto.
namespace profile_field {
constexpr std::uint32_t kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6,
                        kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13;
}
namespace value_type_field {
constexpr std::uint32_t kType = 1, kUnit = 2;
}
namespace sample_field {
constexpr std::uint32_t kLocationId = 1, kValue = 2, kLabel = 3;
}
namespace label_field {
constexpr std::uint32_t kKey = 1, kStr = 2, kNum = 3;
}
namespace mapping_field {
constexpr std::uint32_t kId = 1, kFilename = 5, kHasFunctions = 7, kHasFilenames = 8, kHasLineNumbers = 9;
}
namespace location_field {
constexpr std::uint32_t kId = 1, kMappingId = 2, kLine = 4;
}
namespace line_field {
constexpr std::uint32_t kFunctionId = 1, kLine = 2;
}
namespace function_field {
constexpr std::uint32_t kId = 1, kName = 2, kSystemName = 3, kFilename = 4;
}

// profile.proto's string_table: strings are referred to by index, index 0 is "".
class StringTable {
  public:
    StringTable() { intern(""); }
    std::int64_t intern(std::string_view text) {
        std::string valid = validUtf8(text);
        if (auto it = index_.find(valid); it != index_.end()) return it->second;
        const auto id = static_cast<std::int64_t>(strings_.size());
        strings_.push_back(valid);
        index_.emplace(std::move(valid), id);
        return id;
    }
    const std::vector<std::string>& strings() const { return strings_; }

  private:
    std::vector<std::string> strings_;
    std::unordered_map<std::string, std::int64_t> index_;
};

protobuf::Writer valueType(StringTable& strings, std::string_view type, std::string_view unit) {
    protobuf::Writer w;
    w.int64(value_type_field::kType, strings.intern(type));
    w.int64(value_type_field::kUnit, strings.intern(unit));
    return w;
}

std::int64_t toNanos(double seconds) {
    if (!std::isfinite(seconds) || seconds <= 0 || seconds > 9e9) return 0;
    // Whole seconds apart: epoch times times 1e9 lose the nanoseconds in a double.
    const double whole = std::floor(seconds);
    return static_cast<std::int64_t>(whole) * 1'000'000'000 + std::llround((seconds - whole) * 1e9);
}

// The program for the one Mapping: the first word of the command line.
std::string programName(const std::string& commandLine) {
    const auto start = commandLine.find_first_not_of(' ');
    if (start == std::string::npos) return "python";
    return commandLine.substr(start, commandLine.find(' ', start) - start);
}

}  // namespace

std::string validUtf8(std::string_view text) {
    static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t codepoint = 0, minimum = 0;
        if ((c & 0xE0) == 0xC0) {
            length = 2, codepoint = c & 0x1F, minimum = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            length = 3, codepoint = c & 0x0F, minimum = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            length = 4, codepoint = c & 0x07, minimum = 0x10000;
        }
        bool ok = length != 0 && i + length <= text.size();
        for (std::size_t k = 1; ok && k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            ok = (next & 0xC0) == 0x80;
            codepoint = (codepoint << 6) | (next & 0x3F);
        }
        // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 either.
        ok = ok && codepoint >= minimum && codepoint <= 0x10FFFF && (codepoint < 0xD800 || codepoint > 0xDFFF);
        if (ok) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out.append(kReplacement);  // one per offending byte; resynchronise on the next
            ++i;
        }
    }
    return out;
}

std::string encodePprof(const RecordedProfile& profile, const ExportOptions& options) {
    StringTable strings;
    // One Mapping for every location, saying that functions, files and lines are all
    // known: pprof then never tries to symbolize addresses (there are none).
    constexpr std::uint64_t kMappingId = 1;
    protobuf::Writer mapping;
    mapping.varint(mapping_field::kId, kMappingId);
    mapping.int64(mapping_field::kFilename, strings.intern(programName(profile.commandLine)));
    mapping.varint(mapping_field::kHasFunctions, 1);
    mapping.varint(mapping_field::kHasFilenames, 1);
    if (options.showLines) mapping.varint(mapping_field::kHasLineNumbers, 1);
    protobuf::Writer functions, locations, samples;
    std::map<std::pair<std::string, std::string>, std::uint64_t> functionIds;     // (name, filename)
    std::map<std::pair<std::uint64_t, std::int64_t>, std::uint64_t> locationIds;  // (function, line)
    std::unordered_map<FrameId, std::uint64_t> locationOfFrame;

    // The location of a frame: one Function per (name, displayed filename), one Location
    // per (function, line).
    auto locationFor = [&](FrameId frameId) -> std::uint64_t {
        if (auto it = locationOfFrame.find(frameId); it != locationOfFrame.end()) return it->second;
        const FrameKey& frame = profile.frames[frameId];
        std::string filename = frame.filename;
        if (!filename.empty() && !options.fullFilenames) filename = shortFilename(filename);
        auto [fit, newFunction] = functionIds.try_emplace({frame.name, filename}, functionIds.size() + 1);
        const std::uint64_t functionId = fit->second;
        if (newFunction) {
            protobuf::Writer f;
            f.varint(function_field::kId, functionId);
            const std::int64_t name = strings.intern(frame.name);
            f.int64(function_field::kName, name);
            f.int64(function_field::kSystemName, name);
            if (!filename.empty()) f.int64(function_field::kFilename, strings.intern(filename));
            functions.message(profile_field::kFunction, f);
        }
        const std::int64_t line = options.showLines && frame.line > 0 ? frame.line : 0;
        auto [lit, newLocation] = locationIds.try_emplace({functionId, line}, locationIds.size() + 1);
        if (newLocation) {
            protobuf::Writer ln;
            ln.varint(line_field::kFunctionId, functionId);
            if (line > 0) ln.int64(line_field::kLine, line);
            protobuf::Writer loc;
            loc.varint(location_field::kId, lit->second);
            loc.varint(location_field::kMappingId, kMappingId);
            loc.message(location_field::kLine, ln);
            locations.message(profile_field::kLocation, loc);
        }
        locationOfFrame.emplace(frameId, lit->second);
        return lit->second;
    };

    std::unordered_map<FrameId, const ProfiledThread*> threadOfFrame;
    for (const ProfiledThread& thread : profile.threads) threadOfFrame.emplace(thread.frame, &thread);

    const std::int64_t intervalNs = toNanos(profile.interval());
    const std::int64_t threadKey = strings.intern("thread");
    const std::int64_t threadIdKey = strings.intern("thread_id");
    const std::int64_t nativeIdKey = strings.intern("native_thread_id");
    const std::int64_t stateKey = strings.intern("state");  // record --wait: "io", and "wait": "io: socket"
    const std::int64_t waitKey = strings.intern("wait");

    std::vector<std::uint64_t> leafFirst;
    profile.trie.forEachStack([&](std::span<const FrameId> stack, std::uint64_t count) {
        protobuf::Writer sample;
        std::span<const FrameId> pythonFrames = stack;
        const FrameKey* threadFrame = nullptr;
        const ProfiledThread* thread = nullptr;
        if (!stack.empty() && profile.frames[stack.front()].kind == FrameKind::Thread) {
            threadFrame = &profile.frames[stack.front()];
            if (auto it = threadOfFrame.find(stack.front()); it != threadOfFrame.end()) thread = it->second;
            if (!options.showThreads) pythonFrames = stack.subspan(1);
        }
        leafFirst.clear();
        for (auto it = pythonFrames.rbegin(); it != pythonFrames.rend(); ++it) leafFirst.push_back(locationFor(*it));
        sample.packed<std::uint64_t>(sample_field::kLocationId, leafFirst);
        const std::int64_t values[] = {static_cast<std::int64_t>(count), static_cast<std::int64_t>(count) * intervalNs};
        sample.packed<std::int64_t>(sample_field::kValue, values);
        if (threadFrame != nullptr) {
            protobuf::Writer label;
            label.int64(label_field::kKey, threadKey);
            label.int64(label_field::kStr, strings.intern(threadFrame->name));
            sample.message(sample_field::kLabel, label);
        }
        if (thread != nullptr) {
            protobuf::Writer label;
            label.int64(label_field::kKey, threadIdKey);
            label.int64(label_field::kNum, static_cast<std::int64_t>(thread->threadId));
            sample.message(sample_field::kLabel, label);
            if (thread->nativeId) {
                label.clear();
                label.int64(label_field::kKey, nativeIdKey);
                label.int64(label_field::kNum, *thread->nativeId);
                sample.message(sample_field::kLabel, label);
            }
        }
        if (!stack.empty() && profile.frames[stack.back()].kind == FrameKind::State) {
            // "[io: socket]" -> state "io", wait "io: socket".
            std::string_view wait = profile.frames[stack.back()].name;
            if (wait.size() >= 2 && wait.front() == '[' && wait.back() == ']') wait = wait.substr(1, wait.size() - 2);
            protobuf::Writer label;
            label.int64(label_field::kKey, stateKey);
            label.int64(label_field::kStr, strings.intern(std::string(wait.substr(0, wait.find(':')))));
            sample.message(sample_field::kLabel, label);
            label.clear();
            label.int64(label_field::kKey, waitKey);
            label.int64(label_field::kStr, strings.intern(std::string(wait)));
            sample.message(sample_field::kLabel, label);
        }
        samples.message(profile_field::kSample, sample);
    });

    protobuf::Writer out;
    // Two values per sample; the last one (cpu) is what pprof shows by default.
    out.message(profile_field::kSampleType, valueType(strings, "samples", "count"));
    out.message(profile_field::kSampleType, valueType(strings, "cpu", "nanoseconds"));
    const protobuf::Writer periodType = valueType(strings, "cpu", "nanoseconds");

    std::vector<std::int64_t> comments;
    if (!options.title.empty()) comments.push_back(strings.intern(options.title));
    if (!profile.commandLine.empty()) comments.push_back(strings.intern("command: " + profile.commandLine));
    if (profile.pid != 0) comments.push_back(strings.intern("pid: " + std::to_string(profile.pid)));
    if (!profile.pythonVersion.empty()) comments.push_back(strings.intern("python: " + profile.pythonVersion));
    comments.push_back(strings.intern("sampling ticks: " + std::to_string(profile.samples) +
                                      ", errors: " + std::to_string(profile.errors)));

    std::string body = out.data();
    body += samples.data();
    protobuf::Writer mappings;
    mappings.message(profile_field::kMapping, mapping);
    body += mappings.data();
    body += locations.data();
    body += functions.data();
    protobuf::Writer tail;
    for (const std::string& s : strings.strings()) tail.bytes(profile_field::kStringTable, s);
    if (const std::int64_t t = toNanos(profile.startTime); t != 0) tail.int64(profile_field::kTimeNanos, t);
    tail.int64(profile_field::kDurationNanos, toNanos(profile.duration));
    tail.message(profile_field::kPeriodType, periodType);
    tail.int64(profile_field::kPeriod, intervalNs);
    for (const std::int64_t c : comments) tail.int64(profile_field::kComment, c);
    body += tail.data();
    return body;
}

std::string gzipCompress(std::string_view data) {
    if (data.size() > 0xffffffffu) throw std::runtime_error("pprof: profile larger than 4 GiB");
    z_stream stream{};
    // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
    if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("pprof: zlib deflateInit2 failed");
    }
    std::string out;
    out.resize(deflateBound(&stream, static_cast<uLong>(data.size())) + 32);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (stream.total_out == out.size()) out.resize(out.size() * 2);
        stream.next_out = reinterpret_cast<Bytef*>(out.data() + stream.total_out);
        stream.avail_out = static_cast<uInt>(out.size() - stream.total_out);
        rc = deflate(&stream, Z_FINISH);
    }
    const auto produced = stream.total_out;
    deflateEnd(&stream);
    if (rc != Z_STREAM_END) throw std::runtime_error("pprof: zlib deflate failed");
    out.resize(produced);
    return out;
}

void writePprof(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out) {
    const std::string compressed = gzipCompress(encodePprof(profile, options));
    out.write(compressed.data(), static_cast<std::streamsize>(compressed.size()));
}

}  // namespace pyspy
