// pprof export: a gzip-compressed profile.proto (github.com/google/pprof,
// proto/profile.proto), as `go tool pprof` and most profile viewers read it.
// Format notes in docs/formats.md (## pprof).
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

// Writes the profile, gzip-compressed, to `out`. Throws std::runtime_error when zlib
// fails (it does not check `out`: the caller does).
void writePprof(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out);

// The uncompressed profile.proto message that writePprof compresses.
std::string encodePprof(const RecordedProfile& profile, const ExportOptions& options);

// `data` gzip-compressed (RFC 1952, what pprof expects of a .pb.gz file).
std::string gzipCompress(std::string_view data);

// `text` with every byte that is not part of a well-formed UTF-8 sequence replaced by
// U+FFFD: protobuf `string` fields must be UTF-8 (strict decoders reject the message).
std::string validUtf8(std::string_view text);

}  // namespace pyspy
