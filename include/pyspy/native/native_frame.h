// What one native (C/C++) frame of a target thread is: where it was unwound to, and
// what the symbolizer says that address is. Plain data shared by dump, record and top.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pyspy {

// A function the compiler inlined into another at some address (DWARF
// DW_TAG_inlined_subroutine): shown as a frame of its own.
struct InlinedFrame {
    std::string function;
    std::string file;  // "" when unknown
    int line = 0;      // 0 when unknown
};

// The symbol of one address in the target. Immutable once built and shared by every
// frame at that address, so a sampler can intern native frames by address.
struct NativeSymbol {
    std::string function;            // demangled; "module+0xoffset" when no symbol covers the address
    std::string module;              // path of the ELF module as mapped ("" when the address is in none)
    std::uint64_t moduleOffset = 0;  // address - the module's load bias
    // Source location in `function` itself, from DWARF: the line of the address or, when
    // the address is in inlined code, the line of the outermost inlined call.
    std::string file;        // "" when absent
    int line = 0;            // 0 when unknown
    bool hasSymbol = false;  // `function` comes from a symbol table, not from the address
    // The functions inlined at this address, innermost first (each called from the next,
    // the last from `function`); empty without DWARF or inlining.
    std::vector<InlinedFrame> inlined;
};

struct NativeFrame {
    std::uint64_t pc = 0;  // as unwound: the innermost frame's pc, else a return address
    // What was symbolized: pc - 1 for a return address (so a call that ends a function
    // maps to the caller's call site, not to the next function), pc otherwise.
    std::uint64_t lookupAddress = 0;
    std::shared_ptr<const NativeSymbol> symbol;  // filled by NativeSymbolizer; null before
};

// "libc.so.6" from "/usr/lib/x86_64-linux-gnu/libc.so.6"; "?" for no module.
std::string moduleBaseName(const std::string& modulePath);

}  // namespace pyspy
