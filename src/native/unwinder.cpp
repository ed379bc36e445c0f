#include "pyspy/native/unwinder.h"

#include <libunwind-ptrace.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "pyspy/common/error.h"

namespace pyspy {

void NativeUnwinder::AddressSpaceDeleter::operator()(unw_addr_space* space) const noexcept {
    unw_destroy_addr_space(space);
}

void NativeUnwinder::ThreadInfoDeleter::operator()(void* info) const noexcept {
    _UPT_destroy(info);
}

NativeUnwinder::NativeUnwinder(NativeUnwindLimits limits)
    : limits_(limits), space_(unw_create_addr_space(&_UPT_accessors, 0)) {
    if (!space_) throw FatalError(ErrorKind::Internal, "libunwind: cannot create an address space");
    // Unwind tables found for one thread serve the others (one process, one address space).
    unw_set_caching_policy(space_.get(), UNW_CACHE_GLOBAL);
}

NativeUnwinder::~NativeUnwinder() = default;

void NativeUnwinder::retainThreads(const std::vector<pid_t>& live) {
    const std::set<pid_t> keep(live.begin(), live.end());
    std::erase_if(threads_, [&](const auto& entry) { return keep.count(entry.first) == 0; });
}

Result<NativeStack> NativeUnwinder::unwind(pid_t tid) {
    auto it = threads_.find(tid);
    if (it == threads_.end()) {
        if (threads_.size() >= kMaxThreadInfos) threads_.clear();
        ThreadInfo info(_UPT_create(tid));
        if (!info) return Err{invalid(fmt::format("libunwind: no state for thread {}", tid))};
        it = threads_.emplace(tid, std::move(info)).first;
    }
    unw_cursor_t cursor;
    if (const int rc = unw_init_remote(&cursor, space_.get(), it->second.get()); rc < 0) {
        threads_.erase(it);  // the thread may be gone: do not keep its state
        return Err{ReadError{ReadErrorKind::Fault, 0,
                             fmt::format("libunwind: cannot start unwinding thread {} ({})", tid, unw_strerror(rc))}};
    }
    NativeStack stack;
    unw_word_t previousSp = 0;
    bool previousWasSignal = false;
    for (;;) {
        if (stack.frames.size() >= limits_.maxFrames) {
            stack.stop = fmt::format("native stack cut at {} frames", limits_.maxFrames);
            break;
        }
        unw_word_t ip = 0, sp = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cursor, UNW_REG_SP, &sp) < 0) {
            stack.stop = "cannot read the registers of a frame";
            break;
        }
        if (ip == 0) {  // the end of the chain on some ABIs
            stack.complete = true;
            break;
        }
        // A stack grows down: each caller's frame is above its callee's. A step that does
        // not move up is a corrupt unwind that could loop.
        if (!stack.frames.empty() && sp <= previousSp && !previousWasSignal) {
            stack.stop = "the stack pointer did not increase";
            break;
        }
        NativeFrame frame;
        frame.pc = ip;
        // A caller's pc is a return address: the call is the instruction before it. The
        // frame interrupted by a signal resumes at its exact pc.
        frame.lookupAddress = (!stack.frames.empty() && !previousWasSignal && ip > 0) ? ip - 1 : ip;
        stack.frames.push_back(frame);
        previousSp = sp;
        previousWasSignal = unw_is_signal_frame(&cursor) > 0;
        const int step = unw_step(&cursor);
        if (step == 0) {
            stack.complete = true;
            break;
        }
        if (step < 0) {
            stack.stop = fmt::format("unwinding stopped: {}", unw_strerror(step));
            break;
        }
    }
    return stack;
}

}  // namespace pyspy
