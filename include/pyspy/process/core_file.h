// CoreFile: an ELF core dump (ET_CORE) of a process, read through a read-only mmap, so
// a core of gigabytes costs address space, not memory. CoreMemory: the core as a
// ProcessMemory, so discovery, the frame walker, object readers and locals read a core
// exactly as they read a live process.
//
// Every byte of the core is untrusted (it may be truncated, corrupted or not a core at
// all): every count, offset and length in it is bounded before use.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pyspy/common/fd.h"
#include "pyspy/process/maps.h"
#include "pyspy/process/memory.h"

namespace pyspy {

// One thread of the core (an NT_PRSTATUS note), x86-64 registers.
struct CoreThread {
    pid_t tid = 0;
    int signal = 0;  // pr_cursig: the signal that stopped it (the crash's, for the crashing thread)
    // user_regs_struct, in its order (r15 … gs): see <sys/user.h>.
    std::array<std::uint64_t, 27> registers{};
    std::uint64_t pc() const { return registers[16]; }  // rip
    std::uint64_t sp() const { return registers[19]; }  // rsp
    std::int64_t syscall() const {                      // orig_rax: the system call it was in, or -1
        return static_cast<std::int64_t>(registers[15]);
    }
    // The system call's six arguments: rdi, rsi, rdx, r10, r8, r9.
    std::array<std::uint64_t, 6> syscallArgs() const {
        return {registers[14], registers[13], registers[12], registers[7], registers[9], registers[8]};
    }
};

// What the core says about why the process died (NT_SIGINFO, else the first thread's
// pr_cursig).
struct CoreCrash {
    int signal = 0;                             // 0: the core does not say (a gcore of a live process)
    int code = 0;                               // si_code (SEGV_MAPERR, …); see codeKnown
    bool codeKnown = false;                     // the core has NT_SIGINFO (code 0 is SI_USER then)
    std::optional<std::uint64_t> faultAddress;  // si_addr, for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP
    pid_t tid = 0;                              // the thread that received it: the first NT_PRSTATUS
};

// One file mapping listed in the core's NT_FILE note.
struct CoreFileMapping {
    std::uint64_t start = 0, end = 0;
    std::uint64_t fileOffset = 0;  // in bytes (the note's page offset × its page size)
    std::string path;              // as the kernel saw it (may end with " (deleted)")
};

// One PT_LOAD segment: [vaddr, vaddr + memSize) of the process; the first fileSize
// bytes of it are in the core at coreOffset (a core omits what the kernel did not dump:
// mostly read-only file mappings, of which it keeps only the first page).
struct CoreSegment {
    std::uint64_t vaddr = 0;
    std::uint64_t memSize = 0;
    std::uint64_t coreOffset = 0;
    std::uint64_t fileSize = 0;  // bounded to what the core file actually holds (truncated cores)
    bool readable = false, writable = false, executable = false;
};

class CoreFile {
  public:
    // Maps and parses the core. Throws FatalError: NoSuchProcess when the file does not
    // exist ("no such core file"), PermissionDenied when it cannot be read, BadCore when
    // it is not an x86-64 ELF core or its headers are cut off or inconsistent.
    static CoreFile open(const std::string& path);
    // Parses a core held in memory (tests, fuzzing); `bytes` must outlive the CoreFile.
    static CoreFile fromBytes(std::span<const std::uint8_t> bytes, std::string name = "<memory>");

    CoreFile(CoreFile&&) noexcept;
    CoreFile& operator=(CoreFile&&) noexcept;
    ~CoreFile();

    const std::string& path() const { return path_; }
    pid_t pid() const { return pid_; }                           // NT_PRPSINFO pr_pid, else the first thread's tid
    const std::string& command() const { return command_; }      // pr_fname (at most 16 bytes)
    const std::string& arguments() const { return arguments_; }  // pr_psargs (at most 80 bytes, cut by the kernel)
    const std::vector<CoreThread>& threads() const { return threads_; }  // first: the crashing thread
    const CoreCrash& crash() const { return crash_; }
    const std::vector<CoreFileMapping>& fileMappings() const { return files_; }
    const std::vector<CoreSegment>& segments() const { return segments_; }  // sorted by vaddr
    // The auxiliary vector (NT_AUXV) value of `type` (AT_ENTRY, AT_PHDR, AT_EXECFN, …).
    std::optional<std::uint64_t> auxv(std::uint64_t type) const;
    // The executable's path as the kernel mapped it: the NT_FILE mapping that holds
    // AT_ENTRY (or AT_PHDR); "" when the core does not say.
    std::string executablePath() const;
    // The process's memory map as /proc/PID/maps would have shown it: one mapping per
    // PT_LOAD segment, with path and file offset from NT_FILE where one covers it
    // (inode 0: a core does not record inodes).
    std::vector<MemoryMapping> maps() const;
    // Whether the core was cut short: some segment's bytes lie beyond its end.
    bool truncated() const { return truncated_; }

    // The core's bytes [offset, offset + size), or an empty span when out of range.
    std::span<const std::uint8_t> bytes(std::uint64_t offset, std::uint64_t size) const;

  private:
    CoreFile() = default;
    void parse();  // throws FatalError(BadCore)

    struct Mapping;  // the mmap, unmapped on destruction
    std::unique_ptr<Mapping> mapping_;
    std::span<const std::uint8_t> data_;
    std::string path_;
    pid_t pid_ = 0;
    std::string command_, arguments_;
    std::vector<CoreThread> threads_;
    CoreCrash crash_;
    std::vector<CoreFileMapping> files_;
    std::vector<CoreSegment> segments_;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv_;
    bool truncated_ = false;
};

// Where to read the bytes of a mapped file that the core omits: the local path of the
// file the core names (`coreFilePath`, as in NT_FILE), or "" when there is none that
// can be trusted (moved, or its build id does not match the core's).
using CoreFileLocator = std::function<std::string(const std::string& coreFilePath)>;

// The memory of a core: a read is served from the PT_LOAD bytes in the core; bytes the
// core omits inside a file mapping are read from that file (CoreFileLocator), each file
// opened once; anything else fails with ReadErrorKind::Fault, whose address is the first
// byte that could not be read. A read may span adjacent segments. Not thread-safe (the
// file descriptors are opened on first use).
class CoreMemory : public ProcessMemory {
  public:
    CoreMemory(std::shared_ptr<const CoreFile> core, CoreFileLocator locator);
    ~CoreMemory() override;
    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    const CoreFile& core() const { return *core_; }

  private:
    // Reads [address, address + size) from the file of the NT_FILE mapping that covers it.
    Status readFromFile(std::uint64_t address, std::uint8_t* out, std::size_t size) const;

    std::shared_ptr<const CoreFile> core_;
    CoreFileLocator locator_;
    mutable std::vector<std::pair<std::string, FD>> files_;  // opened on first use, by NT_FILE path
};

}  // namespace pyspy
