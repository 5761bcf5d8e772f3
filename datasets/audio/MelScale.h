#pragma once
// The mel scale and triangular mel filterbanks, as librosa defines them
// (librosa.hz_to_mel / mel_frequencies / filters.mel). Torch-free, in double.
//
// Slaney scale (Auditory Toolbox; librosa's default, htk=False):
//   f < 1000 Hz:  m = 3 f / 200                     (linear, 200/3 Hz per mel)
//   f >= 1000 Hz: m = 15 + ln(f / 1000) / (ln(6.4) / 27)   (logarithmic)
//   inverse:      f = 200 m / 3 for m < 15, else 1000 exp((m - 15) ln(6.4) / 27)
// HTK scale: m = 2595 log10(1 + f / 700), f = 700 (10^(m / 2595) - 1).
//
// Filterbank [n_mels, n_fft/2 + 1]:
//   FFT bin k has frequency f_k = k * sample_rate / n_fft.
//   Band edges: n_mels + 2 frequencies p_0..p_{n_mels+1}, equally spaced in mel
//   between mel(fmin) and mel(fmax), converted back to Hz.
//   W[i][k] = max(0, min((f_k - p_i) / (p_{i+1} - p_i), (p_{i+2} - f_k) / (p_{i+2} - p_{i+1})))
//   Slaney normalisation (librosa norm='slaney') multiplies band i by
//   2 / (p_{i+2} - p_i), giving each triangle unit area in Hz; 'none' leaves peaks at 1.

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::audio {

enum class MelScaleKind { kSlaney, kHtk };
enum class MelNorm { kSlaney, kNone };

/// Parses "slaney" or "htk"; throws UsageError otherwise.
MelScaleKind parse_mel_scale(const std::string& name);
/// Parses "slaney" or "none"; throws UsageError otherwise.
MelNorm parse_mel_norm(const std::string& name);

double hz_to_mel(double hz, MelScaleKind scale = MelScaleKind::kSlaney);
double mel_to_hz(double mel, MelScaleKind scale = MelScaleKind::kSlaney);

/// `count` frequencies in Hz equally spaced on the mel scale from fmin to fmax (inclusive).
std::vector<double> mel_frequencies(int count, double fmin, double fmax, MelScaleKind scale);

/// Centre frequencies of the n_fft / 2 + 1 one-sided FFT bins.
std::vector<double> fft_frequencies(int sample_rate, int n_fft);

struct MelFilterbankSpec {
  int sample_rate = 44100;
  int n_fft = 2048;
  int n_mels = 128;
  double fmin = 0.0;
  double fmax = 22050.0;  ///< must not exceed sample_rate / 2
  MelScaleKind scale = MelScaleKind::kSlaney;
  MelNorm norm = MelNorm::kSlaney;
};

/// Row-major weights [n_mels, n_fft / 2 + 1] (formula above). Throws
/// UsageError for inconsistent specs and when a band covers no FFT bin
/// (all-zero row: too many mels for this n_fft), naming the first such band.
std::vector<double> mel_filterbank(const MelFilterbankSpec& spec);

}  // namespace kmidi::audio
