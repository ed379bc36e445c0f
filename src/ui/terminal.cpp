#include "pyspy/ui/terminal.h"

#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <cstdlib>

#include <curses.h>

namespace pyspy {

namespace {

enum Pair : short { kGood = 1, kWarm, kHot, kTitle, kStatus, kHeader };

}  // namespace

struct TerminalScreen::Impl {
    SCREEN* screen = nullptr;
    bool colors = false;
};

std::unique_ptr<TerminalScreen> TerminalScreen::open() {
    if (!::isatty(STDOUT_FILENO) || !::isatty(STDIN_FILENO)) return nullptr;
    const char* term = std::getenv("TERM");
    if (term == nullptr || *term == '\0') return nullptr;
    std::setlocale(LC_ALL, "");  // UTF-8 names and paths are drawn as characters
    auto impl = std::make_unique<Impl>();
    std::fflush(stdout);
    impl->screen = ::newterm(nullptr, stdout, stdin);  // NULL (not exit) on an unusable TERM
    if (impl->screen == nullptr) return nullptr;
    ::set_term(impl->screen);
    ::cbreak();  // Ctrl-C still raises SIGINT, which StopSignals takes
    ::noecho();
    ::nonl();
    ::keypad(stdscr, TRUE);
    ::curs_set(0);
    if (::has_colors()) {
        impl->colors = true;
        ::start_color();
        ::use_default_colors();
        ::init_pair(kGood, COLOR_GREEN, -1);
        ::init_pair(kWarm, COLOR_YELLOW, -1);
        ::init_pair(kHot, COLOR_RED, -1);
        ::init_pair(kTitle, COLOR_CYAN, -1);
        ::init_pair(kStatus, COLOR_BLACK, COLOR_YELLOW);
        ::init_pair(kHeader, COLOR_BLACK, COLOR_GREEN);
    }
    return std::unique_ptr<TerminalScreen>(new TerminalScreen(std::move(impl)));
}

TerminalScreen::TerminalScreen(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TerminalScreen::~TerminalScreen() {
    ::curs_set(1);
    ::endwin();
    ::delscreen(impl_->screen);
    std::fflush(stdout);
}

std::size_t TerminalScreen::width() const { return COLS > 0 ? static_cast<std::size_t>(COLS) : 80; }
std::size_t TerminalScreen::height() const { return LINES > 0 ? static_cast<std::size_t>(LINES) : 24; }

void TerminalScreen::draw(const std::vector<TopLine>& lines) {
    erase();
    const int rows = LINES, cols = COLS;
    for (int y = 0; y < rows && y < static_cast<int>(lines.size()); ++y) {
        const TopLine& line = lines[static_cast<std::size_t>(y)];
        attr_t attr = A_NORMAL;
        short pair = 0;
        switch (line.style) {
            case TopStyle::Title: attr = A_BOLD; pair = kTitle; break;
            case TopStyle::GaugeGood: pair = kGood; break;
            case TopStyle::GaugeWarm: attr = A_BOLD; pair = kWarm; break;
            case TopStyle::GaugeHot: attr = A_BOLD; pair = kHot; break;
            case TopStyle::Status: attr = impl_->colors ? A_BOLD : A_REVERSE; pair = kStatus; break;
            case TopStyle::TableHeader: attr = impl_->colors ? A_BOLD : A_REVERSE; pair = kHeader; break;
            case TopStyle::HotRow: attr = A_BOLD; break;
            case TopStyle::Info: case TopStyle::Row: case TopStyle::Help: break;
        }
        if (impl_->colors && pair != 0) attr |= COLOR_PAIR(pair);
        attrset(attr);
        mvaddnstr(y, 0, line.text.c_str(), static_cast<int>(line.text.size()));
        if (line.style == TopStyle::TableHeader || line.style == TopStyle::Status) {
            // A full-width bar.
            int cy = 0, cx = 0;
            getyx(stdscr, cy, cx);
            (void)cy;
            for (int x = cx; x < cols; ++x) addch(' ');
        }
        attrset(A_NORMAL);
    }
    refresh();
}

int TerminalScreen::readKey(std::chrono::milliseconds timeout) {
    timeout(static_cast<int>(timeout.count()));
    const int key = getch();
    if (key == ERR) return kNoKey;
    if (key == KEY_RESIZE) return kResize;
    return key;
}

}  // namespace pyspy
