// SyntheticCore: writes a small x86-64 ELF core in memory, laid out as the kernel lays
// one out (ELF header, program headers, one PT_NOTE, then the PT_LOAD bytes), for the
// CoreFile tests and the fuzz seeds (tests/fuzz/make_corpus.cpp). Raw notes and the
// returned bytes can be altered to build broken cores.
#pragma once

#include <elf.h>
#include <signal.h>
#include <sys/procfs.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace pyspy::test {

struct SyntheticCore {
    struct Thread {
        pid_t tid = 0;
        short signal = 0;
        std::array<std::uint64_t, 27> registers{};
    };
    struct Crash {
        int signal = 0, code = 0;
        std::uint64_t address = 0;
    };
    struct File {
        std::uint64_t start = 0, end = 0, pageOffset = 0;
        std::string path;
    };
    // [vaddr, vaddr + memSize), of which `bytes` are in the core (p_filesz = bytes.size()).
    struct Segment {
        std::uint64_t vaddr = 0, memSize = 0;
        std::vector<std::uint8_t> bytes;
        std::uint32_t flags = PF_R | PF_W;
    };
    struct RawNote {
        std::string name;
        std::uint32_t type = 0;
        std::vector<std::uint8_t> desc;
        std::optional<std::uint32_t> declaredSize;  // a descsz other than desc.size()
    };

    std::uint16_t elfType = ET_CORE;
    std::vector<Thread> threads;
    std::optional<pid_t> pid;  // an NT_PRPSINFO note when set
    std::string command, arguments;
    std::optional<Crash> crash;  // an NT_SIGINFO note when set
    std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv;
    std::vector<File> files;  // an NT_FILE note when not empty
    std::vector<Segment> segments;
    std::vector<RawNote> rawNotes;  // after the others

    std::vector<std::uint8_t> build() const {
        std::vector<std::uint8_t> notes;
        for (const auto& thread : threads) {
            elf_prstatus status{};
            status.pr_pid = thread.tid;
            status.pr_cursig = thread.signal;
            std::memcpy(&status.pr_reg, thread.registers.data(), sizeof status.pr_reg);
            addNote(notes, "CORE", NT_PRSTATUS, asBytes(status));
        }
        if (pid) {
            elf_prpsinfo info{};
            info.pr_pid = *pid;
            // As the kernel does: cut at the field's size, then without a NUL.
            std::memcpy(info.pr_fname, command.data(), std::min(command.size(), sizeof info.pr_fname));
            std::memcpy(info.pr_psargs, arguments.data(), std::min(arguments.size(), sizeof info.pr_psargs));
            addNote(notes, "CORE", NT_PRPSINFO, asBytes(info));
        }
        if (crash) {
            siginfo_t info{};
            info.si_signo = crash->signal;
            info.si_code = crash->code;
            info.si_addr = reinterpret_cast<void*>(crash->address);  // NOLINT(performance-no-int-to-ptr)
            addNote(notes, "CORE", NT_SIGINFO, asBytes(info));
        }
        if (!auxv.empty()) {
            std::vector<std::uint8_t> desc;
            for (const auto& [key, value] : auxv) appendU64s(desc, {key, value});
            appendU64s(desc, {AT_NULL, 0});
            addNote(notes, "CORE", NT_AUXV, desc);
        }
        if (!files.empty()) {
            std::vector<std::uint8_t> desc;
            appendU64s(desc, {files.size(), 4096});
            for (const auto& file : files) appendU64s(desc, {file.start, file.end, file.pageOffset});
            for (const auto& file : files)
                desc.insert(desc.end(), file.path.c_str(), file.path.c_str() + file.path.size() + 1);
            addNote(notes, "CORE", NT_FILE, desc);
        }
        for (const auto& raw : rawNotes) addNote(notes, raw.name, raw.type, raw.desc, raw.declaredSize);

        const std::size_t phnum = 1 + segments.size();
        std::vector<std::uint8_t> out(sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr));
        Elf64_Ehdr header{};
        std::memcpy(header.e_ident, ELFMAG, SELFMAG);
        header.e_ident[EI_CLASS] = ELFCLASS64;
        header.e_ident[EI_DATA] = ELFDATA2LSB;
        header.e_ident[EI_VERSION] = EV_CURRENT;
        header.e_type = elfType;
        header.e_machine = EM_X86_64;
        header.e_version = EV_CURRENT;
        header.e_phoff = sizeof(Elf64_Ehdr);
        header.e_ehsize = sizeof(Elf64_Ehdr);
        header.e_phentsize = sizeof(Elf64_Phdr);
        header.e_phnum = static_cast<std::uint16_t>(phnum);
        std::memcpy(out.data(), &header, sizeof header);

        auto putPhdr = [&](std::size_t index, const Elf64_Phdr& phdr) {
            std::memcpy(out.data() + sizeof(Elf64_Ehdr) + index * sizeof(Elf64_Phdr), &phdr, sizeof phdr);
        };
        Elf64_Phdr note{};
        note.p_type = PT_NOTE;
        note.p_offset = out.size();
        note.p_filesz = notes.size();
        putPhdr(0, note);
        out.insert(out.end(), notes.begin(), notes.end());
        for (std::size_t i = 0; i < segments.size(); ++i) {
            const Segment& segment = segments[i];
            Elf64_Phdr load{};
            load.p_type = PT_LOAD;
            load.p_flags = segment.flags;
            load.p_offset = out.size();
            load.p_vaddr = segment.vaddr;
            load.p_filesz = segment.bytes.size();
            load.p_memsz = segment.memSize;
            load.p_align = 4096;
            putPhdr(1 + i, load);
            out.insert(out.end(), segment.bytes.begin(), segment.bytes.end());
        }
        return out;
    }

    template <typename T>
    static std::vector<std::uint8_t> asBytes(const T& value) {
        std::vector<std::uint8_t> bytes(sizeof(T));
        std::memcpy(bytes.data(), &value, sizeof(T));
        return bytes;
    }

    static void appendU64s(std::vector<std::uint8_t>& out, std::initializer_list<std::uint64_t> values) {
        for (const std::uint64_t value : values) {
            const auto bytes = asBytes(value);
            out.insert(out.end(), bytes.begin(), bytes.end());
        }
    }

    static void addNote(std::vector<std::uint8_t>& out, const std::string& name, std::uint32_t type,
                        const std::vector<std::uint8_t>& desc, std::optional<std::uint32_t> declaredSize = {}) {
        Elf64_Nhdr header{};
        header.n_namesz = static_cast<std::uint32_t>(name.size() + 1);
        header.n_descsz = declaredSize.value_or(static_cast<std::uint32_t>(desc.size()));
        header.n_type = type;
        const auto bytes = asBytes(header);
        out.insert(out.end(), bytes.begin(), bytes.end());
        out.insert(out.end(), name.c_str(), name.c_str() + name.size() + 1);
        out.resize((out.size() + 3) & ~std::size_t{3});
        out.insert(out.end(), desc.begin(), desc.end());
        out.resize((out.size() + 3) & ~std::size_t{3});
    }
};

}  // namespace pyspy::test
