#include "datasets/spectocloud/CloudTarget.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/Errors.h"

namespace kmidi::spectocloud {

CloudTarget cloud_target(const at::Tensor& db, double top_db, int64_t points, double valence, double arousal) {
  if (db.dim() != 2) throw UsageError("cloud_target: expected a [mels, frames] spectrogram, got " + std::to_string(db.dim()) + " dimensions");
  const int64_t mels = db.size(0), frames = db.size(1);
  if (mels < 2 || frames < 1) {
    throw UsageError("cloud_target: expected at least 2 mel bands and 1 frame, got [" + std::to_string(mels) + ", " +
                     std::to_string(frames) + "]");
  }
  if (points < 1 || mels * frames < points) {
    throw UsageError("cloud_target: " + std::to_string(points) + " points need at least as many cells; the spectrogram has " +
                     std::to_string(mels * frames) + " (" + std::to_string(mels) + " x " + std::to_string(frames) + ")");
  }
  if (!(top_db > 0)) throw UsageError("cloud_target: top_db must be positive, got " + std::to_string(top_db));
  const at::Tensor d64 = db.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const auto d = d64.accessor<double, 2>();
  const double r = top_db;
  std::vector<double> value(static_cast<size_t>(mels * frames));  // t-major: index t * M + m
  for (int64_t t = 0; t < frames; ++t) {
    for (int64_t m = 0; m < mels; ++m) {
      const double v = d[m][t];
      if (!std::isfinite(v) || v > 1e-3 || v < -r - 1e-3) {
        throw UsageError("cloud_target: cell (mel " + std::to_string(m) + ", frame " + std::to_string(t) + ") is " +
                         std::to_string(v) + " dB; expected dB relative to the maximum in [-" + std::to_string(r) + ", 0]");
      }
      value[static_cast<size_t>(t * mels + m)] = std::clamp(v, -r, 0.0);
    }
  }

  // Per-frame statistics on relative power.
  std::vector<double> centroid(static_cast<size_t>(frames)), frame_peak(static_cast<size_t>(frames)),
      frame_power(static_cast<size_t>(frames));
  for (int64_t t = 0; t < frames; ++t) {
    double sum = 0, weighted = 0, peak = 0;
    for (int64_t m = 0; m < mels; ++m) {
      const double p = std::pow(10.0, value[static_cast<size_t>(t * mels + m)] / 10.0);
      sum += p;
      weighted += static_cast<double>(m) * p;
      peak = std::max(peak, p);
    }
    centroid[static_cast<size_t>(t)] = weighted / sum;  // sum > 0: every cell has P >= 10^(-R/10)
    frame_peak[static_cast<size_t>(t)] = peak;
    frame_power[static_cast<size_t>(t)] = sum;
  }
  const double loudest_frame = *std::max_element(frame_power.begin(), frame_power.end());

  // Loudest cells first; equal values keep index order (t, then m).
  std::vector<int64_t> order(value.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return value[static_cast<size_t>(a)] > value[static_cast<size_t>(b)]; });

  CloudTarget out;
  at::Tensor positions = torch::empty({points, 3}, torch::kDouble);
  at::Tensor colors = torch::empty({points, 4}, torch::kDouble);
  at::Tensor properties = torch::empty({points, 3}, torch::kDouble);
  out.cells = torch::empty({points, 2}, torch::kLong);
  auto pos = positions.accessor<double, 2>();
  auto col = colors.accessor<double, 2>();
  auto prop = properties.accessor<double, 2>();
  auto cell = out.cells.accessor<int64_t, 2>();
  const double g = std::clamp((1.0 + valence) / 2.0, 0.0, 1.0), b = std::clamp((1.0 + arousal) / 2.0, 0.0, 1.0);
  for (int64_t i = 0; i < points; ++i) {
    const int64_t index = order[static_cast<size_t>(i)];
    const int64_t t = index / mels, m = index % mels;
    const size_t ts = static_cast<size_t>(t);
    const double v = value[static_cast<size_t>(index)];
    const double e = (v + r) / r;
    const double p = std::pow(10.0, v / 10.0);
    pos[i][0] = frames > 1 ? 2.0 * static_cast<double>(t) / static_cast<double>(frames - 1) - 1.0 : 0.0;
    pos[i][1] = 2.0 * static_cast<double>(m) / static_cast<double>(mels - 1) - 1.0;
    pos[i][2] = 2.0 * e - 1.0;
    col[i][0] = centroid[ts] / static_cast<double>(mels - 1);
    col[i][1] = g;
    col[i][2] = b;
    col[i][3] = e;
    prop[i][0] = e;
    prop[i][1] = p / frame_peak[ts];
    prop[i][2] = std::max(0.0, (10.0 * std::log10(frame_power[ts] / loudest_frame) + r) / r);
    cell[i][0] = m;
    cell[i][1] = t;
  }
  out.positions = positions.to(torch::kFloat);
  out.colors = colors.to(torch::kFloat);
  out.properties = properties.to(torch::kFloat);
  return out;
}

}  // namespace kmidi::spectocloud
