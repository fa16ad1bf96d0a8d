// The main of the multi-process tests: MPI first, then Catch2 on every rank.
// Each test case is collective (all ranks run the same cases in the same
// order); a failure fails that rank's exit status, and mpirun's with it. A
// rank stuck in a collective is ended by the communicators' watchdog.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "parallel/bootstrap.h"

int main(int argc, char** argv) {
  vitscale::MpiSession mpi(&argc, &argv);
  return Catch::Session().run(argc, argv);
}
