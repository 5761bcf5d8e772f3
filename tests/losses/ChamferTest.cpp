#include "losses/Chamfer.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <vector>

#include "core/TorchCompat.h"

namespace kmidi::losses {
namespace {

TEST(Chamfer, HandComputedValue) {
  // pred {(0,0), (2,0)}, target {(0,1)}: pred→target 1 and 5 (mean 3);
  // target→pred: nearest is (0,0) at 1. Total 4.
  const auto pred = torch::tensor({0.f, 0.f, 2.f, 0.f}).view({1, 2, 2});
  const auto target = torch::tensor({0.f, 1.f}).view({1, 1, 2});
  EXPECT_NEAR(chamfer_distance(pred, target).item<double>(), 4.0, 1e-6);
  EXPECT_NEAR(chamfer_distance(pred, target, 1).item<double>(), 4.0, 1e-6);
}

TEST(Chamfer, ChunkedEqualsBruteForceValuesAndGradients) {
  torch::manual_seed(0);
  for (int64_t chunk : {1, 7, 64, 1000}) {
    auto pred = torch::randn({3, 50, 3}, torch::requires_grad());
    auto target = torch::randn({3, 41, 3}, torch::requires_grad());
    auto pred_ref = pred.detach().clone().requires_grad_(true);
    auto target_ref = target.detach().clone().requires_grad_(true);
    const auto fast = chamfer_distance(pred, target, chunk);
    const auto slow = chamfer_distance_bruteforce(pred_ref, target_ref);
    EXPECT_LT((fast - slow).abs().max().item<double>(), 1e-5) << "chunk " << chunk;
    fast.sum().backward();
    slow.sum().backward();
    EXPECT_LT((pred.grad() - pred_ref.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LT((target.grad() - target_ref.grad()).abs().max().item<double>(), 1e-5);
  }
}

/// Counts the bytes LibTorch's CPU tensors hold while it is installed, and
/// their peak: wraps the default CPU allocator, restoring it when destroyed.
class CpuAllocationCounter final : public c10::Allocator {
 public:
  CpuAllocationCounter() : inner_(c10::GetCPUAllocator()) { c10::SetCPUAllocator(this); }
  ~CpuAllocationCounter() override { c10::SetCPUAllocator(inner_); }
  CpuAllocationCounter(const CpuAllocationCounter&) = delete;
  CpuAllocationCounter& operator=(const CpuAllocationCounter&) = delete;

  /// Starts a new peak from the bytes held now.
  void reset_peak() { peak() = live().load(); }
  /// The most bytes held at once since reset_peak(), above those held at the reset.
  int64_t peak_since(int64_t base) const { return peak().load() - base; }
  static std::atomic<int64_t>& live() {
    static std::atomic<int64_t> bytes{0};
    return bytes;
  }

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    auto* held = new Held{inner.move_context(), static_cast<int64_t>(n)};
    const int64_t now = live() += held->bytes;
    for (int64_t p = peak().load(); now > p && !peak().compare_exchange_weak(p, now);) {}
    return {data, held, &CpuAllocationCounter::release, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
#if KMIDI_TORCH_AT_LEAST(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

 private:
  struct Held {
    std::unique_ptr<void, c10::DeleterFnPtr> inner;
    int64_t bytes;
  };
  static void release(void* context) {
    auto* held = static_cast<Held*>(context);
    live() -= held->bytes;
    delete held;
  }
  static std::atomic<int64_t>& peak() {
    static std::atomic<int64_t> bytes{0};
    return bytes;
  }
  c10::Allocator* inner_;
};

/// Peak bytes of LibTorch CPU memory that `f` adds to what was held before it.
template <class F>
int64_t peak_bytes_of(F&& f) {
  CpuAllocationCounter counter;
  const int64_t base = CpuAllocationCounter::live().load();
  counter.reset_peak();
  f();
  return counter.peak_since(base);
}

TEST(Chamfer, LargeSetsStayWithinChunkMemory) {
  // 1200 × 1200 points (the engine's cloud size) in chunks of 128: the chunked
  // distance holds a few [B, 128, 1200] blocks, never the [B, 1200, 1200] matrix.
  constexpr int64_t kBatch = 2, kPoints = 1200, kChunk = 128, kFloat = 4;
  torch::manual_seed(1);
  const auto pred = torch::rand({kBatch, kPoints, 3});
  const auto target = torch::rand({kBatch, kPoints, 3});
  const int64_t full_matrix = kBatch * kPoints * kPoints * kFloat;  // 11.5 MB
  const int64_t chunk_block = kBatch * kChunk * kPoints * kFloat;   // 1.2 MB

  at::Tensor chunked;
  const int64_t chunked_peak = peak_bytes_of([&] { chunked = chamfer_distance(pred, target, kChunk); });
  RecordProperty("chunked_peak_bytes", std::to_string(chunked_peak));
  EXPECT_LE(chunked_peak, 4 * chunk_block) << "chunked Chamfer peak " << chunked_peak << " bytes";
  EXPECT_LT(chunked_peak, full_matrix / 2);
  // The counter sees what the whole-matrix reference holds: it measures.
  at::Tensor whole;
  const int64_t whole_peak = peak_bytes_of([&] { whole = chamfer_distance_bruteforce(pred, target); });
  RecordProperty("bruteforce_peak_bytes", std::to_string(whole_peak));
  EXPECT_GE(whole_peak, full_matrix) << "brute-force peak " << whole_peak << " bytes";

  // Independent value: the whole-matrix computation on the same two sets.
  EXPECT_LT((chunked - whole).abs().max().item<double>(), 1e-5);
  EXPECT_GT(whole.min().item<double>(), 1e-4);  // different sets: a zero would be wrong
}

TEST(Chamfer, ShiftedGridHasTheHandComputedDistance) {
  // A 10 × 12 × 10 grid of spacing 1 (1200 points) against the same grid
  // shifted by e = (0.1, 0.2, 0.05), in reversed order: every point's nearest
  // neighbour is its shifted twin (|e| ≈ 0.23 < 0.5), so both directions
  // average |e|² = 0.0525, 0.105 in all.
  std::vector<float> points;
  for (int x = 0; x < 10; ++x) {
    for (int y = 0; y < 12; ++y) {
      for (int z = 0; z < 10; ++z) points.insert(points.end(), {float(x), float(y), float(z)});
    }
  }
  const auto grid = torch::tensor(points).view({1, 1200, 3});
  const auto shifted = (grid + torch::tensor({0.1f, 0.2f, 0.05f})).flip(1);
  for (int64_t chunk : {128, 1000, 5000}) {
    EXPECT_NEAR(chamfer_distance(grid, shifted, chunk).item<double>(), 0.105, 1e-5) << "chunk " << chunk;
  }
}

TEST(Chamfer, RejectsMismatchedShapes) {
  EXPECT_THROW(chamfer_distance(torch::zeros({1, 4, 3}), torch::zeros({1, 4, 2})), std::invalid_argument);
  EXPECT_THROW(chamfer_distance(torch::zeros({2, 4, 3}), torch::zeros({1, 4, 3})), std::invalid_argument);
  EXPECT_THROW(chamfer_distance(torch::zeros({1, 0, 3}), torch::zeros({1, 4, 3})), std::invalid_argument);
}

}  // namespace
}  // namespace kmidi::losses
