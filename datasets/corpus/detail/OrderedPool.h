#pragma once
// Parallel map with in-order delivery: work(i) runs on a pool of threads,
// consume(i, result) runs on the calling thread in index order, so outputs
// are deterministic whatever the scheduling. At most `window` results wait
// at once, and with a cost per item (e.g. its file size) at most `budget` of
// cost is claimed but not yet consumed (one item always may be): memory stays
// bounded by settings, whatever the corpus size.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace kmidi::corpus::detail {

/// Threads to use for `requested` (0: all cores), never more than the work items.
inline int worker_count(int requested, size_t items) {
  int n = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(n), std::max<size_t>(items, 1))));
}

/// Runs work(i) for every i in [0, n) and consume(i, result) in order. The
/// first exception from either stops the
/// workers; exceptions are rethrown on the calling thread. `cost` (optional)
/// and `budget` bound what is in flight, as described above.
template <class Result>
void ordered_parallel(size_t n, int threads, size_t window, const std::function<Result(size_t)>& work,
                      const std::function<void(size_t, Result&&)>& consume,
                      const std::function<size_t(size_t)>& cost = nullptr, size_t budget = 0) {
  window = std::max<size_t>(window, 1);
  std::vector<std::optional<Result>> slots(window);
  std::mutex mutex;
  std::condition_variable produced, consumed;
  size_t next = 0, done = 0;  // next index to claim; results consumed so far
  size_t in_flight = 0;  // cost claimed and not yet consumed
  auto item_cost = [&](size_t i) -> size_t { return cost ? cost(i) : 0; };
  auto affordable = [&] { return !cost || next == done || in_flight + item_cost(next) <= budget; };
  bool stop = false;
  std::exception_ptr error;

  auto worker = [&] {
    while (true) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mutex);
        consumed.wait(lock, [&] { return stop || next >= n || (next < done + window && affordable()); });
        if (stop || next >= n) return;
        i = next++;
        in_flight += item_cost(i);
      }
      std::optional<Result> r;
      try {
        r.emplace(work(i));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        stop = true;
        produced.notify_all();
        consumed.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(mutex);
      slots[i % window] = std::move(r);
      produced.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  try {
    for (size_t i = 0; i < n; ++i) {
      std::optional<Result> r;
      {
        std::unique_lock<std::mutex> lock(mutex);
        produced.wait(lock, [&] { return stop || slots[i % window].has_value(); });
        if (stop) break;
        r = std::move(slots[i % window]);
        slots[i % window].reset();
      }
      consume(i, std::move(*r));
      {
        std::lock_guard<std::mutex> lock(mutex);
        ++done;
        in_flight -= item_cost(i);
      }
      consumed.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = std::current_exception();
    stop = true;
    consumed.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (error) stop = true;
  }
  consumed.notify_all();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace kmidi::corpus::detail
