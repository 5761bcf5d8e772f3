#include "datasets/spectocloud/SpectocloudPrepare.h"

#include <fcntl.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/Csv.h"
#include "core/Errors.h"
#include "core/Files.h"
#include "datasets/corpus/FileList.h"
#include "datasets/features/MidiFeatures.h"
#include "datasets/midi/MidiReader.h"
#include "datasets/spectocloud/CloudTarget.h"
#include "datasets/spectocloud/SpectocloudCache.h"

extern char** environ;

namespace kmidi::spectocloud {

namespace fs = std::filesystem;

void SourceConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("name", name, Spec("unique source name: names its render folder and its item ids").required());
  v.field("kind", kind,
          Spec("pop909 (MIDI, rendered), emopia (MIDI, rendered, emotion from label.csv) or audio (recordings without MIDI)")
              .required()
              .one_of({"pop909", "emopia", "audio"}));
  v.field("root", root, Spec("folder of the source's files").required().data_path());
  v.field("include", include, Spec("glob patterns relative to root; default **/*.mid for MIDI kinds, audio extensions for audio"));
  v.field("limit", limit, Spec("keep N files spread evenly over the sorted list (file k * count / N); 0: all").min(0));
  v.field("labels", labels, Spec("emopia: label.csv with columns ID and 4Q").data_path());
  if (!v.reading()) return;
  v.check(!name.empty() && name.find_first_of("/\\ ") == std::string::npos, "name", "must be a non-empty name without '/', '\\' or spaces");
  v.check(kind != "emopia" || !labels.empty(), "labels", "is required for kind emopia");
  if (include.empty()) {
    if (kind == "audio") include = {"**/*.wav", "**/*.flac", "**/*.ogg"};
    else include = {"**/*.mid", "**/*.midi"};
  }
}

void ExcerptConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("frames", frames, Spec("mel frames per excerpt (the model's frames axis)").positive());
  v.field("start_s", start_s, Spec("first excerpt offset in each file, seconds").non_negative());
  v.field("stride_s", stride_s, Spec("seconds between excerpt starts").positive());
  v.field("max_per_file", max_per_file, Spec("most excerpts per file").positive());
  v.field("min_rms", min_rms, Spec("excerpts with a lower RMS are left out (silence)").non_negative());
}

void RenderConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("script", script, Spec("scripts/render_audio.sh (fluidsynth + GM soundfont)"));
  v.field("cache_dir", cache_dir, Spec("rendered WAVs, kept and reused across runs").required());
  v.field("gain", gain, Spec("fluidsynth master gain").positive().max(10.0));
}

void CacheOutputConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("file", file, Spec("the HDF5 cache written (and <file>.report.json)").required());
  v.field("deflate_level", deflate_level, Spec("HDF5 deflate level; 0 stores uncompressed").min(0).max(9));
}

void SpectocloudPrepareConfig::visit(config::Visitor& v) {
  using config::Spec;
  v.field("kind", kind, Spec("spectocloud: audio excerpts with target clouds (absent: a MIDI token corpus)").one_of({"spectocloud"}));
  v.field("data_root", data_root, Spec("folder that data paths resolve against; unset: the config's folder"));
  v.list("sources", sources, Spec("audio and MIDI sources").required());
  v.section("excerpt", excerpt);
  v.section("mel", mel);
  v.field("points", points, Spec("points of the target cloud").positive());
  v.section("split", split);
  v.section("render", render, Spec().required());
  v.field("on_error", on_error,
          Spec("fail: stop at the first missing or undecodable file or failed render; skip: leave it out and list it")
              .one_of({"fail", "skip"}));
  v.section("output", output, Spec().required());
  if (!v.reading()) return;
  v.check(!sources.empty(), "sources", "must list at least one source");
  std::set<std::string> names;
  for (const SourceConfig& s : sources) {
    v.check(names.insert(s.name).second, "sources", "names '" + s.name + "' twice");
  }
  v.check(split.method == "hash", "split", "method must be hash (by song id), got '" + split.method + "'");
  v.check(mel.to_db && mel.db_ref == "max" && mel.top_db > 0, "mel",
          "the target cloud needs dB relative to the maximum with a floor: to_db true, db_ref max, top_db > 0");
  v.check(mel.n_mels * excerpt.frames >= points, "points",
          "needs at least as many mel cells per excerpt (" + std::to_string(mel.n_mels * excerpt.frames) + ")");
}

SpectocloudPrepareConfig load_spectocloud_prepare_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Document doc = config::Document::load_file(path);
  doc.apply_overrides(overrides);
  SpectocloudPrepareConfig c;
  doc.read_into(c);
  return c;
}

std::string emopia_song_id(const std::string& clip_name) {
  const size_t first = clip_name.find('_'), last = clip_name.rfind('_');
  if (clip_name.size() < 2 || clip_name[0] != 'Q' || first == std::string::npos || last <= first + 1 ||
      last + 1 >= clip_name.size()) {
    throw DataError("EMOPIA clip name '" + clip_name + "': expected Q<quadrant>_<song id>_<clip>");
  }
  return clip_name.substr(first + 1, last - first - 1);
}

namespace {

/// One source file with what its excerpts share.
struct SourceFile {
  const SourceConfig* source = nullptr;
  std::string path;      ///< absolute
  std::string relative;  ///< to the source's root
  std::string song;
  std::string split;
  std::array<float, kEmotionDim> emotion{};
  bool has_emotion = false;
};

std::string stem_of(const std::string& relative) { return fs::path(relative).stem().string(); }

/// Russell quadrant 1..4 of each EMOPIA clip id in label.csv.
std::map<std::string, int> read_emopia_quadrants(const std::string& path) {
  const csv::Table table = csv::read(path);
  const size_t id = table.column("ID"), q = table.column("4Q");
  std::map<std::string, int> out;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const std::string& text = table.rows[i][q];
    if (text.size() != 1 || text[0] < '1' || text[0] > '4') {
      throw DataError(table.where(i) + ": 4Q must be 1, 2, 3 or 4, got '" + text + "'");
    }
    out[table.rows[i][id]] = text[0] - '0';
  }
  return out;
}

/// Runs `argv` (no shell); returns its exit status and what it wrote to stderr.
std::pair<int, std::string> run_process(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw DataError(argv[0] + ": cannot start: " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw DataError(argv[0] + ": waitpid failed: " + std::strerror(errno));
  }
  std::string log;
  try {
    log = files::read_all(log_path);
  } catch (const DataError&) {
  }
  ::unlink(log_path.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), log};
}

/// The WAV of a MIDI file, rendered once into the render cache.
std::string rendered_wav(const SpectocloudPrepareConfig& config, const SourceFile& file, int64_t& rendered) {
  const fs::path out_dir = fs::path(config.render.cache_dir.str()) / file.source->name / fs::path(file.relative).parent_path();
  const fs::path wav = out_dir / (stem_of(file.relative) + ".wav");
  if (fs::is_regular_file(wav)) return wav.string();
  files::ensure_dir(out_dir.string());
  char gain[32];
  std::snprintf(gain, sizeof gain, "%g", config.render.gain);
  const auto [status, log] = run_process({"/bin/bash", config.render.script.str(), "-o", out_dir.string(), "-g", gain,
                                          "-r", std::to_string(config.mel.sample_rate), file.path},
                                         (out_dir / (stem_of(file.relative) + ".render." + std::to_string(::getpid()) + ".log")).string());
  if (status != 0 || !fs::is_regular_file(wav)) {
    throw DataError(file.path + ": rendering to " + wav.string() + " failed (render_audio.sh exit " + std::to_string(status) +
                    "): " + log);
  }
  ++rendered;
  return wav.string();
}

struct ItemBuilder {
  CacheItems items;
  std::vector<at::Tensor> spectrogram, emotion, midi_features, positions, colors, properties;
  std::vector<int8_t> has_midi, has_emotion;
  std::vector<double> offset_s;
};

/// The files of a source, sorted; with a limit, spread over the sorted list
/// (file k * count / limit), so that a subset of a list sorted by label
/// (EMOPIA's Q1..Q4) keeps every label.
std::vector<std::string> source_listing(const SourceConfig& source) {
  std::vector<std::string> listed = corpus::list_files(source.root.str(), source.include, {});
  if (source.limit > 0 && static_cast<int64_t>(listed.size()) > source.limit) {
    std::vector<std::string> kept;
    const auto count = static_cast<int64_t>(listed.size());
    for (int64_t k = 0; k < source.limit; ++k) kept.push_back(listed[static_cast<size_t>(k * count / source.limit)]);
    listed = std::move(kept);
  }
  if (listed.empty()) throw DataError(source.root.str() + ": source '" + source.name + "' matches no files");
  return listed;
}

/// The source files with their songs, splits and EMOPIA emotion labels; a
/// clip without a label row fails or is skipped as the policy says.
std::vector<SourceFile> source_files(const SpectocloudPrepareConfig& config, data::ErrorPolicy& policy) {
  std::vector<SourceFile> files_in;
  for (const SourceConfig& source : config.sources) {
    std::map<std::string, int> quadrants;
    if (source.kind == "emopia") quadrants = read_emopia_quadrants(source.labels.str());
    for (const std::string& relative : source_listing(source)) {
      SourceFile f;
      f.source = &source;
      f.relative = relative;
      f.path = (fs::path(source.root.str()) / relative).string();
      const std::string stem = stem_of(relative);
      if (source.kind == "emopia") {
        const auto found = quadrants.find(stem);
        if (found == quadrants.end()) {
          const std::string reason = f.path + ": no label row for '" + stem + "' in " + source.labels.str();
          if (policy.mode() == data::OnError::kFail) throw DataError(reason);
          policy.record(f.path, reason);
          continue;
        }
        const int q = found->second;
        f.emotion[0] = (q == 1 || q == 4) ? 1.0f : -1.0f;  // valence
        f.emotion[1] = (q == 1 || q == 2) ? 1.0f : -1.0f;  // arousal
        f.has_emotion = true;
        f.song = source.name + ":" + emopia_song_id(stem);
      } else {
        f.song = source.name + ":" + stem;
      }
      f.split = corpus::hash_split(f.song, config.split);
      files_in.push_back(std::move(f));
    }
  }
  return files_in;
}

/// Cuts excerpts from the audio of source files into an ItemBuilder.
class ExcerptCutter {
 public:
  ExcerptCutter(const SpectocloudPrepareConfig& config, SpectocloudPrepareReport& report)
      : config_(config),
        report_(report),
        mel_(config.mel),
        target_mel_(target_mel_config(config.mel)),
        samples_(config.mel.samples_for_frames(config.excerpt.frames)),
        excerpt_s_(static_cast<double>(samples_) / config.mel.sample_rate) {}

  /// Every excerpt of one file (rendered first when it is MIDI). Throws
  /// DataError when the file cannot be read, has no notes or fails to render.
  void add_file(const SourceFile& file, ItemBuilder& b) {
    const bool with_midi = file.source->kind != "audio";
    std::optional<midi::Score> score;
    double end_s = 0.0;
    std::string audio_path = file.path;
    if (with_midi) {
      score = midi::read_midi_file(file.path);
      if (score->notes.empty()) throw DataError(file.path + ": no notes to render");
      audio_path = rendered_wav(config_, file, report_.rendered);
      for (const midi::Note& n : score->notes) end_s = std::max(end_s, n.end_s);
    }
    const audio::AudioInfo info = audio::probe_audio(audio_path);
    end_s = with_midi ? std::min(end_s, info.duration()) : info.duration();
    for (int64_t k = 0; k < config_.excerpt.max_per_file; ++k) {
      const double t0 = config_.excerpt.start_s + static_cast<double>(k) * config_.excerpt.stride_s;
      if (t0 + excerpt_s_ > end_s) break;
      std::optional<audio::AudioClip> clip = load_excerpt(audio_path, t0);
      if (!clip) break;
      if (is_quiet(*clip)) {
        ++report_.quiet_excerpts;
        continue;
      }
      add_excerpt(file, *clip, score ? &*score : nullptr, audio_path, t0, b);
    }
  }

 private:
  static audio::MelConfig target_mel_config(audio::MelConfig mel) {
    mel.normalization = "none";
    return mel;
  }

  /// The excerpt at t0, or nothing when the audio ends before it is whole.
  std::optional<audio::AudioClip> load_excerpt(const std::string& audio_path, double t0) const {
    audio::AudioLoadOptions options;
    options.sample_rate = config_.mel.sample_rate;
    options.offset_s = t0;
    options.duration_s = excerpt_s_ + 0.05;  // a little more, cut below: rounding never loses a frame
    audio::AudioClip clip = audio::load_audio(audio_path, options);
    if (static_cast<int64_t>(clip.samples.size()) < samples_) return std::nullopt;
    clip.samples.resize(static_cast<size_t>(samples_));
    clip.duration = excerpt_s_;
    return clip;
  }

  bool is_quiet(const audio::AudioClip& clip) const {
    double energy = 0.0;
    for (float s : clip.samples) energy += static_cast<double>(s) * s;
    return std::sqrt(energy / static_cast<double>(samples_)) < config_.excerpt.min_rms;
  }

  /// One item: spectrogram, target cloud, MIDI features of the span (score
  /// null for audio sources) and the item's id, split and paths.
  void add_excerpt(const SourceFile& file, const audio::AudioClip& clip, const midi::Score* score,
                   const std::string& audio_path, double t0, ItemBuilder& b) const {
    const at::Tensor spec = mel_.from_clip(clip);
    const at::Tensor db = target_mel_.from_clip(clip);
    const CloudTarget target = cloud_target(db, config_.mel.top_db, config_.points, file.emotion[0], file.emotion[1]);
    features::MidiFeatures mf{};
    if (score) mf = features::midi_features(*score, t0, t0 + excerpt_s_);
    b.spectrogram.push_back(spec);
    b.emotion.push_back(torch::tensor(std::vector<float>(file.emotion.begin(), file.emotion.end())));
    b.midi_features.push_back(torch::tensor(std::vector<float>(mf.begin(), mf.end())));
    b.positions.push_back(target.positions);
    b.colors.push_back(target.colors);
    b.properties.push_back(target.properties);
    b.has_midi.push_back(score ? 1 : 0);
    b.has_emotion.push_back(file.has_emotion ? 1 : 0);
    b.offset_s.push_back(t0);
    char offset[32];
    std::snprintf(offset, sizeof offset, "%.3f", t0);
    b.items.id.push_back(file.source->name + "/" + file.relative + "@" + offset);
    b.items.split.push_back(file.split);
    b.items.song.push_back(file.song);
    b.items.audio.push_back(audio_path);
    b.items.midi.push_back(score ? file.path : "");
  }

  const SpectocloudPrepareConfig& config_;
  SpectocloudPrepareReport& report_;
  const audio::MelSpectrogram mel_;
  const audio::MelSpectrogram target_mel_;  ///< unnormalised dB, for the target cloud
  const int64_t samples_;
  const double excerpt_s_;
};

/// The items as stacked tensors.
CacheItems stacked_items(ItemBuilder& b) {
  CacheItems& items = b.items;
  items.spectrogram = torch::stack(b.spectrogram);
  items.emotion = torch::stack(b.emotion);
  items.midi_features = torch::stack(b.midi_features);
  items.positions = torch::stack(b.positions);
  items.colors = torch::stack(b.colors);
  items.properties = torch::stack(b.properties);
  items.has_midi = torch::tensor(std::vector<int8_t>(b.has_midi.begin(), b.has_midi.end()), torch::kChar);
  items.has_emotion = torch::tensor(std::vector<int8_t>(b.has_emotion.begin(), b.has_emotion.end()), torch::kChar);
  items.offset_s = torch::tensor(b.offset_s, torch::kDouble);
  return std::move(b.items);
}

CacheHeader cache_header(const SpectocloudPrepareConfig& config) {
  CacheHeader header;
  header.n_mels = config.mel.n_mels;
  header.frames = config.excerpt.frames;
  header.points = config.points;
  header.sample_rate = config.mel.sample_rate;
  header.target_version = kCloudTargetVersion;
  audio::MelConfig mel_copy = config.mel;
  header.mel_config = config::to_yaml(mel_copy);
  return header;
}

/// Items and songs per split, in the config's split order.
std::vector<SpectocloudSplitSummary> split_summaries(const std::vector<std::string>& names, const CacheItems& items) {
  std::vector<SpectocloudSplitSummary> out;
  for (const std::string& name : names) {
    SpectocloudSplitSummary s;
    s.name = name;
    std::set<std::string> songs;
    for (size_t i = 0; i < items.split.size(); ++i) {
      if (items.split[i] != name) continue;
      ++s.items;
      songs.insert(items.song[i]);
    }
    s.songs = static_cast<int64_t>(songs.size());
    out.push_back(s);
  }
  return out;
}

/// <file>.report.json: the report's counts, splits and skipped files.
void write_report_json(const SpectocloudPrepareReport& report) {
  nlohmann::ordered_json j;
  j["file"] = report.file;
  j["files"] = report.files;
  j["items"] = report.items;
  j["rendered"] = report.rendered;
  j["quiet_excerpts"] = report.quiet_excerpts;
  for (const SpectocloudSplitSummary& s : report.splits) j["splits"][s.name] = {{"items", s.items}, {"songs", s.songs}};
  j["skipped"] = nlohmann::json::array();
  for (const data::SkippedItem& s : report.skipped) j["skipped"].push_back({{"path", s.path}, {"reason", s.reason}});
  files::write_atomic(report.file + ".report.json", j.dump(2) + "\n");
}

}  // namespace

SpectocloudPrepareReport run_spectocloud_prepare(const SpectocloudPrepareConfig& config) {
  SpectocloudPrepareReport report;
  report.file = config.output.file.str();
  data::ErrorPolicy policy(data::parse_on_error(config.on_error));
  ExcerptCutter cutter(config, report);
  const std::vector<SourceFile> files_in = source_files(config, policy);
  ItemBuilder b;
  for (const SourceFile& file : files_in) {
    const auto ok = policy.attempt(file.path, [&]() -> bool {
      cutter.add_file(file, b);
      return true;
    });
    if (ok) ++report.files;
  }
  if (b.spectrogram.empty()) throw DataError(config.output.file.str() + ": no excerpts were prepared from the sources");

  const CacheItems items = stacked_items(b);
  write_cache(config.output.file.str(), cache_header(config), items, config.output.deflate_level);
  report.items = items.size();
  report.skipped = policy.skipped();
  report.splits = split_summaries(config.split.names, items);
  write_report_json(report);
  return report;
}

}  // namespace kmidi::spectocloud
