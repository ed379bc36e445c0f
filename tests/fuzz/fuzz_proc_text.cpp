// libFuzzer target: the parsers of text the kernel writes about the target, which a
// hostile or odd system could make unusual (wait_state.h, thread_activity.h): the
// syscall file, a socket table, a wait channel name, and waitFd's reads of a poll or
// select array from (fake) target memory.
// Input: byte 0 picks the parser, bytes 1-8 an inode; the rest is the text (or, for
// waitFd, six arguments then the memory at 0x1000).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include <sys/syscall.h>

#include "pyspy/process/memory.h"
#include "pyspy/process/thread_activity.h"
#include "pyspy/process/wait_state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 9) return 0;
    std::uint64_t inode = 0;
    std::memcpy(&inode, data + 1, 8);
    const std::string_view text(reinterpret_cast<const char*>(data + 9), size - 9);
    volatile std::size_t sink = 0;
    switch (data[0] % 4) {
        case 0: {
            const auto activity = pyspy::parseSyscallActivity(text);
            if (activity.call) sink = sink + pyspy::syscallName(activity.call->number).size();
            break;
        }
        case 1:
            for (bool ipv6 : {false, true}) {
                if (auto peer = pyspy::socketPeerFromTable(text, inode, ipv6)) sink = sink + peer->size();
            }
            break;
        case 2:
            sink = sink + static_cast<std::size_t>(pyspy::syscallOfWaitChannel(text) + 1);
            break;
        default: {
            if (text.size() < 48) return 0;
            pyspy::SyscallCall call;
            std::memcpy(call.args.data(), text.data(), 48);
            call.args[0] = 0x1000 + call.args[0] % 64;  // poll's array or select's nfds, near the memory
            call.args[1] = call.args[1] % 2 ? 0x1000 : call.args[1] % 4096;
            pyspy::BufferMemory memory;
            memory.map(0x1000, std::vector<std::uint8_t>(text.begin() + 48, text.end()));
            for (std::int64_t number : {SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6, SYS_read}) {
                call.number = number;
                const auto wait = pyspy::waitFd(call, &memory);
                sink = sink + static_cast<std::size_t>(wait.state) + static_cast<std::size_t>(wait.fd.value_or(0));
            }
        }
    }
    return 0;
}
