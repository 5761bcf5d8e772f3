#pragma once
// Writing audio files with libsndfile, atomically. Torch-free.
//
// Float -> integer PCM uses one documented rule, the inverse of libsndfile's
// read scaling: q = clamp(round_half_even(x * 2^(bits-1)), -2^(bits-1), 2^(bits-1) - 1).
// Reading such a file back with load_audio gives q / 2^(bits-1) exactly, so
// every x that is already a multiple of 2^-(bits-1) in [-1, 1) survives a
// round trip bit for bit. (libsndfile's own float writer scales by
// 2^(bits-1) - 1 instead, which does not round-trip; kmidi converts itself.)

#include <cstdint>
#include <string>
#include <vector>

namespace kmidi::audio {

enum class AudioFileFormat {
  kWavPcm16,   ///< RIFF WAVE, signed 16-bit
  kWavFloat,   ///< RIFF WAVE, 32-bit IEEE float (bit-exact for any float)
  kFlacPcm16,  ///< FLAC, 16-bit
  kFlacPcm24,  ///< FLAC, 24-bit
};

/// Writes interleaved frames [frames, channels] to `path` through a temporary
/// file beside it that is renamed into place once complete (fsynced).
/// Throws UsageError for an empty buffer or a size not divisible by
/// `channels`, DataError (naming the file) when libsndfile fails.
void write_audio(const std::string& path, const std::vector<float>& interleaved, int channels,
                 int sample_rate, AudioFileFormat format);

/// The integer a float sample becomes in a `bits`-bit PCM file (rule above).
int32_t float_to_pcm(float x, int bits);

}  // namespace kmidi::audio
