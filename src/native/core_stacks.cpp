#include "pyspy/native/core_stacks.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/process/core_file.h"

namespace pyspy {

namespace {

constexpr std::size_t kMaxCoreThreads = 65536;  // unwound per core
constexpr std::size_t kMaxModules = 65536;      // a core names as many modules as it likes: bounded
constexpr std::size_t kMaxBuildIdBytes = 1024;  // a build id is 20 bytes; anything longer is not one
constexpr int kDwarfRegSp = 7;                  // x86-64 DWARF register number of rsp
constexpr std::uint64_t kMaxVdsoBytes = 64 * 1024;
constexpr const char* kVdsoName = "[vdso]";  // as /proc/PID/maps, so as the live path, names it

using BuildId = std::vector<std::uint8_t>;

std::optional<BuildId> moduleBuildId(Dwfl_Module* module) {
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int length = dwfl_module_build_id(module, &bits, &vaddr);
    if (length <= 0 || bits == nullptr || static_cast<std::size_t>(length) > kMaxBuildIdBytes) return std::nullopt;
    return BuildId(bits, bits + length);
}

std::optional<BuildId> elfBuildId(Elf* elf) {
    const void* bits = nullptr;
    const ssize_t length = dwelf_elf_gnu_build_id(elf, &bits);
    if (length <= 0 || bits == nullptr || static_cast<std::size_t>(length) > kMaxBuildIdBytes) return std::nullopt;
    const auto* bytes = static_cast<const std::uint8_t*>(bits);
    return BuildId(bytes, bytes + length);
}

// The build id of the ELF file at `path`, read with libelf (none: not readable, no note).
std::optional<BuildId> fileBuildId(const std::string& path) {
    const FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    Elf* elf = ::elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr);
    if (elf == nullptr) return std::nullopt;
    auto id = elfBuildId(elf);
    ::elf_end(elf);
    return id;
}

// What libdwfl's find_elf callback needs, for the duration of the constructor (the only
// place module files are opened: inspectModules opens them all). find_elf has no
// argument of ours, so this travels in a thread_local, as NativeUnwinder's context does.
struct LocateContext {
    const CoreModuleLocator* locator = nullptr;
    Elf* core = nullptr;                                   // for the vDSO's image
    std::unordered_map<std::string, std::string> located;  // module name → local file ("" none)
};
thread_local LocateContext* currentLocate = nullptr;

struct CurrentLocate {  // sets currentLocate for one scope, on every path
    explicit CurrentLocate(LocateContext& context) { currentLocate = &context; }
    ~CurrentLocate() { currentLocate = nullptr; }
    CurrentLocate(const CurrentLocate&) = delete;
    CurrentLocate& operator=(const CurrentLocate&) = delete;
};

std::string locate(LocateContext& context, const std::string& name) {
    if (auto it = context.located.find(name); it != context.located.end()) return it->second;
    std::string local;
    try {
        local = (*context.locator)(name);
    } catch (...) {  // must not cross libdwfl's C frames
        local.clear();
    }
    if (context.located.size() < kMaxModules) context.located.emplace(name, local);
    return local;
}

// The bytes [address, address + size) when the core holds all of them in one PT_LOAD.
char* coreBytes(Elf* core, std::uint64_t address, std::uint64_t size) {
    std::size_t count = 0;
    if (::elf_getphdrnum(core, &count) != 0) return nullptr;
    for (std::size_t i = 0; i < count && i < kMaxModules; ++i) {
        GElf_Phdr phdr;
        if (::gelf_getphdr(core, static_cast<int>(i), &phdr) == nullptr || phdr.p_type != PT_LOAD) continue;
        if (address < phdr.p_vaddr || address - phdr.p_vaddr > phdr.p_filesz ||
            phdr.p_filesz - (address - phdr.p_vaddr) < size) {
            continue;
        }
        Elf_Data* data = ::elf_getdata_rawchunk(core, static_cast<int64_t>(phdr.p_offset + (address - phdr.p_vaddr)),
                                                size, ELF_T_BYTE);
        return data != nullptr ? static_cast<char*>(data->d_buf) : nullptr;
    }
    return nullptr;
}

// libdwfl's find_elf: the file the locator names for the module, unless its build id
// differs from the core's (reported with the module); the vDSO, which is no file, from
// its copy in the core.
int findElf(Dwfl_Module* module, void** /*userdata*/, const char* name, Dwarf_Addr /*base*/, char** fileName,
            Elf** elf) {
    if (currentLocate == nullptr || name == nullptr) return -1;
    if (std::strcmp(name, kVdsoName) == 0) {
        Dwarf_Addr start = 0, end = 0;
        if (dwfl_module_info(module, nullptr, &start, &end, nullptr, nullptr, nullptr, nullptr) == nullptr ||
            end <= start || end - start > kMaxVdsoBytes) {
            return -1;
        }
        if (char* image = coreBytes(currentLocate->core, start, end - start); image != nullptr) {
            *elf = ::elf_memory(image, end - start);  // the core's bytes outlive the session
        }
        return -1;
    }
    if (name[0] != '/') return -1;
    const std::string local = locate(*currentLocate, name);
    if (local.empty()) return -1;
    FD fd(::open(local.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return -1;
    Elf* candidate = ::elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr);
    if (candidate == nullptr) return -1;
    // libdwfl (0.188) does not compare the file's build id with the one reported for the
    // module: another build of the file would give wrong symbols and a wrong unwind.
    const auto coreId = moduleBuildId(module);
    const auto fileId = elfBuildId(candidate);
    if (coreId && fileId && *coreId != *fileId) {
        ::elf_end(candidate);
        return -1;
    }
    *fileName = ::strdup(local.c_str());  // libdwfl frees it
    *elf = candidate;                     // libdwfl owns both
    return fd.release();
}

char* noDebuginfoPath = nullptr;
const Dwfl_Callbacks kCoreCallbacks = {
    findElf,
    dwfl_standard_find_debuginfo,  // separate debug files by build id, next to the file, in /usr/lib/debug
    nullptr,
    &noDebuginfoPath,
};

void initLibelf() {
    // elf_version must precede any other libelf call (also done by the elf layer).
    static const bool ok = ::elf_version(EV_CURRENT) != EV_NONE;
    if (!ok) throw FatalError(ErrorKind::Internal, "libelf: elf_version(EV_CURRENT) failed");
}

// A module of the core: where libdwfl found an ELF image in it, named as the live path
// names it (its NT_FILE path, or "[vdso]"), with the build id the core holds for it.
struct CoreModule {
    std::string name;
    std::uint64_t start = 0, end = 0;
    std::optional<BuildId> buildId;
};

// The modules of the core. libdwfl's own report (dwfl_core_file_report) finds the ELF
// images in the core and their build ids, but names modules by their sonames and opens
// files itself (at the paths in the core, when their build ids match), bypassing any
// locator; so it serves only to find them here, in a session of its own, and the real
// session reports each module anew, named by NT_FILE, its file asked of the locator.
std::vector<CoreModule> discoverModules(Elf* core, const std::string& corePath) {
    static const Dwfl_Callbacks kNoFiles = {
        [](Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**) { return -1; },
        [](Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word, char**) { return -1; },
        nullptr, nullptr};
    NativeSymbolizer::DwflPtr dwfl(dwfl_begin(&kNoFiles));
    if (!dwfl) throw FatalError(ErrorKind::Internal, fmt::format("libdwfl: {}", dwfl_errmsg(-1)));
    dwfl_report_begin(dwfl.get());
    const int reported = dwfl_core_file_report(dwfl.get(), core, nullptr);
    if (reported < 0 || dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) {
        throw FatalError(ErrorKind::BadCore,
                         fmt::format("{}: libdwfl cannot read its modules: {}", corePath, dwfl_errmsg(-1)));
    }
    std::vector<CoreModule> found;
    dwfl_getmodules(
        dwfl.get(),
        [](Dwfl_Module* module, void**, const char* name, Dwarf_Addr, void* arg) -> int {
            auto& out = *static_cast<std::vector<CoreModule>*>(arg);
            Dwarf_Addr start = 0, end = 0;
            dwfl_module_info(module, nullptr, &start, &end, nullptr, nullptr, nullptr, nullptr);
            out.push_back(CoreModule{name != nullptr ? name : "", start, end, moduleBuildId(module)});
            return out.size() < kMaxModules ? DWARF_CB_OK : DWARF_CB_ABORT;
        },
        &found, 0);
    // Named as /proc/PID/maps named them: the file mapped at the image's start, over all
    // the consecutive mappings of that file (as dwfl_linux_proc_report groups them).
    const CoreFile parsed = CoreFile::open(corePath);  // its NT_FILE note, sorted by address
    const auto& files = parsed.fileMappings();
    for (CoreModule& module : found) {
        const auto first = std::find_if(files.begin(), files.end(), [&](const CoreFileMapping& f) {
            return module.start >= f.start && module.start < f.end;
        });
        if (first == files.end()) {
            if (module.name.find("vdso") != std::string::npos) module.name = kVdsoName;
            continue;
        }
        module.name = first->path;
        module.start = first->start;
        module.end = first->end;
        for (auto it = first + 1; it != files.end() && it->path == first->path && it->start >= module.end; ++it) {
            module.end = it->end;
        }
    }
    return found;
}

// What one unwind collects, frame by frame (dwfl_thread_getframes' callback).
struct FrameCollector {
    NativeStack stack;
    std::size_t maxFrames = 0;
    std::uint64_t previousSp = 0;
    bool previousSpKnown = false;
    bool reachedEnd = false;  // a pc of 0: the end of the chain, as the live unwinder treats it
};

int onFrame(Dwfl_Frame* state, void* arg) {
    auto& c = *static_cast<FrameCollector*>(arg);
    if (c.stack.frames.size() >= c.maxFrames) {
        c.stack.stop = fmt::format("native stack cut at {} frames", c.maxFrames);
        return DWARF_CB_ABORT;
    }
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(state, &pc, &activation)) {
        c.stack.stop = "cannot read the registers of a frame";
        return DWARF_CB_ABORT;
    }
    if (pc == 0) {
        c.reachedEnd = true;
        return DWARF_CB_ABORT;
    }
    // A stack grows down: each caller's frame is above its callee's. A step that does not
    // move up is a corrupt unwind (the frame a signal interrupted, an activation, may lie
    // anywhere). An unknown stack pointer is not checked.
    Dwarf_Word sp = 0;
    const bool spKnown = dwfl_frame_reg(state, kDwarfRegSp, &sp) == 0;
    if (!c.stack.frames.empty() && !activation && spKnown && c.previousSpKnown && sp <= c.previousSp) {
        c.stack.stop = "the stack pointer did not increase";
        return DWARF_CB_ABORT;
    }
    c.previousSp = sp;
    c.previousSpKnown = spKnown;
    NativeFrame frame;
    frame.pc = pc;
    // An activation (the innermost frame, or one a signal interrupted) is at its exact pc;
    // any other pc is a return address, whose call is the instruction before it.
    frame.lookupAddress = activation ? pc : pc - 1;
    c.stack.frames.push_back(frame);
    return DWARF_CB_OK;
}

}  // namespace

void CoreNativeStacks::ElfDeleter::operator()(Elf* elf) const noexcept {
    ::elf_end(elf);
}

CoreNativeStacks::CoreNativeStacks(const std::string& corePath, CoreModuleLocator locator, NativeUnwindLimits limits)
    : limits_(limits) {
    initLibelf();
    fd_.reset(::open(corePath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) {
        const int error = errno;
        if (error == ENOENT) throw FatalError(ErrorKind::NoSuchProcess, fmt::format("no such core file: {}", corePath));
        if (error == EACCES || error == EPERM) {
            throw FatalError(ErrorKind::PermissionDenied, fmt::format("cannot read core file {}", corePath));
        }
        throw FatalError(ErrorKind::BadCore,
                         fmt::format("cannot open core file {}: {}", corePath, std::strerror(error)));
    }
    const auto bad = [&](const std::string& why) {
        return FatalError(ErrorKind::BadCore, fmt::format("{}: {}", corePath, why));
    };
    elf_.reset(::elf_begin(fd_.get(), ELF_C_READ_MMAP, nullptr));
    if (!elf_) throw bad(fmt::format("libelf: {}", ::elf_errmsg(-1)));
    GElf_Ehdr header;
    if (::elf_kind(elf_.get()) != ELF_K_ELF || ::gelf_getehdr(elf_.get(), &header) == nullptr ||
        header.e_type != ET_CORE) {
        throw bad("not an ELF core file");
    }
    const auto modules = discoverModules(elf_.get(), corePath);
    NativeSymbolizer::DwflPtr dwfl(dwfl_begin(&kCoreCallbacks));
    if (!dwfl) throw FatalError(ErrorKind::Internal, fmt::format("libdwfl: {}", dwfl_errmsg(-1)));
    LocateContext context{&locator, elf_.get(), {}};
    const CurrentLocate current(context);
    dwfl_report_begin(dwfl.get());
    for (const CoreModule& m : modules) {
        Dwfl_Module* module = dwfl_report_module(dwfl.get(), m.name.c_str(), m.start, m.end);
        // The core's build id: findElf refuses a file with another one.
        if (module != nullptr && m.buildId) {
            dwfl_module_report_build_id(module, m.buildId->data(), m.buildId->size(), 0);
        }
    }
    if (dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) throw bad(fmt::format("libdwfl: {}", dwfl_errmsg(-1)));
    // The threads' registers (NT_PRSTATUS) and a memory reader over the core's PT_LOADs.
    if (dwfl_core_file_attach(dwfl.get(), elf_.get()) < 0) {
        throw bad(fmt::format("libdwfl cannot read its threads: {}", dwfl_errmsg(-1)));
    }
    symbolizer_ = std::make_unique<NativeSymbolizer>(std::move(dwfl));
    inspectModules([&](const std::string& name) { return locate(context, name); });
}

CoreNativeStacks::~CoreNativeStacks() = default;

void CoreNativeStacks::inspectModules(const std::function<std::string(const std::string&)>& locate) {
    struct Walk {
        std::vector<Dwfl_Module*> modules;
    } walk;
    dwfl_getmodules(
        symbolizer_->session(),
        [](Dwfl_Module* module, void**, const char*, Dwarf_Addr, void* arg) -> int {
            auto& w = *static_cast<Walk*>(arg);
            w.modules.push_back(module);
            return w.modules.size() < kMaxModules ? DWARF_CB_OK : DWARF_CB_ABORT;
        },
        &walk, 0);
    for (Dwfl_Module* module : walk.modules) {
        Dwarf_Addr start = 0, end = 0;
        const char* rawName = dwfl_module_info(module, nullptr, &start, &end, nullptr, nullptr, nullptr, nullptr);
        Module m{rawName != nullptr ? std::string(rawName) : std::string(), start, end, false};
        // The core's build id (what libdwfl read from the module's first page in the
        // core), taken before the file is opened: after, it is the file's.
        const auto coreId = moduleBuildId(module);
        Dwarf_Addr bias = 0;
        Elf* elf = dwfl_module_getelf(module, &bias);  // opens the file (findElf), once
        m.hasElf = elf != nullptr;
        if (!m.name.empty() && m.name.front() == '/') {  // a file, not the vDSO
            const std::string local = locate(m.name);
            if (elf == nullptr && local.empty()) {
                problems_.push_back(fmt::format("{}: no local file", m.name));
            } else if (elf == nullptr) {
                // findElf refused it (another build) or libdwfl could not read it: say which.
                const auto fileId = fileBuildId(local);
                if (coreId && fileId && *coreId != *fileId) {
                    problems_.push_back(
                        fmt::format("{}: {} is another build (its build id differs from the core's)", m.name, local));
                } else {
                    problems_.push_back(fmt::format("{}: {}: {}", m.name, local, dwfl_errmsg(-1)));
                }
            }
        }
        modules_.push_back(std::move(m));
    }
}

const CoreNativeStacks::Module* CoreNativeStacks::moduleAt(std::uint64_t address) const {
    const auto it = std::find_if(modules_.begin(), modules_.end(),
                                 [&](const Module& m) { return address >= m.start && address < m.end; });
    return it != modules_.end() ? &*it : nullptr;
}

Result<NativeStack> CoreNativeStacks::unwind(pid_t tid) {
    if (!unwound_) unwindAll();
    const auto it = stacks_.find(tid);
    if (it == stacks_.end()) {
        return Err{ReadError{ReadErrorKind::Fault, 0, fmt::format("libdwfl: no thread {} in the core", tid)}};
    }
    return it->second;
}

void CoreNativeStacks::unwindAll() {
    unwound_ = true;
    dwfl_getthreads(
        symbolizer_->session(),
        [](Dwfl_Thread* thread, void* arg) -> int {
            auto& self = *static_cast<CoreNativeStacks*>(arg);
            self.stacks_.emplace(dwfl_thread_tid(thread), self.unwindThread(thread));
            // Bounded: a core lists as many threads as it has NT_PRSTATUS notes.
            return self.stacks_.size() < kMaxCoreThreads ? DWARF_CB_OK : DWARF_CB_ABORT;
        },
        this);
}

Result<NativeStack> CoreNativeStacks::unwindThread(Dwfl_Thread* thread) {
    const pid_t tid = dwfl_thread_tid(thread);
    FrameCollector c;
    c.maxFrames = limits_.maxFrames;
    const int rc = dwfl_thread_getframes(thread, onFrame, &c);
    if (rc == 0 || c.reachedEnd) {
        c.stack.complete = true;
        c.stack.stop.reset();
    } else if (rc < 0) {
        const std::string why = dwfl_errmsg(-1);
        if (c.stack.frames.empty()) {
            return Err{ReadError{ReadErrorKind::Fault, 0,
                                 fmt::format("libdwfl: cannot start unwinding thread {} ({})", tid, why)}};
        }
        // Past a module whose file is missing there are no unwind tables: say where.
        const Module* last = moduleAt(c.stack.frames.back().lookupAddress);
        if (last != nullptr && !last->hasElf) {
            c.stack.stop =
                fmt::format("unwinding stopped in {}, which has no local file: {}", moduleBaseName(last->name), why);
        } else {
            c.stack.stop = fmt::format("unwinding stopped: {}", why);
        }
    }
    if (c.stack.frames.empty()) {
        return Err{ReadError{ReadErrorKind::Fault, 0, fmt::format("libdwfl: no frame for thread {}", tid)}};
    }
    return std::move(c.stack);
}

std::shared_ptr<const NativeSymbol> CoreNativeStacks::symbolize(std::uint64_t address) {
    return symbolizer_->symbolize(address);
}

}  // namespace pyspy
