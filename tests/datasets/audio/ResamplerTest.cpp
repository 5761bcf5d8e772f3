#include "datasets/audio/Resampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/Errors.h"
#include "datasets/audio/AudioLoader.h"
#include "tests/datasets/audio/AudioTestUtil.h"

namespace kmidi::audio {
namespace {

using testing::sine;

double mean_square(const std::vector<float>& x, size_t begin, size_t end) {
  double sum = 0.0;
  for (size_t i = begin; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum / static_cast<double>(end - begin);
}

/// Frequency from upward zero crossings located by linear interpolation.
double zero_crossing_frequency(const std::vector<float>& x, int rate, size_t begin, size_t end) {
  double first = -1.0, last = -1.0;
  int crossings = 0;
  for (size_t i = begin; i + 1 < end; ++i) {
    if (x[i] < 0.0f && x[i + 1] >= 0.0f) {
      const double t = (static_cast<double>(i) + x[i] / (static_cast<double>(x[i]) - x[i + 1])) / rate;
      if (first < 0.0) first = t;
      last = t;
      ++crossings;
    }
  }
  return (crossings - 1) / (last - first);
}

TEST(Resampler, LengthIsTheRoundedRatio) {
  EXPECT_EQ(resampled_length(44100, 44100, 22050), 22050);
  EXPECT_EQ(resampled_length(235201, 44100, 22050), 117601);  // 117600.5 rounds up
  EXPECT_EQ(resampled_length(999, 44100, 22050), 500);        // 499.5
  EXPECT_EQ(resampled_length(44100, 44100, 16000), 16000);
  EXPECT_EQ(resampled_length(441, 44100, 16000), 160);
  EXPECT_EQ(resampled_length(1000, 44100, 16000), 363);  // 362.81
  EXPECT_EQ(resampled_length(999, 44100, 16000), 362);   // 362.45
  EXPECT_EQ(resampled_length(235201, 44100, 16000), 85334);  // 85333.70
  EXPECT_EQ(resampled_length(0, 44100, 16000), 0);
  EXPECT_THROW(resampled_length(10, 0, 16000), UsageError);
}

TEST(Resampler, SineKeepsFrequencyPhaseAndEnergy) {
  const int in_rate = 44100;
  const double hz = 1000.0, amplitude = 0.5;
  const std::vector<float> tone = sine(hz, in_rate, 3 * in_rate, amplitude);
  for (const ResampleQuality quality : {ResampleQuality::kHigh, ResampleQuality::kVeryHigh}) {
    for (const int out_rate : {22050, 16000}) {
      SCOPED_TRACE(to_string(quality) + " -> " + std::to_string(out_rate));
      const std::vector<float> out = resample(tone, in_rate, out_rate, quality);
      ASSERT_EQ(static_cast<int64_t>(out.size()), resampled_length(3 * in_rate, in_rate, out_rate));
      EXPECT_LE(std::abs(static_cast<double>(out.size()) - 3.0 * out_rate), 1.0);
      // Away from the edges (where the filter sees the silence outside the
      // clip) the output is the same sine sampled at the new rate.
      const size_t begin = static_cast<size_t>(out_rate / 10), end = out.size() - begin;
      double max_error = 0.0;
      for (size_t n = begin; n < end; ++n) {
        const double expected = amplitude * std::sin(2.0 * M_PI * hz * static_cast<double>(n) / out_rate);
        max_error = std::max(max_error, std::abs(out[n] - expected));
      }
      EXPECT_LT(max_error, 1e-6);  // observed 3e-7 (high), 2e-8 (very high)
      EXPECT_NEAR(zero_crossing_frequency(out, out_rate, begin, end), hz, 1e-3);
      EXPECT_NEAR(mean_square(out, begin, end), amplitude * amplitude / 2.0, 1e-6);
    }
  }
}

TEST(Resampler, RemovesToneAboveTheNewNyquistFrequency) {
  // 10 kHz cannot exist at 16 kHz (Nyquist 8 kHz): it must vanish, not alias to 6 kHz.
  const std::vector<float> tone = sine(10000.0, 44100, 44100, 0.5);
  const std::vector<float> out = resample(tone, 44100, 16000);
  EXPECT_LT(std::sqrt(mean_square(out, 1600, out.size() - 1600)), 1e-6);  // observed 4e-9
}

TEST(Resampler, RealClipEnergyIsKept) {
  const AudioClip native = [] {
    AudioLoadOptions o;
    o.sample_rate = 0;
    return load_audio(testing::trumpet_path(), o);
  }();
  for (const int rate : {22050, 16000}) {
    SCOPED_TRACE(rate);
    AudioLoadOptions o;
    o.sample_rate = rate;
    const AudioClip clip = load_audio(testing::trumpet_path(), o);
    EXPECT_LE(std::abs(static_cast<double>(clip.samples.size()) - native.samples.size() * rate / 44100.0), 1.0);
    // Energy per second; a solo trumpet has next to nothing above 7 kHz, so
    // the removed band may take at most 0.1% (observed 0.0005% and 0.002%).
    const double before = mean_square(native.samples, 0, native.samples.size());
    const double after = mean_square(clip.samples, 0, clip.samples.size());
    EXPECT_NEAR(after / before, 1.0, 1e-3);
  }
}

TEST(Resampler, SameRateIsIdentityAndQualityNamesParse) {
  const std::vector<float> x = sine(440.0, 8000, 100);
  EXPECT_EQ(resample(x, 8000, 8000), x);
  EXPECT_EQ(parse_resample_quality("high"), ResampleQuality::kHigh);
  EXPECT_EQ(parse_resample_quality("very_high"), ResampleQuality::kVeryHigh);
  try {
    parse_resample_quality("ultra");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("got 'ultra'"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::audio
