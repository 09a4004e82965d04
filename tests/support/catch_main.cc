// The tests' main: Catch2 with the test cases in a random order, freshly seeded each run, so
// that no test passes only because another one ran before it. The seed is printed first
// ("Randomness seeded to: N"); `--rng-seed N` repeats an order, `--order decl` restores the
// declared one.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <random>

int main(int argc, char* argv[]) {
  Catch::Session session;
  Catch::ConfigData& defaults = session.configData();
  defaults.runOrder = Catch::RunTests::InRandomOrder;
  defaults.rngSeed = std::random_device{}() | 1u;  // 0 would mean "not seeded"
  if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  return session.run();
}
