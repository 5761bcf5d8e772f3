#include "datasets/audio/MelScale.h"

#include <algorithm>
#include <cmath>

#include "core/Errors.h"

namespace kmidi::audio {
namespace {

constexpr double kLinearHzPerMel = 200.0 / 3.0;
constexpr double kBreakHz = 1000.0;
constexpr double kBreakMel = kBreakHz / kLinearHzPerMel;  // 15
const double kLogStep = std::log(6.4) / 27.0;             // mels per ln(Hz) above the break

}  // namespace

MelScaleKind parse_mel_scale(const std::string& name) {
  if (name == "slaney") return MelScaleKind::kSlaney;
  if (name == "htk") return MelScaleKind::kHtk;
  throw UsageError("mel scale: expected 'slaney' or 'htk', got '" + name + "'");
}

MelNorm parse_mel_norm(const std::string& name) {
  if (name == "slaney") return MelNorm::kSlaney;
  if (name == "none") return MelNorm::kNone;
  throw UsageError("mel norm: expected 'slaney' or 'none', got '" + name + "'");
}

double hz_to_mel(double hz, MelScaleKind scale) {
  if (scale == MelScaleKind::kHtk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  if (hz < kBreakHz) return hz / kLinearHzPerMel;
  return kBreakMel + std::log(hz / kBreakHz) / kLogStep;
}

double mel_to_hz(double mel, MelScaleKind scale) {
  if (scale == MelScaleKind::kHtk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  if (mel < kBreakMel) return mel * kLinearHzPerMel;
  return kBreakHz * std::exp(kLogStep * (mel - kBreakMel));
}

std::vector<double> mel_frequencies(int count, double fmin, double fmax, MelScaleKind scale) {
  if (count < 2) throw UsageError("mel_frequencies: count must be at least 2; got " + std::to_string(count));
  const double lo = hz_to_mel(fmin, scale);
  const double hi = hz_to_mel(fmax, scale);
  std::vector<double> hz(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    hz[static_cast<size_t>(i)] = mel_to_hz(lo + (hi - lo) * i / (count - 1), scale);
  }
  return hz;
}

std::vector<double> fft_frequencies(int sample_rate, int n_fft) {
  const int bins = n_fft / 2 + 1;
  std::vector<double> hz(static_cast<size_t>(bins));
  for (int k = 0; k < bins; ++k) hz[static_cast<size_t>(k)] = static_cast<double>(k) * sample_rate / n_fft;
  return hz;
}

std::vector<double> mel_filterbank(const MelFilterbankSpec& spec) {
  if (spec.sample_rate <= 0 || spec.n_fft < 2 || spec.n_mels < 1) {
    throw UsageError("mel_filterbank: needs sample_rate > 0, n_fft >= 2, n_mels >= 1; got " +
                     std::to_string(spec.sample_rate) + ", " + std::to_string(spec.n_fft) + ", " +
                     std::to_string(spec.n_mels));
  }
  if (!(spec.fmin >= 0.0 && spec.fmin < spec.fmax && spec.fmax <= spec.sample_rate / 2.0)) {
    throw UsageError("mel_filterbank: needs 0 <= fmin < fmax <= sample_rate / 2; got fmin " +
                     std::to_string(spec.fmin) + ", fmax " + std::to_string(spec.fmax) + " at " +
                     std::to_string(spec.sample_rate) + " Hz");
  }
  const std::vector<double> bins = fft_frequencies(spec.sample_rate, spec.n_fft);
  const std::vector<double> edges = mel_frequencies(spec.n_mels + 2, spec.fmin, spec.fmax, spec.scale);
  const size_t n_bins = bins.size();
  std::vector<double> weights(static_cast<size_t>(spec.n_mels) * n_bins, 0.0);
  for (int i = 0; i < spec.n_mels; ++i) {
    const double lower = edges[static_cast<size_t>(i)];
    const double centre = edges[static_cast<size_t>(i) + 1];
    const double upper = edges[static_cast<size_t>(i) + 2];
    const double scale = spec.norm == MelNorm::kSlaney ? 2.0 / (upper - lower) : 1.0;
    bool any = false;
    for (size_t k = 0; k < n_bins; ++k) {
      const double rising = (bins[k] - lower) / (centre - lower);
      const double falling = (upper - bins[k]) / (upper - centre);
      const double w = std::max(0.0, std::min(rising, falling));
      weights[static_cast<size_t>(i) * n_bins + k] = w * scale;
      any = any || w > 0.0;
    }
    if (!any) {
      throw UsageError("mel_filterbank: mel band " + std::to_string(i) + " (" + std::to_string(lower) + "-" +
                       std::to_string(upper) + " Hz) covers no FFT bin; use fewer mels (" +
                       std::to_string(spec.n_mels) + ") or a larger n_fft (" + std::to_string(spec.n_fft) + ")");
    }
  }
  return weights;
}

}  // namespace kmidi::audio
