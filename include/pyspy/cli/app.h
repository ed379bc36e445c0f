#pragma once

namespace pyspy {

// Parses the command line, runs the command, and maps every FatalError to its
// documented exit code with a one-line message on stderr.
int runCli(int argc, char** argv);

}  // namespace pyspy
