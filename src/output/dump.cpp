#include "pyspy/output/dump.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pyspy {

std::string shortFilename(const std::string& path) {
    for (const char* marker : {"/site-packages/", "/dist-packages/"}) {
        if (auto pos = path.rfind(marker); pos != std::string::npos) return path.substr(pos + std::strlen(marker));
    }
    static const std::regex stdlib(R"(/lib/python[23]\.[0-9]+t?/)");
    std::smatch m;
    if (std::regex_search(path, m, stdlib)) return m.suffix().str();
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string terminalSafe(const std::string& text) {
    // C0 controls and DEL as \xNN; C1 controls (U+0080-U+009F, UTF-8 c2 80-c2 9f: CSI is
    // U+009B, an escape sequence to terminals that take 8-bit controls) as \u00NN.
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[i + 1]));
            ++i;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

namespace {

std::string displayFilename(const PyFrame& frame, const DumpFormatOptions& options) {
    return options.fullFilenames ? frame.filename() : shortFilename(frame.filename());
}

// "running+gil", "lock", "io: recvfrom on socket 10.0.0.5:5432", "other: ioctl".
std::string stateOf(const ThreadStack& thread) {
    std::string state(stateName(thread.state));
    if (thread.wait) {
        const WaitReason& wait = *thread.wait;
        if (thread.state == ThreadState::Io) {
            state += ": " + wait.syscall;
            if (wait.fdInfo.kind != FdKind::Unknown) {
                state += fmt::format(" on {}", fdKindName(wait.fdInfo.kind));
                if (!wait.fdInfo.detail.empty()) state += " " + terminalSafe(wait.fdInfo.detail);
            } else if (wait.fd) {
                state += fmt::format(" on fd {}", *wait.fd);
            }
        } else if (thread.state == ThreadState::Other) {
            state += ": " + wait.syscall;
        }
    }
    if (thread.holdsGil) state += "+gil";
    if (thread.collectingGarbage) state += "+gc";
    return state;
}

// {"syscall", "fd", "fd_kind", "fd_detail"} of a thread blocked in a system call, else null.
nlohmann::json waitJson(const ThreadStack& thread) {
    using nlohmann::json;
    if (!thread.wait) return nullptr;
    const WaitReason& wait = *thread.wait;
    const std::string_view kind = fdKindName(wait.fdInfo.kind);
    return {{"syscall", wait.syscall},
            {"fd", wait.fd ? json(*wait.fd) : json(nullptr)},
            {"fd_kind", kind.empty() ? json(nullptr) : json(std::string(kind))},
            {"fd_detail", wait.fdInfo.detail.empty() ? json(nullptr) : json(wait.fdInfo.detail)}};
}

std::string sourceName(const std::string& file, const DumpFormatOptions& options) {
    if (options.fullFilenames) return file;
    const auto slash = file.rfind('/');
    return slash == std::string::npos ? file : file.substr(slash + 1);
}

// "    name (file.c:12) [native: module.so]": the module in brackets marks a native
// frame; a function the compiler inlined there comes first, marked "inlined".
std::string nativeFrameText(const NativeFrame& frame, const DumpFormatOptions& options) {
    if (!frame.symbol) return fmt::format("    {:#x} [native: ?]\n", frame.pc);
    const NativeSymbol& symbol = *frame.symbol;
    const std::string module = terminalSafe(moduleBaseName(symbol.module));
    const auto location = [&](const std::string& file, int line) {
        if (file.empty()) return std::string();
        return fmt::format(" ({}:{})", terminalSafe(sourceName(file, options)),
                           line > 0 ? std::to_string(line) : std::string("?"));
    };
    std::string out;
    for (const InlinedFrame& inlined : symbol.inlined) {
        out += fmt::format("    {}{} [native: {}, inlined]\n", terminalSafe(inlined.function),
                           location(inlined.file, inlined.line), module);
    }
    out += fmt::format("    {}{} [native: {}]\n", terminalSafe(symbol.function), location(symbol.file, symbol.line),
                       module);
    return out;
}

std::string pythonFrameText(const PyFrame& frame, const DumpFormatOptions& options) {
    const std::string line = frame.line ? std::to_string(*frame.line) : std::string("?");
    std::string out = fmt::format("    {} ({}:{})\n", terminalSafe(frame.function()),
                                  terminalSafe(displayFilename(frame, options)), line);
    for (const auto& local : frame.locals) {
        out += fmt::format("        {} = {}\n", terminalSafe(local.name), terminalSafe(local.repr));
    }
    if (frame.localsError) {
        out += fmt::format("        [error reading locals: {}]\n", terminalSafe(*frame.localsError));
    }
    return out;
}

// A native frame as JSON entries, innermost first: its inlined functions, then itself.
void appendNativeFrameJson(nlohmann::json& frames, const NativeFrame& frame, const DumpFormatOptions& options) {
    using nlohmann::json;
    const NativeSymbol* symbol = frame.symbol.get();
    const json module = symbol && !symbol->module.empty() ? json(symbol->module) : json(nullptr);
    const auto entry = [&](const std::string& function, const std::string& file, int line, bool inlined) {
        return json{{"kind", "native"},
                    {"function", function},
                    {"filename", file.empty() ? json(nullptr) : json(sourceName(file, options))},
                    {"line", line > 0 ? json(line) : json(nullptr)},
                    {"module", module},
                    {"address", frame.pc},
                    {"inlined", inlined}};
    };
    if (!symbol) {
        frames.push_back(entry(fmt::format("{:#x}", frame.pc), "", 0, false));
        return;
    }
    for (const InlinedFrame& inlined : symbol->inlined) {
        frames.push_back(entry(inlined.function, inlined.file, inlined.line, true));
    }
    frames.push_back(entry(symbol->function, symbol->file, symbol->line, false));
}

// "SIGSEGV"; "signal 77" for a number without a name.
std::string signalName(int signal) {
    const char* abbrev = signal > 0 ? ::sigabbrev_np(signal) : nullptr;
    return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signal);
}

// What si_code says about how the signal came: the kernel's reason for a fault, or who sent it.
// "" when the core did not record it (no NT_SIGINFO: 0 would read as SI_USER).
std::string signalCodeText(const CoreCrashInfo& core) {
    const int signal = core.signal;
    const int code = core.code;
    if (signal == 0 || !core.codeKnown) return "";
    if (code == SI_USER) return "sent by kill";
    if (code == SI_TKILL) return "sent by tgkill (abort, raise)";
    if (code == SI_QUEUE) return "sent by sigqueue";
    if (code == SI_KERNEL) return "sent by the kernel";
    switch (signal) {
        case SIGSEGV:
            if (code == SEGV_MAPERR) return "address not mapped";
            if (code == SEGV_ACCERR) return "no permission for the access";
            break;
        case SIGBUS:
            if (code == BUS_ADRALN) return "misaligned address";
            if (code == BUS_ADRERR) return "no such physical address (a truncated mapped file?)";
            if (code == BUS_OBJERR) return "hardware error";
            break;
        case SIGFPE:
            if (code == FPE_INTDIV) return "integer division by zero";
            if (code == FPE_INTOVF) return "integer overflow";
            break;
        case SIGILL:
            if (code == ILL_ILLOPC) return "illegal opcode";
            break;
        default:
            break;
    }
    return "";
}

// "Killed by SIGSEGV (address not mapped) at address 0x0 in thread 1234"
std::string crashLine(const CoreCrashInfo& core, const std::vector<ThreadStack>& threads) {
    if (core.signal == 0) return "No fatal signal recorded (a core written while the process ran, e.g. by gcore)";
    std::string line = "Killed by " + signalName(core.signal);
    if (const std::string code = signalCodeText(core); !code.empty()) line += " (" + code + ")";
    if (core.faultAddress) line += fmt::format(" at address {:#x}", *core.faultAddress);
    line += fmt::format(" in thread {}", core.tid);
    const bool shown = std::any_of(threads.begin(), threads.end(), [&](const ThreadStack& t) { return t.crashed; });
    if (!core.tidIsPython) line += shown ? " (not a Python thread)" : " (not a Python thread: --native shows it)";
    return line;
}

}  // namespace

std::string formatDumpText(const ProcessSnapshot& snapshot, const DumpFormatOptions& options) {
    std::string out;
    if (snapshot.core) {
        out += fmt::format("Core dump {} of process {}: {}\n", terminalSafe(snapshot.core->path), snapshot.pid,
                           terminalSafe(snapshot.commandLine));
        out += crashLine(*snapshot.core, snapshot.threads) + "\n";
    } else {
        out += fmt::format("Process {}: {}\n", snapshot.pid, terminalSafe(snapshot.commandLine));
    }
    out += fmt::format("Python v{}{} ({})\n", snapshot.pythonVersion,
                       !snapshot.freeThreaded ? ""
                       : snapshot.gilEnabled  ? " free-threaded (GIL turned on)"
                                              : " free-threaded (no GIL)",
                       terminalSafe(snapshot.executable));
    for (const auto& thread : snapshot.threads) {
        const std::string id =
            thread.nativeId ? std::to_string(*thread.nativeId) : fmt::format("{:#x}", thread.threadId);
        out += fmt::format("\nThread {} ({})", id, stateOf(thread));
        if (thread.crashed && snapshot.core) out += fmt::format(" [crashed: {}]", signalName(snapshot.core->signal));
        if (thread.name) out += fmt::format(": \"{}\"", terminalSafe(*thread.name));
        out += '\n';
        if (!thread.merged.empty()) {
            for (const MergedFrame& entry : thread.merged) {
                out += entry.native ? nativeFrameText(thread.nativeFrames[entry.index], options)
                                    : pythonFrameText(thread.frames[entry.index], options);
            }
        } else {
            if (thread.mergeFailed) out += "    [native and Python stacks not merged; Python stack:]\n";
            for (const auto& frame : thread.frames) out += pythonFrameText(frame, options);
            if (thread.mergeFailed) {
                out += "    [native stack:]\n";
                for (const auto& frame : thread.nativeFrames) out += nativeFrameText(frame, options);
            }
        }
        if (thread.nativeError) out += fmt::format("    [native: {}]\n", terminalSafe(*thread.nativeError));
        if (thread.truncated) out += "    ... (stack truncated)\n";
        if (thread.error) out += fmt::format("    [error reading stack: {}]\n", terminalSafe(*thread.error));
    }
    return out;
}

std::string formatDumpJson(const ProcessSnapshot& snapshot, const DumpFormatOptions& options) {
    using nlohmann::json;
    json threads = json::array();
    for (const auto& thread : snapshot.threads) {
        const auto pythonFrame = [&](const PyFrame& frame) {
            json entry = {{"function", frame.function()},
                          {"filename", displayFilename(frame, options)},
                          {"line", frame.line ? json(*frame.line) : json(nullptr)}};
            // Only with --native: without it every frame is a Python one, and the
            // document stays what it was.
            if (thread.nativeRequested) entry["kind"] = "python";
            if (options.locals) {
                json locals = json::array();
                for (const auto& local : frame.locals) locals.push_back({{"name", local.name}, {"repr", local.repr}});
                entry["locals"] = std::move(locals);
                entry["locals_error"] = frame.localsError ? json(*frame.localsError) : json(nullptr);
            }
            return entry;
        };
        json frames = json::array();
        if (!thread.merged.empty()) {
            for (const MergedFrame& entry : thread.merged) {
                if (entry.native) {
                    appendNativeFrameJson(frames, thread.nativeFrames[entry.index], options);
                } else {
                    frames.push_back(pythonFrame(thread.frames[entry.index]));
                }
            }
        } else {
            for (const auto& frame : thread.frames) frames.push_back(pythonFrame(frame));
        }
        threads.push_back({{"thread_id", thread.threadId},
                           {"native_id", thread.nativeId ? json(*thread.nativeId) : json(nullptr)},
                           {"name", thread.name ? json(*thread.name) : json(nullptr)},
                           {"active", thread.active},
                           {"holds_gil", thread.holdsGil},
                           {"waiting_for_gil", thread.waitingForGil},
                           {"state", std::string(stateName(thread.state))},
                           {"wait", waitJson(thread)},
                           {"collecting_garbage", thread.collectingGarbage},
                           {"frames", std::move(frames)},
                           {"truncated", thread.truncated},
                           {"error", thread.error ? json(*thread.error) : json(nullptr)}});
        if (snapshot.core) threads.back()["crashed"] = thread.crashed;
        if (thread.nativeRequested) {
            json& added = threads.back();
            added["merge_failed"] = thread.mergeFailed;
            added["native_error"] = thread.nativeError ? json(*thread.nativeError) : json(nullptr);
            if (thread.mergeFailed) {
                json native = json::array();
                for (const auto& frame : thread.nativeFrames) appendNativeFrameJson(native, frame, options);
                added["native_frames"] = std::move(native);
            }
        }
    }
    json doc = {{"pid", snapshot.pid},
                {"command_line", snapshot.commandLine},
                {"python_version", snapshot.pythonVersion},
                {"free_threaded", snapshot.freeThreaded},
                {"executable", snapshot.executable},
                {"paused", snapshot.paused},
                {"timestamp", snapshot.timestamp},
                {"threads", std::move(threads)}};
    if (snapshot.core) {  // only for a core: a live dump's document stays what it was
        const CoreCrashInfo& core = *snapshot.core;
        const std::string code = signalCodeText(core);
        doc["core"] = {{"file", core.path},
                       {"signal", core.signal},
                       {"signal_name", core.signal != 0 ? json(signalName(core.signal)) : json(nullptr)},
                       {"code", core.codeKnown ? json(core.code) : json(nullptr)},
                       {"code_text", code.empty() ? json(nullptr) : json(code)},
                       {"fault_address", core.faultAddress ? json(*core.faultAddress) : json(nullptr)},
                       {"thread", core.tid},
                       {"thread_is_python", core.tidIsPython},
                       {"module_problems", core.moduleProblems}};
    }
    // Bytes from the target that are not valid UTF-8 are replaced, never emitted raw.
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace pyspy
