// Shared Catch2 runner. Tests tagged [interp] run once per interpreter of the test
// matrix: ctest sets PYSPY_TEST_PYTHON to its path. A missing interpreter is
// reported to ctest as skipped (exit 77), never as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

int main(int argc, char* argv[]) {
    if (const char* python = std::getenv("PYSPY_TEST_PYTHON"); python != nullptr && ::access(python, X_OK) != 0) {
        std::fprintf(stderr, "SKIPPED: interpreter %s is not installed\n", python);
        return 77;
    }
    return Catch::Session().run(argc, argv);
}
