// TEST DRIVER ONLY: runs a training job of the fixture task with injected
// faults (tests/train/FaultyTask.h) in its own process, with the exit codes
// of cli/Main.cpp, so that tests can watch the run-health checks end a real
// process. Prints the health block of the result on success.
//   health_child CONFIG [key=value ...]

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/Logging.h"
#include "tests/train/FaultyTask.h"
#include "train/Job.h"

int main(int argc, char** argv) {
  using namespace kmidi;
  if (argc < 2) {
    std::fprintf(stderr, "usage: health_child CONFIG [key=value ...]\n");
    return kExitUsage;
  }
  std::vector<std::string> overrides(argv + 2, argv + argc);
  auto fail = [](const char* kind, const std::string& what, int code) {
    spdlog::default_logger()->flush();
    std::fprintf(stderr, "health_child: %s%s\n", kind, what.c_str());
    return code;
  };
  try {
    logging::init(logging::Options{});
    auto job = train::load_job_config(argv[1], overrides, test::faulty_registry());
    const train::TrainResult r = train::run_training(*job, test::faulty_registry());
    std::printf("%s\n", train::health_json(r.health).c_str());
    return kExitOk;
  } catch (const config::ConfigError& e) {
    return fail("config error: ", e.what(), kExitUsage);
  } catch (const UsageError& e) {
    return fail("error: ", e.what(), kExitUsage);
  } catch (const DataError& e) {
    return fail("data error: ", e.what(), kExitData);
  } catch (const CheckFailed& e) {
    return fail("check failed: ", e.what(), kExitCheckFailed);
  } catch (const Interrupted& e) {
    return fail("interrupted: ", e.what(), kExitInterrupted);
  } catch (const c10::Error& e) {
    return fail("internal error (LibTorch): ", e.what_without_backtrace(), kExitInternal);
  } catch (const std::exception& e) {
    return fail("internal error: ", e.what(), kExitInternal);
  }
}
