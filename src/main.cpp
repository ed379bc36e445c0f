// pyspy-cpp: a thin main. Everything happens in the cli layer.
#include "pyspy/cli/app.h"

int main(int argc, char** argv) { return pyspy::runCli(argc, argv); }
