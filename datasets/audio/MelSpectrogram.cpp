#include "datasets/audio/MelSpectrogram.h"

#include <torch/torch.h>

#include "datasets/audio/MelScale.h"

namespace kmidi::audio {
namespace {

// Floor on the standard deviation in per-clip standardisation: a silent
// clip (constant dB) maps to zeros instead of dividing by zero.
constexpr double kStdFloor = 1e-6;

}  // namespace

void MelConfig::visit(config::Visitor& v) {
  v.field("sample_rate", sample_rate, config::Spec("audio rate in Hz the spectrogram expects").min(1000).max(384000));
  v.field("n_fft", n_fft, config::Spec("FFT size in samples").min(16).max(65536));
  v.field("hop_length", hop_length, config::Spec("samples between frames").min(1));
  v.field("win_length", win_length, config::Spec("periodic Hann window length; 0 = n_fft").non_negative());
  v.field("center", center, config::Spec("pad n_fft/2 on both sides so frames are centred on t * hop_length"));
  v.field("pad_mode", pad_mode, config::Spec("padding when centring").one_of({"reflect", "constant"}));
  v.field("n_mels", n_mels, config::Spec("mel bands").min(1).max(1024));
  v.field("fmin", fmin, config::Spec("lowest band edge in Hz").non_negative());
  v.field("fmax", fmax, config::Spec("highest band edge in Hz; 0 = sample_rate / 2").non_negative());
  v.field("power", power, config::Spec("exponent on the STFT magnitude: 2 power, 1 magnitude").positive().max(4));
  v.field("mel_scale", mel_scale, config::Spec("mel formula").one_of({"slaney", "htk"}));
  v.field("mel_norm", mel_norm, config::Spec("band weighting: slaney = unit area, none = unit peak").one_of({"slaney", "none"}));
  v.field("to_db", to_db, config::Spec("convert to decibels"));
  v.field("db_ref", db_ref, config::Spec("0 dB reference: the clip's maximum or 1").one_of({"max", "one"}));
  v.field("amin", amin, config::Spec("floor applied before the logarithm").positive());
  v.field("top_db", top_db, config::Spec("dB kept below the clip's maximum; 0 keeps all").non_negative());
  v.field("normalization", normalization, config::Spec("per-clip normalisation of the result").one_of({"none", "standardize"}));
  v.field("precision", precision, config::Spec("arithmetic precision (output is float32)").one_of({"float64", "float32"}));
  v.check(win_length <= n_fft, "win_length", "must not exceed n_fft");
  v.check(effective_fmax() <= sample_rate / 2.0, "fmax", "must not exceed sample_rate / 2");
  v.check(fmin < effective_fmax(), "fmin", "must be below fmax");
}

int64_t MelConfig::frames_for_samples(int64_t samples) const {
  const int64_t padded = center ? samples + 2 * (n_fft / 2) : samples;
  if (padded < n_fft) return 0;
  return 1 + (padded - n_fft) / hop_length;
}

int64_t MelConfig::samples_for_frames(int64_t frames) const {
  if (frames <= 0) return 0;
  const int64_t needed_padded = n_fft + (frames - 1) * hop_length;
  return center ? needed_padded - 2 * (n_fft / 2) : needed_padded;
}

MelSpectrogram::MelSpectrogram(MelConfig config) : config_(std::move(config)) {
  const MelConfig& c = config_;
  // The same rules as visit(), for configs built in code rather than read.
  if (c.n_fft < 2 || c.hop_length < 1 || c.win_length < 0 || c.effective_win_length() > c.n_fft) {
    throw UsageError("MelSpectrogram: needs n_fft >= 2, hop_length >= 1, 0 <= win_length <= n_fft; got n_fft " +
                     std::to_string(c.n_fft) + ", hop_length " + std::to_string(c.hop_length) + ", win_length " +
                     std::to_string(c.win_length));
  }
  if (!(c.power > 0.0) || !(c.amin > 0.0) || c.top_db < 0.0) {
    throw UsageError("MelSpectrogram: needs power > 0, amin > 0, top_db >= 0");
  }
  if (c.pad_mode != "reflect" && c.pad_mode != "constant") {
    throw UsageError("MelSpectrogram: pad_mode must be 'reflect' or 'constant'; got '" + c.pad_mode + "'");
  }
  if (c.db_ref != "max" && c.db_ref != "one") {
    throw UsageError("MelSpectrogram: db_ref must be 'max' or 'one'; got '" + c.db_ref + "'");
  }
  if (c.normalization != "none" && c.normalization != "standardize") {
    throw UsageError("MelSpectrogram: normalization must be 'none' or 'standardize'; got '" + c.normalization + "'");
  }
  if (c.precision != "float64" && c.precision != "float32") {
    throw UsageError("MelSpectrogram: precision must be 'float64' or 'float32'; got '" + c.precision + "'");
  }

  MelFilterbankSpec spec;
  spec.sample_rate = c.sample_rate;
  spec.n_fft = c.n_fft;
  spec.n_mels = c.n_mels;
  spec.fmin = c.fmin;
  spec.fmax = c.effective_fmax();
  spec.scale = parse_mel_scale(c.mel_scale);
  spec.norm = parse_mel_norm(c.mel_norm);
  std::vector<double> weights = mel_filterbank(spec);
  const int64_t bins = c.n_fft / 2 + 1;
  filterbank_ = torch::from_blob(weights.data(), {c.n_mels, bins}, torch::kFloat64).clone();
  window_ = torch::hann_window(c.effective_win_length(), /*periodic=*/true, torch::TensorOptions().dtype(torch::kFloat64));
}

at::Tensor MelSpectrogram::operator()(const at::Tensor& waveform) const {
  const MelConfig& c = config_;
  if (waveform.dim() != 1 && waveform.dim() != 2) {
    throw UsageError("MelSpectrogram: expected a waveform [N] or [B, N]; got " + std::to_string(waveform.dim()) +
                     " dimensions");
  }
  const int64_t n = waveform.size(-1);
  const bool reflect = c.center && c.pad_mode == "reflect";
  if ((reflect && n <= c.n_fft / 2) || (!c.center && n < c.n_fft) || n == 0) {
    throw UsageError("MelSpectrogram: a clip of " + std::to_string(n) + " samples is too short for n_fft " +
                     std::to_string(c.n_fft) + (reflect ? " with reflect padding (needs more than n_fft / 2)"
                                                        : (c.center ? "" : " without centring (needs n_fft)")));
  }
  const torch::Dtype dtype = c.precision == "float64" ? torch::kFloat64 : torch::kFloat32;
  const torch::TensorOptions opts = torch::TensorOptions().dtype(dtype).device(waveform.device());
  const bool batched = waveform.dim() == 2;
  const at::Tensor x = (batched ? waveform : waveform.unsqueeze(0)).to(opts);

  const at::Tensor stft = torch::stft(x, c.n_fft, c.hop_length, c.effective_win_length(), window_.to(opts),
                                      c.center, c.pad_mode, /*normalized=*/false, /*onesided=*/true,
                                      /*return_complex=*/true);  // [B, F, T]
  // |X|^2 from real and imaginary parts: no square root to undo for power 2.
  at::Tensor spec = torch::view_as_real(stft).pow(2).sum(-1);
  if (c.power != 2.0) spec = spec.pow(c.power / 2.0);
  at::Tensor mel = torch::matmul(filterbank_.to(opts), spec);  // [B, n_mels, T]

  if (c.to_db) {
    const double scale = 20.0 / c.power;
    at::Tensor db = scale * torch::log10(torch::clamp_min(mel, c.amin));
    if (c.db_ref == "max") {
      const at::Tensor ref = std::get<0>(mel.flatten(1).max(1)).clamp_min(c.amin);  // [B]
      db = db - (scale * torch::log10(ref)).view({-1, 1, 1});
    } else {
      db = db - scale * std::log10(std::max(c.amin, 1.0));
    }
    if (c.top_db > 0.0) {
      const at::Tensor peak = std::get<0>(db.flatten(1).max(1)).view({-1, 1, 1});
      db = torch::maximum(db, peak - c.top_db);
    }
    mel = db;
  }
  if (c.normalization == "standardize") {
    const at::Tensor flat = mel.flatten(1);
    const at::Tensor mean = flat.mean(1).view({-1, 1, 1});
    const at::Tensor std = flat.std(1, /*unbiased=*/false).clamp_min(kStdFloor).view({-1, 1, 1});
    mel = (mel - mean) / std;
  }
  mel = mel.to(torch::kFloat32);
  return batched ? mel : mel.squeeze(0);
}

at::Tensor MelSpectrogram::from_clip(const AudioClip& clip) const {
  if (clip.sample_rate != config_.sample_rate) {
    throw UsageError("MelSpectrogram: clip is at " + std::to_string(clip.sample_rate) + " Hz; the config expects " +
                     std::to_string(config_.sample_rate) + " Hz (load it with sample_rate " +
                     std::to_string(config_.sample_rate) + ")");
  }
  const at::Tensor samples = torch::from_blob(const_cast<float*>(clip.samples.data()),
                                              {static_cast<int64_t>(clip.samples.size())}, torch::kFloat32);
  return (*this)(samples);
}

}  // namespace kmidi::audio
