// NativeUnwinder: the native call stack of a thread stopped by ptrace (ThreadPause),
// with libunwind's remote (ptrace) unwinding. Registers and memory are read from the
// stopped thread; unwind tables come from the target's ELF files (.eh_frame,
// .debug_frame), so it works without frame pointers.
//
// Must be used on the thread that paused the target (ptrace requests are only
// accepted from the tracer thread), while the target thread is stopped.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/native/native_frame.h"

struct unw_addr_space;  // libunwind's opaque address space (unw_addr_space_t)

namespace pyspy {

struct NativeUnwindLimits {
    std::size_t maxFrames = 256;  // deeper stacks are cut (NativeStack::complete false)
};

struct NativeStack {
    std::vector<NativeFrame> frames;  // innermost first; symbols not filled yet
    bool complete = false;            // the unwind reached the outermost frame
    std::optional<std::string> stop;  // why it stopped early (depth bound, failed step, SP not increasing)
};

class NativeUnwinder {
  public:
    // Unwinds threads of `pid`. Throws FatalError(Internal) if libunwind cannot create
    // an address space.
    explicit NativeUnwinder(pid_t pid, NativeUnwindLimits limits = {});
    ~NativeUnwinder();
    NativeUnwinder(const NativeUnwinder&) = delete;
    NativeUnwinder& operator=(const NativeUnwinder&) = delete;

    // Unwinds the stopped thread `tid`. Fails only when not even the first frame can be
    // read (the thread is gone or not stopped by us); a stop part-way is reported in
    // NativeStack::stop with the frames read so far.
    Result<NativeStack> unwind(pid_t tid);

    // Forgets the per-thread libunwind state of threads not in `live` (exited threads).
    void retainThreads(const std::vector<pid_t>& live);

    // The vDSO's unwind table in the target (its .eh_frame_hdr), found once: the vDSO
    // is no file, so libunwind's ptrace accessors cannot find its unwind info, and a
    // thread in clock_gettime() would be unwound by guesswork.
    struct VdsoTable {
        std::uint64_t start = 0, end = 0;  // the [vdso] mapping
        std::uint64_t header = 0;          // runtime address of .eh_frame_hdr
        std::uint64_t fdeCount = 0;
    };

    // Pages of the target's read-only file mappings (as mapped when the unwinder was
    // made) that libunwind read: unwind tables, mostly. Bounded; a mapping replaced
    // later at the same address (dlclose + dlopen) would be read stale: a wrong unwind
    // that the merge then reports, never a crash.
    class ReadOnlyPages {
      public:
        // The word at `address`, when it lies in one read-only page (read once, with
        // process_vm_readv of `tid`); false to let ptrace read it.
        bool read(pid_t tid, std::uint64_t address, unsigned long* value);

      private:
        friend class NativeUnwinder;
        static constexpr std::size_t kPageBytes = 4096;
        static constexpr std::size_t kMaxPages = 1024;  // 4 MiB
        std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges_;
        std::unordered_map<std::uint64_t, std::array<std::uint8_t, kPageBytes>> pages_;
    };

  private:
    struct AddressSpaceDeleter {
        void operator()(unw_addr_space* space) const noexcept;
    };
    struct ThreadInfoDeleter {  // the _UPT_create() handle of one thread
        void operator()(void* info) const noexcept;
    };
    using ThreadInfo = std::unique_ptr<void, ThreadInfoDeleter>;
    static constexpr std::size_t kMaxThreadInfos = 4096;

    NativeUnwindLimits limits_;
    std::optional<VdsoTable> vdso_;
    std::unique_ptr<unw_addr_space, AddressSpaceDeleter> space_;
    // One _UPT handle per thread, kept across samples: it caches the ELF image of the
    // module it last unwound through, which a fresh handle would map again each time.
    std::unordered_map<pid_t, ThreadInfo> threads_;
    // The top of the stack of the thread being unwound (see unwind()), reused.
    static constexpr std::size_t kStackCopyBytes = 64 * 1024;
    std::vector<std::uint8_t> stackCopy_;
    ReadOnlyPages pages_;
};

}  // namespace pyspy
