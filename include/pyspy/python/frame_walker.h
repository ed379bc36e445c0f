// FrameWalker: turns a chain of frames in the target into PyFrames, innermost first.
// It starts from any frame (a thread's current frame today; a coroutine's frame for
// asyncio task stacks later), so it knows nothing about threads.
#pragma once

#include <array>

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/objects.h"
#include "pyspy/python/stack.h"

namespace pyspy {

// Decoded code objects by address. A hit is trusted only if the identity fields of
// the code object (type, name, qualname, filename and line-table pointers, first
// line) still hold the values they had when it was decoded, and so does a fingerprint
// of the filename and line-table objects' contents: a code object that was freed and
// replaced by another at the same address then misses. Pointers alone are not enough:
// pymalloc may hand the new code object, its filename and its line table the very
// addresses of the ones just freed (exec of near-identical sources in a loop).
class CodeCache {
  public:
    explicit CodeCache(std::size_t capacity = 16384) : capacity_(capacity) {}

    // `header` holds the first headerSize(layout) bytes of the code object;
    // `fingerprint` hashes the contents it points to (FrameWalker::readFingerprints).
    // The entry decoded from the same header and fingerprint, if there is one (a hit);
    // nullptr otherwise (a miss, counted).
    std::shared_ptr<const CodeInfo> find(const PyLayout& layout, const RemoteView& header, std::uint64_t fingerprint);
    // Decodes the code object whose header is `header` (its names, file and line table,
    // read through `reader`) and caches it under that header and fingerprint.
    Result<std::shared_ptr<const CodeInfo>> decode(const ObjectReader& reader, const RemoteView& header,
                                                   std::uint64_t fingerprint);

    static std::size_t headerSize(const PyLayout& layout);
    // Whether two headers of code objects agree on every identity field but the
    // fingerprint: the same object, or one reallocated in place with the same pointers.
    static bool sameCode(const PyLayout& layout, const RemoteView& a, const RemoteView& b);
    std::size_t size() const { return entries_.size(); }
    std::size_t hits() const { return hits_; }
    void forget(std::uint64_t address) { entries_.erase(address); }  // a decode that proved stale
    std::size_t misses() const { return misses_; }

    // The line of `info` (the entry cached for `address`) at `byteOffset`, memoized.
    std::optional<int> lineFor(std::uint64_t address, const CodeInfo& info, int byteOffset);

  private:
    // The pointer fields that identify a code object (type, name, qualname, filename,
    // line table), its first line and the content fingerprint: a hit must match them all.
    using Identity = std::array<std::uint64_t, 7>;
    static constexpr std::size_t kFirstLineSlot = 5;
    static constexpr std::size_t kFingerprintSlot = 6;
    static Result<Identity> identityOf(const PyLayout& layout, const RemoteView& header);
    static constexpr std::size_t kMaxLinesPerEntry = 32;
    struct Entry {
        Identity identity;
        std::shared_ptr<const CodeInfo> info;
        std::vector<std::pair<int, std::optional<int>>> lines;  // byte offset -> line
    };
    std::size_t capacity_;
    std::unordered_map<std::uint64_t, Entry> entries_;
    std::size_t hits_ = 0;
    std::size_t misses_ = 0;
};

struct WalkLimits {
    std::size_t maxDepth = 2048;  // deeper stacks are cut and marked truncated
    bool evalGroups = false;      // fill FrameChain::evalGroups (--native: costs a vector per walk)
};

struct FrameChain {
    std::vector<PyFrame> frames;  // innermost first
    bool truncated = false;
    // With WalkLimits::evalGroups: how many of `frames` each C-level call of the eval
    // loop runs, innermost first. Before 3.11 every frame has its own call; on 3.11 a
    // call runs frames up to one marked is_entry; on 3.12+ up to a C-stack-owned shim
    // frame (3.14+: interpreter-owned), which the call pushes below its first frame. A
    // group may be empty (the call's frame is still being set up and is hidden).
    std::vector<std::uint32_t> evalGroups;
};

class FrameWalker {
    struct RawFrame {
        std::uint64_t code = 0;
        std::int64_t byteOffset = -1;  // offset of the current instruction in the bytecode, -1 = not started
        bool generator = false;        // owned by a generator/coroutine (3.11+)
        std::uint64_t address = 0;     // the frame itself
    };

  public:
    // The working buffers of one walk. A sampler that walks every tick keeps one and
    // passes it in, so a steady walk allocates nothing but its result; its contents
    // mean nothing between walks.
    struct Scratch {
        std::vector<RawFrame> raw;
        std::vector<std::uint8_t> frameBytes;
        std::vector<std::size_t> groupEnds, slot;
        std::vector<std::uint64_t> distinct, fingerprints;
        std::vector<std::uint8_t> headers, fingerprintBytes;
        std::vector<ReadRequest> requests;
        std::vector<std::shared_ptr<const CodeInfo>> infos;  // per distinct code object
        std::vector<std::size_t> decoded;                    // raw frames whose code was not cached
        std::vector<std::uint8_t> recheck;                   // their frames' code pointers and code headers, live
    };

    // `scratch`, when given, must outlive the walker and not be shared by two walks at once.
    // `live`, when given, is the process's memory itself (`memory` may be a copy): a walk
    // reads a frame's code object after the frame, and without a pause the function may
    // return and its code object be freed and reused meanwhile. So every frame whose code
    // object was not in the CodeCache is read again from `live` once its code is decoded,
    // with that code object's header; if it no longer runs that code, or the header's
    // identity fields changed (freed and reused at the same address), the walk fails
    // rather than report names of other memory. Code already cached was validated
    // against its header.
    // A code object that misses the cache is decoded (strings, line table, fingerprint)
    // from `live` too, never from `memory`: a copy may be older than the header (a
    // SpeculativeMemory copy is taken when the snapshot begins, a header read after it
    // may be live), and a pointer followed into older memory finds what was there before
    // the object it points to was made (a freed string: a name the frame never had).
    FrameWalker(const ProcessMemory& memory, const ObjectReader& reader, CodeCache& codes, WalkLimits limits = {},
                Scratch* scratch = nullptr, const ProcessMemory* live = nullptr);

    // Walks from `frame`: a PyFrameObject* (<=3.10) or an _PyInterpreterFrame* (3.11+).
    // Interpreter-internal shim frames are skipped. A read failure part-way returns
    // the error; the caller may report what it already has via `partial`.
    Result<FrameChain> walk(std::uint64_t frame, FrameChain* partial = nullptr) const;

  private:
    // `groupEnds` (when given): for each end of an eval-loop call's run of frames, the
    // number of raw frames collected before it (see FrameChain::evalGroups).
    // Fills scratch.raw (and scratch.groupEnds when `groupEnds`).
    Status collect(std::uint64_t frame, bool& truncated, bool groupEnds, Scratch& scratch) const;
    // One content fingerprint per code header (`count` headers of `headerSize` bytes at
    // `headers`; see CodeCache) into `out`, read from `memory` in one batch.
    Status readFingerprints(const ProcessMemory& memory, std::span<const std::uint8_t> headers, std::size_t headerSize,
                            std::size_t count, std::uint64_t* out, Scratch& scratch) const;
    // A code object that missed the cache: its fingerprint read again and its entry
    // decoded, both through `decodeReader` (see the constructor).
    Result<std::shared_ptr<const CodeInfo>> decodeMissed(const ObjectReader& decodeReader, const RemoteView& header,
                                                         Scratch& scratch) const;
    // Free-threaded 3.14+: where the copy `index` of a code object's bytecode starts.
    Result<std::uint64_t> threadBytecode(std::uint64_t code, std::int32_t index) const;
    static constexpr std::size_t kFingerprintBytes = 128;

    const ProcessMemory& memory_;
    const ObjectReader& reader_;
    CodeCache& codes_;
    WalkLimits limits_;
    Scratch* scratch_;
    const ProcessMemory* live_;  // see the constructor
    std::size_t frameReadSize_ = 0;
};

}  // namespace pyspy
