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
#include <cstring>
#include <cstdlib>
#include <exception>
#include <future>
#include <thread>
#include <vector>

#include "core/Errors.h"
#include "core/Strings.h"
#include "train/runtime/Runtime.h"

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
  peers_.publish(*store_, rank_);
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
  peers_.learn_local_peers(*store_);
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
  // A stop on request unwinds with Interrupted, yet every rank agreed on it: no failure.
  const bool stopped_on_request = !stop_reason_.empty() && !aborted_ && !has_failure();
  if (!stopped_on_request && (std::uncaught_exceptions() > 0 || aborted_ || has_failure())) {
    if (!aborted_ && !has_failure()) abort("it stopped with an error (see its log)");
    abandon();
    return;
  }
  try {
    // After a stop signal the launcher's SIGKILL follows within 30 s: wait for
    // the others one heartbeat window at most, not a whole collective timeout.
    shutdown(stopped_on_request ? timings_.heartbeat_stale : timings_.timeout);
  } catch (const std::exception& e) {
    spdlog::warn("distributed shutdown of rank {} did not complete: {}", rank_, error_text(e));
    abandon();
  }
}

void Collectives::stop_on_request(const std::string& reason) {
  if (!watchdog_ || aborted_ || has_failure()) return;  // a failure seen first stays the reason
  stop_reason_ = reason.empty() ? "stop request" : reason;
  spdlog::debug("rank {} stops on request: {}", rank_, stop_reason_);
}

void Collectives::shutdown(milliseconds serve_for) {
  // Announce the exit before the heartbeats stop, so that no watcher mistakes
  // the silence for a death, and stop watching before counting as finished:
  // once every rank has, rank 0 takes the store down.
  store_->set(exited_key(rank_), bytes(stop_reason_.empty() ? "finished" : "stopped on request: " + stop_reason_));
  if (!hosts_store_) watchdog_->stop();
  store_->add(kFinishedKey, 1);
  if (hosts_store_) {
    // The store lives in this process: keep serving until every rank is done with it.
    const auto deadline = steady_clock::now() + serve_for;
    while (store_->add(kFinishedKey, 0) < world_size_) {
      if (watchdog_->check()) {
        abandon();
        return;
      }
      if (steady_clock::now() > deadline) {
        spdlog::warn("rank 0 stops serving the rendezvous store: not every rank finished within {}",
                     seconds_text(serve_for));
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
  // Short wake-ups: a stop signal sets only a flag, and a graceful stop must
  // learn within a moment that the peer it waits for is gone.
  const auto poll = std::min(timings_.heartbeat_interval, milliseconds(200));
  const auto waiting_since = steady_clock::now();
  auto next_check = waiting_since + timings_.heartbeat_interval;
  bool probed = false;
  std::unique_lock<std::mutex> lock(state->mutex);
  while (!*done && !state->failure) {
    state->changed.wait_for(lock, poll);
    if (*done || state->failure) break;
    lock.unlock();
    if (StopSignals::requested()) check_peers_while_stopping(what, waiting_since, probed);
    if (steady_clock::now() >= next_check) {
      watchdog_->check();  // declares a failure when the store's host hangs
      next_check = steady_clock::now() + timings_.heartbeat_interval;
    }
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
    name_lost_peer(what, error);
    // Nothing named it yet (an abort on its way, a store that hangs): wait
    // for the watchdog's verdict, at most heartbeat_stale.
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

Collectives::StoreView Collectives::look_at_store(milliseconds window) {
  auto view = std::make_shared<StoreView>();
  auto finished = std::make_shared<std::promise<void>>();
  auto future = finished->get_future();
  std::thread([store = store_, view, finished, window, me = rank_, world = world_size_,
               interval = timings_.heartbeat_interval] {
    try {
      std::vector<int64_t> first(static_cast<size_t>(world), 0);
      std::vector<int> watching;
      for (int r = 0; r < world; ++r) {
        if (r == me) continue;
        if (store->check({exited_key(r)})) {
          view->exited.push_back(r);
          continue;
        }
        first[static_cast<size_t>(r)] = store->add(heartbeat_key(r), 0);
        watching.push_back(r);
      }
      const auto reasons = [&] {
        std::string text;
        for (int r = 0; r < world; ++r) {
          if (!store->check({abort_reason_key(r)})) continue;
          const auto value = store->get(abort_reason_key(r));
          text += (text.empty() ? "" : "; ") + std::string(value.begin(), value.end());
        }
        return text;
      };
      // Every live rank's watchdog beats once per interval: a rank still
      // silent after the window has stopped beating.
      const auto deadline = steady_clock::now() + window;
      if (store->add(kAbortedKey, 0) > 0) view->abort_reasons = reasons();
      while (!watching.empty() && steady_clock::now() < deadline && view->abort_reasons.empty()) {
        std::this_thread::sleep_for(std::min(interval / 4, milliseconds(100)));
        if (store->add(kAbortedKey, 0) > 0) view->abort_reasons = reasons();
        watching.erase(std::remove_if(watching.begin(), watching.end(),
                                      [&](int r) { return store->add(heartbeat_key(r), 0) != first[static_cast<size_t>(r)]; }),
                       watching.end());
      }
      view->silent = watching;
      view->answered = true;
    } catch (const std::exception&) {
      // The store is gone: the view says nothing.
    }
    finished->set_value();
  }).detach();
  if (future.wait_for(window + milliseconds(2000)) != std::future_status::ready) return StoreView{};
  return *view;
}

void Collectives::fail_now(const std::string& message) {
  fail_locally(message);
  throw PeerFailure(message);
}

void Collectives::name_lost_peer(const std::string& what, const std::string& error) {
  const std::string cause = " (" + what + " failed: " + error + ")";
  if (const auto failure = watchdog_->check()) throw PeerFailure(*failure + cause);
  // A rank that failed with an error posted why before its sockets closed:
  // its reason beats "it has ended". A glance at the store, then /proc.
  const StoreView glance = look_at_store(milliseconds(0));
  if (!glance.abort_reasons.empty()) fail_now(glance.abort_reasons + cause);
  // A killed peer's sockets close while the kernel is still tearing it down,
  // so /proc may show it running for a moment: look again for a short while.
  const auto settled = steady_clock::now() + milliseconds(500);
  for (;;) {
    std::vector<std::string> named;
    for (const auto& [r, description] : peers_.lost(/*count_stopped=*/false)) {
      if (std::find(glance.exited.begin(), glance.exited.end(), r) == glance.exited.end()) named.push_back(description);
    }
    if (!named.empty()) fail_now(strings::join(named, "; ") + cause);
    if (!peers_.has_local_peers() || steady_clock::now() >= settled) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  // A peer on another machine: its heartbeat stops moving.
  const auto window = 2 * timings_.heartbeat_interval + milliseconds(500);
  const StoreView view = look_at_store(window);
  if (!view.abort_reasons.empty()) fail_now(view.abort_reasons + cause);
  if (view.answered && !view.silent.empty()) {
    fail_now("rank(s) " + list_ranks(view.silent) + " of " + std::to_string(world_size_) + " sent no heartbeat for " +
             seconds_text(window) + " after a transport error: died, or their node is unreachable" + cause);
  }
}

void Collectives::check_peers_while_stopping(const std::string& what, steady_clock::time_point waiting_since,
                                             bool& probed) {
  const int sig = StopSignals::signal_number();
  const std::string cause = " while this rank, asked to stop (" + std::string(sig ? strsignal(sig) : "stop request") +
                            "), waited for " + what;
  std::vector<std::string> named;
  for (const auto& [r, description] : peers_.lost(/*count_stopped=*/true)) named.push_back(description);
  if (!named.empty()) fail_now(strings::join(named, "; ") + cause);
  // Peers elsewhere: after two heartbeat intervals of waiting, one look at who still beats.
  if (probed || steady_clock::now() - waiting_since < 2 * timings_.heartbeat_interval) return;
  probed = true;
  const auto window = 2 * timings_.heartbeat_interval + milliseconds(500);
  const StoreView view = look_at_store(window);
  if (!view.abort_reasons.empty()) fail_now(view.abort_reasons + cause);
  if (view.answered && !view.silent.empty()) {
    fail_now("rank(s) " + list_ranks(view.silent) + " of " + std::to_string(world_size_) + " sent no heartbeat for " +
             seconds_text(window) + cause);
  }
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
