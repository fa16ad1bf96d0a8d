// test_skip.h — a test that cannot run on this machine reports skipped, never passed.
//
// VS_SKIP(reason) ends the running test case with a WARN naming the reason and
// marks it skipped. tests/test_main.cpp counts the marks: a run whose every
// test case was skipped (and nothing failed) exits with kSkipExitCode, which
// CTest's SKIP_RETURN_CODE turns into "Skipped" (one CTest entry runs one case,
// so `ctest` reads "N passed, M skipped"); a run with cases that did run exits
// as Catch2 says, and prints how many were skipped.
#pragma once

#include <catch2/catch.hpp>

#include <string>

namespace vitscale::testing {

inline constexpr int kSkipExitCode = 77;  // automake's convention; CTest: SKIP_RETURN_CODE 77

// Marks the running test case skipped (test_main.cpp's listener reads it).
void mark_skipped(const std::string& reason);

}  // namespace vitscale::testing

#define VS_SKIP(reason)                        \
  do {                                         \
    ::vitscale::testing::mark_skipped(reason); \
    WARN("skipped: " << (reason));             \
    return;                                    \
  } while (0)
