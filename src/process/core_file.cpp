#include "pyspy/process/core_file.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iterator>
#include <limits>
#include <string_view>
#include <utility>

#include "pyspy/common/error.h"

namespace pyspy {

static_assert(std::endian::native == std::endian::little, "the core is read as x86-64 little-endian structs");

struct CoreFile::Mapping {
    void* address = nullptr;
    std::size_t size = 0;
    Mapping(void* a, std::size_t s) : address(a), size(s) {}
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { ::munmap(address, size); }
};

namespace {

// Bounds on what the core declares, far above what a real process has.
constexpr std::uint64_t kMaxProgramHeaders = 1 << 20;  // extended numbering (PN_XNUM) allows more than 65535
constexpr std::uint64_t kMaxFileMappings = 1 << 20;
constexpr std::uint64_t kMaxAuxvEntries = 4096;

[[noreturn]] void bad(const std::string& message) {
    throw FatalError(ErrorKind::BadCore, message);
}

// A trivially copyable T at `offset` of `data`, or nothing when it does not fit.
template <typename T>
std::optional<T> readAt(std::span<const std::uint8_t> data, std::uint64_t offset) {
    if (offset > data.size() || sizeof(T) > data.size() - offset) return std::nullopt;
    T value;
    std::memcpy(&value, data.data() + offset, sizeof(T));
    return value;
}

// A string of at most `capacity` bytes, cut at its first NUL.
std::string boundedString(const char* chars, std::size_t capacity) {
    return {chars, ::strnlen(chars, capacity)};
}

const char* describeElfType(std::uint16_t type) {
    switch (type) {
        case ET_EXEC:
            return "an ELF executable";
        case ET_DYN:
            return "an ELF shared object or PIE executable";
        case ET_REL:
            return "an ELF relocatable object";
        default:
            return "an ELF file of an unknown type";
    }
}

bool hasFaultAddress(int signal) {
    return signal == SIGSEGV || signal == SIGBUS || signal == SIGILL || signal == SIGFPE || signal == SIGTRAP;
}

// The parse of a note segment's notes (only the ones named "CORE").
struct NoteParser {
    const std::string& path;
    std::vector<CoreThread>& threads;
    std::vector<CoreFileMapping>& files;
    std::vector<std::pair<std::uint64_t, std::uint64_t>>& auxv;
    std::optional<elf_prpsinfo> psinfo;
    std::optional<siginfo_t> siginfo;

    void note(std::uint32_t type, std::span<const std::uint8_t> desc) {
        switch (type) {
            case NT_PRSTATUS:
                if (desc.size() >= sizeof(elf_prstatus)) {
                    elf_prstatus status;
                    std::memcpy(&status, desc.data(), sizeof status);
                    CoreThread thread;
                    thread.tid = status.pr_pid;
                    thread.signal = status.pr_cursig;
                    static_assert(sizeof status.pr_reg == sizeof thread.registers);
                    std::memcpy(thread.registers.data(), &status.pr_reg, sizeof thread.registers);
                    threads.push_back(thread);
                }
                break;
            case NT_PRPSINFO:
                if (desc.size() >= sizeof(elf_prpsinfo)) {
                    psinfo.emplace();
                    std::memcpy(&*psinfo, desc.data(), sizeof(elf_prpsinfo));
                }
                break;
            case NT_SIGINFO:
                // si_signo, si_errno, si_code at least; the rest (si_addr) zero when cut.
                if (desc.size() >= 3 * sizeof(int)) {
                    siginfo.emplace();  // value-initialized: zero
                    std::memcpy(&*siginfo, desc.data(), std::min(desc.size(), sizeof(siginfo_t)));
                }
                break;
            case NT_AUXV:
                auxv.clear();
                for (std::uint64_t i = 0; i < std::min<std::uint64_t>(desc.size() / 16, kMaxAuxvEntries); ++i) {
                    const auto key = readAt<std::uint64_t>(desc, i * 16);
                    const auto value = readAt<std::uint64_t>(desc, i * 16 + 8);
                    if (*key == AT_NULL) break;
                    auxv.emplace_back(*key, *value);
                }
                break;
            case NT_FILE:
                fileNote(desc);
                break;
            default:
                break;
        }
    }

    // count, page size, count × {start, end, page offset}, then count NUL-terminated paths.
    void fileNote(std::span<const std::uint8_t> desc) {
        const auto count = readAt<std::uint64_t>(desc, 0);
        const auto pageSize = readAt<std::uint64_t>(desc, 8);
        if (!count || !pageSize) bad(path + ": bad NT_FILE note: header cut off");
        if (*count > kMaxFileMappings || *count > (desc.size() - 16) / 24) {
            bad(path + ": bad NT_FILE note: " + std::to_string(*count) + " mappings do not fit in its " +
                std::to_string(desc.size()) + " bytes");
        }
        std::uint64_t names = 16 + *count * 24;
        for (std::uint64_t i = 0; i < *count; ++i) {
            CoreFileMapping mapping;
            mapping.start = *readAt<std::uint64_t>(desc, 16 + i * 24);
            mapping.end = *readAt<std::uint64_t>(desc, 16 + i * 24 + 8);
            const std::uint64_t pageOffset = *readAt<std::uint64_t>(desc, 16 + i * 24 + 16);
            if (mapping.end < mapping.start) bad(path + ": bad NT_FILE note: a mapping ends before it starts");
            if (*pageSize != 0 && pageOffset > std::numeric_limits<std::uint64_t>::max() / *pageSize) {
                bad(path + ": bad NT_FILE note: a file offset overflows");
            }
            mapping.fileOffset = pageOffset * *pageSize;
            const auto* chars = reinterpret_cast<const char*>(desc.data() + names);
            const std::size_t left = desc.size() - names;
            const std::size_t length = ::strnlen(chars, left);
            if (length == left) bad(path + ": bad NT_FILE note: paths cut off");
            mapping.path.assign(chars, length);
            names += length + 1;
            files.push_back(std::move(mapping));
        }
    }
};

constexpr std::uint64_t align4(std::uint64_t n) {
    return (n + 3) & ~std::uint64_t{3};
}

}  // namespace

CoreFile::CoreFile(CoreFile&&) noexcept = default;
CoreFile& CoreFile::operator=(CoreFile&&) noexcept = default;
CoreFile::~CoreFile() = default;

CoreFile CoreFile::open(const std::string& path) {
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR) throw FatalError(ErrorKind::NoSuchProcess, "no such core file: " + path);
        if (err == EACCES || err == EPERM) {
            throw FatalError(ErrorKind::PermissionDenied, path + ": cannot read the core file: permission denied");
        }
        bad("cannot open " + path + ": " + std::strerror(err));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) bad("cannot stat " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) bad(path + " is not a core file (not a regular file)");
    if (st.st_size == 0) bad(path + ": empty file");
    const auto size = static_cast<std::size_t>(st.st_size);
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (address == MAP_FAILED) {
        throw FatalError(ErrorKind::Internal, "cannot map " + path + ": " + std::strerror(errno));
    }
    CoreFile core;
    core.mapping_ = std::make_unique<Mapping>(address, size);
    core.data_ = {static_cast<const std::uint8_t*>(address), size};
    core.path_ = path;
    core.parse();
    return core;
}

CoreFile CoreFile::fromBytes(std::span<const std::uint8_t> bytes, std::string name) {
    CoreFile core;
    core.data_ = bytes;
    core.path_ = std::move(name);
    if (bytes.empty()) bad(core.path_ + ": empty file");
    core.parse();
    return core;
}

void CoreFile::parse() {
    const auto header = readAt<Elf64_Ehdr>(data_, 0);
    if (data_.size() < SELFMAG || std::memcmp(data_.data(), ELFMAG, SELFMAG) != 0) bad(path_ + " is not an ELF file");
    if (!header) bad(path_ + ": truncated core: ELF header cut off");
    if (header->e_ident[EI_CLASS] != ELFCLASS64) bad(path_ + " is not a core file (not a 64-bit ELF file)");
    if (header->e_ident[EI_DATA] != ELFDATA2LSB) bad(path_ + " is not a core file (not a little-endian ELF file)");
    if (header->e_type != ET_CORE) bad(path_ + " is not a core file (" + describeElfType(header->e_type) + ")");
    if (header->e_machine != EM_X86_64) {
        bad(path_ + ": not an x86-64 core (ELF machine " + std::to_string(header->e_machine) + ")");
    }
    if (header->e_phentsize != sizeof(Elf64_Phdr)) {
        bad(path_ + ": bad core: program header size " + std::to_string(header->e_phentsize));
    }
    // More than 65534 segments: e_phnum is PN_XNUM and the count is section 0's sh_info.
    std::uint64_t count = header->e_phnum;
    if (count == PN_XNUM) {
        const auto section0 = readAt<Elf64_Shdr>(data_, header->e_shoff);
        if (!section0) bad(path_ + ": truncated core: section header cut off");
        count = section0->sh_info;
    }
    if (count > kMaxProgramHeaders) bad(path_ + ": bad core: " + std::to_string(count) + " program headers");
    if (header->e_phoff > data_.size() || count > (data_.size() - header->e_phoff) / sizeof(Elf64_Phdr)) {
        bad(path_ + ": truncated core: program headers cut off");
    }

    std::vector<CoreThread> threads;
    NoteParser notes{path_, threads, files_, auxv_, std::nullopt, std::nullopt};
    for (std::uint64_t i = 0; i < count; ++i) {
        const auto phdr = *readAt<Elf64_Phdr>(data_, header->e_phoff + i * sizeof(Elf64_Phdr));
        // What of [p_offset, p_offset + p_filesz) the file holds.
        const std::uint64_t available = phdr.p_offset > data_.size() ? 0 : data_.size() - phdr.p_offset;
        if (phdr.p_type == PT_LOAD) {
            CoreSegment segment;
            segment.vaddr = phdr.p_vaddr;
            segment.memSize = std::min(phdr.p_memsz, std::numeric_limits<std::uint64_t>::max() - phdr.p_vaddr);
            segment.coreOffset = phdr.p_offset;
            const std::uint64_t declared = std::min(phdr.p_filesz, segment.memSize);
            segment.fileSize = std::min(declared, available);
            if (segment.fileSize < declared) truncated_ = true;
            segment.readable = (phdr.p_flags & PF_R) != 0;
            segment.writable = (phdr.p_flags & PF_W) != 0;
            segment.executable = (phdr.p_flags & PF_X) != 0;
            if (segment.memSize > 0) segments_.push_back(segment);
        } else if (phdr.p_type == PT_NOTE) {
            if (phdr.p_filesz > available) truncated_ = true;
            const auto segment = data_.subspan(phdr.p_offset > data_.size() ? data_.size() : phdr.p_offset,
                                               std::min(phdr.p_filesz, available));
            // Every note is at least 12 bytes, so the walk ends within size / 12 steps.
            std::uint64_t at = 0;
            while (segment.size() - at >= sizeof(Elf64_Nhdr)) {
                const auto note = *readAt<Elf64_Nhdr>(segment, at);
                const std::uint64_t name = at + sizeof(Elf64_Nhdr);
                const std::uint64_t desc = name + align4(note.n_namesz);
                const std::uint64_t next = desc + align4(note.n_descsz);
                if (desc + note.n_descsz > segment.size()) {
                    bad(path_ + ": bad core: a note's size (" + std::to_string(note.n_descsz) +
                        " bytes) runs past its segment" + (phdr.p_filesz > available ? " (truncated core)" : ""));
                }
                const std::string_view noteName(
                    reinterpret_cast<const char*>(segment.data() + name),
                    ::strnlen(reinterpret_cast<const char*>(segment.data() + name), note.n_namesz));
                if (noteName == "CORE") notes.note(note.n_type, segment.subspan(desc, note.n_descsz));
                at = std::min<std::uint64_t>(next, segment.size());
            }
        }
    }
    if (threads.empty() && truncated_) bad(path_ + ": truncated core: its notes (the threads) are cut off");
    if (threads.empty()) bad(path_ + ": core has no NT_PRSTATUS note (no threads)");
    threads_ = std::move(threads);

    std::sort(segments_.begin(), segments_.end(),
              [](const CoreSegment& a, const CoreSegment& b) { return a.vaddr < b.vaddr; });
    std::sort(files_.begin(), files_.end(),
              [](const CoreFileMapping& a, const CoreFileMapping& b) { return a.start < b.start; });

    crash_.tid = threads_.front().tid;
    if (notes.siginfo) {
        crash_.signal = notes.siginfo->si_signo;
        crash_.code = notes.siginfo->si_code;
        crash_.codeKnown = true;
        if (hasFaultAddress(crash_.signal)) {
            crash_.faultAddress = reinterpret_cast<std::uintptr_t>(notes.siginfo->si_addr);
        }
    } else {
        crash_.signal = threads_.front().signal;
    }
    pid_ = threads_.front().tid;
    if (notes.psinfo) {
        if (notes.psinfo->pr_pid > 0) pid_ = notes.psinfo->pr_pid;
        command_ = boundedString(notes.psinfo->pr_fname, sizeof notes.psinfo->pr_fname);
        arguments_ = boundedString(notes.psinfo->pr_psargs, sizeof notes.psinfo->pr_psargs);
        // The kernel joins the arguments with spaces, the last one too.
        while (!arguments_.empty() && arguments_.back() == ' ') arguments_.pop_back();
    }
}

std::optional<std::uint64_t> CoreFile::auxv(std::uint64_t type) const {
    for (const auto& [key, value] : auxv_) {
        if (key == type) return value;
    }
    return std::nullopt;
}

namespace {

// The NT_FILE mapping that holds `address` (`files` sorted by start), or null.
const CoreFileMapping* findFile(const std::vector<CoreFileMapping>& files, std::uint64_t address) {
    auto it = std::upper_bound(files.begin(), files.end(), address,
                               [](std::uint64_t a, const CoreFileMapping& f) { return a < f.start; });
    if (it == files.begin()) return nullptr;
    --it;
    return address < it->end ? &*it : nullptr;
}

// The segment that holds `address` (`segments` sorted by vaddr), or null.
const CoreSegment* findSegment(const std::vector<CoreSegment>& segments, std::uint64_t address) {
    auto it = std::upper_bound(segments.begin(), segments.end(), address,
                               [](std::uint64_t a, const CoreSegment& s) { return a < s.vaddr; });
    if (it == segments.begin()) return nullptr;
    --it;
    return address - it->vaddr < it->memSize ? &*it : nullptr;
}

}  // namespace

std::string CoreFile::executablePath() const {
    for (const std::uint64_t type : {std::uint64_t{AT_ENTRY}, std::uint64_t{AT_PHDR}}) {
        if (const auto address = auxv(type)) {
            if (const CoreFileMapping* file = findFile(files_, *address)) return file->path;
        }
    }
    return "";
}

std::vector<MemoryMapping> CoreFile::maps() const {
    std::vector<MemoryMapping> out;
    out.reserve(segments_.size());
    for (const auto& segment : segments_) {
        MemoryMapping mapping;
        mapping.start = segment.vaddr;
        mapping.end = segment.vaddr + segment.memSize;
        mapping.readable = segment.readable;
        mapping.writable = segment.writable;
        mapping.executable = segment.executable;
        if (const CoreFileMapping* file = findFile(files_, segment.vaddr)) {
            mapping.path = file->path;
            mapping.offset = file->fileOffset + (segment.vaddr - file->start);
        }
        out.push_back(std::move(mapping));
    }
    return out;
}

std::span<const std::uint8_t> CoreFile::bytes(std::uint64_t offset, std::uint64_t size) const {
    if (offset > data_.size() || size > data_.size() - offset) return {};
    return data_.subspan(offset, size);
}

CoreMemory::CoreMemory(std::shared_ptr<const CoreFile> core, CoreFileLocator locator)
    : core_(std::move(core)), locator_(std::move(locator)) {}

CoreMemory::~CoreMemory() = default;

Status CoreMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    if (size == 0) return {};
    if (size - 1 > std::numeric_limits<std::uint64_t>::max() - address) {
        return Err{ReadError{ReadErrorKind::Fault, address, "read wraps around the address space"}};
    }
    const auto& segments = core_->segments();
    auto* dst = static_cast<std::uint8_t*>(out);
    std::uint64_t at = address;
    std::size_t left = size;
    while (left > 0) {
        std::size_t n = 0;
        if (const CoreSegment* segment = findSegment(segments, at)) {
            const std::uint64_t offset = at - segment->vaddr;
            if (offset < segment->fileSize) {
                n = static_cast<std::size_t>(std::min<std::uint64_t>(left, segment->fileSize - offset));
                const auto bytes = core_->bytes(segment->coreOffset + offset, n);
                std::memcpy(dst, bytes.data(), n);
            } else {
                // Omitted from the core (an unmodified file page) or cut off: the file has it.
                n = static_cast<std::size_t>(std::min<std::uint64_t>(left, segment->memSize - offset));
                PYSPY_CHECK(readFromFile(at, dst, n));
            }
        } else {
            // No segment: only a file mapping can hold it, up to the next segment.
            auto next = std::upper_bound(segments.begin(), segments.end(), at,
                                         [](std::uint64_t a, const CoreSegment& s) { return a < s.vaddr; });
            n = next == segments.end() ? left
                                       : static_cast<std::size_t>(std::min<std::uint64_t>(left, next->vaddr - at));
            PYSPY_CHECK(readFromFile(at, dst, n));
        }
        dst += n;
        at += n;
        left -= n;
    }
    return {};
}

Status CoreMemory::readFromFile(std::uint64_t address, std::uint8_t* out, std::size_t size) const {
    const auto& files = core_->fileMappings();
    while (size > 0) {
        const CoreFileMapping* file = findFile(files, address);
        if (file == nullptr) return Err{ReadError{ReadErrorKind::Fault, address, "not in the core"}};
        auto cached = std::find_if(files_.begin(), files_.end(), [&](const auto& f) { return f.first == file->path; });
        if (cached == files_.end()) {
            // Opened once, a failure included: an invalid FD remembers it.
            const std::string local = locator_ ? locator_(file->path) : std::string();
            FD fd(local.empty() ? -1 : ::open(local.c_str(), O_RDONLY | O_CLOEXEC));
            files_.emplace_back(file->path, std::move(fd));
            cached = std::prev(files_.end());
        }
        if (!cached->second) {
            return Err{ReadError{ReadErrorKind::Fault, address, "not in the core, and no file for " + file->path}};
        }
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, file->end - address));
        const std::uint64_t offset = file->fileOffset + (address - file->start);
        if (offset < file->fileOffset || offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) - n) {
            return Err{ReadError{ReadErrorKind::Fault, address, "file offset out of range"}};
        }
        std::size_t done = 0;
        while (done < n) {
            const ssize_t got = ::pread(cached->second.get(), out + done, n - done, static_cast<off_t>(offset + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                return Err{ReadError{ReadErrorKind::Fault, address + done, "short read of " + file->path}};
            }
            done += static_cast<std::size_t>(got);
        }
        out += n;
        address += n;
        size -= n;
    }
    return {};
}

}  // namespace pyspy
