#include "datasets/features/EmotionFeatureCache.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/midi/MidiReader.h"

namespace kmidi::features {
namespace {

constexpr const char* kFormat = "kmidi.emotion_features";
constexpr int64_t kFormatVersion = 1;
constexpr size_t kHashChars = 64;
constexpr size_t kRecordBytes = kHashChars + kEmotionFeatureSize * sizeof(float);

bool is_sha256_hex(const std::string& s) {
  if (s.size() != kHashChars) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

const std::string& EmotionFeatureCache::layout_sha256() {
  static const std::string sha = [] {
    std::string joined;
    for (const char* name : emotion_feature_names()) joined += std::string(name) + "\n";
    return hash::sha256_hex(joined);
  }();
  return sha;
}

EmotionFeatureCache::EmotionFeatureCache(std::string path) : path_(std::move(path)) {
  if (!std::filesystem::exists(path_)) return;
  const std::string bytes = files::read_all(path_);
  const size_t eol = bytes.find('\n');
  if (eol == std::string::npos) throw DataError(path_ + ": not an emotion feature cache (no header line); delete it to rebuild");
  const auto header = nlohmann::json::parse(bytes.substr(0, eol), nullptr, false);
  if (header.is_discarded() || !header.is_object() || header.value("format", std::string()) != kFormat) {
    throw DataError(path_ + ": not an emotion feature cache (header format is not '" + std::string(kFormat) +
                    "'); delete it to rebuild");
  }
  const int64_t version = header.value("format_version", int64_t{0});
  if (version != kFormatVersion || header.value("layout_sha256", std::string()) != layout_sha256() ||
      header.value("feature_size", int64_t{0}) != static_cast<int64_t>(kEmotionFeatureSize)) {
    spdlog::warn("{}: written for another feature layout (format_version {}); recomputing every entry", path_, version);
    return;
  }
  const int64_t count = header.value("count", int64_t{-1});
  const size_t body = bytes.size() - eol - 1;
  if (count < 0 || body != static_cast<size_t>(count) * kRecordBytes) {
    throw DataError(path_ + ": truncated or malformed: the header promises " + std::to_string(count) +
                    " records of " + std::to_string(kRecordBytes) + " bytes, the file holds " + std::to_string(body) +
                    " bytes after it; delete it to rebuild");
  }
  const char* p = bytes.data() + eol + 1;
  for (int64_t i = 0; i < count; ++i, p += kRecordBytes) {
    std::string sha(p, kHashChars);
    if (!is_sha256_hex(sha)) {
      throw DataError(path_ + ": record " + std::to_string(i) + " (byte offset " +
                      std::to_string(eol + 1 + static_cast<size_t>(i) * kRecordBytes) +
                      ") does not start with a SHA-256 in hex; delete it to rebuild");
    }
    EmotionFeatures values;
    std::memcpy(values.data(), p + kHashChars, kEmotionFeatureSize * sizeof(float));
    entries_[std::move(sha)] = values;
  }
}

std::optional<EmotionFeatures> EmotionFeatureCache::find(const std::string& sha256) const {
  const auto it = entries_.find(sha256);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void EmotionFeatureCache::insert(const std::string& sha256, const EmotionFeatures& values) {
  if (!is_sha256_hex(sha256)) throw UsageError("emotion feature cache: '" + sha256 + "' is not a lower-case SHA-256 hex digest");
  entries_[sha256] = values;
  ++added_;
}

EmotionFeatures EmotionFeatureCache::get_or_compute(const std::string& midi_path, const std::string& sha256) {
  if (auto hit = find(sha256)) return *hit;
  const std::string bytes = files::read_all(midi_path);
  const std::string actual = hash::sha256_hex(bytes);
  if (actual != sha256) {
    throw DataError(midi_path + ": the file changed since it was prepared (sha256 " + actual + ", the shard records " +
                    sha256 + "); re-run kmidi prepare");
  }
  const EmotionFeatures values = emotion_features(midi::read_midi_bytes(bytes, midi_path));
  insert(sha256, values);
  return values;
}

void EmotionFeatureCache::save() {
  if (added_ == 0) return;
  nlohmann::ordered_json header;
  header["format"] = kFormat;
  header["format_version"] = kFormatVersion;
  header["feature_size"] = kEmotionFeatureSize;
  header["layout_sha256"] = layout_sha256();
  header["count"] = entries_.size();
  std::string out = header.dump() + "\n";
  out.reserve(out.size() + entries_.size() * kRecordBytes);
  for (const auto& [sha, values] : entries_) {
    out += sha;
    out.append(reinterpret_cast<const char*>(values.data()), kEmotionFeatureSize * sizeof(float));
  }
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) files::ensure_dir(parent.string());
  files::write_atomic(path_, out);
  added_ = 0;
}

}  // namespace kmidi::features
