#include "pyspy/output/profile_writer.h"

#include "pyspy/output/atomic_file.h"
#include "pyspy/output/chrome_trace.h"
#include "pyspy/output/collapsed.h"
#include "pyspy/output/flamegraph.h"
#include "pyspy/output/pprof.h"
#include "pyspy/output/speedscope.h"

namespace pyspy {

std::optional<ProfileFormat> parseProfileFormat(std::string_view name) {
    if (name == "flamegraph") return ProfileFormat::FlameGraph;
    if (name == "speedscope") return ProfileFormat::Speedscope;
    if (name == "raw") return ProfileFormat::Raw;
    if (name == "chrometrace") return ProfileFormat::ChromeTrace;
    if (name == "pprof") return ProfileFormat::Pprof;
    return std::nullopt;
}

const char* formatName(ProfileFormat format) {
    switch (format) {
        case ProfileFormat::FlameGraph: return "flamegraph";
        case ProfileFormat::Speedscope: return "speedscope";
        case ProfileFormat::Raw: return "raw";
        case ProfileFormat::ChromeTrace: return "chrometrace";
        case ProfileFormat::Pprof: return "pprof";
    }
    return "?";
}

const char* defaultExtension(ProfileFormat format) {
    switch (format) {
        case ProfileFormat::FlameGraph: return "svg";
        case ProfileFormat::Speedscope: return "speedscope.json";
        case ProfileFormat::Raw: return "txt";
        case ProfileFormat::ChromeTrace: return "trace.json";
        case ProfileFormat::Pprof: return "pb.gz";
    }
    return "out";
}

bool needsTimeline(ProfileFormat format) { return format == ProfileFormat::ChromeTrace; }

void writeProfile(ProfileFormat format, const RecordedProfile& profile, const ExportOptions& options,
                  std::ostream& out) {
    switch (format) {
        case ProfileFormat::FlameGraph: writeFlameGraph(profile, options, out); break;
        case ProfileFormat::Speedscope: writeSpeedscope(profile, options, out); break;
        case ProfileFormat::Raw: writeCollapsed(profile, options, out); break;
        case ProfileFormat::ChromeTrace: writeChromeTrace(profile, options, out); break;
        case ProfileFormat::Pprof: writePprof(profile, options, out); break;
    }
}

void writeProfileFile(ProfileFormat format, const RecordedProfile& profile, const ExportOptions& options,
                      const std::string& path) {
    AtomicFile file(path);
    writeProfile(format, profile, options, file.stream());
    file.commit();
}

}  // namespace pyspy
