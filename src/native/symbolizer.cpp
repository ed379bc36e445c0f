#include "pyspy/native/symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <cstdlib>

#include <fmt/format.h>

#include "pyspy/common/error.h"

namespace pyspy {

namespace {

constexpr auto kReportInterval = std::chrono::seconds(1);
constexpr std::size_t kMaxNameBytes = 1024;  // names come from the target's files: bounded
constexpr std::size_t kMaxInlined = 16;      // inlined calls shown per address

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

std::string inlinedName(Dwarf_Die* die);

// Fills symbol.inlined from the DWARF scopes at `address` and moves symbol.file/line
// (the line-table location, which is inside the innermost inlined code) to the call
// site in the function itself.
void addInlinedFrames(Dwfl_Module* module, Dwarf_Addr address, NativeSymbol& symbol) {
    Dwarf_Addr bias = 0;
    Dwarf_Die* cu = dwfl_module_addrdie(module, address, &bias);
    if (cu == nullptr) return;
    Dwarf_Die* scopes = nullptr;
    const int count = dwarf_getscopes(cu, address - bias, &scopes);
    if (count <= 0) return;
    std::unique_ptr<Dwarf_Die, decltype(&std::free)> ownedScopes(scopes, &std::free);
    // The innermost function-like scope: the function itself (no inlining) or an inlined call.
    int innermost = 0;
    while (innermost < count && dwarf_tag(&scopes[innermost]) != DW_TAG_inlined_subroutine &&
           dwarf_tag(&scopes[innermost]) != DW_TAG_subprogram) {
        ++innermost;
    }
    if (innermost == count || dwarf_tag(&scopes[innermost]) != DW_TAG_inlined_subroutine) return;
    // dwarf_getscopes leaves the concrete chain at the first inlined call (it goes on in
    // the abstract definition); the DIE's own scopes are the concrete chain out to the function.
    Dwarf_Die* chain = nullptr;
    const int chainCount = dwarf_getscopes_die(&scopes[innermost], &chain);
    if (chainCount <= 0) return;
    std::unique_ptr<Dwarf_Die, decltype(&std::free)> ownedChain(chain, &std::free);
    Dwarf_Files* files = nullptr;
    std::size_t fileCount = 0;
    if (dwarf_getsrcfiles(cu, &files, &fileCount) != 0) files = nullptr;
    std::string file = symbol.file;
    int line = symbol.line;
    for (int i = 0; i < chainCount && symbol.inlined.size() < kMaxInlined; ++i) {
        const int tag = dwarf_tag(&chain[i]);
        if (tag == DW_TAG_subprogram) break;  // the function itself: done
        if (tag != DW_TAG_inlined_subroutine) continue;
        symbol.inlined.push_back(InlinedFrame{inlinedName(&chain[i]), file, line});
        // Where it was inlined: the location of the next frame out.
        Dwarf_Attribute attribute;
        Dwarf_Word value = 0;
        file.clear();
        line = 0;
        if (files != nullptr && dwarf_formudata(dwarf_attr(&chain[i], DW_AT_call_file, &attribute), &value) == 0 &&
            value < fileCount) {
            if (const char* name = dwarf_filesrc(files, value, nullptr, nullptr); name != nullptr) file = bounded(name);
        }
        if (dwarf_formudata(dwarf_attr(&chain[i], DW_AT_call_line, &attribute), &value) == 0 && value < (1u << 30)) {
            line = static_cast<int>(value);
        }
    }
    if (!symbol.inlined.empty()) {
        symbol.file = file;
        symbol.line = line;
    }
}

std::string inlinedName(Dwarf_Die* die) {
    // The linkage name demangles to the qualified C++ name; C has only DW_AT_name. Both
    // sit on the abstract origin, which dwarf_attr_integrate follows.
    Dwarf_Attribute attribute;
    for (const int name : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
        if (const char* text = dwarf_formstring(dwarf_attr_integrate(die, name, &attribute)); text != nullptr) {
            return demangle(bounded(text));
        }
    }
    if (const char* text = dwarf_diename(die); text != nullptr) return bounded(text);
    return "?";
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

NativeSymbolizer::NativeSymbolizer(DwflPtr dwfl) : dwfl_(std::move(dwfl)) {
    if (!dwfl_) throw FatalError(ErrorKind::Internal, "NativeSymbolizer: no libdwfl session");
    reportedAt_ = std::chrono::steady_clock::now();
}

NativeSymbolizer::~NativeSymbolizer() = default;

void NativeSymbolizer::report() {
    DwflPtr dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) throw FatalError(ErrorKind::Internal, fmt::format("libdwfl: {}", dwfl_errmsg(-1)));
    dwfl_report_begin(dwfl.get());
    // A failure leaves the modules reported so far: symbols for those, addresses for the rest.
    dwfl_linux_proc_report(dwfl.get(), *pid_);
    dwfl_report_end(dwfl.get(), nullptr, nullptr);
    dwfl_ = std::move(dwfl);
    cache_.clear();
    reportedAt_ = std::chrono::steady_clock::now();
}

std::shared_ptr<const NativeSymbol> NativeSymbolizer::symbolize(std::uint64_t address) {
    if (auto it = cache_.find(address); it != cache_.end()) return it->second;
    auto symbol = lookup(address);
    if (symbol->module.empty() && pid_ && std::chrono::steady_clock::now() - reportedAt_ >= kReportInterval) {
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
    addInlinedFrames(module, address, *symbol);
    return symbol;
}

}  // namespace pyspy
