#pragma once
// Sample-rate conversion with libsoxr (a band-limited, linear-phase polyphase
// resampler). Torch-free.

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::audio {

/// libsoxr quality recipes kmidi exposes, with libsoxr 0.1.3's parameters for
/// them: both are linear phase, flat to ~91% of the lower rate's Nyquist
/// frequency and fully attenuated from 100% of it (no aliasing); they differ
/// in precision, i.e. stop-band attenuation:
///  - kHigh:     SOXR_HQ  (20-bit, ~120 dB; passband end 91.37%)
///  - kVeryHigh: SOXR_VHQ (28-bit, ~169 dB; passband end 91.13%), the default.
enum class ResampleQuality { kHigh, kVeryHigh };

/// Parses "high" or "very_high"; throws UsageError naming the accepted values.
ResampleQuality parse_resample_quality(const std::string& name);
std::string to_string(ResampleQuality quality);

/// Number of output samples for `input_length` samples converted from
/// `from_rate` to `to_rate`: round(input_length * to_rate / from_rate), halves
/// rounded up. This is exactly what resample() returns.
int64_t resampled_length(int64_t input_length, int from_rate, int to_rate);

/// Resamples one mono channel [N] -> [resampled_length(N, from_rate, to_rate)].
/// The signal is treated as silent outside the given samples (the filter's
/// edges see zeros). Same rates: returns the input unchanged.
/// Throws UsageError for non-positive rates and DataError if libsoxr fails.
std::vector<float> resample(const std::vector<float>& input, int from_rate, int to_rate,
                            ResampleQuality quality = ResampleQuality::kVeryHigh);

}  // namespace kmidi::audio
