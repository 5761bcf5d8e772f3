#include "datasets/audio/AudioWriter.h"

#include <fcntl.h>
#include <sndfile.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/Errors.h"

namespace kmidi::audio {
namespace {

std::string errno_text() { return std::strerror(errno); }

int sndfile_format(AudioFileFormat format) {
  switch (format) {
    case AudioFileFormat::kWavPcm16: return SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    case AudioFileFormat::kWavFloat: return SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    case AudioFileFormat::kFlacPcm16: return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    case AudioFileFormat::kFlacPcm24: return SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
  }
  throw UsageError("write_audio: unknown format");
}

int pcm_bits(AudioFileFormat format) {
  switch (format) {
    case AudioFileFormat::kWavPcm16:
    case AudioFileFormat::kFlacPcm16: return 16;
    case AudioFileFormat::kFlacPcm24: return 24;
    case AudioFileFormat::kWavFloat: return 0;
  }
  return 0;
}

/// Removes the temporary file unless released.
struct TempGuard {
  std::string path;
  int fd = -1;
  bool keep = false;
  ~TempGuard() {
    if (fd >= 0) ::close(fd);
    if (!keep) std::remove(path.c_str());
  }
};

}  // namespace

int32_t float_to_pcm(float x, int bits) {
  if (bits < 2 || bits > 32) throw UsageError("float_to_pcm: bits must be in [2, 32]; got " + std::to_string(bits));
  const double full_scale = std::ldexp(1.0, bits - 1);
  // std::nearbyint rounds half to even under the default rounding mode.
  const double q = std::nearbyint(static_cast<double>(x) * full_scale);
  if (std::isnan(q)) throw UsageError("float_to_pcm: sample is NaN");
  if (q >= full_scale) return static_cast<int32_t>(full_scale - 1.0);
  if (q < -full_scale) return static_cast<int32_t>(-full_scale);
  return static_cast<int32_t>(q);
}

void write_audio(const std::string& path, const std::vector<float>& interleaved, int channels,
                 int sample_rate, AudioFileFormat format) {
  if (channels <= 0 || sample_rate <= 0) {
    throw UsageError(path + ": write_audio needs positive channels and rate; got " + std::to_string(channels) +
                     " channels at " + std::to_string(sample_rate) + " Hz");
  }
  if (interleaved.empty() || interleaved.size() % static_cast<size_t>(channels) != 0) {
    throw UsageError(path + ": write_audio needs a non-empty buffer of whole frames; got " +
                     std::to_string(interleaved.size()) + " samples for " + std::to_string(channels) + " channels");
  }
  const sf_count_t frames = static_cast<sf_count_t>(interleaved.size() / static_cast<size_t>(channels));

  TempGuard temp;
  temp.path = path + ".tmp." + std::to_string(::getpid());
  temp.fd = ::open(temp.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (temp.fd < 0) throw DataError(temp.path + ": cannot create temporary file: " + errno_text());

  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = channels;
  info.format = sndfile_format(format);
  if (!sf_format_check(&info)) {
    throw UsageError(path + ": libsndfile cannot write this format with " + std::to_string(channels) +
                     " channels at " + std::to_string(sample_rate) + " Hz");
  }
  SNDFILE* file = sf_open_fd(temp.fd, SFM_WRITE, &info, /*close_desc=*/SF_FALSE);
  if (!file) throw DataError(path + ": cannot start writing audio; " + sf_strerror(nullptr));

  sf_count_t written = 0;
  const int bits = pcm_bits(format);
  if (bits == 0) {
    written = sf_writef_float(file, interleaved.data(), frames);
  } else {
    // Integers are written left-aligned in 32 bits, which libsndfile narrows
    // to the file's width without rescaling.
    std::vector<int> pcm(interleaved.size());
    for (size_t i = 0; i < pcm.size(); ++i) {
      pcm[i] = static_cast<int>(static_cast<uint32_t>(float_to_pcm(interleaved[i], bits)) << (32 - bits));
    }
    written = sf_writef_int(file, pcm.data(), frames);
  }
  const std::string write_error = sf_strerror(file);
  const int close_status = sf_close(file);
  if (written != frames || close_status != 0) {
    throw DataError(path + ": writing audio failed after " + std::to_string(written) + " of " +
                    std::to_string(frames) + " frames; " + write_error);
  }
  if (::fsync(temp.fd) != 0) throw DataError(path + ": fsync failed: " + errno_text());
  if (::close(temp.fd) != 0) {
    temp.fd = -1;
    throw DataError(path + ": close failed: " + errno_text());
  }
  temp.fd = -1;
  if (std::rename(temp.path.c_str(), path.c_str()) != 0) {
    throw DataError(path + ": cannot rename " + temp.path + " into place: " + errno_text());
  }
  temp.keep = true;
}

}  // namespace kmidi::audio
