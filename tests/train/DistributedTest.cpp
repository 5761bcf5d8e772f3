// Data-parallel training with real processes on loopback (Gloo): 2 ranks on
// half batches must end with the parameters of 1 rank on the full batch, and
// a rank that dies, hangs or fails must end the job, named, within the
// timeout. The single-process reference is the independent side: it never
// communicates.

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <thread>

#include "core/Config.h"
#include "core/Errors.h"
#include "core/TorchCompat.h"
#include "tests/train/DriverJobs.h"
#include "tests/train/ProcessHarness.h"
#include "train/Distributed.h"
#include "train/detail/GradientBuckets.h"
#include "train/detail/Watchdog.h"

namespace kmidi::testing {
namespace {

constexpr double kTolerance = 1e-6;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void expect_success(const Job& job) {
  for (size_t r = 0; r < job.ranks.size(); ++r) {
    EXPECT_EQ(job.ranks[r].exit_code, 0) << "rank " << r << ": " << describe(job.ranks[r]);
    // A clean end: no rank mistook another's exit for a failure.
    EXPECT_FALSE(contains(job.ranks[r].err, "distributed failure")) << "rank " << r << ": " << describe(job.ranks[r]);
  }
}

Job reference_job(const std::vector<std::string>& args) {
  const Job job = run_reference(args, make_temp_dir("kmidi-ddp-reference"));
  EXPECT_EQ(job.ranks[0].exit_code, 0) << describe(job.ranks[0]);
  return job;
}

void expect_equal_to_reference(const Job& reference, const Job& job) {
  expect_success(job);
  for (size_t r = 0; r < job.ranks.size(); ++r) {
    const double difference = max_parameter_difference(reference.params(0), job.params(static_cast<int>(r)));
    EXPECT_LT(difference, kTolerance) << "rank " << r;
  }
  // Ranks agree bit for bit: they apply the same summed gradients to the same start.
  for (size_t r = 1; r < job.ranks.size(); ++r) {
    EXPECT_EQ(max_parameter_difference(job.params(0), job.params(static_cast<int>(r))), 0.0) << "rank " << r;
  }
  // The all-reduced loss printed by rank 0 follows the reference's.
  const auto expected = lines_starting_with(reference.ranks[0].out, "step ");
  const auto got = lines_starting_with(job.ranks[0].out, "step ");
  ASSERT_EQ(expected.size(), got.size()) << job.ranks[0].out;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double a = std::stod(expected[i].substr(expected[i].rfind(' ') + 1));
    const double b = std::stod(got[i].substr(got[i].rfind(' ') + 1));
    EXPECT_NEAR(a, b, 1e-5) << expected[i] << " vs " << got[i];
  }
}

// --- in-process rules --------------------------------------------------------

TEST(DistributedContext, WithoutALauncherIsASingleProcessOnTheCpuWithoutIndex) {
  train::DistributedConfig config;
  const auto context = train::DistributedContext::create(config, "cpu", train::LaunchEnvironment{});
  EXPECT_FALSE(context->distributed());
  EXPECT_EQ(context->launcher(), "single process");
  EXPECT_EQ(context->device().type(), c10::kCPU);
  EXPECT_FALSE(context->device().has_index());
  EXPECT_EQ(context->device().str(), "cpu");
}

TEST(DistributedContext, CpuDeviceNeverGetsTheLocalRankAsIndex) {
  train::LaunchEnvironment launch;
  launch.launcher = "torchrun";
  launch.rank = launch.local_rank = 1;
  launch.world_size = launch.local_world_size = 2;
  for (const char* device : {"cpu", "auto"}) {  // no CUDA on this machine: auto is the CPU
    const c10::Device d = train::select_device(device, launch);
    EXPECT_EQ(d.type(), c10::kCPU) << device;
    EXPECT_FALSE(d.has_index()) << device;
  }
}

template <class Error>
void expect_throws_with(const std::function<void()>& f, const std::string& substring) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing: " << substring;
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), substring)) << e.what();
  }
}

TEST(DistributedConfig, BucketSizeDefaultsToPyTorchsAndMustBePositive) {
  const auto read = [](const std::string& yaml) {
    train::DistributedConfig config;
    config::Document::load_string(yaml, "job.yaml", "/").read_into(config);
    return config;
  };
  EXPECT_EQ(read("backend: gloo\n").bucket_mb, 25.0);
  EXPECT_EQ(read("bucket_mb: 8\n").bucket_mb, 8.0);
  for (const char* bad : {"0", "-1"}) {
    SCOPED_TRACE(bad);
    expect_throws_with<config::ConfigError>([&] { read(std::string("backend: gloo\nbucket_mb: ") + bad + "\n"); },
                                            "job.yaml:2");
    expect_throws_with<config::ConfigError>([&] { read(std::string("bucket_mb: ") + bad + "\n"); }, "bucket_mb");
  }
}

TEST(FailureTimings, DefaultWindowsFitTheLaunchersThirtySecondGrace) {
  // torchrun 1.13 SIGKILLs 30 s after its SIGTERM; Slurm's KillWait is 30 s by
  // default. A peer that dies while this rank stops must be named, and this
  // rank ended (by itself or by the last resort), within that.
  using std::chrono::milliseconds;
  const train::DistributedConfig defaults;
  const auto t = train::detail::FailureTimings::from_timeout_s(defaults.timeout_s);
  const milliseconds grace(30000);
  EXPECT_EQ(t.timeout, milliseconds(300000));
  EXPECT_LT(t.heartbeat_stale + t.exit_grace, grace);                               // silence, then the last resort
  EXPECT_LT(2 * t.heartbeat_interval + milliseconds(500) + t.exit_grace, grace / 2);  // a transport error elsewhere
  // Short timeouts keep their proportions (the tests' 4 s).
  const auto short_timeout = train::detail::FailureTimings::from_timeout_s(4.0);
  EXPECT_EQ(short_timeout.heartbeat_stale, milliseconds(2000));
  EXPECT_EQ(short_timeout.heartbeat_interval, milliseconds(200));
  EXPECT_EQ(short_timeout.exit_grace, milliseconds(2000));
}

TEST(DistributedContext, ConfigurationErrors) {
  train::DistributedConfig config;
  config.world_size = 4;
  expect_throws_with<UsageError>([&] { train::DistributedContext::create(config, "cpu", train::LaunchEnvironment{}); },
                                 "distributed.world_size is 4 but single process started 1 process");
  config.world_size = 0;
  config.backend = "nccl";
  expect_throws_with<UsageError>([&] { train::DistributedContext::create(config, "cpu", train::LaunchEnvironment{}); },
                                 "distributed.backend is 'nccl' but this process runs on cpu");
  config.backend = "auto";
  if (!torch::cuda::is_available()) {
    expect_throws_with<UsageError>(
        [&] { train::DistributedContext::create(config, "cuda", train::LaunchEnvironment{}); },
        "run.device is 'cuda' but no CUDA device is available");
  }
  expect_throws_with<UsageError>([&] { train::DistributedContext::create(config, "tpu", train::LaunchEnvironment{}); },
                                 "unknown device 'tpu'");
}

TEST(GradientBuckets, ReverseOrderCapsAndDtypeBoundaries) {
  using train::detail::plan_buckets;
  // Four float parameters of 40, 40, 100, 10 bytes with a 64-byte cap: walked
  // backwards, 10+100 would overflow, so 3 | 2 | 1 0.
  EXPECT_EQ(plan_buckets({40, 40, 100, 10}, {0, 0, 0, 0}, 64),
            (std::vector<std::vector<size_t>>{{3}, {2}, {1}, {0}}));
  EXPECT_EQ(plan_buckets({16, 16, 16, 16}, {0, 0, 0, 0}, 32), (std::vector<std::vector<size_t>>{{3, 2}, {1, 0}}));
  // A dtype change closes the bucket even with room left.
  EXPECT_EQ(plan_buckets({8, 8, 8}, {1, 0, 0}, 1000), (std::vector<std::vector<size_t>>{{2, 1}, {0}}));
  EXPECT_EQ(plan_buckets({}, {}, 10), (std::vector<std::vector<size_t>>{}));
}

TEST(GradientBuckets, APeerFailureRaisedInAGradientHookReachesTheCallerOfBackwardAsItself) {
  // The synchronizer launches all-reduces from gradient hooks, inside
  // backward; a failure seen there must surface as PeerFailure (exit code 5),
  // not as a LibTorch error.
  struct Throwing : torch::autograd::FunctionPostHook {
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      throw PeerFailure("rank 1 of 2 sent no heartbeat");
    }
  };
  auto weight = torch::ones({3}, torch::requires_grad());
  auto accumulator = torch::autograd::impl::grad_accumulator(weight);
  accumulator->add_post_hook(std::make_unique<Throwing>());
  expect_throws_with<PeerFailure>([&] { (weight * 2).sum().backward(); }, "rank 1 of 2 sent no heartbeat");
}

// --- 2 ranks against 1 -------------------------------------------------------

const std::vector<std::string> kSmallBuckets{"--bucket-mb", "0.002", "--timeout", "30"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(DataParallel, TwoRanksOnHalfBatchesMatchOneRankSgd) {
  const std::vector<std::string> args{"--optimizer", "sgd", "--steps", "5", "--global-batch", "8", "--report"};
  const Job reference = reference_job(args);
  const Job job = run_ranks(2, with(args, kSmallBuckets), make_temp_dir("kmidi-ddp-sgd"), EnvStyle::kTorchrun);
  expect_equal_to_reference(reference, job);
  for (int r = 0; r < 2; ++r) {
    // Every bucket was complete, and launched, before backward returned: the
    // all-reduce overlaps with the rest of backward.
    const auto first = lines_starting_with(job.ranks[r].out, "rank " + std::to_string(r) + " step 0 buckets=");
    ASSERT_EQ(first.size(), 1u) << job.ranks[r].out;
    const int count = std::stoi(first[0].substr(first[0].find("buckets=") + 8));
    EXPECT_GE(count, 5) << first[0];  // 2 KB buckets: the large parameters each get one
    EXPECT_TRUE(contains(first[0], "cap_bytes=2097 ")) << first[0];  // --bucket-mb 0.002 of 1 MiB
    EXPECT_TRUE(contains(first[0], "launched_during_backward=" + std::to_string(count))) << first[0];
    // After the first step every gradient is a view of its bucket: later
    // backward passes accumulate into the buckets, with no copy in or out.
    const auto last = lines_starting_with(job.ranks[r].out, "rank " + std::to_string(r) + " step 4 buckets=");
    ASSERT_EQ(last.size(), 1u) << job.ranks[r].out;
    const std::string in_buckets = last[0].substr(last[0].find("grads_in_buckets=") + 17);
    const auto slash = in_buckets.find('/');
    ASSERT_NE(slash, std::string::npos) << last[0];
    EXPECT_GT(std::stoi(in_buckets.substr(slash + 1)), 0) << last[0];
    EXPECT_EQ(in_buckets.substr(0, slash), in_buckets.substr(slash + 1)) << last[0];
    EXPECT_TRUE(contains(last[0], "launched_during_backward=" + std::to_string(count))) << last[0];
    // broadcast_string gives everyone rank 0's value.
    EXPECT_TRUE(contains(job.ranks[r].out, "rank " + std::to_string(r) + " run_name=chosen-by-rank-0\n"))
        << job.ranks[r].out;
    // Launched with torchrun's variables; Gloo on the CPU, never cpu:<local rank>.
    EXPECT_TRUE(contains(job.ranks[r].out, "rank=" + std::to_string(r) + " world=2 local_rank=" + std::to_string(r) +
                                               " local_world=2 launcher=torchrun device=cpu backend=gloo"))
        << job.ranks[r].out;
  }
}

// Adam in double precision: attention's key bias has a gradient that is zero
// in exact arithmetic (softmax ignores a constant shift); in float32 it is
// rounding noise of ~1e-9, which Adam scales up to steps of ~lr (its eps is
// 1e-8), so the two runs' different summation orders would differ by 1e-3
// there for reasons that have nothing to do with synchronisation.
const std::vector<std::string> kAdam{"--optimizer", "adam", "--lr", "0.01", "--dtype", "double"};

TEST(DataParallel, TwoRanksOnHalfBatchesMatchOneRankAdam) {
  const std::vector<std::string> args = with(kAdam, {"--steps", "5", "--global-batch", "8"});
  const Job reference = reference_job(args);
  expect_equal_to_reference(reference, run_ranks(2, with(args, kSmallBuckets), make_temp_dir("kmidi-ddp-adam"),
                                                 EnvStyle::kTorchrun));
}

TEST(DataParallel, GradientAccumulationTwoRanksTwoMicroStepsMatchOneRankFullBatch) {
  const std::vector<std::string> args = with(kAdam, {"--steps", "4", "--global-batch", "8"});
  const Job reference = reference_job(args);
  expect_equal_to_reference(reference,
                            run_ranks(2, with(args, with(kSmallBuckets, {"--accumulation", "2"})),
                                      make_temp_dir("kmidi-ddp-accumulation"), EnvStyle::kTorchrun));
}

TEST(DataParallel, GlooBucketsDefaultToPyTorchsTwentyFiveMebibytes) {
  // Fewer, larger buckets cost less per step on Gloo than small ones
  // (BENCHMARKS.md), as PyTorch's default assumes.
  const Job job = run_ranks(2, {"--optimizer", "sgd", "--steps", "1", "--global-batch", "4", "--report"},
                            make_temp_dir("kmidi-ddp-default-buckets"), EnvStyle::kTorchrun);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(job.ranks[r].exit_code, 0) << job.ranks[r].err;
    EXPECT_TRUE(contains(job.ranks[r].out, "cap_bytes=26214400 ")) << job.ranks[r].out;
  }
}

TEST(DataParallel, SlurmVariablesLaunchTheSameTraining) {
  const std::vector<std::string> args{"--optimizer", "sgd", "--steps", "3", "--global-batch", "8", "--report"};
  const Job reference = reference_job(args);
  const Job job = run_ranks(2, with(args, kSmallBuckets), make_temp_dir("kmidi-ddp-slurm"), EnvStyle::kSlurm);
  expect_equal_to_reference(reference, job);
  EXPECT_TRUE(contains(job.ranks[1].out, "rank=1 world=2 local_rank=1 local_world=2 launcher=slurm device=cpu"))
      << job.ranks[1].out;
  EXPECT_TRUE(contains(job.ranks[1].out, "master=localhost:")) << job.ranks[1].out;
}

TEST(DataParallel, TorchrunAgentStoreEveryRankConnectsAsAClient) {
  // This test process plays torchrun's agent: it hosts the store, and rank 0
  // must not try to serve one on the same port.
  const int port = free_port();
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;
  auto agent_store = kmidi::compat::make_tcp_store("127.0.0.1", options);
  agent_store->set("torchelastic/agent_key", std::vector<uint8_t>{1});

  const std::vector<std::string> args{"--optimizer", "sgd", "--steps", "3", "--global-batch", "8", "--report"};
  const Job reference = reference_job(args);
  const std::string dir = make_temp_dir("kmidi-ddp-agent");
  std::vector<Process> processes;
  for (int r = 0; r < 2; ++r) {
    auto env = launcher_env(EnvStyle::kTorchrun, r, 2, port);
    env["TORCHELASTIC_USE_AGENT_STORE"] = "True";
    env["TORCHELASTIC_RESTART_COUNT"] = "1";
    std::vector<std::string> argv{driver_path()};
    for (const auto& a : with(driver_data_args(), with(args, with(kSmallBuckets, {"--out", dir + "/params.{rank}.pt"}))))
      argv.push_back(a);
    processes.push_back(Process::start(argv, env, dir, "rank" + std::to_string(r)));
  }
  Job job{dir, {}};
  for (auto& p : processes) job.ranks.push_back(p.wait(60));
  expect_equal_to_reference(reference, job);
  EXPECT_TRUE(contains(job.ranks[0].out, "restart=1 agent_store=1")) << job.ranks[0].out;
  // The job's keys live under this attempt's prefix in the agent's store.
  EXPECT_TRUE(agent_store->check({"kmidi/attempt_1/joined/0", "kmidi/attempt_1/joined/1"}));
  EXPECT_FALSE(agent_store->check({"kmidi/attempt_0/joined/0"}));
}

// --- unused parameters ---------------------------------------------------------

TEST(UnusedParameters, WithoutFindUnusedEveryRankNamesTheParameters) {
  const Job job = run_ranks(2, {"--unused-head", "--steps", "2", "--timeout", "20"}, make_temp_dir("kmidi-ddp-unused"),
                            EnvStyle::kTorchrun);
  for (int r = 0; r < 2; ++r) {
    const auto& result = job.ranks[r];
    EXPECT_NE(result.exit_code, 0) << describe(result);
    EXPECT_TRUE(contains(result.err, "2 parameter(s) got no gradient in this step on rank")) << describe(result);
    EXPECT_TRUE(contains(result.err, "unused_head.weight, unused_head.bias")) << describe(result);
    EXPECT_TRUE(contains(result.err, "distributed.find_unused_parameters: true")) << describe(result);
  }
}

TEST(UnusedParameters, FindUnusedMatchesOneRankWhenABranchRunsOnOneRankOnly) {
  // The aux branch runs on the first piece of each global batch only: rank 0's
  // in the 2-rank job, micro-step 0 in the reference, which accumulates the
  // same two pieces; unused_head is used by no one and must stay untouched.
  const std::vector<std::string> model = with(kAdam, {"--unused-head", "--aux-branch", "--steps", "4", "--global-batch", "8"});
  const Job reference = reference_job(with(model, {"--accumulation", "2"}));
  const Job job = run_ranks(2, with(model, with(kSmallBuckets, {"--find-unused"})), make_temp_dir("kmidi-ddp-find"),
                            EnvStyle::kTorchrun);
  expect_equal_to_reference(reference, job);
  // Against a run that changes nothing (learning rate 0): the aux branch
  // trained, unused_head kept rank 0's initial values on every rank.
  const Job initial = reference_job(with(model, {"--steps", "1", "--lr", "0"}));
  const auto aux_before = parameter_values(initial.params(0), "aux.weight");
  const auto aux_after = parameter_values(job.params(1), "aux.weight");
  double moved = 0.0;
  for (size_t i = 0; i < aux_before.size(); ++i) moved = std::max(moved, std::abs(aux_before[i] - aux_after[i]));
  EXPECT_GT(moved, 1e-3);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(parameter_values(initial.params(0), "unused_head.weight"), parameter_values(job.params(r), "unused_head.weight"));
    EXPECT_EQ(parameter_values(initial.params(0), "unused_head.bias"), parameter_values(job.params(r), "unused_head.bias"));
  }
}

TEST(UnusedParameters, FindUnusedWithAccumulationUsesGradientsOfEarlierMicroSteps) {
  // 2 ranks x 2 micro-steps: the aux branch runs in rank 0's first micro-step
  // only, never in a synchronised backward pass.
  const std::vector<std::string> model{"--aux-branch", "--optimizer", "sgd", "--steps", "3", "--global-batch", "8"};
  const Job reference = reference_job(with(model, {"--accumulation", "4"}));
  expect_equal_to_reference(reference, run_ranks(2, with(model, with(kSmallBuckets, {"--find-unused", "--accumulation", "2"})),
                                                 make_temp_dir("kmidi-ddp-find-accumulation"), EnvStyle::kTorchrun));
}

// --- failures --------------------------------------------------------------------

constexpr double kFailureTimeout = 4.0;  // distributed.timeout_s of these tests

std::vector<std::string> long_run(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--steps", "200", "--timeout", std::to_string(kFailureTimeout)};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

/// Starts a 2-rank job and returns the processes.
std::vector<Process> start_ranks(const std::vector<std::string>& args, const std::string& dir,
                                 const std::map<std::string, std::string>& extra_env = {}) {
  const int port = free_port();
  std::vector<Process> processes;
  for (int r = 0; r < 2; ++r) {
    auto env = launcher_env(EnvStyle::kTorchrun, r, 2, port);
    for (const auto& [k, v] : extra_env) env[k] = v;
    std::vector<std::string> argv{driver_path()};
    for (const auto& a : with(driver_data_args(), args)) argv.push_back(a);
    processes.push_back(Process::start(argv, env, dir, "rank" + std::to_string(r)));
  }
  return processes;
}

TEST(Failures, AKilledRankEndsTheSurvivorWithinTheTimeoutNamingIt) {
  const std::string dir = make_temp_dir("kmidi-ddp-kill");
  auto ranks = start_ranks(long_run(), dir, {{"KMIDI_FAULT", "distributed_driver.step:rank1.step3"}});
  const ProcessResult victim = ranks[1].wait(60);
  ASSERT_EQ(victim.signal, SIGKILL) << describe(victim);
  const double died = now_seconds();
  const ProcessResult survivor = ranks[0].wait(kFailureTimeout + 10);
  const double after = now_seconds() - died;
  EXPECT_FALSE(survivor.timed_out) << describe(survivor);
  EXPECT_EQ(survivor.exit_code, kExitPeerFailed) << describe(survivor);
  // Its connection reset, and /proc shows its process ended: named at once.
  EXPECT_TRUE(contains(survivor.err, "distributed failure: rank 1 (pid ")) << describe(survivor);
  EXPECT_TRUE(contains(survivor.err, "on this machine) has ended")) << describe(survivor);
  EXPECT_LT(after, kFailureTimeout + 1.0) << describe(survivor);
}

TEST(Failures, AKilledPeerIsNamedAtOnceWithTheDefaultTimeout) {
  // distributed.timeout_s at its default: a transport error must not wait for
  // the heartbeat window (20 s) nor for the timeout.
  const std::string dir = make_temp_dir("kmidi-ddp-kill-default");
  auto ranks = start_ranks({"--steps", "200", "--timeout", "300"},
                           dir, {{"KMIDI_FAULT", "distributed_driver.step:rank1.step3"}});
  const ProcessResult victim = ranks[1].wait(60);
  ASSERT_EQ(victim.signal, SIGKILL) << describe(victim);
  const double died = now_seconds();
  const ProcessResult survivor = ranks[0].wait(60);
  EXPECT_EQ(survivor.exit_code, kExitPeerFailed) << describe(survivor);
  EXPECT_TRUE(contains(survivor.err, "distributed failure: rank 1 (pid ")) << describe(survivor);
  EXPECT_TRUE(contains(survivor.err, "has ended")) << describe(survivor);
  EXPECT_LT(now_seconds() - died, 5.0) << describe(survivor);
}

TEST(Failures, AKilledPeerOnAnotherMachineIsNamedWithinTwoHeartbeats) {
  // Rank 1 runs in a PID namespace of its own (unshare, as root), so rank 0
  // cannot see its process in /proc: as for a rank on another node, its
  // heartbeat standing still after the transport error names it, within two
  // heartbeat intervals (2 s each at the default timeout), not the 20 s window.
  const std::string dir = make_temp_dir("kmidi-ddp-kill-remote");
  const int port = free_port();
  const std::vector<std::string> args = with(driver_data_args(), {"--steps", "200", "--timeout", "300"});
  std::vector<Process> ranks;
  for (int r = 0; r < 2; ++r) {
    auto env = launcher_env(EnvStyle::kTorchrun, r, 2, port);
    env["KMIDI_FAULT"] = "distributed_driver.step:rank1.step3";
    // A shell as the namespace's init: the driver's own SIGKILL would not reach an init.
    std::vector<std::string> argv = r == 1 ? std::vector<std::string>{"/usr/bin/unshare", "--pid", "--fork", "/bin/sh",
                                                                      "-c", "\"$0\" \"$@\"; exit $?", driver_path()}
                                           : std::vector<std::string>{driver_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    ranks.push_back(Process::start(argv, env, dir, "rank" + std::to_string(r)));
  }
  const ProcessResult victim = ranks[1].wait(60);
  ASSERT_NE(victim.exit_code, 0) << describe(victim);
  ASSERT_FALSE(victim.timed_out) << describe(victim);
  const double died = now_seconds();
  const ProcessResult survivor = ranks[0].wait(60);
  EXPECT_EQ(survivor.exit_code, kExitPeerFailed) << describe(survivor);
  EXPECT_TRUE(contains(survivor.err, "rank(s) 1 of 2 sent no heartbeat for 4.5 s after a transport error"))
      << describe(survivor);
  EXPECT_LT(now_seconds() - died, 10.0) << describe(survivor);
}

/// Waits until `path` contains `text`; false after `timeout_s`.
bool wait_for_text(const std::string& path, const std::string& text, double timeout_s) {
  const double deadline = now_seconds() + timeout_s;
  while (now_seconds() < deadline) {
    std::ifstream in(path);
    const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (contains(content, text)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(Failures, AStopSignalWhileAPeerIsStoppedDoesNotBlockInACollective) {
  // As under torchrun or Slurm: SIGTERM starts a graceful stop, whose
  // collectives would wait for a peer that never answers; the launcher kills
  // the process 30 s later. With the default timeout the stop must end at
  // once, naming the peer, with exit code 5.
  const std::string dir = make_temp_dir("kmidi-ddp-stop-peer-gone");
  auto ranks = start_ranks({"--steps", "200", "--timeout", "300", "--stop-on-signal", "--hang-rank", "1",
                            "--hang-step", "3"},
                           dir);
  ASSERT_TRUE(wait_for_text(dir + "/rank0.out", "step 2 loss", 60)) << dir;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // rank 0 now waits in step 3
  const double signalled = now_seconds();
  ranks[0].signal(SIGTERM);
  const ProcessResult stopping = ranks[0].wait(60);
  EXPECT_EQ(stopping.exit_code, kExitPeerFailed) << describe(stopping);
  EXPECT_TRUE(contains(stopping.err, "rank 1 (pid ")) << describe(stopping);
  EXPECT_TRUE(contains(stopping.err, "is stopped while this rank, asked to stop (Terminated)")) << describe(stopping);
  EXPECT_LT(now_seconds() - signalled, 5.0) << describe(stopping);
}

TEST(Failures, AStopSignalWithLivePeersStopsEveryRankGracefully) {
  // The other side of the rule above: live peers are waited for, and every
  // rank ends through the barrier with 130 (none blames a peer).
  const std::string dir = make_temp_dir("kmidi-ddp-stop-graceful");
  auto ranks = start_ranks({"--steps", "100000", "--timeout", "300", "--stop-on-signal"}, dir);
  ASSERT_TRUE(wait_for_text(dir + "/rank0.out", "step 2 loss", 60)) << dir;
  ranks[1].signal(SIGTERM);
  for (int r = 0; r < 2; ++r) {
    const ProcessResult result = ranks[r].wait(60);
    EXPECT_EQ(result.exit_code, kExitInterrupted) << r << ": " << describe(result);
    EXPECT_FALSE(contains(result.err, "has ended")) << r << ": " << describe(result);
    EXPECT_FALSE(contains(result.err, "is stopped")) << r << ": " << describe(result);
    // A stop on request is no failure: no rank logs one for itself or a peer.
    EXPECT_FALSE(contains(result.err, "distributed failure")) << r << ": " << describe(result);
    EXPECT_FALSE(contains(result.err, "failed")) << r << ": " << describe(result);
    EXPECT_TRUE(contains(result.err, "interrupted: stop signal before step")) << r << ": " << describe(result);
  }
}

TEST(Failures, AKilledRankZeroThatHostsTheStoreIsNamedByTheOthers) {
  const std::string dir = make_temp_dir("kmidi-ddp-kill0");
  auto ranks = start_ranks(long_run(), dir, {{"KMIDI_FAULT", "distributed_driver.step:rank0.step3"}});
  const ProcessResult victim = ranks[0].wait(60);
  ASSERT_EQ(victim.signal, SIGKILL) << describe(victim);
  const double died = now_seconds();
  const ProcessResult survivor = ranks[1].wait(kFailureTimeout + 10);
  EXPECT_EQ(survivor.exit_code, kExitPeerFailed) << describe(survivor);
  // Named from its ended process (a transport error) or from the lost store, whichever comes first.
  EXPECT_TRUE(contains(survivor.err, "rank 0, which hosts the rendezvous store") ||
              contains(survivor.err, "rank 0 (pid "))
      << describe(survivor);
  EXPECT_LT(now_seconds() - died, kFailureTimeout + 1.0) << describe(survivor);
}

TEST(Failures, AStoppedRankIsNamedWithinTheTimeout) {
  const std::string dir = make_temp_dir("kmidi-ddp-hang");
  auto ranks = start_ranks(long_run({"--hang-rank", "1", "--hang-step", "3"}), dir);
  // Rank 1 stops itself (SIGSTOP) at step 3: its heartbeat thread stops too.
  const double started = now_seconds();
  const ProcessResult survivor = ranks[0].wait(60);
  EXPECT_EQ(survivor.exit_code, kExitPeerFailed) << describe(survivor);
  EXPECT_TRUE(contains(survivor.err, "rank 1 of 2 sent no heartbeat")) << describe(survivor);
  EXPECT_TRUE(contains(survivor.out, "step 2 loss")) << describe(survivor);  // it did train before
  EXPECT_LT(now_seconds() - started, 30.0);
  EXPECT_FALSE(ranks[1].poll().has_value());  // still stopped; the harness kills it
}

TEST(Failures, ARankBlockedWithLiveHeartbeatsTimesOutAndIsEndedByTheLastResort) {
  const std::string dir = make_temp_dir("kmidi-ddp-sleep");
  // Rank 1's training thread sleeps at step 3; its heartbeats go on, so only
  // the collective timeout can tell. Rank 0 names it as behind; rank 1 learns
  // of the abort but its training thread never returns: the last-resort
  // thread ends it.
  auto ranks = start_ranks(long_run({"--sleep-rank", "1", "--sleep-step", "3"}), dir);
  const double started = now_seconds();
  const ProcessResult waiting = ranks[0].wait(60);
  EXPECT_EQ(waiting.exit_code, kExitPeerFailed) << describe(waiting);
  EXPECT_TRUE(contains(waiting.err, "did not complete within distributed.timeout_s (4.0 s)")) << describe(waiting);
  EXPECT_TRUE(contains(waiting.err, "rank(s) 1 are behind in the sequence of collectives")) << describe(waiting);
  const ProcessResult sleeper = ranks[1].wait(60);
  EXPECT_EQ(sleeper.exit_code, kExitPeerFailed) << describe(sleeper);
  EXPECT_TRUE(contains(sleeper.err, "the process did not stop within 2.0 s of it; exiting")) << describe(sleeper);
  EXPECT_LT(now_seconds() - started, 30.0);
}

TEST(Failures, AnErrorOnOneRankStopsTheOthersAtOnce) {
  const std::string dir = make_temp_dir("kmidi-ddp-error");
  // A long timeout: the others must learn from the abort, not from the timeout.
  auto ranks = start_ranks({"--steps", "200", "--timeout", "120", "--fail-rank", "1", "--fail-step", "3"}, dir);
  const ProcessResult failing = ranks[1].wait(60);
  EXPECT_EQ(failing.exit_code, kExitData) << describe(failing);
  EXPECT_TRUE(contains(failing.err, "rank 1 cannot read its batch of step 3")) << describe(failing);
  const double failed = now_seconds();
  const ProcessResult other = ranks[0].wait(60);
  EXPECT_EQ(other.exit_code, kExitPeerFailed) << describe(other);
  EXPECT_TRUE(contains(other.err, "rank 1 failed: it stopped with an error")) << describe(other);
  EXPECT_LT(now_seconds() - failed, 10.0) << describe(other);
}

TEST(Failures, RendezvousTimeoutListsTheRanksThatNeverJoined) {
  const std::string dir = make_temp_dir("kmidi-ddp-rendezvous");
  const int port = free_port();
  std::vector<std::string> argv{driver_path()};
  for (const auto& a : with(driver_data_args(), {"--timeout", "2"})) argv.push_back(a);
  const ProcessResult alone = run_process(argv, launcher_env(EnvStyle::kTorchrun, 0, 3, port), dir, "rank0", 30);
  EXPECT_EQ(alone.exit_code, kExitPeerFailed) << describe(alone);
  EXPECT_TRUE(contains(alone.err, "timed out after 2.0 s: rank(s) 1, 2 of 3 never joined (this is rank 0")) << describe(alone);
}

TEST(Failures, ModelsThatDifferBetweenRanksAreRefusedByEveryRank) {
  const Job job = run_ranks(2, {"--mismatch-rank", "1", "--timeout", "20"}, make_temp_dir("kmidi-ddp-mismatch"),
                            EnvStyle::kTorchrun, {}, 60);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(job.ranks[r].exit_code, kExitUsage) << describe(job.ranks[r]);
    EXPECT_TRUE(contains(job.ranks[r].err, "1 rank(s) built a model whose parameters or buffers (names, shapes, "
                                           "dtypes) differ from rank 0's"))
        << describe(job.ranks[r]);
  }
  EXPECT_TRUE(contains(job.ranks[1].err, "differ from rank 0's, this rank among them")) << describe(job.ranks[1]);
  EXPECT_FALSE(contains(job.ranks[0].err, "this rank among them")) << describe(job.ranks[0]);
}

TEST(Failures, ConfiguredWorldSizeDifferentFromTheLaunchersIsRefusedByEveryRank) {
  const Job job = run_ranks(2, {"--world-size", "4"}, make_temp_dir("kmidi-ddp-world"), EnvStyle::kTorchrun, {}, 30);
  for (const auto& r : job.ranks) {
    EXPECT_EQ(r.exit_code, kExitUsage) << describe(r);
    EXPECT_TRUE(contains(r.err, "distributed.world_size is 4 but torchrun started 2 processes")) << describe(r);
  }
}

}  // namespace
}  // namespace kmidi::testing
