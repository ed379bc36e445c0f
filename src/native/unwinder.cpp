#include "pyspy/native/unwinder.h"

#include <elf.h>
#include <libunwind-ptrace.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/process/maps.h"

// libunwind's own search of a remote .eh_frame_hdr table (what _UPT_find_proc_info
// calls for a module it opened); exported by libunwind but declared in no public header.
extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t* info,
                                                  unw_proc_info_t* proc, int needUnwindInfo, void* arg);

namespace pyspy {

namespace {

constexpr std::size_t kMaxVdsoBytes = 64 * 1024;
constexpr std::uint8_t kPcRelSData4 = 0x1b;    // DW_EH_PE_pcrel | DW_EH_PE_sdata4
constexpr std::uint8_t kUData4 = 0x03;         // DW_EH_PE_udata4
constexpr std::uint8_t kDataRelSData4 = 0x3b;  // DW_EH_PE_datarel | DW_EH_PE_sdata4

// The vDSO's .eh_frame_hdr, from the target's own copy of the vDSO (untrusted: every
// offset checked against what was read).
std::optional<NativeUnwinder::VdsoTable> findVdsoTable(pid_t pid) {
    const auto maps = readMaps(pid);
    const auto vdso = std::find_if(maps.begin(), maps.end(), [](const MemoryMapping& m) { return m.path == "[vdso]"; });
    if (vdso == maps.end() || vdso->size() > kMaxVdsoBytes || vdso->size() < sizeof(Elf64_Ehdr)) return std::nullopt;
    std::vector<std::uint8_t> image(vdso->size());
    if (!LiveProcessMemory(pid).read(vdso->start, image.data(), image.size()).ok()) return std::nullopt;
    Elf64_Ehdr header;
    std::memcpy(&header, image.data(), sizeof header);
    if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
        header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phoff > image.size() ||
        header.e_phnum > (image.size() - header.e_phoff) / sizeof(Elf64_Phdr)) {
        return std::nullopt;
    }
    std::optional<std::uint64_t> loadVaddr, ehFrameHdrVaddr;
    for (std::size_t i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr program;
        std::memcpy(&program, image.data() + header.e_phoff + i * sizeof program, sizeof program);
        if (program.p_type == PT_LOAD && !loadVaddr) loadVaddr = program.p_vaddr;
        if (program.p_type == PT_GNU_EH_FRAME) ehFrameHdrVaddr = program.p_vaddr;
    }
    if (!loadVaddr || !ehFrameHdrVaddr || *ehFrameHdrVaddr < *loadVaddr) return std::nullopt;
    const std::uint64_t offset = *ehFrameHdrVaddr - *loadVaddr;  // the vDSO is mapped from its first PT_LOAD
    if (offset + 12 > image.size()) return std::nullopt;
    const std::uint8_t* hdr = image.data() + offset;
    // version 1, then the encodings every vDSO (and every linker) uses for a search table.
    if (hdr[0] != 1 || hdr[1] != kPcRelSData4 || hdr[2] != kUData4 || hdr[3] != kDataRelSData4) return std::nullopt;
    std::uint32_t fdeCount = 0;
    std::memcpy(&fdeCount, hdr + 8, sizeof fdeCount);
    if (fdeCount == 0 || offset + 12 + std::uint64_t{fdeCount} * 8 > image.size()) return std::nullopt;
    return NativeUnwinder::VdsoTable{vdso->start, vdso->end, vdso->start + offset, fdeCount};
}

// What the unwind in progress on this thread knows beyond libunwind: the vDSO table,
// and a copy of the top of the thread's stack. libunwind passes the _UPT handle to
// every accessor, also from inside _UPT's own functions, so this cannot travel in the
// accessor argument; NativeUnwinder::unwind sets it for its duration (CurrentUnwind).
struct UnwindContext {
    const NativeUnwinder::VdsoTable* vdso = nullptr;
    std::uint64_t stackStart = 0;  // the copy holds [stackStart, stackStart + stackSize)
    const std::uint8_t* stack = nullptr;
    std::size_t stackSize = 0;
    // The stopped thread's registers, read with one PTRACE_GETREGS, as libunwind numbers
    // them (UNW_X86_64_RAX .. UNW_X86_64_RIP).
    bool haveRegisters = false;
    std::array<unw_word_t, UNW_X86_64_RIP + 1> registers{};
    pid_t tid = 0;
    NativeUnwinder::ReadOnlyPages* pages = nullptr;  // the unwinder's cache of read-only pages
};
thread_local const UnwindContext* currentUnwind = nullptr;

// _UPT_find_proc_info, except that an address in the vDSO is looked up in its table.
int findProcInfo(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* proc, int needUnwindInfo, void* arg) {
    const NativeUnwinder::VdsoTable* vdso = currentUnwind != nullptr ? currentUnwind->vdso : nullptr;
    if (vdso != nullptr && ip >= vdso->start && ip < vdso->end) {
        unw_dyn_info_t info;
        std::memset(&info, 0, sizeof info);
        info.format = UNW_INFO_FORMAT_REMOTE_TABLE;
        info.start_ip = vdso->start;
        info.end_ip = vdso->end;
        info.u.rti.segbase = vdso->header;  // datarel entries are relative to the header
        info.u.rti.table_data = vdso->header + 12;
        info.u.rti.table_len = vdso->fdeCount * 8 / sizeof(unw_word_t);
        return _Ux86_64_dwarf_search_unwind_table(as, ip, &info, proc, needUnwindInfo, arg);
    }
    return _UPT_find_proc_info(as, ip, proc, needUnwindInfo, arg);
}

// _UPT_access_mem, except that a read of the stack copy costs no ptrace request.
int accessMem(unw_addr_space_t as, unw_word_t address, unw_word_t* value, int write, void* arg) {
    const UnwindContext* c = currentUnwind;
    if (write == 0 && c != nullptr && address >= c->stackStart && address - c->stackStart <= c->stackSize &&
        c->stackSize - (address - c->stackStart) >= sizeof(unw_word_t)) {
        std::memcpy(value, c->stack + (address - c->stackStart), sizeof(unw_word_t));
        return 0;
    }
    if (write == 0 && c != nullptr && c->pages != nullptr && c->pages->read(c->tid, address, value)) return 0;
    return _UPT_access_mem(as, address, value, write, arg);
}

// _UPT_access_reg, except that the general registers come from the one PTRACE_GETREGS
// (_UPT reads each with its own PTRACE_PEEKUSER).
int accessReg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t* value, int write, void* arg) {
    const UnwindContext* c = currentUnwind;
    if (write == 0 && c != nullptr && c->haveRegisters && reg >= 0 && reg <= UNW_X86_64_RIP) {
        *value = c->registers[static_cast<std::size_t>(reg)];
        return 0;
    }
    return _UPT_access_reg(as, reg, value, write, arg);
}

bool readRegisters(pid_t tid, UnwindContext& context) {
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
    context.registers = {regs.rax, regs.rdx, regs.rcx, regs.rbx, regs.rsi, regs.rdi, regs.rbp, regs.rsp, regs.r8,
                         regs.r9,  regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rip};
    context.haveRegisters = true;
    return true;
}

unw_accessors_t accessors() {
    unw_accessors_t a = _UPT_accessors;
    a.find_proc_info = findProcInfo;
    a.access_mem = accessMem;
    a.access_reg = accessReg;
    return a;
}

struct CurrentUnwind {  // sets currentUnwind for one unwind, on every path
    explicit CurrentUnwind(const UnwindContext& context) { currentUnwind = &context; }
    ~CurrentUnwind() { currentUnwind = nullptr; }
    CurrentUnwind(const CurrentUnwind&) = delete;
    CurrentUnwind& operator=(const CurrentUnwind&) = delete;
};

// Copies up to buffer.size() bytes of `tid`'s memory from `address`, page by page so
// that the copy ends where the mapping does (the top of the stack). Returns the bytes copied.
std::size_t copyStack(pid_t tid, std::uint64_t address, std::vector<std::uint8_t>& buffer) {
    constexpr std::size_t kPage = 4096;
    constexpr std::size_t kMaxPages = 16;
    std::array<iovec, kMaxPages + 1> remote{};
    std::size_t count = 0;
    for (std::uint64_t at = address; at < address + buffer.size() && count < remote.size();) {
        const std::uint64_t next = std::min<std::uint64_t>((at / kPage + 1) * kPage, address + buffer.size());
        remote[count++] = iovec{reinterpret_cast<void*>(at), static_cast<std::size_t>(next - at)};
        at = next;
    }
    iovec local{buffer.data(), buffer.size()};
    const ssize_t copied = ::process_vm_readv(tid, &local, 1, remote.data(), count, 0);
    return copied > 0 ? static_cast<std::size_t>(copied) : 0;
}

}  // namespace

void NativeUnwinder::AddressSpaceDeleter::operator()(unw_addr_space* space) const noexcept {
    unw_destroy_addr_space(space);
}

void NativeUnwinder::ThreadInfoDeleter::operator()(void* info) const noexcept {
    _UPT_destroy(info);
}

bool NativeUnwinder::ReadOnlyPages::read(pid_t tid, std::uint64_t address, unw_word_t* value) {
    const std::uint64_t page = address / kPageBytes * kPageBytes;
    const std::uint64_t offset = address - page;
    if (offset + sizeof(unw_word_t) > kPageBytes) return false;  // straddles two pages: rare, left to ptrace
    auto it = pages_.find(page);
    if (it == pages_.end()) {
        const bool readOnly = std::any_of(ranges_.begin(), ranges_.end(), [&](const auto& range) {
            return page >= range.first && page + kPageBytes <= range.second;
        });
        if (!readOnly) return false;
        if (pages_.size() >= kMaxPages) pages_.clear();  // simple bound; the hot pages come back at once
        std::array<std::uint8_t, kPageBytes> bytes;
        iovec local{bytes.data(), bytes.size()};
        iovec remote{reinterpret_cast<void*>(page), bytes.size()};
        if (::process_vm_readv(tid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(bytes.size())) return false;
        it = pages_.emplace(page, bytes).first;
    }
    std::memcpy(value, it->second.data() + offset, sizeof(unw_word_t));
    return true;
}

NativeUnwinder::NativeUnwinder(pid_t pid, NativeUnwindLimits limits) : limits_(limits), vdso_(findVdsoTable(pid)) {
    // Unwind tables and the code libunwind reads lie in read-only file mappings: their
    // pages are kept, so later samples read them without a ptrace request per word.
    for (const MemoryMapping& m : readMaps(pid)) {
        if (m.readable && !m.writable && !m.path.empty() && m.path.front() == '/') {
            pages_.ranges_.emplace_back(m.start, m.end);
        }
    }
    unw_accessors_t table = accessors();  // copied by libunwind
    space_.reset(unw_create_addr_space(&table, 0));
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
    UnwindContext context;
    context.vdso = vdso_ ? &*vdso_ : nullptr;
    context.tid = tid;
    context.pages = &pages_;
    readRegisters(tid, context);  // else libunwind reads them one by one
    const CurrentUnwind current(context);
    if (const int rc = unw_init_remote(&cursor, space_.get(), it->second.get()); rc < 0) {
        threads_.erase(it);  // the thread may be gone: do not keep its state
        return Err{ReadError{ReadErrorKind::Fault, 0,
                             fmt::format("libunwind: cannot start unwinding thread {} ({})", tid, unw_strerror(rc))}};
    }
    // Most of what libunwind reads is the stack above the thread's stack pointer: copy
    // its top in one system call instead of one ptrace request per word.
    if (unw_word_t sp = 0; unw_get_reg(&cursor, UNW_REG_SP, &sp) == 0 && sp != 0) {
        stackCopy_.resize(kStackCopyBytes);
        context.stackStart = sp;
        context.stackSize = copyStack(tid, sp, stackCopy_);
        context.stack = stackCopy_.data();
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
