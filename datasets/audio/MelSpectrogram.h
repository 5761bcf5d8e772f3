#pragma once
// Log-mel spectrograms in LibTorch, matching librosa's definitions
// (librosa.feature.melspectrogram + power_to_db) up to floating point.
//
// For a mono waveform x[N] at sample_rate (config MelConfig):
//  1. Framing: with center, x is padded by n_fft/2 on both sides (pad_mode
//     'reflect': x[-i] = x[i], x[N-1+i] = x[N-1-i]; 'constant': zeros);
//     frame t starts at t * hop_length; T = 1 + floor((N_padded - n_fft) / hop_length).
//  2. Window: periodic Hann of win_length, w[n] = 0.5 - 0.5 cos(2 pi n / win_length),
//     zero-padded to n_fft with the window centred (offset (n_fft - win_length) / 2).
//  3. X[k, t] = sum_n w[n] x_pad[t * hop + n] exp(-2 pi i k n / n_fft), k = 0..n_fft/2.
//  4. S[k, t] = |X[k, t]|^power (power 2: power spectrum, 1: magnitude).
//  5. M = W S, W the mel filterbank of datasets/audio/MelScale.h [n_mels, n_fft/2+1].
//  6. to_db: D = (20 / power) * (log10(max(amin, M)) - log10(max(amin, ref))),
//     ref = max over the clip of M ('max') or 1 ('one'); i.e. 10 log10 for power 2.
//     With top_db > 0: D = max(D, max_over_clip(D) - top_db).
//  7. normalization 'standardize': Y = (D - mean(D)) / max(std(D), 1e-6), mean
//     and population std over the clip's whole [n_mels, T] matrix; 'none': Y = D.
// Every step runs in float64 by default and the result is float32: against an
// independent float64 NumPy computation the dB values then differ by at most
// ~4e-6 dB (the float32 rounding of the output). precision 'float32' is faster
// (e.g. on GPUs) but differs by up to ~3e-4 dB on real music.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "core/Config.h"
#include "datasets/audio/AudioLoader.h"

namespace kmidi::audio {

struct MelConfig : config::Section {
  int sample_rate = 44100;    ///< Hz; input audio must already be at this rate
  int n_fft = 2048;           ///< FFT size (samples)
  int hop_length = 512;       ///< samples between frames
  int win_length = 0;         ///< Hann window length; 0 = n_fft
  bool center = true;         ///< pad n_fft/2 on both sides so frame t is centred at t * hop
  std::string pad_mode = "reflect";  ///< reflect | constant (only with center)
  int n_mels = 128;
  double fmin = 0.0;          ///< Hz
  double fmax = 0.0;          ///< Hz; 0 = sample_rate / 2
  double power = 2.0;         ///< exponent on |X|: 2 power, 1 magnitude
  std::string mel_scale = "slaney";  ///< slaney | htk
  std::string mel_norm = "slaney";   ///< slaney (unit-area bands) | none
  bool to_db = true;
  std::string db_ref = "max";  ///< max (0 dB = the clip's loudest bin) | one
  double amin = 1e-10;         ///< floor on M and ref before the log
  double top_db = 80.0;        ///< dynamic range kept below the clip's maximum; 0 = no floor
  std::string normalization = "standardize";  ///< none | standardize (per clip)
  std::string precision = "float64";  ///< float64 | float32 arithmetic (output is float32 either way)

  void visit(config::Visitor& v) override;

  int effective_win_length() const { return win_length == 0 ? n_fft : win_length; }
  double effective_fmax() const { return fmax == 0.0 ? sample_rate / 2.0 : fmax; }
  /// Frames T for a clip of `samples` samples (formula in step 1).
  int64_t frames_for_samples(int64_t samples) const;
  /// The fewest samples that give `frames` frames (e.g. 64 frames: 32256 samples with the defaults).
  int64_t samples_for_frames(int64_t frames) const;
};

/// Computes log-mel spectrograms for one configuration. Holds the filterbank
/// and window; moves them to the input's device on use. Const methods are
/// safe to call from several threads.
class MelSpectrogram {
 public:
  /// Validates `config` (UsageError on an inconsistent one, e.g. a mel band
  /// with no FFT bin) and builds the filterbank.
  explicit MelSpectrogram(MelConfig config);

  /// [N] -> [n_mels, T] or [B, N] -> [B, n_mels, T], float32 on the input's
  /// device. Per-clip steps (ref=max, top_db, standardisation) use each row's
  /// own statistics. Throws UsageError for other ranks or clips too short to
  /// frame (reflect padding needs N > n_fft / 2; no centring needs N >= n_fft).
  at::Tensor operator()(const at::Tensor& waveform) const;

  /// A decoded clip; throws UsageError when its rate differs from the config's.
  at::Tensor from_clip(const AudioClip& clip) const;

  /// The mel filterbank [n_mels, n_fft/2 + 1] (float64, CPU).
  const at::Tensor& filterbank() const { return filterbank_; }
  const MelConfig& config() const { return config_; }

 private:
  MelConfig config_;
  at::Tensor filterbank_;  // [n_mels, F] float64
  at::Tensor window_;      // [win_length] float64
};

}  // namespace kmidi::audio
