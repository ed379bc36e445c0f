#include "pyspy/native/symbolizer.h"

#include <cxxabi.h>
#include <elfutils/libdwfl.h>

#include <cstdlib>

#include <fmt/format.h>

#include "pyspy/common/error.h"

namespace pyspy {

namespace {

constexpr auto kReportInterval = std::chrono::seconds(1);
constexpr std::size_t kMaxNameBytes = 1024;  // names come from the target's files: bounded

char* noDebuginfoPath = nullptr;
// Where separate debug files are looked for: next to the module and in /usr/lib/debug
// (by build id), as gdb does.
const Dwfl_Callbacks kCallbacks = {
    dwfl_linux_proc_find_elf,
    dwfl_standard_find_debuginfo,
    nullptr,
    &noDebuginfoPath,
};

std::string bounded(const char* text) {
    std::string s(text);
    if (s.size() > kMaxNameBytes) s.resize(kMaxNameBytes);
    return s;
}

}  // namespace

std::string demangle(const std::string& name) {
    if (name.size() < 2 || name[0] != '_' || name[1] != 'Z') return name;
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                    &std::free);
    if (status != 0 || !out) return name;
    return bounded(out.get());
}

void NativeSymbolizer::DwflDeleter::operator()(Dwfl* dwfl) const noexcept {
    dwfl_end(dwfl);
}

NativeSymbolizer::NativeSymbolizer(pid_t pid) : pid_(pid) {
    report();
}

NativeSymbolizer::~NativeSymbolizer() = default;

void NativeSymbolizer::report() {
    std::unique_ptr<Dwfl, DwflDeleter> dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) throw FatalError(ErrorKind::Internal, fmt::format("libdwfl: {}", dwfl_errmsg(-1)));
    dwfl_report_begin(dwfl.get());
    // A failure leaves the modules reported so far: symbols for those, addresses for the rest.
    dwfl_linux_proc_report(dwfl.get(), pid_);
    dwfl_report_end(dwfl.get(), nullptr, nullptr);
    dwfl_ = std::move(dwfl);
    cache_.clear();
    reportedAt_ = std::chrono::steady_clock::now();
}

std::shared_ptr<const NativeSymbol> NativeSymbolizer::symbolize(std::uint64_t address) {
    if (auto it = cache_.find(address); it != cache_.end()) return it->second;
    auto symbol = lookup(address);
    if (symbol->module.empty() && std::chrono::steady_clock::now() - reportedAt_ >= kReportInterval) {
        report();  // a module loaded since the last report?
        symbol = lookup(address);
    }
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();  // simple bound; hot addresses come back at once
    cache_.emplace(address, symbol);
    return symbol;
}

std::shared_ptr<const NativeSymbol> NativeSymbolizer::lookup(std::uint64_t address) const {
    auto symbol = std::make_shared<NativeSymbol>();
    Dwfl_Module* module = dwfl_addrmodule(dwfl_.get(), address);
    if (module == nullptr) {
        symbol->function = fmt::format("{:#x}", address);
        return symbol;
    }
    Dwarf_Addr start = 0;
    const char* name = dwfl_module_info(module, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
    symbol->module = name != nullptr ? bounded(name) : std::string();
    Dwarf_Addr bias = 0;
    // The bias of the main file (no debug file needed): file vaddr = address - bias.
    if (dwfl_module_getelf(module, &bias) != nullptr && address >= bias) {
        symbol->moduleOffset = address - bias;
    } else {
        symbol->moduleOffset = address - start;
    }
    GElf_Off offset = 0;
    GElf_Sym elfSymbol;
    const char* function = dwfl_module_addrinfo(module, address, &offset, &elfSymbol, nullptr, nullptr, nullptr);
    if (function != nullptr && *function != '\0') {
        std::string name = bounded(function);
        // "clock_nanosleep@GLIBC_2.2.5", "memcpy@@GLIBC_2.14": the version is not the name.
        if (const auto at = name.find('@'); at != std::string::npos && at > 0) name.resize(at);
        symbol->function = demangle(name);
        symbol->hasSymbol = true;
    } else {
        symbol->function = fmt::format("{}+{:#x}", moduleBaseName(symbol->module), symbol->moduleOffset);
    }
    if (Dwfl_Line* line = dwfl_module_getsrc(module, address); line != nullptr) {
        int lineNo = 0;
        if (const char* file = dwfl_lineinfo(line, nullptr, &lineNo, nullptr, nullptr, nullptr); file != nullptr) {
            symbol->file = bounded(file);
            symbol->line = lineNo;
        }
    }
    return symbol;
}

}  // namespace pyspy
