// ElfFile: opens one ELF file with libelf and indexes its symbols, sections and PT_LOAD
// segments up front. The file is untrusted (it belongs to the target): every count is
// bounded, every libelf result is checked, and data reads after indexing go through
// pread so that a file truncated under us yields an error, not SIGBUS.
#include "pyspy/elf/elf_file.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <system_error>
#include <utility>

#include "pyspy/common/error.h"
#include "pyspy/elf/build_id.h"

namespace pyspy {

namespace {

constexpr std::size_t kMaxReadSize = 64u << 20;        // readAtAddress bound
constexpr std::size_t kMaxSections = 1u << 20;         // far above any real file
constexpr std::size_t kMaxSegments = 1u << 16;         // e_phnum is 16-bit (+ PN_XNUM)
constexpr std::size_t kMaxSymbolsPerTable = 1u << 24;  // 16M symbols, ~400 MB of .symtab

struct ElfDeleter {
    void operator()(Elf* elf) const noexcept { ::elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfDeleter>;

void initLibelf() {
    // elf_version must be called once before any other libelf call; a static's
    // initialisation is thread-safe.
    static const bool ok = ::elf_version(EV_CURRENT) != EV_NONE;
    if (!ok) throw FatalError(ErrorKind::Internal, "libelf: elf_version(EV_CURRENT) failed");
}

std::string libelfError() {
    const char* message = ::elf_errmsg(-1);
    return message != nullptr ? message : "unknown libelf error";
}

[[noreturn]] void malformed(const std::string& path, const std::string& what) {
    throw FatalError(ErrorKind::NotPython, path + ": malformed ELF file (" + what + ")");
}

std::uint64_t pageSize() {
    static const std::uint64_t size = [] {
        const long value = ::sysconf(_SC_PAGESIZE);
        return value > 0 ? static_cast<std::uint64_t>(value) : std::uint64_t{4096};
    }();
    return size;
}

std::uint64_t pageDown(std::uint64_t value) {
    return value & ~(pageSize() - 1);
}

// Precedence of one symbol definition: .symtab over .dynsym, then global/weak over
// local, then a plain name over the "foo" alias of a versioned "foo@VER".
struct RankedSymbol {
    ElfSymbol symbol;
    int rank = 0;
};

void addSymbol(std::unordered_map<std::string, RankedSymbol>& index, std::string name, const ElfSymbol& symbol,
               int rank) {
    auto [it, inserted] = index.try_emplace(std::move(name), RankedSymbol{symbol, rank});
    if (!inserted && rank > it->second.rank) it->second = RankedSymbol{symbol, rank};
}

void indexSymbolTable(const std::string& path, Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, bool isSymtab,
                      std::unordered_map<std::string, RankedSymbol>& index) {
    if (shdr.sh_type == SHT_NOBITS) return;
    Elf_Data* data = ::elf_getdata(scn, nullptr);
    if (data == nullptr) malformed(path, "unreadable symbol table: " + libelfError());
    if (data->d_buf == nullptr || data->d_size == 0) return;
    const std::size_t count = data->d_size / sizeof(Elf64_Sym);
    if (count > kMaxSymbolsPerTable) malformed(path, "symbol table too large");
    const int tableRank = isSymtab ? 4 : 0;
    for (std::size_t i = 1; i < count; ++i) {  // entry 0 is the reserved null symbol
        GElf_Sym sym;
        if (::gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) break;
        if (sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS || sym.st_value == 0) continue;
        const unsigned type = GELF_ST_TYPE(sym.st_info);
        if (type == STT_TLS || type == STT_SECTION || type == STT_FILE) continue;
        const char* raw = ::elf_strptr(elf, shdr.sh_link, sym.st_name);
        if (raw == nullptr || *raw == '\0') continue;
        const std::string_view name(raw);
        const unsigned binding = GELF_ST_BIND(sym.st_info);
        const int rank = tableRank + ((binding == STB_GLOBAL || binding == STB_WEAK) ? 2 : 0);
        const ElfSymbol symbol{sym.st_value, sym.st_size};
        if (const auto at = name.find('@'); at != std::string_view::npos) {
            if (at > 0) addSymbol(index, std::string(name.substr(0, at)), symbol, rank);
            addSymbol(index, std::string(name), symbol, rank + 1);
        } else {
            addSymbol(index, std::string(name), symbol, rank + 1);
        }
    }
}

}  // namespace

struct ElfFile::Impl {
    FD fd;
    ElfHandle elf;
    std::uint64_t fileSize = 0;
};

ElfFile::ElfFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;
ElfFile::~ElfFile() = default;

std::optional<std::string> ElfFile::buildId() const {
    constexpr std::uint64_t kMaxNoteSection = 64 * 1024;
    for (const auto& section : sections_) {
        if (section.type != SHT_NOTE || section.size == 0 || section.size > kMaxNoteSection) continue;
        std::vector<std::uint8_t> bytes(section.size);
        const auto got = ::pread(impl_->fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(section.offset));
        if (got != static_cast<ssize_t>(bytes.size())) continue;
        if (auto id = buildIdFromNotes(bytes)) return id;
    }
    return std::nullopt;
}

ElfFile ElfFile::open(const std::string& path) {
    initLibelf();
    auto impl = std::make_unique<Impl>();
    impl->fd = FD(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!impl->fd) {
        const int err = errno;
        const std::string reason = std::system_category().message(err);
        if (err == EACCES || err == EPERM) {
            throw FatalError(ErrorKind::PermissionDenied, path + ": cannot open: " + reason);
        }
        throw FatalError(ErrorKind::NotPython, path + ": cannot open: " + reason);
    }
    struct stat st {};
    if (::fstat(impl->fd.get(), &st) != 0) {
        throw FatalError(ErrorKind::NotPython, path + ": cannot stat: " + std::system_category().message(errno));
    }
    if (!S_ISREG(st.st_mode)) throw FatalError(ErrorKind::NotPython, path + ": not a regular file");
    impl->fileSize = static_cast<std::uint64_t>(st.st_size);

    const std::string notElf64 = path + ": not a 64-bit ELF file";
    if (impl->fileSize < sizeof(Elf64_Ehdr)) throw FatalError(ErrorKind::NotPython, notElf64);
    impl->elf.reset(::elf_begin(impl->fd.get(), ELF_C_READ_MMAP, nullptr));
    Elf* elf = impl->elf.get();
    if (elf == nullptr) throw FatalError(ErrorKind::NotPython, notElf64 + " (" + libelfError() + ")");
    if (::elf_kind(elf) != ELF_K_ELF || ::gelf_getclass(elf) != ELFCLASS64) {
        throw FatalError(ErrorKind::NotPython, notElf64);
    }
    GElf_Ehdr ehdr;
    if (::gelf_getehdr(elf, &ehdr) == nullptr) malformed(path, "ELF header: " + libelfError());

    ElfFile file(std::move(impl));
    file.path_ = path;
    file.type_ = ehdr.e_type;

    // PT_LOAD segments.
    std::size_t phnum = 0;
    if (::elf_getphdrnum(elf, &phnum) != 0) malformed(path, "program headers: " + libelfError());
    if (phnum > kMaxSegments) malformed(path, "too many program headers");
    // libelf quietly reports 0 headers when the table lies outside the file.
    if (ehdr.e_phnum != PN_XNUM && phnum != ehdr.e_phnum) malformed(path, "program headers outside the file");
    for (std::size_t i = 0; i < phnum; ++i) {
        GElf_Phdr phdr;
        if (::gelf_getphdr(elf, static_cast<int>(i), &phdr) == nullptr) {
            malformed(path, "program header " + std::to_string(i) + ": " + libelfError());
        }
        if (phdr.p_type != PT_LOAD) continue;
        file.segments_.push_back(ElfSegment{phdr.p_vaddr, phdr.p_offset, phdr.p_filesz, phdr.p_memsz, phdr.p_flags});
    }

    // Sections and symbol tables.
    std::size_t shnum = 0;
    std::size_t shstrndx = 0;
    if (::elf_getshdrnum(elf, &shnum) != 0) malformed(path, "section headers: " + libelfError());
    if (shnum > kMaxSections) malformed(path, "too many sections");
    if (ehdr.e_shoff != 0 && ehdr.e_shnum != 0 && shnum != ehdr.e_shnum) {
        malformed(path, "section headers outside the file");
    }
    const bool haveNames = shnum > 0 && ::elf_getshdrstrndx(elf, &shstrndx) == 0;
    std::unordered_map<std::string, RankedSymbol> index;
    std::size_t seen = 0;
    for (Elf_Scn* scn = ::elf_nextscn(elf, nullptr); scn != nullptr; scn = ::elf_nextscn(elf, scn)) {
        if (++seen > kMaxSections) malformed(path, "too many sections");
        GElf_Shdr shdr;
        if (::gelf_getshdr(scn, &shdr) == nullptr) malformed(path, "section header: " + libelfError());
        ElfSection section;
        if (haveNames) {
            if (const char* name = ::elf_strptr(elf, shstrndx, shdr.sh_name); name != nullptr) section.name = name;
        }
        section.type = shdr.sh_type;
        section.flags = shdr.sh_flags;
        section.address = shdr.sh_addr;
        section.offset = shdr.sh_offset;
        section.size = shdr.sh_size;
        file.sections_.push_back(std::move(section));
        if (shdr.sh_type == SHT_SYMTAB || shdr.sh_type == SHT_DYNSYM) {
            indexSymbolTable(path, elf, scn, shdr, shdr.sh_type == SHT_SYMTAB, index);
            if (shdr.sh_type == SHT_SYMTAB) file.hasSymtab_ = true;
        }
    }
    file.symbols_.reserve(index.size());
    for (auto& [name, ranked] : index) file.symbols_.emplace(name, ranked.symbol);
    return file;
}

std::optional<ElfSymbol> ElfFile::findSymbol(std::string_view name) const {
    const auto it = symbols_.find(std::string(name));
    if (it == symbols_.end()) return std::nullopt;
    return it->second;
}

std::optional<ElfSection> ElfFile::findSection(std::string_view name) const {
    for (const auto& section : sections_) {
        if (section.name == name) return section;
    }
    return std::nullopt;
}

std::optional<std::vector<std::uint8_t>> ElfFile::readAtAddress(std::uint64_t vaddr, std::size_t size) const {
    if (!impl_ || size == 0 || size > kMaxReadSize) return std::nullopt;
    if (vaddr > std::numeric_limits<std::uint64_t>::max() - size) return std::nullopt;
    const std::uint64_t end = vaddr + size;
    for (const auto& segment : segments_) {
        if (segment.vaddr > std::numeric_limits<std::uint64_t>::max() - segment.filesz) continue;
        if (vaddr < segment.vaddr || end > segment.vaddr + segment.filesz) continue;
        const std::uint64_t offset = segment.offset + (vaddr - segment.vaddr);
        if (offset < segment.offset || offset > impl_->fileSize || impl_->fileSize - offset < size) return std::nullopt;
        std::vector<std::uint8_t> bytes(size);
        std::size_t done = 0;
        while (done < size) {
            const ssize_t n =
                ::pread(impl_->fd.get(), bytes.data() + done, size - done, static_cast<off_t>(offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            done += static_cast<std::size_t>(n);
        }
        return bytes;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> ElfFile::loadBias(std::uint64_t mapStart, std::uint64_t mapOffset) const {
    // The loader maps segment S at page_down(S.vaddr + bias) from file offset
    // page_down(S.offset) (S.vaddr and S.offset are congruent modulo the page size), so
    // a mapping at mapStart from mapOffset puts file offset `mapOffset` at mapStart and
    // file offset mapOffset corresponds to vaddr S.vaddr - (S.offset - mapOffset).
    auto biasFor = [&](const ElfSegment& segment) {
        const std::uint64_t vaddr = segment.vaddr - (segment.offset - mapOffset);  // modular arithmetic
        return mapStart - vaddr;
    };
    for (const auto& segment : segments_) {
        if (pageDown(segment.offset) == mapOffset) return biasFor(segment);
    }
    for (const auto& segment : segments_) {
        const std::uint64_t begin = pageDown(segment.offset);
        const std::uint64_t end = segment.offset + segment.filesz;
        if (end < segment.offset) continue;  // overflow: bogus header
        if (mapOffset >= begin && mapOffset < end) return biasFor(segment);
    }
    return std::nullopt;
}

}  // namespace pyspy
