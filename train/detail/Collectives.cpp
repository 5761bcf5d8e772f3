#include "train/detail/Collectives.h"

#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>
#include <future>
#include <thread>
#include <vector>

#include "core/Errors.h"
#include "core/Strings.h"

namespace kmidi::train::detail {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    const std::string text = c10_error->what_without_backtrace();
    return text.substr(0, text.find('\n'));
  }
  return e.what();
}

std::string seconds_text(milliseconds ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

std::vector<uint8_t> bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

std::string text(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

std::string list_ranks(const std::vector<int>& ranks) {
  std::vector<std::string> parts;
  parts.reserve(ranks.size());
  for (const int r : ranks) parts.push_back(std::to_string(r));
  return strings::join(parts, ", ");
}

}  // namespace

Collectives::Collectives(const LaunchEnvironment& launch, const std::string& backend, c10::Device device,
                         double timeout_s)
    : rank_(launch.rank),
      world_size_(launch.world_size),
      backend_(backend),
      comm_device_(backend == "nccl" ? device : c10::Device(c10::kCPU)),
      timings_(FailureTimings::from_timeout_s(timeout_s)) {
  connect_store(launch);
  join(launch);
  create_group(device);
  watchdog_->start();
  spdlog::debug("rank {} of {} joined through {}; backend {}; heartbeat every {} ms, a rank is lost after {} ms",
                rank_, world_size_, store_owner_, backend_, timings_.heartbeat_interval.count(),
                timings_.heartbeat_stale.count());
}

void Collectives::connect_store(const LaunchEnvironment& launch) {
  const std::string where = launch.master_addr + ":" + std::to_string(launch.master_port);
  hosts_store_ = !launch.agent_store && launch.rank == 0;
  store_owner_ = (launch.agent_store ? "torchrun's agent at " : "rank 0 at ") + where;

  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(launch.master_port);
  options.isServer = hosts_store_;
  options.waitWorkers = false;
  options.timeout = timings_.timeout;
  c10::intrusive_ptr<c10d::Store> main;
  c10::intrusive_ptr<c10d::Store> watchdog_connection;
  try {
    main = compat::make_tcp_store(launch.master_addr, options);
    // The watchdog gets a connection of its own: one TCPStore client serialises
    // its calls, and a call stuck on a stopped host must not block training.
    c10d::TCPStoreOptions client = options;
    client.isServer = false;
    watchdog_connection = compat::make_tcp_store(launch.master_addr, client);
  } catch (const std::exception& e) {
    if (hosts_store_) {
      throw UsageError("rank 0 cannot serve the rendezvous store on port " + std::to_string(launch.master_port) +
                       " (" + launch.origin + "): " + error_text(e) +
                       "; is another job using this port? Choose another MASTER_PORT or distributed.master_port");
    }
    throw PeerFailure("rank " + std::to_string(rank_) + " cannot reach the rendezvous store (" + store_owner_ +
                      ") within " + seconds_text(timings_.timeout) + ": " + error_text(e) +
                      "; rank 0 never started, or MASTER_ADDR/MASTER_PORT are wrong (" + launch.origin + ")");
  }
  if (hosts_store_) server_ = main;
  // Keys of one attempt: torchrun's agent keeps its store across restarts, so
  // a restarted job must not see the heartbeats and aborts of the last one.
  const std::string prefix = "kmidi/attempt_" + std::to_string(launch.restart_count);
  store_ = c10::make_intrusive<c10d::PrefixStore>(prefix, main);
  watchdog_ = std::make_unique<Watchdog>(c10::make_intrusive<c10d::PrefixStore>(prefix, watchdog_connection),
                                         rank_, world_size_, timings_, store_owner_, !launch.agent_store);
}

void Collectives::join(const LaunchEnvironment& launch) {
  const std::string me = std::to_string(rank_);
  if (store_->add("claim/" + me, 1) > 1) {
    throw UsageError("rank " + me + " was claimed by two processes; every process needs its own rank (" +
                     launch.origin + ")");
  }
  if (rank_ == 0) store_->set("world_size", bytes(std::to_string(world_size_)));
  store_->set("joined/" + me, bytes("1"));
  if (store_->add("joined", 1) == world_size_) store_->set("all_joined", bytes("1"));
  try {
    store_->wait({"all_joined"}, timings_.timeout);
  } catch (const std::exception& e) {
    std::vector<int> missing;
    for (int r = 0; r < world_size_; ++r) {
      if (!store_->check({"joined/" + std::to_string(r)})) missing.push_back(r);
    }
    std::string message = "rendezvous through " + store_owner_ + " timed out after " +
                          seconds_text(timings_.timeout) + ": rank(s) " + list_ranks(missing) + " of " +
                          std::to_string(world_size_) + " never joined (this is rank " + me + ", started by " +
                          launch.launcher + ")";
    if (store_->check({"world_size"})) {
      const std::string theirs = text(store_->get("world_size"));
      if (theirs != std::to_string(world_size_)) {
        message += "; rank 0 was started with a world size of " + theirs + ", this rank with " +
                   std::to_string(world_size_);
      }
    }
    throw PeerFailure(message);
  }
  const std::string rank0_world = text(store_->get("world_size"));
  if (rank0_world != std::to_string(world_size_)) {
    throw UsageError("rank 0 was started with a world size of " + rank0_world + " but rank " + me + " with " +
                     std::to_string(world_size_) + " (" + launch.origin + ")");
  }
}

void Collectives::create_group(c10::Device device) {
  auto group_store = c10::make_intrusive<c10d::PrefixStore>("c10d", store_);
  try {
    if (backend_ == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create(timings_.timeout);
      // Like PyTorch: GLOO_SOCKET_IFNAME picks the network interface, else the
      // address this host's name resolves to.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && *ifname != '\0') {
        for (const auto& name : strings::split(ifname, ',')) {
          options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        }
      } else {
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(group_store, rank_, world_size_, options);
      return;
    }
#ifdef USE_C10D_NCCL
    if (backend_ == "nccl") {
      c10::cuda::set_device(device.index());
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timings_.timeout;
      group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_store, rank_, world_size_, options);
      return;
    }
#endif
  } catch (const std::exception& e) {
    throw PeerFailure("rank " + std::to_string(rank_) + " could not connect the " + backend_ +
                      " process group through " + store_owner_ + ": " + error_text(e));
  }
  throw UsageError("distributed.backend '" + backend_ + "' is not available in this build of kmidi (" +
                   "LibTorch without NCCL); use gloo");
}

bool Collectives::has_failure() const {
  const auto& state = watchdog_->state();
  std::lock_guard<std::mutex> lock(state->mutex);
  return state->failure.has_value();
}

Collectives::~Collectives() {
  if (!watchdog_) return;
  if (std::uncaught_exceptions() > 0 || aborted_ || has_failure()) {
    if (!aborted_ && !has_failure()) abort("it stopped with an error (see its log)");
    abandon();
    return;
  }
  try {
    shutdown();
  } catch (const std::exception& e) {
    spdlog::warn("distributed shutdown of rank {} did not complete: {}", rank_, error_text(e));
    abandon();
  }
}

void Collectives::shutdown() {
  // Announce the exit before the heartbeats stop, so that no watcher mistakes
  // the silence for a death, and stop watching before counting as finished:
  // once every rank has, rank 0 takes the store down.
  store_->set(exited_key(rank_), bytes("1"));
  if (!hosts_store_) watchdog_->stop();
  store_->add(kFinishedKey, 1);
  if (hosts_store_) {
    // The store lives in this process: keep serving until every rank is done with it.
    const auto deadline = steady_clock::now() + timings_.timeout;
    while (store_->add(kFinishedKey, 0) < world_size_) {
      if (watchdog_->check()) {
        abandon();
        return;
      }
      if (steady_clock::now() > deadline) {
        spdlog::warn("rank 0 stops serving the rendezvous store: not every rank finished within {}",
                     seconds_text(timings_.timeout));
        break;
      }
      std::this_thread::sleep_for(std::min(timings_.heartbeat_interval, milliseconds(20)));
    }
  }
  watchdog_->stop();
  group_.reset();
  store_.reset();
  server_.reset();
}

void Collectives::abandon() {
  watchdog_->abandon();
  // Destroying the process group would wait for collectives that will never
  // complete, and destroying the store would wait for its server thread:
  // leave both to the end of the process.
  (void)group_.release();
  (void)store_.release();
  (void)server_.release();
}

void Collectives::check_healthy() {
  if (const auto failure = watchdog_->check()) throw PeerFailure(*failure);
}

c10::intrusive_ptr<c10d::Work> Collectives::all_reduce(at::Tensor& tensor) {
  check_healthy();
  std::vector<at::Tensor> tensors{tensor};
  ++watchdog_->state()->collectives_started;
  return group_->allreduce(tensors);
}

c10::intrusive_ptr<c10d::Work> Collectives::broadcast(at::Tensor& tensor, int root) {
  check_healthy();
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  ++watchdog_->state()->collectives_started;
  return group_->broadcast(tensors, options);
}

void Collectives::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  const auto state = watchdog_->state();
  const auto done = std::make_shared<bool>(false);  // guarded by state->mutex
  work->getFuture()->addCallback([state, done](c10::ivalue::Future&) {
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      *done = true;
    }
    state->changed.notify_all();
  });
  std::unique_lock<std::mutex> lock(state->mutex);
  while (!*done && !state->failure) {
    state->changed.wait_for(lock, timings_.heartbeat_interval);
    if (*done || state->failure) break;
    lock.unlock();
    watchdog_->check();  // declares a failure when the store's host hangs
    lock.lock();
  }
  lock.unlock();
  check_healthy();
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail_collective(what, error_text(e));
  }
}

void Collectives::fail_collective(const std::string& what, const std::string& error) {
  const std::string lower = strings::to_lower(error);
  const bool timed_out = lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos;
  const auto state = watchdog_->state();
  if (!timed_out) {
    // A peer that dies closes its sockets at once; the watchdog needs up to
    // heartbeat_stale to tell which rank it was. Wait for its verdict.
    const auto deadline = steady_clock::now() + timings_.heartbeat_stale + 2 * timings_.heartbeat_interval;
    std::unique_lock<std::mutex> lock(state->mutex);
    while (!state->failure && steady_clock::now() < deadline) {
      state->changed.wait_for(lock, timings_.heartbeat_interval);
      if (state->failure) break;
      lock.unlock();
      watchdog_->check();
      lock.lock();
    }
  }
  if (const auto failure = watchdog_->check()) throw PeerFailure(*failure + " (" + what + " failed: " + error + ")");

  std::string message = "rank " + std::to_string(rank_) + ": " + what + " failed: " + error;
  try {
    if (timed_out) {
      // Everyone's heartbeat is alive: find who is behind in the sequence of collectives.
      const int64_t mine = state->collectives_started.load();
      std::vector<int> behind;
      for (int r = 0; r < world_size_; ++r) {
        const std::string key = progress_key(r);
        if (r == rank_ || !store_->check({key})) continue;
        if (std::stoll(text(store_->get(key))) < mine) behind.push_back(r);
      }
      message = "rank " + std::to_string(rank_) + ": " + what + " did not complete within distributed.timeout_s (" +
                seconds_text(timings_.timeout) + ")";
      message += behind.empty() ? ": some rank stopped taking part (a hang, or fewer steps than the others)"
                                : ": rank(s) " + list_ranks(behind) +
                                      " are behind in the sequence of collectives (a hang, or fewer steps "
                                      "than the others)";
    } else {
      std::vector<int> exited;
      for (int r = 0; r < world_size_; ++r) {
        if (r != rank_ && store_->check({exited_key(r)})) exited.push_back(r);
      }
      if (!exited.empty()) {
        message += "; rank(s) " + list_ranks(exited) + " had already finished (fewer steps than this rank?)";
      }
    }
  } catch (const std::exception&) {
    // The store is gone too; the message without these details still holds.
  }
  fail_locally(message);
  throw PeerFailure(message);
}

void Collectives::abort(const std::string& reason) { fail_locally("rank " + std::to_string(rank_) + " failed: " + reason); }

void Collectives::fail_locally(const std::string& message) {
  if (!watchdog_ || aborted_) return;
  aborted_ = true;
  record_failure(watchdog_->state(), message, timings_.exit_grace);
  post_abort(message);
}

void Collectives::post_abort(const std::string& message) {
  // Best effort and bounded: the store may be as dead as the peer.
  auto store = store_;
  const int rank = rank_;
  auto posted = std::make_shared<std::promise<void>>();
  auto future = posted->get_future();
  std::thread([store, rank, message, posted] {
    try {
      store->set(abort_reason_key(rank), bytes(message));
      store->add(kAbortedKey, 1);
    } catch (const std::exception&) {
    }
    posted->set_value();
  }).detach();
  const auto bound = std::min(timings_.heartbeat_stale, milliseconds(2000));
  if (future.wait_for(bound) != std::future_status::ready) return;
  if (hosts_store_) {
    // The store dies with this process: give the others a round to read the reason.
    std::this_thread::sleep_for(std::min(2 * timings_.heartbeat_interval, milliseconds(2000)));
  }
}

}  // namespace kmidi::train::detail
