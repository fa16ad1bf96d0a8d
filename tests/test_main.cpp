// The one Catch2 main shared by every test executable, with the skip tally of
// test_skip.h: exit kSkipExitCode when every test case that ran was skipped.
#define CATCH_CONFIG_RUNNER
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include <iostream>
#include <string>

#include "tests/test_skip.h"

namespace {

// The run's counts. Process-wide by nature (Catch2 creates the listener, the
// test bodies only see mark_skipped), so it lives in one function-local static.
struct SkipTally {
  bool current_skipped = false;
  int cases = 0;
  int skipped = 0;
};
SkipTally& tally() {
  static SkipTally t;
  return t;
}

class SkipListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    tally().current_skipped = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  void testCaseEnded(Catch::TestCaseStats const& stats) override {
    ++tally().cases;
    if (tally().current_skipped) ++tally().skipped;
    TestEventListenerBase::testCaseEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(SkipListener)

namespace vitscale::testing {
void mark_skipped(const std::string& reason) {
  (void)reason;  // the WARN beside the mark prints it
  tally().current_skipped = true;
}
}  // namespace vitscale::testing

int main(int argc, char* argv[]) {
  // CTest passes each case's name as Catch2's first argument, so a name that
  // starts with '-' is parsed as an option ("--help ..." prints the usage and
  // exits 0 without running the case), one that starts with '~' as an
  // exclusion; and CMake splits a name at ';' (the CTest test becomes the text
  // before it, a filter that matches no case and "passes"). Refuse such a name
  // here, in every run of the executable, so it cannot pass unseen.
  for (const Catch::TestCase& test_case : Catch::getRegistryHub().getTestCaseRegistry().getAllTests()) {
    const std::string& name = test_case.name;
    const bool option_like = !name.empty() && (name.front() == '-' || name.front() == '~');
    const char* problem = option_like ? "starts with '-' or '~', which Catch2 parses as an option or an exclusion"
                          : name.find(';') != std::string::npos ? "contains ';', where CMake splits it"
                                                                 : nullptr;
    if (problem != nullptr) {
      std::cerr << "test case name " << problem << ": \"" << name << "\" (" << test_case.lineInfo.file << ":"
                << test_case.lineInfo.line << ")\n";
      return 2;
    }
  }
  const int failed = Catch::Session().run(argc, argv);
  const SkipTally& t = tally();
  if (t.skipped > 0)
    std::cout << t.skipped << " of " << t.cases << " test case(s) skipped: they did not run on this machine\n";
  if (failed == 0 && t.cases > 0 && t.skipped == t.cases) return vitscale::testing::kSkipExitCode;
  return failed;
}
