// TerminalScreen: the ncurses screen of `pyspy-cpp top`. Opening it takes over the
// terminal (alternate screen, no echo, keys one at a time, hidden cursor); destroying
// it gives the terminal back as it was, so every way out of the command (return,
// exception, SIGINT/SIGTERM taken by StopSignals, end of the target) restores it.
// Colours are used only when the terminal has them.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "pyspy/ui/top_render.h"

namespace pyspy {

class TerminalScreen {
  public:
    static constexpr int kNoKey = -1;
    static constexpr int kResize = -2;

    // nullptr when stdin or stdout is not a terminal, or its type is unknown to terminfo.
    static std::unique_ptr<TerminalScreen> open();
    ~TerminalScreen();
    TerminalScreen(const TerminalScreen&) = delete;
    TerminalScreen& operator=(const TerminalScreen&) = delete;

    std::size_t width() const;
    std::size_t height() const;
    // Replaces the screen's contents with `lines` (clipped to the screen).
    void draw(const std::vector<TopLine>& lines);
    // Waits up to `timeout` for a key: its code, kResize after a resize, or kNoKey.
    int readKey(std::chrono::milliseconds timeout);

  private:
    struct Impl;
    explicit TerminalScreen(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace pyspy
