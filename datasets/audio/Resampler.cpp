#include "datasets/audio/Resampler.h"

#include <soxr.h>

#include "core/Errors.h"

namespace kmidi::audio {

ResampleQuality parse_resample_quality(const std::string& name) {
  if (name == "high") return ResampleQuality::kHigh;
  if (name == "very_high") return ResampleQuality::kVeryHigh;
  throw UsageError("resample quality: expected 'high' or 'very_high', got '" + name + "'");
}

std::string to_string(ResampleQuality quality) {
  return quality == ResampleQuality::kHigh ? "high" : "very_high";
}

int64_t resampled_length(int64_t input_length, int from_rate, int to_rate) {
  if (from_rate <= 0 || to_rate <= 0) {
    throw UsageError("resampled_length: rates must be positive; got " + std::to_string(from_rate) +
                     " -> " + std::to_string(to_rate));
  }
  if (input_length <= 0) return 0;
  // Exact integer arithmetic: round(n * to / from) with halves rounded up,
  // which is also how soxr_oneshot sizes a fully flushed output.
  const __int128 num = static_cast<__int128>(input_length) * to_rate;
  return static_cast<int64_t>((2 * num + from_rate) / (2 * static_cast<__int128>(from_rate)));
}

std::vector<float> resample(const std::vector<float>& input, int from_rate, int to_rate,
                            ResampleQuality quality) {
  const int64_t out_length = resampled_length(static_cast<int64_t>(input.size()), from_rate, to_rate);
  if (from_rate == to_rate || input.empty()) return input;

  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q =
      soxr_quality_spec(quality == ResampleQuality::kHigh ? SOXR_HQ : SOXR_VHQ, 0);
  std::vector<float> output(static_cast<size_t>(out_length));
  size_t produced = 0;
  const soxr_error_t error =
      soxr_oneshot(from_rate, to_rate, 1, input.data(), input.size(), nullptr, output.data(),
                   output.size(), &produced, &io, &q, nullptr);
  if (error) {
    throw DataError(std::string("resample ") + std::to_string(from_rate) + " -> " +
                    std::to_string(to_rate) + " Hz: libsoxr failed: " + error);
  }
  if (static_cast<int64_t>(produced) != out_length) {
    throw DataError("resample " + std::to_string(from_rate) + " -> " + std::to_string(to_rate) +
                    " Hz: libsoxr produced " + std::to_string(produced) + " samples; expected " +
                    std::to_string(out_length));
  }
  return output;
}

}  // namespace kmidi::audio
