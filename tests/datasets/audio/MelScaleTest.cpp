#include "datasets/audio/MelScale.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/Errors.h"

namespace kmidi::audio {
namespace {

TEST(MelScale, SlaneyHandValues) {
  // Linear below 1 kHz at 200/3 Hz per mel; above, 27 mels per factor 6.4.
  EXPECT_DOUBLE_EQ(hz_to_mel(0.0), 0.0);
  EXPECT_NEAR(hz_to_mel(200.0 / 3.0), 1.0, 1e-12);
  EXPECT_NEAR(hz_to_mel(500.0), 7.5, 1e-12);
  EXPECT_NEAR(hz_to_mel(1000.0), 15.0, 1e-12);
  EXPECT_NEAR(hz_to_mel(6400.0), 42.0, 1e-12);
  EXPECT_NEAR(hz_to_mel(6400.0 * 6.4), 69.0, 1e-12);
  EXPECT_NEAR(mel_to_hz(7.5), 500.0, 1e-9);
  EXPECT_NEAR(mel_to_hz(15.0), 1000.0, 1e-9);
  EXPECT_NEAR(mel_to_hz(42.0), 6400.0, 1e-9);
  for (double hz : {20.0, 440.0, 999.0, 1001.0, 8000.0, 22050.0}) EXPECT_NEAR(mel_to_hz(hz_to_mel(hz)), hz, 1e-9);
}

TEST(MelScale, HtkHandValues) {
  EXPECT_NEAR(hz_to_mel(700.0, MelScaleKind::kHtk), 2595.0 * 0.30102999566398120, 1e-9);  // 2595 log10(2)
  EXPECT_NEAR(mel_to_hz(2595.0, MelScaleKind::kHtk), 6300.0, 1e-9);                      // 700 (10 - 1)
  EXPECT_NEAR(hz_to_mel(0.0, MelScaleKind::kHtk), 0.0, 1e-12);
}

TEST(MelScale, MelFrequenciesSpanFminToFmax) {
  const std::vector<double> f = mel_frequencies(5, 0.0, 1000.0, MelScaleKind::kSlaney);
  // 0..15 mels in the linear region: 0, 3.75, 7.5, 11.25, 15 mels.
  const std::vector<double> expected = {0.0, 250.0, 500.0, 750.0, 1000.0};
  ASSERT_EQ(f.size(), expected.size());
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], expected[i], 1e-9);
}

TEST(MelScale, OneBandFilterbankByHand) {
  // sr 16 kHz, n_fft 8: bins at 0, 2, 4, 6, 8 kHz. One band from 0 to 8 kHz
  // peaks at the mel midpoint, mel(8000) / 2, which in Hz is
  // 1000 * sqrt(8) * 6.4^(-7.5 / 27) (= 1688.9 Hz).
  const double centre = 1000.0 * std::sqrt(8.0) * std::pow(6.4, -7.5 / 27.0);
  const double fall = 8000.0 - centre;
  MelFilterbankSpec spec;
  spec.sample_rate = 16000;
  spec.n_fft = 8;
  spec.n_mels = 1;
  spec.fmin = 0.0;
  spec.fmax = 8000.0;
  spec.norm = MelNorm::kNone;
  const std::vector<double> expected = {0.0, 6000.0 / fall, 4000.0 / fall, 2000.0 / fall, 0.0};
  std::vector<double> w = mel_filterbank(spec);
  ASSERT_EQ(w.size(), 5u);
  for (size_t k = 0; k < 5; ++k) EXPECT_NEAR(w[k], expected[k], 1e-12) << k;

  spec.norm = MelNorm::kSlaney;  // scaled by 2 / (upper edge - lower edge) = 2 / 8000
  w = mel_filterbank(spec);
  for (size_t k = 0; k < 5; ++k) EXPECT_NEAR(w[k], expected[k] * 2.0 / 8000.0, 1e-15) << k;
}

TEST(MelScale, DefaultFilterbankHasUnitAreaBandsPeakingAtTheirCentres) {
  MelFilterbankSpec spec;  // 44.1 kHz, n_fft 2048, 128 slaney bands to 22050 Hz
  const std::vector<double> w = mel_filterbank(spec);
  const size_t bins = 1025;
  ASSERT_EQ(w.size(), 128 * bins);
  const std::vector<double> edges = mel_frequencies(130, 0.0, 22050.0, MelScaleKind::kSlaney);
  const double bin_hz = 44100.0 / 2048.0;
  for (size_t i = 0; i < 128; ++i) {
    size_t argmax = 0;
    double area = 0.0;
    for (size_t k = 0; k < bins; ++k) {
      area += w[i * bins + k] * bin_hz;
      if (w[i * bins + k] > w[i * bins + argmax]) argmax = k;
    }
    // The largest weight sits on a bin next to the band's centre frequency.
    EXPECT_LE(std::abs(argmax * bin_hz - edges[i + 1]), bin_hz) << "band " << i;
    // Riemann sum of a unit-area triangle: exact up to the sampling of its
    // corners, which matters only for bands a few bins wide.
    if (edges[i + 2] - edges[i] > 20 * bin_hz) EXPECT_NEAR(area, 1.0, 0.01) << "band " << i;
  }
}

TEST(MelScale, RejectsBandsWithoutBinsAndBadRanges) {
  MelFilterbankSpec spec;
  spec.sample_rate = 16000;
  spec.n_fft = 64;  // 250 Hz bins: 128 bands cannot all hold one
  spec.fmax = 8000.0;
  try {
    mel_filterbank(spec);
    ADD_FAILURE() << "accepted empty bands";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("covers no FFT bin"), std::string::npos) << e.what();
  }
  spec = {};
  spec.fmax = 30000.0;
  EXPECT_THROW(mel_filterbank(spec), UsageError);
  EXPECT_THROW(parse_mel_scale("bark"), UsageError);
  EXPECT_THROW(parse_mel_norm("l2"), UsageError);
}

}  // namespace
}  // namespace kmidi::audio
