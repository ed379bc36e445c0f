#include "pyspy/python/frame_walker.h"

#include <algorithm>
#include <cstring>

namespace pyspy {

namespace {

std::int64_t maxOffset(std::initializer_list<std::int64_t> offsets) {
    std::int64_t m = 0;
    for (auto o : offsets) m = std::max(m, o);
    return m;
}

// The bits of a frame's executable that are the code object's address: 3.14+ keep a
// _PyStackRef there (Py_TAG_BITS are tags), 3.13 may tag its low bit.
std::uint64_t executableMask(const PyLayout& l) {
    if (l.stackref_tag_bits != kAbsent) return ~static_cast<std::uint64_t>(l.stackref_tag_bits);
    return l.major == 3 && l.minor >= 13 ? ~std::uint64_t{1} : ~std::uint64_t{0};
}

}  // namespace

std::optional<int> CodeInfo::lineForOffset(int byteOffset) const {
    if (byteOffset < 0) return firstLineNo;  // the frame has not started running
    return pyspy::lineForOffset(lineTableFormat, lineTable, firstLineNo, byteOffset);
}

std::size_t CodeCache::headerSize(const PyLayout& l) {
    return static_cast<std::size_t>(maxOffset({l.object_type, l.code_name, l.code_qualname, l.code_filename,
                                               l.code_linetable, l.code_firsttraceable, l.code_firstlineno})) +
           8;
}

Result<CodeCache::Identity> CodeCache::identityOf(const PyLayout& l, const RemoteView& header) {
    Identity identity{};
    std::size_t i = 0;  // at most 5 pointers, then the first line, then the fingerprint
    for (std::int64_t offset : {l.object_type, l.code_name, l.code_qualname, l.code_filename, l.code_linetable}) {
        if (offset == kAbsent) continue;
        PYSPY_TRY(identity[i++], header.pointer(offset));
    }
    PYSPY_TRY(auto firstLine, header.field<std::int32_t>(l.code_firstlineno));
    identity[kFirstLineSlot] = static_cast<std::uint32_t>(firstLine);
    return identity;
}

bool CodeCache::sameCode(const PyLayout& layout, const RemoteView& a, const RemoteView& b) {
    const auto first = identityOf(layout, a);
    const auto second = identityOf(layout, b);
    return first.ok() && second.ok() && first.value() == second.value();
}

std::optional<int> CodeCache::lineFor(std::uint64_t address, const CodeInfo& info, int byteOffset) {
    // Decoding a line table is the costliest part of a cached frame; most frames are
    // sampled at a handful of offsets, so remember them per code object.
    auto it = entries_.find(address);
    if (it == entries_.end() || it->second.info.get() != &info) return info.lineForOffset(byteOffset);
    auto& lines = it->second.lines;
    for (const auto& [offset, line] : lines) {
        if (offset == byteOffset) return line;
    }
    const auto line = info.lineForOffset(byteOffset);
    if (lines.size() < kMaxLinesPerEntry) lines.emplace_back(byteOffset, line);
    return line;
}

std::shared_ptr<const CodeInfo> CodeCache::find(const PyLayout& layout, const RemoteView& header,
                                                std::uint64_t fingerprint) {
    auto identity = identityOf(layout, header);
    if (identity.ok()) {
        identity.value()[kFingerprintSlot] = fingerprint;
        if (auto it = entries_.find(header.address());
            it != entries_.end() && it->second.identity == identity.value()) {
            ++hits_;
            return it->second.info;
        }
    }
    ++misses_;
    return nullptr;
}

Result<std::shared_ptr<const CodeInfo>> CodeCache::decode(const ObjectReader& reader, const RemoteView& header,
                                                          std::uint64_t fingerprint) {
    const PyLayout& l = reader.layout();
    PYSPY_TRY(Identity identity, identityOf(l, header));
    identity[kFingerprintSlot] = fingerprint;
    PYSPY_TRY(auto type, header.pointer(l.object_type));
    if (reader.types().code != 0) {
        if (type != reader.types().code) return Err{invalid("not a code object", header.address())};
    } else {
        // No PyCode_Type symbol (stripped build): check the type's name instead.
        PYSPY_TRY(auto typeName, reader.typeName(header.address()));
        if (typeName != "code") return Err{invalid("not a code object", header.address())};
    }
    auto info = std::make_shared<CodeInfo>();
    PYSPY_TRY(auto namePtr, header.pointer(l.code_name));
    PYSPY_TRY(info->name, reader.readString(namePtr));
    if (l.code_qualname != kAbsent) {
        PYSPY_TRY(auto qualnamePtr, header.pointer(l.code_qualname));
        PYSPY_TRY(info->qualname, reader.readString(qualnamePtr));
    } else {
        info->qualname = info->name;
    }
    PYSPY_TRY(auto filenamePtr, header.pointer(l.code_filename));
    PYSPY_TRY(info->filename, reader.readString(filenamePtr));
    info->firstLineNo = static_cast<int>(static_cast<std::int32_t>(identity[kFirstLineSlot] & 0xffffffffu));
    if (l.code_firsttraceable != kAbsent) {
        PYSPY_TRY(info->firstTraceable, header.field<std::int32_t>(l.code_firsttraceable));
    }
    info->lineTableFormat = lineTableFormatFor(l.major, l.minor);
    PYSPY_TRY(auto tablePtr, header.pointer(l.code_linetable));
    PYSPY_TRY(info->lineTable, reader.readBytesObject(tablePtr));

    if (entries_.size() >= capacity_) entries_.clear();  // simple bound; rebuilt from hot code quickly
    entries_[header.address()] = Entry{identity, info, {}};
    return std::shared_ptr<const CodeInfo>(std::move(info));
}

FrameWalker::FrameWalker(const ProcessMemory& memory, const ObjectReader& reader, CodeCache& codes, WalkLimits limits,
                         Scratch* scratch, const ProcessMemory* live)
    : memory_(memory), reader_(reader), codes_(codes), limits_(limits), scratch_(scratch), live_(live) {
    const PyLayout& l = reader.layout();
    frameReadSize_ =
        static_cast<std::size_t>(maxOffset({l.frame_back, l.frame_code, l.frame_lasti, l.frame_prev_instr,
                                            l.frame_instr_ptr, l.frame_owner, l.frame_is_entry, l.frame_tlbc_index})) +
        8;
}

Result<std::uint64_t> FrameWalker::threadBytecode(std::uint64_t code, std::int32_t index) const {
    // code->co_tlbc->entries[index], with the index checked against the array's size.
    const PyLayout& l = reader_.layout();
    constexpr std::int64_t kMaxCopies = 1 << 16;  // one per thread that ran the code
    if (index < 0 || index >= kMaxCopies) return Err{invalid("implausible bytecode copy index", code)};
    PYSPY_TRY(auto array, readPointer(memory_, code + static_cast<std::uint64_t>(l.code_tlbc)));
    if (array == 0) return Err{invalid("code object without bytecode copies", code)};
    PYSPY_TRY(auto size, readValue<std::int64_t>(memory_, array + static_cast<std::uint64_t>(l.codearray_size)));
    if (index >= size || size > kMaxCopies) return Err{invalid("bytecode copy index out of range", array)};
    PYSPY_TRY(auto copy, readPointer(memory_, array + static_cast<std::uint64_t>(l.codearray_entries) +
                                                  static_cast<std::uint64_t>(index) * 8));
    if (copy == 0) return Err{invalid("missing bytecode copy", array)};
    return copy;
}

Status FrameWalker::collect(std::uint64_t frame, bool& truncated, bool groupEnds, Scratch& scratch) const {
    const PyLayout& l = reader_.layout();
    const bool interpreterFrames = l.major == 3 && l.minor >= 11;
    const std::int64_t instrField = l.frame_instr_ptr != kAbsent ? l.frame_instr_ptr : l.frame_prev_instr;
    std::vector<RawFrame>& raw = scratch.raw;
    raw.clear();
    scratch.groupEnds.clear();
    std::vector<std::uint8_t>& buffer = scratch.frameBytes;  // one per walk, not per frame
    buffer.resize(frameReadSize_);
    // A chain read while frames are freed may loop. Brent's cycle detection: compare each
    // address with a checkpoint moved to the current frame at every power of two, so a
    // loop is found within twice its length plus its tail, with no memory per frame.
    std::uint64_t checkpoint = 0;
    std::size_t sinceCheckpoint = 0, checkpointSpan = 1;
    std::uint64_t address = frame;
    while (address != 0) {
        if (raw.size() >= limits_.maxDepth) {
            truncated = true;
            break;
        }
        if (address == checkpoint) return Err{invalid("frame chain loops", address)};
        if (++sinceCheckpoint == checkpointSpan) {
            checkpoint = address;
            sinceCheckpoint = 0;
            checkpointSpan *= 2;
        }
        PYSPY_CHECK(memory_.read(address, buffer.data(), buffer.size()));
        const RemoteView block(address, buffer);
        PYSPY_TRY(auto code, block.pointer(l.frame_code));
        PYSPY_TRY(auto back, block.pointer(l.frame_back));
        bool skip = false;
        bool endsGroup = !interpreterFrames;  // before 3.11 each frame has its own eval-loop call
        RawFrame entry{code, -1, false, address};
        if (interpreterFrames) {
            if (l.frame_owner != kAbsent && (l.owner_cstack != kAbsent || l.owner_interpreter != kAbsent)) {
                PYSPY_TRY(auto owner, block.field<std::int8_t>(l.frame_owner));
                // Not a Python function's frame: the eval loop's entry frame (3.12-3.13:
                // cstack; 3.14+: interpreter; 3.15+ also each thread's base frame) and
                // C-stack shims (3.12-3.14). Their executable is None.
                skip = (l.owner_cstack != kAbsent && owner == l.owner_cstack) ||
                       (l.owner_interpreter != kAbsent && owner == l.owner_interpreter);
                entry.generator = owner == l.owner_generator;
                endsGroup = skip;  // 3.12+: the shim below an eval-loop call's first frame
            }
            if (l.frame_is_entry != kAbsent) {  // 3.11: the call's first frame is marked
                PYSPY_TRY(auto isEntry, block.field<std::uint8_t>(l.frame_is_entry));
                endsGroup = isEntry != 0;
            }
            code &= executableMask(l);
            entry.code = code;
            PYSPY_TRY(auto instr, block.pointer(instrField));
            std::uint64_t bytecode = code + static_cast<std::uint64_t>(l.code_code_adaptive);
            if (l.frame_tlbc_index != kAbsent && l.code_tlbc != kAbsent && !skip && code != 0) {
                // Free-threaded: the frame may run this thread's own copy of the bytecode.
                PYSPY_TRY(auto index, block.field<std::int32_t>(l.frame_tlbc_index));
                if (index != 0) {
                    PYSPY_TRY(bytecode, threadBytecode(code, index));
                }
            }
            entry.byteOffset = instr >= bytecode ? static_cast<std::int64_t>(instr - bytecode) : -1;
        } else {
            PYSPY_TRY(auto lasti, block.field<std::int32_t>(l.frame_lasti));
            const bool codeUnits = l.major == 3 && l.minor == 10;  // 3.10 counts instructions, not bytes
            entry.byteOffset = lasti < 0 ? -1 : (codeUnits ? std::int64_t{lasti} * 2 : lasti);
        }
        if (!skip && code != 0) raw.push_back(entry);
        if (endsGroup && groupEnds) scratch.groupEnds.push_back(raw.size());
        address = back;
    }
    return {};
}

Status FrameWalker::readFingerprints(const ProcessMemory& memory, std::span<const std::uint8_t> headers,
                                     std::size_t headerSize, std::size_t count, std::uint64_t* out,
                                     Scratch& scratch) const {
    // The bytes after the type pointer of the filename and line-table objects: their
    // length, cached hash and first characters. One batched read for the whole stack
    // (replayed with the frames by SpeculativeMemory on later ticks).
    const PyLayout& l = reader_.layout();
    const std::int64_t pointers[] = {l.code_filename, l.code_linetable};
    std::vector<std::uint8_t>& bytes = scratch.fingerprintBytes;
    bytes.resize(count * 2 * kFingerprintBytes);
    std::vector<ReadRequest>& requests = scratch.requests;
    requests.clear();
    for (std::size_t i = 0; i < count; ++i) {
        const RemoteView header(0, headers.subspan(i * headerSize, headerSize));
        for (std::size_t k = 0; k < 2; ++k) {
            PYSPY_TRY(auto object, header.pointer(pointers[k]));
            if (object == 0) return Err{invalid("code object without filename or line table")};
            requests.push_back({object + static_cast<std::uint64_t>(l.object_type) + 8,
                                &bytes[(i * 2 + k) * kFingerprintBytes], kFingerprintBytes});
        }
    }
    if (!memory.readMany(requests).ok()) {
        // A small object near the end of a mapping: read up to the end of its page
        // (mappings are whole pages, so that part is readable if its first byte is).
        constexpr std::uint64_t kPage = 4096;
        for (auto& request : requests) {
            if (memory.read(request.address, request.out, request.size).ok()) continue;
            std::memset(request.out, 0, request.size);
            const auto toPageEnd = static_cast<std::size_t>(kPage - request.address % kPage);
            PYSPY_CHECK(memory.read(request.address, request.out, std::min(request.size, toPageEnd)));
        }
    }
    static_assert(kFingerprintBytes % 8 == 0);
    for (std::size_t i = 0; i < count; ++i) {
        // FNV-1a over 64-bit words: each step is a bijection of the running hash, so two
        // contents that differ in one word never collide.
        std::uint64_t hash = 14695981039346656037ULL;
        for (std::size_t w = 0; w < 2 * kFingerprintBytes; w += 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, &bytes[i * 2 * kFingerprintBytes + w], sizeof word);
            hash = (hash ^ word) * 1099511628211ULL;
        }
        out[i] = hash;
    }
    return {};
}

Result<std::shared_ptr<const CodeInfo>> FrameWalker::decodeMissed(const ObjectReader& decodeReader,
                                                                  const RemoteView& header, Scratch& scratch) const {
    // The fingerprint again, from the memory the entry is decoded from: the identity
    // cached with the entry then describes the very contents it was decoded from.
    std::uint64_t fingerprint = 0;
    PYSPY_CHECK(
        readFingerprints(decodeReader.memory(), header.bytes(), header.bytes().size(), 1, &fingerprint, scratch));
    return codes_.decode(decodeReader, header, fingerprint);
}

Result<FrameChain> FrameWalker::walk(std::uint64_t frame, FrameChain* partial) const {
    FrameChain chain;
    Scratch local;
    Scratch& scratch = scratch_ != nullptr ? *scratch_ : local;
    PYSPY_CHECK(collect(frame, chain.truncated, limits_.evalGroups, scratch));
    const std::vector<RawFrame>& raw = scratch.raw;
    const std::vector<std::size_t>& groupEnds = scratch.groupEnds;

    // One batched read for every code object header of the stack.
    const PyLayout& l = reader_.layout();
    const std::size_t headerSize = CodeCache::headerSize(l);
    // Each distinct code object once: recursion and hot functions repeat them, and the
    // kernel's cost is per range, not per byte.
    std::vector<std::size_t>& slot = scratch.slot;
    slot.resize(raw.size());
    std::vector<std::uint64_t>& distinct = scratch.distinct;
    distinct.clear();
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto it = std::find(distinct.begin(), distinct.end(), raw[i].code);
        slot[i] = static_cast<std::size_t>(it - distinct.begin());
        if (it == distinct.end()) distinct.push_back(raw[i].code);
    }
    std::vector<std::uint8_t>& headers = scratch.headers;
    headers.resize(distinct.size() * headerSize);
    std::vector<ReadRequest>& requests = scratch.requests;
    requests.clear();
    for (std::size_t i = 0; i < distinct.size(); ++i)
        requests.push_back({distinct[i], &headers[i * headerSize], headerSize});
    if (auto status = memory_.readMany(requests); !status.ok()) {
        if (partial) *partial = chain;
        return status.err();
    }

    scratch.fingerprints.resize(distinct.size());
    if (auto status =
            readFingerprints(memory_, headers, headerSize, distinct.size(), scratch.fingerprints.data(), scratch);
        !status.ok()) {
        if (partial) *partial = chain;
        return status.err();
    }

    auto nextGroupEnd = groupEnds.begin();
    std::uint32_t groupSize = 0;
    const auto closeGroupsEndingAt = [&](std::size_t rawCount) {
        for (; nextGroupEnd != groupEnds.end() && *nextGroupEnd == rawCount; ++nextGroupEnd) {
            chain.evalGroups.push_back(groupSize);
            groupSize = 0;
        }
    };
    closeGroupsEndingAt(0);
    chain.frames.reserve(raw.size());
    // Each distinct code object is looked up once, when its first frame comes (a failed
    // lookup ends the walk there, with the frames before it as the partial chain).
    std::vector<std::shared_ptr<const CodeInfo>>& infos = scratch.infos;
    infos.assign(distinct.size(), nullptr);
    std::vector<std::size_t>& decoded = scratch.decoded;
    decoded.clear();
    // What a missed code object is decoded from (see the constructor), made on the first miss.
    const ProcessMemory& decodeMemory = live_ != nullptr ? *live_ : memory_;
    std::optional<ObjectReader> decodeReader;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (limits_.evalGroups && i > 0) closeGroupsEndingAt(i);
        std::shared_ptr<const CodeInfo>& info = infos[slot[i]];
        if (!info) {
            const RemoteView header(raw[i].code,
                                    std::span<const std::uint8_t>(headers).subspan(slot[i] * headerSize, headerSize));
            info = codes_.find(l, header, scratch.fingerprints[slot[i]]);
            if (!info) {
                if (!decodeReader) decodeReader.emplace(decodeMemory, l, reader_.types(), reader_.limits());
                auto found = decodeMissed(*decodeReader, header, scratch);
                if (!found.ok()) {
                    if (partial) *partial = chain;
                    return found.err();
                }
                info = std::move(found.value());
                decoded.push_back(i);
            }
        }
        // 3.11+: a frame that has not reached its first traceable instruction is still
        // being set up; CPython itself hides it (_PyFrame_IsIncomplete).
        if (l.code_firsttraceable != kAbsent && !raw[i].generator &&
            raw[i].byteOffset < std::int64_t{info->firstTraceable} * 2) {
            continue;
        }
        const int offset = static_cast<int>(std::min<std::int64_t>(raw[i].byteOffset, 1 << 30));
        PyFrame frame;
        frame.code = info;
        frame.line = codes_.lineFor(raw[i].code, *info, offset);
        frame.address = raw[i].address;
        frame.codeAddress = raw[i].code;
        chain.frames.push_back(std::move(frame));
        ++groupSize;
    }
    if (limits_.evalGroups) {
        closeGroupsEndingAt(raw.size());
        if (groupSize > 0) chain.evalGroups.push_back(groupSize);  // cut by the depth bound: no end seen
    }
    infos.clear();  // the frames hold their code objects; the scratch need not
    if (live_ != nullptr && !decoded.empty()) {
        // Still running the code decoded from it, and is that code object still the one
        // decoded (the same identity fields: a frame that returned, a new call in its slot
        // and a new code object at the freed one's address would pass the first test
        // alone)? Then that code object was alive all the while (the frame holds a
        // reference), and so were the strings read from it. One batched read for all.
        const std::uint64_t mask = executableMask(l);
        const std::size_t stride = 8 + headerSize;
        std::vector<std::uint8_t>& now = scratch.recheck;
        now.resize(decoded.size() * stride);
        requests.clear();
        for (std::size_t k = 0; k < decoded.size(); ++k) {
            const RawFrame& frame = raw[decoded[k]];
            requests.push_back({frame.address + static_cast<std::uint64_t>(l.frame_code), &now[k * stride], 8});
            requests.push_back({frame.code, &now[k * stride + 8], headerSize});
        }
        const bool read = live_->readMany(requests).ok();
        for (std::size_t k = 0; k < decoded.size(); ++k) {
            const RawFrame& frame = raw[decoded[k]];
            std::uint64_t code = 0;
            std::memcpy(&code, &now[k * stride], 8);
            const RemoteView was(
                frame.code, std::span<const std::uint8_t>(headers).subspan(slot[decoded[k]] * headerSize, headerSize));
            const RemoteView live(frame.code, std::span<const std::uint8_t>(now).subspan(k * stride + 8, headerSize));
            if (!read || (code & mask) != frame.code || !CodeCache::sameCode(l, was, live)) {
                codes_.forget(frame.code);
                if (partial) *partial = FrameChain{};
                return Err{invalid("a frame's code object changed while it was read", frame.address)};
            }
        }
    }
    return chain;
}

}  // namespace pyspy
