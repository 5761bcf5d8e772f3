#pragma once
// Helpers for the trainer's tests: scratch folders, small configs, snapshots,
// and a child process running a fixture job (tests/train/TrainChild.cpp).

#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/Files.h"
#include "tests/support/TestSupport.h"
#include "train/Distributed.h"
#include "train/Optimizer.h"
#include "train/TrainConfig.h"

extern char** environ;

namespace kmidi::test {

namespace fs = std::filesystem;

inline std::shared_ptr<train::DistributedContext> cpu_context() {
  return train::DistributedContext::create(train::DistributedConfig{}, "cpu");
}

/// A short run on the fixture: 20 steps of 32 items, evaluation every 10.
inline train::TrainConfig small_config() {
  train::TrainConfig c;
  c.seed = 7;
  c.max_steps = 20;
  c.batch_size = 32;
  c.log_every = 5;
  c.eval_every = 10;
  c.optimizer.lr = 3e-3;
  c.schedule.name = "cosine";
  c.schedule.warmup_steps = 3;
  c.max_grad_norm = 1.0;
  return c;
}

/// Deep copies of a list of named tensors.
inline train::NamedTensorList clone_all(const train::NamedTensorList& list) {
  train::NamedTensorList out;
  for (const auto& [name, t] : list) out.emplace_back(name, t.detach().clone());
  return out;
}

inline train::NamedTensorList model_state(torch::nn::Module& m) {
  train::NamedTensorList out;
  for (const auto& item : m.named_parameters(true)) out.emplace_back(item.key(), item.value().detach().clone());
  for (const auto& item : m.named_buffers(true)) out.emplace_back(item.key(), item.value().detach().clone());
  return out;
}

/// Every tensor equal bit for bit (same names, order, shapes and values).
inline ::testing::AssertionResult bit_equal(const train::NamedTensorList& a, const train::NamedTensorList& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " tensors";
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first) return ::testing::AssertionFailure() << "name " << a[i].first << " vs " << b[i].first;
    if (!torch::equal(a[i].second, b[i].second)) {
      return ::testing::AssertionFailure() << a[i].first << " differs by up to "
                                           << (a[i].second.to(torch::kDouble) - b[i].second.to(torch::kDouble)).abs().max().item<double>();
    }
  }
  return ::testing::AssertionSuccess();
}

inline void write_text(const std::string& path, const std::string& text) { files::write_atomic(path, text); }

/// A fixture job config for the child process.
inline std::string fixture_job_yaml(const std::string& output_dir, const std::string& train_section) {
  return "task: groove_fixture\n"
         "run: {name: job, output_dir: " + output_dir + ", device: cpu, threads: 1, resume: auto}\n"
         "train: " + train_section + "\n"
         "model: {hidden: 32, dropout: 0.1}\n";
}

/// A running child process: tests/train/train_child CONFIG [overrides], stderr to a file.
struct Child {
  pid_t pid = -1;
  std::string stderr_path;
};

inline Child spawn_child(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                         const std::string& stderr_path) {
  const std::string exe = KMIDI_BINARY_DIR "/tests/train/train_child";
  std::vector<std::string> argv_s{exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    if (std::string(*e).rfind("KMIDI_FAULT=", 0) != 0) env_s.emplace_back(*e);
  }
  env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  Child child;
  child.stderr_path = stderr_path;
  const int rc = posix_spawn(&child.pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) child.pid = -1;
  return child;
}

/// Waits up to `timeout_s`; returns the wait status, or kills the child and returns -1.
inline int wait_child(const Child& child, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(child.pid, &status, WNOHANG);
    if (r == child.pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, &status, 0);
  return -1;
}

}  // namespace kmidi::test
