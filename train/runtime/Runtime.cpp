#include "train/runtime/Runtime.h"

#include <ATen/Parallel.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <thread>

namespace kmidi::train {
namespace {

std::atomic<int> g_signals{0};
std::atomic<int> g_signal_number{0};

void on_stop_signal(int sig) {
  const int count = g_signals.fetch_add(1) + 1;
  g_signal_number.store(sig);
  if (count == 1) {
    const char msg[] = "\nkmidi: stop requested; finishing the current step and saving a checkpoint "
                       "(send the signal again to abort without saving)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  } else {
    const char msg[] = "\nkmidi: second stop signal; aborting without saving\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(130);
  }
}

/// Installed when a job ends by an error: the process is already on its way
/// out with that error's exit code, and a launcher's stop signal arriving
/// now (torchrun SIGTERMs the other ranks once one dies) must not turn it
/// into a death by signal. A second signal still ends it at once.
void on_stop_signal_while_ending(int) {
  static std::atomic<int> received{0};
  if (received.fetch_add(1) > 0) ::_exit(130);
}

/// "model name" of /proc/cpuinfo's first processor, or "" where there is none.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t begin = line.find_first_not_of(" \t", colon + 1);
    return begin == std::string::npos ? std::string() : line.substr(begin);
  }
  return {};
}

}  // namespace

std::string describe_hardware(const std::string& device, int world_size) {
  std::string text = device + " x " + std::to_string(world_size) + (world_size == 1 ? " process" : " processes");
  const std::string cpu = cpu_model_name();
  text += "; CPU " + (cpu.empty() ? std::string("unknown") : cpu) + " (" + std::to_string(available_cores()) +
          " cores available)";
  return text;
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

ProcessSettings configure_process(int64_t threads, int local_processes) {
  ProcessSettings s;
  // Large tensors are allocated with mmap by default (and the threshold grows
  // only after frees); each step then pays for fresh zeroed pages. Keeping
  // them in the heap and not trimming it lets malloc hand the same memory
  // back next step. 32 MiB is glibc's maximum mmap threshold on 64-bit hosts.
  const bool mmap_ok = ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
  const bool trim_ok = ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1;
  s.malloc_tuned = mmap_ok && trim_ok;

  if (threads > 0) {
    s.threads = static_cast<int>(threads);
    s.threads_from = "run.threads";
  } else if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) > 0) {
    s.threads = std::atoi(omp);  // launchers (torchrun) set it to share cores between local ranks
    s.threads_from = "OMP_NUM_THREADS";
  } else {
    // Launchers other than torchrun leave OMP_NUM_THREADS unset: ranks on one
    // machine share its cores instead of oversubscribing them.
    s.threads = std::max(1, available_cores() / std::max(1, local_processes));
    s.threads_from = "available cores";
  }
  at::set_num_threads(s.threads);
  return s;
}

StopSignals::StopSignals() : exceptions_at_start_(std::uncaught_exceptions()) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, &previous_int_);
  ::sigaction(SIGTERM, &action, &previous_term_);
}

StopSignals::~StopSignals() {
  if (std::uncaught_exceptions() > exceptions_at_start_) {
    struct sigaction action {};
    action.sa_handler = on_stop_signal_while_ending;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    return;
  }
  ::sigaction(SIGINT, &previous_int_, nullptr);
  ::sigaction(SIGTERM, &previous_term_, nullptr);
}

bool StopSignals::requested() { return g_signals.load() > 0; }
int StopSignals::signal_number() { return g_signal_number.load(); }
void StopSignals::request() { g_signals.fetch_add(1); }
void StopSignals::reset() {
  g_signals.store(0);
  g_signal_number.store(0);
}

}  // namespace kmidi::train
