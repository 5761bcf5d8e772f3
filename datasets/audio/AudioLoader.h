#pragma once
// Decoding audio files into mono float samples at a chosen rate. Torch-free.
//
// Every format libsndfile reads (WAV, FLAC, Ogg Vorbis, AIFF, ...) goes
// through sf_open / sf_readf_float. libsndfile's float conversion rules apply:
// integer PCM is divided by its full scale (16-bit: x / 32768, 24-bit:
// x / 8388608), float files and Vorbis are passed through as decoded.
// Channels are averaged to mono, then libsoxr resamples to the target rate.
//
// Nothing here substitutes data: a file that is missing, empty, undecodable or
// truncated raises kmidi::DataError naming the file and the reason.

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/audio/Resampler.h"

namespace kmidi::audio {

/// What the file's header says, before decoding.
struct AudioInfo {
  int64_t frames = 0;     ///< samples per channel
  int sample_rate = 0;    ///< Hz
  int channels = 0;
  std::string format;     ///< libsndfile's major format name, e.g. "WAV (Microsoft)"
  std::string encoding;   ///< libsndfile's subtype name, e.g. "Signed 16 bit PCM"
  double duration() const { return sample_rate > 0 ? static_cast<double>(frames) / sample_rate : 0.0; }
};

struct AudioLoadOptions {
  /// Output rate in Hz; 0 keeps the file's own rate.
  int sample_rate = 44100;
  /// Start of the excerpt in seconds from the file's start (rounded to the
  /// nearest source frame). Must lie inside the file.
  double offset_s = 0.0;
  /// Length of the excerpt in seconds (rounded to the nearest source frame);
  /// negative reads to the end. An excerpt reaching past the end stops there:
  /// AudioClip::duration says how long it really is.
  double duration_s = -1.0;
  ResampleQuality quality = ResampleQuality::kVeryHigh;
};

/// Mono samples [N] at `sample_rate`. Nominally in [-1, 1]; values are not
/// clipped, so lossy decoders and resampling may overshoot by a little.
struct AudioClip {
  std::vector<float> samples;
  int sample_rate = 0;      ///< Hz, of `samples`
  int source_channels = 0;  ///< channels in the file (averaged into `samples`)
  int source_rate = 0;      ///< the file's rate in Hz
  int64_t source_frames = 0;  ///< frames decoded from the file (before resampling)
  double duration = 0.0;    ///< seconds: samples.size() / sample_rate
};

/// Reads the header of `path`. Throws DataError when the file is missing or
/// not a readable audio file.
AudioInfo probe_audio(const std::string& path);

/// Decodes `path` (or its excerpt), averages channels and resamples.
/// Excerpts seek to their first frame instead of decoding from the start.
/// Throws DataError "PATH: ...; reason" when the file is missing, is not
/// audio, holds no frames, is truncated (fewer frames than its header
/// declares, a WAV data chunk cut short, an Ogg stream without its end page)
/// or fails to decode; UsageError for bad options (negative offset, rate).
AudioClip load_audio(const std::string& path, const AudioLoadOptions& options = {});

/// Channel mean of interleaved frames [frames, channels] -> [frames].
std::vector<float> downmix_to_mono(const float* interleaved, int64_t frames, int channels);

}  // namespace kmidi::audio
