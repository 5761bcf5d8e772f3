#include "datasets/audio/AudioLoader.h"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "core/Errors.h"

namespace kmidi::audio {
namespace {

namespace fs = std::filesystem;

struct SndfileCloser {
  void operator()(SNDFILE* file) const { sf_close(file); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

std::string seconds_text(double seconds) {
  std::ostringstream os;
  os.precision(6);
  os << seconds << " s";
  return os.str();
}

uint32_t read_le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

/// libsndfile quietly shortens a WAV whose data chunk runs past the end of the
/// file; a cut-off download must be an error instead, so walk the RIFF chunks
/// and compare the declared data size with the bytes present. Sizes 0 and
/// 0xFFFFFFFF mean "unknown" (streaming writers) and are not checked.
void check_wav_not_truncated(const std::string& path, std::ifstream& in, uint64_t file_size) {
  unsigned char header[12];
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return;
  if (std::memcmp(header + 8, "WAVE", 4) != 0) return;
  uint64_t pos = 12;
  unsigned char chunk[8];
  while (pos + 8 <= file_size) {
    in.seekg(static_cast<std::streamoff>(pos));
    if (!in.read(reinterpret_cast<char*>(chunk), sizeof chunk)) return;
    const uint32_t size = read_le32(chunk + 4);
    if (std::memcmp(chunk, "data", 4) == 0) {
      const uint64_t present = file_size - (pos + 8);
      if (size != 0 && size != 0xFFFFFFFFu && present < size) {
        throw DataError(path + ": truncated WAV file; the data chunk at byte " + std::to_string(pos) +
                        " declares " + std::to_string(size) + " bytes, the file holds " +
                        std::to_string(present));
      }
      return;
    }
    pos += 8 + static_cast<uint64_t>(size) + (size & 1u);
  }
}

/// An Ogg stream ends with a page flagged end-of-stream that ends where the
/// file does. libsndfile 1.2.0 reports a cut-off Ogg with an unknown length,
/// 1.2.2 with the length of the pages present: check the last page here so a
/// truncated download is an error with either.
void check_ogg_terminated(const std::string& path, std::ifstream& in, uint64_t file_size) {
  constexpr uint64_t kLongestPage = 27 + 255 + 255 * 255;
  const uint64_t tail_size = std::min(file_size, kLongestPage);
  std::string tail(tail_size, '\0');
  in.seekg(static_cast<std::streamoff>(file_size - tail_size));
  if (!in.read(tail.data(), static_cast<std::streamsize>(tail_size))) return;
  const auto* bytes = reinterpret_cast<const unsigned char*>(tail.data());
  // The last page is the one whose header, segment table and body end at EOF.
  for (size_t start = tail.rfind("OggS"); start != std::string::npos;
       start = start == 0 ? std::string::npos : tail.rfind("OggS", start - 1)) {
    if (start + 27 > tail_size || bytes[start + 4] != 0) continue;
    const size_t segments = bytes[start + 26];
    if (start + 27 + segments > tail_size) continue;
    size_t end = start + 27 + segments;
    for (size_t i = 0; i < segments; ++i) end += bytes[start + 27 + i];
    if (end != tail_size) continue;
    if ((bytes[start + 5] & 0x04) == 0) {
      throw DataError(path + ": truncated or unterminated audio stream; its last Ogg page (at byte " +
                      std::to_string(file_size - tail_size + start) + ") has no end-of-stream flag");
    }
    return;
  }
  throw DataError(path + ": truncated or unterminated audio stream; the file ends inside an Ogg page");
}

/// Cut-off files that libsndfile would decode without complaint, by container.
void check_not_truncated(const std::string& path, uint64_t file_size) {
  std::ifstream in(path, std::ios::binary);
  char magic[4];
  if (!in.read(magic, sizeof magic)) return;
  if (std::memcmp(magic, "RIFF", 4) == 0) check_wav_not_truncated(path, in, file_size);
  if (std::memcmp(magic, "OggS", 4) == 0) check_ogg_terminated(path, in, file_size);
}

std::string format_name(int format) {
  SF_FORMAT_INFO info{};
  info.format = format;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &info, sizeof info) == 0 && info.name != nullptr) {
    return info.name;
  }
  std::ostringstream os;
  os << "format 0x" << std::hex << format;
  return os.str();
}

struct OpenFile {
  SndfilePtr file;
  SF_INFO info{};
};

/// Opens `path` for reading and checks what its header promises. Every
/// failure names the file.
OpenFile open_checked(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw DataError(path + ": cannot open audio file; no such file");
  if (fs::is_directory(status)) throw DataError(path + ": cannot open audio file; it is a folder");
  const uint64_t file_size = fs::file_size(path, ec);
  if (!ec) {
    if (file_size == 0) throw DataError(path + ": cannot decode audio; the file is empty (0 bytes)");
    check_not_truncated(path, file_size);
  }

  OpenFile result;
  {
    // sf_strerror(nullptr) reports the last failed open process-wide: keep the
    // open and its message together when loader threads open files at once.
    static std::mutex open_mutex;
    std::lock_guard<std::mutex> lock(open_mutex);
    result.file.reset(sf_open(path.c_str(), SFM_READ, &result.info));
    if (!result.file) throw DataError(path + ": cannot decode audio; " + sf_strerror(nullptr));
  }
  const SF_INFO& info = result.info;
  if (info.channels <= 0 || info.samplerate <= 0) {
    throw DataError(path + ": invalid audio header; " + std::to_string(info.channels) + " channels at " +
                    std::to_string(info.samplerate) + " Hz");
  }
  // libsndfile reports an Ogg stream whose final (end-of-stream) page is
  // missing with an unknown length: the file was cut off.
  if (info.frames == SF_COUNT_MAX || info.frames < 0) {
    throw DataError(path + ": truncated or unterminated audio stream; its length is unknown (no end-of-stream marker)");
  }
  if (info.frames == 0) throw DataError(path + ": no audio frames; the file holds a header only");
  return result;
}

}  // namespace

AudioInfo probe_audio(const std::string& path) {
  const OpenFile f = open_checked(path);
  AudioInfo info;
  info.frames = f.info.frames;
  info.sample_rate = f.info.samplerate;
  info.channels = f.info.channels;
  info.format = format_name(f.info.format & SF_FORMAT_TYPEMASK);
  info.encoding = format_name(f.info.format & SF_FORMAT_SUBMASK);
  return info;
}

std::vector<float> downmix_to_mono(const float* interleaved, int64_t frames, int channels) {
  if (channels <= 0) throw UsageError("downmix_to_mono: channels must be positive; got " + std::to_string(channels));
  std::vector<float> mono(static_cast<size_t>(frames));
  if (channels == 1) {
    std::copy(interleaved, interleaved + frames, mono.begin());
    return mono;
  }
  const float scale = 1.0f / static_cast<float>(channels);
  for (int64_t i = 0; i < frames; ++i) {
    const float* frame = interleaved + i * channels;
    float sum = 0.0f;
    for (int c = 0; c < channels; ++c) sum += frame[c];
    mono[static_cast<size_t>(i)] = sum * scale;
  }
  return mono;
}

AudioClip load_audio(const std::string& path, const AudioLoadOptions& options) {
  if (options.sample_rate < 0) {
    throw UsageError("load_audio: sample_rate must be positive (or 0 for the file's rate); got " +
                     std::to_string(options.sample_rate));
  }
  if (!std::isfinite(options.offset_s) || options.offset_s < 0.0) {
    throw UsageError("load_audio: offset_s must be a finite value >= 0; got " + std::to_string(options.offset_s));
  }
  if (!std::isfinite(options.duration_s)) {
    throw UsageError("load_audio: duration_s must be finite (negative reads to the end)");
  }

  OpenFile f = open_checked(path);
  const SF_INFO& info = f.info;
  const int64_t total = info.frames;
  const int64_t start = std::llround(options.offset_s * info.samplerate);
  if (start >= total) {
    throw DataError(path + ": excerpt offset " + seconds_text(options.offset_s) +
                    " is at or past the end of the audio (" +
                    seconds_text(static_cast<double>(total) / info.samplerate) + ")");
  }
  int64_t count = total - start;
  if (options.duration_s >= 0.0) {
    const int64_t wanted = std::llround(options.duration_s * info.samplerate);
    if (wanted <= 0) {
      throw UsageError("load_audio: duration_s " + std::to_string(options.duration_s) +
                       " is shorter than one frame at " + std::to_string(info.samplerate) + " Hz");
    }
    count = std::min(count, wanted);
  }

  if (start > 0) {
    if (!info.seekable || sf_seek(f.file.get(), start, SEEK_SET) != start) {
      throw DataError(path + ": cannot seek to frame " + std::to_string(start) + " (" +
                      seconds_text(options.offset_s) + "); " + sf_strerror(f.file.get()));
    }
  }

  // Decode in blocks and average channels as we go: the interleaved buffer
  // stays small however long the file is.
  constexpr int64_t kBlockFrames = 16384;
  std::vector<float> block(static_cast<size_t>(kBlockFrames * info.channels));
  std::vector<float> mono;
  mono.reserve(static_cast<size_t>(count));
  int64_t decoded = 0;
  while (decoded < count) {
    const int64_t want = std::min(kBlockFrames, count - decoded);
    const sf_count_t got = sf_readf_float(f.file.get(), block.data(), want);
    if (got <= 0) break;
    const std::vector<float> part = downmix_to_mono(block.data(), got, info.channels);
    for (size_t i = 0; i < part.size(); ++i) {
      if (!std::isfinite(part[i])) {
        throw DataError(path + ": non-finite sample at frame " + std::to_string(start + decoded + static_cast<int64_t>(i)));
      }
    }
    mono.insert(mono.end(), part.begin(), part.end());
    decoded += got;
  }
  const int decode_error = sf_error(f.file.get());
  if (decoded < count || decode_error != SF_ERR_NO_ERROR) {
    throw DataError(path + ": truncated or corrupt audio; decoded " + std::to_string(decoded) + " of " +
                    std::to_string(count) + " frames from frame " + std::to_string(start) + "; " +
                    sf_strerror(f.file.get()));
  }

  AudioClip clip;
  clip.source_channels = info.channels;
  clip.source_rate = info.samplerate;
  clip.source_frames = decoded;
  clip.sample_rate = options.sample_rate == 0 ? info.samplerate : options.sample_rate;
  if (clip.sample_rate == info.samplerate) {
    clip.samples = std::move(mono);
  } else {
    try {
      clip.samples = resample(mono, info.samplerate, clip.sample_rate, options.quality);
    } catch (const DataError& e) {
      throw DataError(path + ": " + e.what());
    }
  }
  clip.duration = static_cast<double>(clip.samples.size()) / clip.sample_rate;
  return clip;
}

}  // namespace kmidi::audio
