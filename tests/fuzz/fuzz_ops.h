// What the memory-image fuzz targets do with an image's roots. make_corpus runs the
// same calls against a live target while recording what they read, so each seed image
// holds exactly the bytes these calls need.
#pragma once

#include <cstdint>

#include "pyspy/process/memory.h"
#include "pyspy/python/frame_walker.h"
#include "pyspy/python/objects.h"

namespace pyspy::fuzz {

// Every reader of ObjectReader on one object; all but one of them fail on any given
// object (a str is no int), which is an expected outcome.
inline std::size_t exerciseObject(const ObjectReader& reader, std::uint64_t object) {
    std::size_t sink = 0;
    if (auto r = reader.typeName(object); r.ok()) sink += r.value().size();
    if (auto r = reader.readString(object); r.ok()) sink += r.value().size();
    if (auto r = reader.readBytesObject(object); r.ok()) sink += r.value().size();
    if (auto r = reader.readInt(object); r.ok()) sink += static_cast<std::size_t>(r.value());
    if (auto r = reader.dictItems(object); r.ok()) {
        std::size_t n = 0;
        for (const auto& [key, value] : r.value()) {
            if (++n > 8) break;
            if (auto s = reader.readString(key); s.ok()) sink += s.value().size();
            sink += value & 1;
        }
    }
    for (const char* key : {"key1", "k1", "__name__"}) {
        if (auto r = reader.dictGetString(object, key); r.ok()) sink += r.value() & 1;
    }
    for (const char* name : {"alpha", "gamma", "attr39", "name"}) {
        if (auto r = reader.instanceAttribute(object, name); r.ok()) sink += r.value() & 1;
    }
    if (auto r = reader.moduleDict(object); r.ok()) sink += r.value() & 1;
    return sink;
}

// Walks the stack from `frame` twice with one cache (the second walk hits it).
inline std::size_t exerciseFrames(const ProcessMemory& memory, const ObjectReader& reader, CodeCache& codes,
                                   std::uint64_t frame) {
    std::size_t sink = 0;
    WalkLimits limits;
    limits.maxDepth = 256;
    FrameWalker walker(memory, reader, codes, limits);
    for (int pass = 0; pass < 2; ++pass) {
        FrameChain partial;
        auto chain = walker.walk(frame, &partial);
        const FrameChain& frames = chain.ok() ? chain.value() : partial;
        for (const auto& f : frames.frames) {
            sink += f.function().size() + f.filename().size() + static_cast<std::size_t>(f.line.value_or(0));
        }
    }
    return sink;
}

}  // namespace pyspy::fuzz
