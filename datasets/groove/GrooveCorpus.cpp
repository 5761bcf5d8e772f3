#include "datasets/groove/GrooveCorpus.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "datasets/midi/MidiReader.h"

namespace fs = std::filesystem;

namespace kmidi::groove {
namespace {

constexpr char kCacheMagic[8] = {'K', 'M', 'G', 'R', 'O', 'O', 'V', 'E'};
constexpr uint32_t kCacheVersion = 2;  // 2: windows carry their player
constexpr size_t kHexLength = 64;

/// Little-endian fixed-width encoding of the cache payload.
class Encoder {
 public:
  template <class T>
  void put(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class Decoder {
 public:
  Decoder(std::string_view bytes, std::string where) : bytes_(bytes), where_(std::move(where)) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string get_string() {
    const auto n = get<uint32_t>();
    need(n);
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  void need(size_t n) const {
    if (bytes_.size() - pos_ < n) {
      throw DataError(where_ + ": truncated at byte " + std::to_string(pos_) + "; expected " + std::to_string(n) +
                      " more bytes, got " + std::to_string(bytes_.size() - pos_));
    }
  }
  std::string_view bytes_;
  std::string where_;
  size_t pos_ = 0;
};

std::string encode_split(const GrooveSplit& split) {
  static_assert(sizeof(double) == 8, "the cache stores IEEE doubles");
  Encoder e;
  e.put<int64_t>(split.files);
  for (int c = 0; c < kDrumClasses; ++c) {
    e.put<int64_t>(split.velocities.hits[static_cast<size_t>(c)]);
    e.put<double>(split.velocities.velocity_sum[static_cast<size_t>(c)]);
  }
  e.put<uint64_t>(split.items.size());
  for (const GrooveItem& item : split.items) {
    e.put_string(item.source);
    e.put_string(item.player);
    e.put<int64_t>(item.first_step);
    e.put<double>(item.bpm);
    e.put<uint32_t>(static_cast<uint32_t>(item.hits.size()));
    for (const Hit& h : item.hits) {
      e.put<int64_t>(h.step);
      e.put<int32_t>(h.drum_class);
      e.put<double>(h.offset_steps);
      e.put<double>(h.offset_ms);
      e.put<int32_t>(h.velocity);
      e.put<int64_t>(h.note_index);
    }
  }
  return std::move(e.bytes());
}

GrooveSplit decode_split(std::string_view payload, const std::string& where) {
  Decoder d(payload, where);
  GrooveSplit split;
  split.files = d.get<int64_t>();
  for (size_t c = 0; c < kDrumClasses; ++c) {
    split.velocities.hits[c] = d.get<int64_t>();
    split.velocities.velocity_sum[c] = d.get<double>();
  }
  const auto n = d.get<uint64_t>();
  split.items.resize(n);
  for (GrooveItem& item : split.items) {
    item.source = d.get_string();
    item.player = d.get_string();
    item.first_step = d.get<int64_t>();
    item.bpm = d.get<double>();
    item.hits.resize(d.get<uint32_t>());
    for (Hit& h : item.hits) {
      h.step = d.get<int64_t>();
      h.drum_class = d.get<int32_t>();
      h.offset_steps = d.get<double>();
      h.offset_ms = d.get<double>();
      h.velocity = d.get<int32_t>();
      h.note_index = d.get<int64_t>();
      if (h.drum_class < 0 || h.drum_class >= kDrumClasses) {
        throw DataError(where + ": drum class " + std::to_string(h.drum_class) + " out of range");
      }
    }
  }
  if (!d.done()) throw DataError(where + ": trailing bytes after the last window");
  return split;
}

std::string cache_key(const std::vector<GrooveSource>& sources, const WindowSettings& s) {
  std::string text = "groove-cache v" + std::to_string(kCacheVersion) + " steps " + std::to_string(s.steps) +
                     " hop " + std::to_string(s.hop) + " min_hits " + std::to_string(s.min_hits) + "\n";
  for (const GrooveSource& source : sources) {
    text += source.id + "\t" + source.player + "\t" + source.path + "\t" + hash::sha256_file(source.path) + "\n";
  }
  return hash::sha256_hex(text);
}

void add_velocities(VelocityStats& stats, const DrumGrid& grid) {
  for (const Hit& h : grid.hits) {
    stats.hits[static_cast<size_t>(h.drum_class)] += 1;
    stats.velocity_sum[static_cast<size_t>(h.drum_class)] += h.velocity;
  }
}

/// The cached split, or nothing when the file is absent, for other data, or damaged.
std::optional<GrooveSplit> read_cache(const std::string& path, const std::string& key) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const std::string bytes = files::read_all(path);
  const size_t header = sizeof kCacheMagic + sizeof(uint32_t) + 2 * kHexLength;
  if (bytes.size() < header || std::memcmp(bytes.data(), kCacheMagic, sizeof kCacheMagic) != 0) {
    spdlog::warn("{}: not a groove cache (bad header); rebuilding it", path);
    return std::nullopt;
  }
  uint32_t version = 0;
  std::memcpy(&version, bytes.data() + sizeof kCacheMagic, sizeof version);
  const std::string file_key = bytes.substr(sizeof kCacheMagic + sizeof version, kHexLength);
  const std::string checksum = bytes.substr(sizeof kCacheMagic + sizeof version + kHexLength, kHexLength);
  if (version != kCacheVersion || file_key != key) return std::nullopt;
  const std::string_view payload = std::string_view(bytes).substr(header);
  if (hash::sha256_hex(payload) != checksum) {
    spdlog::warn("{}: checksum mismatch (truncated or corrupt); rebuilding it", path);
    return std::nullopt;
  }
  try {
    GrooveSplit split = decode_split(payload, path);
    split.from_cache = true;
    return split;
  } catch (const DataError& e) {
    spdlog::warn("{}; rebuilding it", e.what());
    return std::nullopt;
  }
}

void write_cache(const std::string& path, const std::string& key, const GrooveSplit& split) {
  const std::string payload = encode_split(split);
  std::string bytes(kCacheMagic, sizeof kCacheMagic);
  char version[sizeof kCacheVersion];
  std::memcpy(version, &kCacheVersion, sizeof version);
  bytes.append(version, sizeof version);
  bytes += key;
  bytes += hash::sha256_hex(payload);
  bytes += payload;
  files::write_atomic(path, bytes);
}

}  // namespace

void WindowSettings::validate() const {
  if (steps <= 0) throw UsageError("groove windows: steps must be positive, got " + std::to_string(steps));
  if (hop <= 0) throw UsageError("groove windows: hop must be positive, got " + std::to_string(hop));
  if (min_hits < 0) throw UsageError("groove windows: min_hits must be >= 0, got " + std::to_string(min_hits));
}

double VelocityStats::mean(int c) const {
  const auto i = static_cast<size_t>(c);
  return hits.at(i) > 0 ? velocity_sum[i] / static_cast<double>(hits[i]) : 0.0;
}

std::vector<GrooveSource> read_groove_manifest(const std::string& csv_path, const std::string& split,
                                               const std::vector<std::string>& time_signatures, int64_t max_files) {
  const csv::Table table = csv::read(csv_path);
  const size_t id = table.column("id"), file = table.column("midi_filename"), split_column = table.column("split"),
               meter = table.column("time_signature");
  const bool has_player = table.has_column("drummer");  // optional: only player conditioning needs it
  const size_t drummer = has_player ? table.column("drummer") : 0;
  const fs::path root = fs::path(csv_path).parent_path();
  std::vector<GrooveSource> out;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const auto& row = table.rows[i];
    if (row[split_column] != split) continue;
    if (std::find(time_signatures.begin(), time_signatures.end(), row[meter]) == time_signatures.end()) continue;
    GrooveSource s;
    s.id = row[id];
    if (has_player) s.player = row[drummer];
    s.path = (root / row[file]).lexically_normal().string();
    std::error_code ec;
    if (!fs::is_regular_file(s.path, ec)) {
      throw DataError(table.where(i) + ": midi_filename '" + row[file] + "' does not exist (looked for " + s.path + ")");
    }
    out.push_back(std::move(s));
    if (max_files > 0 && static_cast<int64_t>(out.size()) >= max_files) break;
  }
  return out;
}

std::vector<GrooveItem> grid_windows(const midi::Score& score, const DrumGrid& grid, const std::string& source,
                                     const WindowSettings& settings) {
  settings.validate();
  std::vector<GrooveItem> out;
  for (GrooveWindow& w : make_windows(grid, settings.steps, settings.hop, settings.min_hits)) {
    GrooveItem item;
    item.source = source;
    item.first_step = w.first_step;
    const double seconds = score.seconds_at(grid_tick(score, w.first_step + settings.steps)) -
                           score.seconds_at(grid_tick(score, w.first_step));
    item.bpm = seconds > 0 ? 60.0 * (static_cast<double>(settings.steps) / kStepsPerQuarter) / seconds : grid.mean_bpm;
    item.hits = std::move(w.hits);
    out.push_back(std::move(item));
  }
  return out;
}

GrooveSplit load_groove_split(const std::vector<GrooveSource>& sources, const WindowSettings& settings,
                              const std::string& split, const std::string& cache_dir) {
  settings.validate();
  std::string key, path;
  if (!cache_dir.empty()) {
    key = cache_key(sources, settings);
    path = (fs::path(cache_dir) / ("groove-" + split + "-" + key.substr(0, 16) + ".bin")).string();
    if (auto cached = read_cache(path, key)) {
      spdlog::debug("groove {}: {} windows of {} files from {}", split, cached->items.size(), cached->files, path);
      return std::move(*cached);
    }
  }
  GrooveSplit out;
  for (const GrooveSource& source : sources) {
    const midi::Score score = midi::read_midi_file(source.path);
    const DrumGrid grid = quantize_drums(score);
    add_velocities(out.velocities, grid);
    for (GrooveItem& item : grid_windows(score, grid, source.id, settings)) {
      item.player = source.player;
      out.items.push_back(std::move(item));
    }
    ++out.files;
  }
  if (!cache_dir.empty()) {
    files::ensure_dir(cache_dir);
    write_cache(path, key, out);
    spdlog::info("groove {}: cached {} windows of {} files in {}", split, out.items.size(), out.files, path);
  }
  return out;
}

}  // namespace kmidi::groove
