#include "datasets/midi/MidiReader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "core/Errors.h"

namespace kmidi::midi {
namespace {

constexpr size_t kMaxListedWarnings = 64;
constexpr uint32_t kMaxMetaOrSysexLength = 1'000'000;  // mido's MAX_MESSAGE_LENGTH
constexpr int kKeys = 16 * 128;                        // (channel, pitch)

/// Thrown inside a track in lenient mode; the chunk loop ends the track there.
struct TrackStop {
  size_t offset;
  std::string reason;
};

const char* channel_message_name(uint8_t status) {
  switch (status >> 4) {
    case 0x8: return "note-off";
    case 0x9: return "note-on";
    case 0xA: return "polyphonic aftertouch";
    case 0xB: return "control change";
    case 0xC: return "program change";
    case 0xD: return "channel aftertouch";
    default: return "pitch bend";
  }
}

/// Data bytes after a system status byte (F1..FE, not F0 F7 FF); -1 for the
/// undefined ones.
int system_message_data_bytes(uint8_t status) {
  switch (status) {
    case 0xF1: case 0xF3: return 1;
    case 0xF2: return 2;
    case 0xF6: case 0xF8: case 0xFA: case 0xFB: case 0xFC: case 0xFE: return 0;
    default: return -1;  // F4 F5 F9 FD
  }
}

bool plausible_chunk_id(const uint8_t* id) {
  for (int i = 0; i < 4; ++i) {
    if (id[i] < 0x20 || id[i] > 0x7E) return false;
  }
  return true;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

uint16_t read_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

std::string hex_bytes(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{}{:02X}", i ? " " : "", p[i]);
  return out;
}

class Parser {
 public:
  Parser(std::string_view bytes, const std::string& name, const ReadOptions& options)
      : data_(reinterpret_cast<const uint8_t*>(bytes.data())), size_(bytes.size()), name_(name),
        strict_(options.strict) {}

  Score run() {
    read_header();
    read_chunks();
    finish();
    return std::move(score_);
  }

 private:
  // ---- errors and warnings ----------------------------------------------

  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] void fail(size_t offset, const std::string& reason) const {
    throw DataError(fmt::format("{}: byte {}: {}", name_, offset, reason));
  }

  [[gnu::cold]] [[gnu::noinline]] void warn(size_t offset, const std::string& what) {
    ++score_.stats.repairs;
    if (score_.stats.warnings.size() < kMaxListedWarnings) {
      score_.stats.warnings.push_back(fmt::format("byte {}: {}", offset, what));
    }
  }

  /// An error inside a track: strict throws the DataError, lenient stops the
  /// track at the last complete event.
  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] void track_error(size_t offset, const std::string& reason) const {
    const std::string where = fmt::format("{} (track {})", reason, track_);
    if (strict_) fail(offset, where);
    throw TrackStop{offset, where};
  }

  // ---- header and chunks --------------------------------------------------

  void read_header() {
    if (size_ < 4 || std::memcmp(data_, "MThd", 4) != 0) {
      fail(0, fmt::format("not a Standard MIDI File: expected chunk id MThd, got {}",
                          size_ == 0 ? std::string("an empty file") : hex_bytes(data_, std::min<size_t>(size_, 4))));
    }
    if (size_ < 14) fail(size_, fmt::format("header truncated: the file has {} bytes, a MIDI header needs 14", size_));
    const uint32_t header_length = read_be32(data_ + 4);
    if (header_length < 6) fail(4, fmt::format("header chunk length {}; expected at least 6", header_length));
    size_t body_end = 8 + static_cast<size_t>(header_length);
    if (header_length > size_ - 8) {
      const bool track_follows = size_ >= 18 && std::memcmp(data_ + 14, "MTrk", 4) == 0;
      if (strict_ || !track_follows) {
        fail(4, fmt::format("header chunk declares {} bytes but only {} remain", header_length, size_ - 8));
      }
      warn(4, fmt::format("header chunk declares {} bytes but an MTrk chunk follows 6 bytes in; read as 6",
                          header_length));
      body_end = 14;
    }
    int format = read_be16(data_ + 8);
    if (format == 2) {
      fail(8, "format 2 (independent sequences) is not supported: its tracks share no time line; "
              "split it into one file per track");
    }
    if (format > 2) {
      if (strict_) fail(8, fmt::format("file format {}; expected 0, 1 or 2", format));
      warn(8, fmt::format("file format {} is not 0, 1 or 2; read as format 1", format));
      format = 1;
    }
    score_.format = format;
    header_tracks_ = read_be16(data_ + 10);
    const uint16_t division = read_be16(data_ + 12);
    TimeDivision& td = score_.division;
    if (division & 0x8000) {
      td.smpte = true;
      td.frames_per_second = -static_cast<int8_t>(division >> 8);
      td.ticks_per_frame = division & 0xFF;
      td.ticks_per_quarter = 0;
      const int fps = td.frames_per_second;
      if (fps != 24 && fps != 25 && fps != 29 && fps != 30) {
        fail(12, fmt::format("SMPTE division with {} frames per second; expected 24, 25, 29 or 30", fps));
      }
      if (td.ticks_per_frame == 0) fail(13, "SMPTE division with 0 ticks per frame");
    } else {
      if (division == 0) fail(12, "division of 0 ticks per quarter note");
      td.ticks_per_quarter = division;
    }
    pos_ = body_end;
  }

  void read_chunks() {
    // Real files spend about 20 bytes per note (note-on, note-off, controls);
    // reserving for 16 avoids regrowth in most files without touching memory
    // a hostile file could make us waste (a note needs at least 6 bytes).
    const size_t estimate = std::min<size_t>(size_ / 16, size_t{1} << 20);
    score_.notes.reserve(estimate);
    next_open_.reserve(estimate);

    while (tracks_read_ < header_tracks_) {
      const size_t remaining = size_ - pos_;
      if (remaining < 8) {
        const std::string what =
            remaining == 0
                ? fmt::format("the file ends after {} of the {} track chunks its header announces", tracks_read_,
                              header_tracks_)
                : fmt::format("chunk header truncated: {} bytes left, 8 needed ({} of {} track chunks read)",
                              remaining, tracks_read_, header_tracks_);
        if (strict_) fail(pos_, what);
        warn(pos_, what + "; using the tracks present");
        break;
      }
      const uint8_t* id = data_ + pos_;
      const uint32_t length = read_be32(data_ + pos_ + 4);
      const size_t body = pos_ + 8;
      const size_t available = size_ - body;
      if (std::memcmp(id, "MTrk", 4) == 0) {
        size_t chunk_end = body + length;
        if (length > available) {
          const std::string what =
              fmt::format("track chunk declares {} bytes but only {} remain", length, available);
          if (strict_) fail(pos_ + 4, what);
          warn(pos_ + 4, what + "; reading the track up to the end of the data");
          chunk_end = size_;
        }
        read_track(body, chunk_end);
        ++tracks_read_;
        pos_ = chunk_end;
      } else if (plausible_chunk_id(id) && length <= available) {
        ++score_.stats.unknown_chunks;  // an alien chunk: skipped, as the spec asks
        pos_ = body + length;
      } else {
        const std::string what = fmt::format("expected an MTrk chunk, got id {} with length {} ({} of {} track chunks read)",
                                             hex_bytes(id, 4), length, tracks_read_, header_tracks_);
        if (strict_) fail(pos_, what);
        warn(pos_, what + "; ignoring the rest of the file");
        break;
      }
    }
    if (pos_ < size_) score_.stats.trailing_bytes += static_cast<int64_t>(size_ - pos_);
    score_.num_tracks = tracks_read_;
  }

  // ---- one track ------------------------------------------------------------

  /// Reads a variable-length quantity of at most 4 bytes.
  uint32_t read_vlq(const uint8_t*& p, const uint8_t* end, const char* what) {
    if (p < end && *p < 0x80) return *p++;  // most delta times fit one byte
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (p >= end) track_error(offset(p), fmt::format("{} runs past the end of the track chunk", what));
      const uint8_t b = *p++;
      value = (value << 7) | (b & 0x7F);
      if (!(b & 0x80)) return value;
    }
    track_error(offset(p) - 4, fmt::format("{} is longer than 4 bytes", what));
  }

  size_t offset(const uint8_t* p) const { return static_cast<size_t>(p - data_); }

  void read_track(size_t begin, size_t end) {
    track_ = tracks_read_;
    score_.track_names.emplace_back();
    head_.fill(-1);
    tail_.fill(-1);
    programs_.fill(0);
    track_first_note_ = score_.notes.size();
    tick_ = 0;
    end_of_track_seen_ = false;
    track_named_ = false;
    try {
      parse_events(data_ + begin, data_ + end);
    } catch (const TrackStop& stop) {
      warn(stop.offset, stop.reason + "; track ended at the last complete event");
    }
    if (!end_of_track_seen_) ++score_.stats.missing_end_of_track;
    score_.end_tick = std::max(score_.end_tick, tick_);
    drop_open_notes();
  }

  void parse_events(const uint8_t* p, const uint8_t* const end) {
    uint8_t running = 0;         // running status; 0 when none is in force
    uint8_t last_channel = 0;    // last channel status seen (lenient repair)
    bool cancelled = false;      // a meta/sysex/system event cancelled running status
    while (p < end) {
      const uint8_t* const event_start = p;
      tick_ += read_vlq(p, end, "delta time");
      if (p >= end) track_error(offset(event_start), "delta time without an event at the end of the track chunk");
      uint8_t status = *p;
      if (status < 0x80) {
        if (running == 0) {
          if (cancelled && last_channel != 0) {
            const std::string what = fmt::format(
                "data byte 0x{:02X} where a status byte was expected: running status after a meta, sysex or "
                "system event (the SMF spec cancels it there)",
                status);
            if (strict_) fail(offset(p), fmt::format("{} (track {})", what, track_));
            warn(offset(p), fmt::format("{} (track {}); reusing status 0x{:02X}", what, track_, last_channel));
            running = last_channel;
          } else {
            track_error(offset(p), fmt::format("data byte 0x{:02X} where a status byte was expected and no "
                                               "running status is in force",
                                               status));
          }
        }
        status = running;
      } else {
        ++p;
      }

      if (status < 0xF0) {
        running = status;
        last_channel = status;
        cancelled = false;
        const int type = status >> 4;
        const int n = (type == 0xC || type == 0xD) ? 1 : 2;
        if (end - p < n) {
          track_error(offset(event_start), fmt::format("{} event truncated at the end of the track chunk",
                                                       channel_message_name(status)));
        }
        uint8_t d1 = p[0];
        uint8_t d2 = n == 2 ? p[1] : 0;
        if ((d1 | d2) & 0x80) {
          const size_t at = offset(p) + ((d1 & 0x80) ? 0 : 1);
          const uint8_t bad = (d1 & 0x80) ? d1 : d2;
          const std::string what =
              fmt::format("data byte 0x{:02X} > 127 in {} (track {})", bad, channel_message_name(status), track_);
          if (strict_) fail(at, what);
          warn(at, what + "; clamped to 127");
          d1 = std::min<uint8_t>(d1, 127);
          d2 = std::min<uint8_t>(d2, 127);
        }
        p += n;
        channel_event(status, d1, d2);
      } else if (status == 0xFF) {
        p = meta_event(p, end, event_start);
        running = 0;
        cancelled = true;
      } else if (status == 0xF0 || status == 0xF7) {
        const uint32_t length = read_vlq(p, end, "sysex length");
        if (length > static_cast<size_t>(end - p)) {
          track_error(offset(event_start),
                      fmt::format("sysex event of {} bytes runs past the end of the track chunk", length));
        }
        if (strict_ && length > kMaxMetaOrSysexLength) {
          fail(offset(event_start), fmt::format("sysex event of {} bytes exceeds mido's limit of {} (track {})",
                                                length, kMaxMetaOrSysexLength, track_));
        }
        p += length;
        ++score_.stats.sysex_events;
        running = 0;
        cancelled = true;
      } else {
        const int n = system_message_data_bytes(status);
        if (n < 0) track_error(offset(p - 1), fmt::format("undefined status byte 0x{:02X}", status));
        if (end - p < n) track_error(offset(event_start), fmt::format("system message 0x{:02X} truncated", status));
        for (int i = 0; i < n; ++i) {
          if (p[i] & 0x80) {
            track_error(offset(p + i), fmt::format("data byte 0x{:02X} > 127 in system message 0x{:02X}", p[i], status));
          }
        }
        p += n;
        running = 0;
        cancelled = true;
      }
    }
  }

  void channel_event(uint8_t status, uint8_t d1, uint8_t d2) {
    const int channel = status & 0x0F;
    switch (status >> 4) {
      case 0x9:
        if (d2 > 0) {
          open_note(channel, d1, d2);
          break;
        }
        [[fallthrough]];  // velocity 0: a note-off
      case 0x8:
        close_note(channel, d1);
        break;
      case 0xB:
        score_.controls.push_back(ControlChange{tick_, 0.0, channel, track_, d1, d2});
        break;
      case 0xC:
        programs_[channel] = d1;
        score_.programs.push_back(ProgramChange{tick_, 0.0, channel, track_, d1});
        break;
      default:  // aftertouch, pitch bend: not part of a Score
        break;
    }
  }

  void open_note(int channel, int pitch, int velocity) {
    const int32_t index = static_cast<int32_t>(score_.notes.size());
    Note& n = score_.notes.emplace_back();
    n.pitch = pitch;
    n.velocity = velocity;
    n.channel = channel;
    n.program = programs_[channel];
    n.track = track_;
    n.start_tick = tick_;
    n.end_tick = -1;  // open
    next_open_.push_back(-1);
    const int key = channel * 128 + pitch;
    if (tail_[key] >= 0) {
      next_open_[tail_[key]] = index;
    } else {
      head_[key] = index;
    }
    tail_[key] = index;
  }

  void close_note(int channel, int pitch) {
    const int key = channel * 128 + pitch;
    const int32_t index = head_[key];
    if (index < 0) {
      ++score_.stats.unmatched_note_offs;
      return;
    }
    Note& n = score_.notes[index];
    n.end_tick = tick_;
    if (n.end_tick == n.start_tick) ++score_.stats.zero_length_notes;
    head_[key] = next_open_[index];
    if (head_[key] < 0) tail_[key] = -1;
  }

  /// Notes still open at the end of the track are dropped (and counted).
  void drop_open_notes() {
    auto first = score_.notes.begin() + static_cast<std::ptrdiff_t>(track_first_note_);
    auto kept = std::remove_if(first, score_.notes.end(), [](const Note& n) { return n.end_tick < 0; });
    score_.stats.unclosed_notes += score_.notes.end() - kept;
    score_.notes.erase(kept, score_.notes.end());
    next_open_.resize(score_.notes.size());
  }

  /// A meta event mido refuses: strict fails, lenient ignores the event.
  /// Returns true when the event may be used.
  bool meta_ok(bool ok, size_t at, const char* what, uint32_t length) {
    if (ok) return true;
    const std::string text = fmt::format("malformed {} meta event ({} data bytes) (track {})", what, length, track_);
    if (strict_) fail(at, text);
    warn(at, text + "; ignored");
    return false;
  }

  /// `p` points at the meta type byte; returns the position after the event.
  const uint8_t* meta_event(const uint8_t* p, const uint8_t* end, const uint8_t* event_start) {
    if (p >= end) track_error(offset(event_start), "meta event truncated at the end of the track chunk");
    const uint8_t type = *p++;
    const uint32_t length = read_vlq(p, end, "meta event length");
    if (length > static_cast<size_t>(end - p)) {
      track_error(offset(event_start),
                  fmt::format("meta event 0x{:02X} of {} bytes runs past the end of the track chunk", type, length));
    }
    if (strict_ && length > kMaxMetaOrSysexLength) {
      fail(offset(event_start), fmt::format("meta event of {} bytes exceeds mido's limit of {} (track {})", length,
                                            kMaxMetaOrSysexLength, track_));
    }
    const uint8_t* d = p;
    const size_t at = offset(event_start);
    switch (type) {
      case 0x00:  // sequence number: 0 or 2+ bytes
        meta_ok(length != 1, at, "sequence number", length);
        break;
      case 0x20:  // channel prefix
        meta_ok(length >= 1, at, "channel prefix", length);
        break;
      case 0x2F:
        end_of_track_seen_ = true;
        break;
      case 0x51:
        if (meta_ok(length >= 3, at, "set tempo", length)) {
          TempoChange t;
          t.tick = tick_;
          t.microseconds_per_quarter = (int64_t{d[0]} << 16) | (int64_t{d[1]} << 8) | int64_t{d[2]};
          score_.tempos.push_back(t);
        }
        break;
      case 0x54:  // SMPTE offset: mido checks minutes, seconds and sub-frames
        meta_ok(length >= 5 && d[1] <= 59 && d[2] <= 59 && d[4] <= 99, at, "SMPTE offset", length);
        break;
      case 0x58:
        if (meta_ok(length >= 4, at, "time signature", length)) {
          if (d[1] > 30) {
            warn(at, fmt::format("time signature denominator 2^{} is out of range (track {}); ignored", d[1], track_));
          } else {
            score_.time_signatures.push_back(TimeSignature{tick_, d[0], 1 << d[1]});
          }
        }
        break;
      case 0x59:
        if (meta_ok(length >= 2 && static_cast<int8_t>(d[0]) >= -7 && static_cast<int8_t>(d[0]) <= 7 && d[1] <= 1,
                    at, "key signature", length)) {
          score_.key_signatures.push_back(KeySignature{tick_, static_cast<int8_t>(d[0]), d[1] == 1});
        }
        break;
      default:
        if (type >= 0x01 && type <= 0x0F) {
          TextEvent text;
          text.tick = tick_;
          text.track = track_;
          text.type = type;
          text.text.assign(reinterpret_cast<const char*>(d), length);
          if (type == 0x03 && !track_named_) score_.track_names.back() = text.text;
          if (type == 0x03) track_named_ = true;
          score_.texts.push_back(std::move(text));
        }
        break;
    }
    return p + length;
  }

  // ---- after all tracks -------------------------------------------------------

  /// Sorts notes by (start_tick, track, channel, pitch), ties in file order
  /// (the order they were appended in), through compact 16-byte keys: much
  /// cheaper to move than whole notes.
  /// Sorts note keys (unique: they end in the note's index) whose notes were
  /// collected track after track, each track at its note-offs: a track's run
  /// is nearly in start order, so an insertion sort per run (given up for
  /// std::sort past a budget of moves) and a merge of the runs beat sorting
  /// everything, with the same result.
  template <typename Key>
  static void sort_track_runs(std::vector<Key>& keys) {
    std::vector<size_t> run_starts;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i == 0 || (keys[i].rest >> 44) != (keys[i - 1].rest >> 44)) run_starts.push_back(i);
    }
    run_starts.push_back(keys.size());
    constexpr size_t kMaxRuns = 32;  // merging run after run costs runs x notes
    if (run_starts.size() - 1 > kMaxRuns) {
      std::sort(keys.begin(), keys.end());
      return;
    }
    for (size_t r = 0; r + 1 < run_starts.size(); ++r) {
      const auto begin = keys.begin() + static_cast<std::ptrdiff_t>(run_starts[r]);
      const auto end = keys.begin() + static_cast<std::ptrdiff_t>(run_starts[r + 1]);
      if (!insertion_sort_within(begin, end, 8 * static_cast<size_t>(end - begin) + 64)) std::sort(begin, end);
      if (r > 0) std::inplace_merge(keys.begin(), begin, end);
    }
  }

  /// Insertion sort of [begin, end) unless it needs more than `budget` moves
  /// (then false, the range partly sorted).
  template <typename It>
  static bool insertion_sort_within(It begin, It end, size_t budget) {
    for (It i = begin; i != end; ++i) {
      auto value = *i;
      It j = i;
      for (; j != begin && value < *(j - 1); --j) {
        if (budget-- == 0) {
          *j = value;  // the hole: [begin, end) stays a permutation
          return false;
        }
        *j = *(j - 1);
      }
      *j = value;
    }
    return true;
  }

  void sort_notes() {
    std::vector<Note>& notes = score_.notes;
    auto by_start = [](const Note& a, const Note& b) {
      if (a.start_tick != b.start_tick) return a.start_tick < b.start_tick;
      if (a.track != b.track) return a.track < b.track;
      if (a.channel != b.channel) return a.channel < b.channel;
      return a.pitch < b.pitch;
    };
    if (std::is_sorted(notes.begin(), notes.end(), by_start)) return;
    struct Key {
      int64_t tick;
      uint64_t rest;  // track:16 | channel:4 | pitch:8 | index:32
      bool operator<(const Key& o) const { return tick != o.tick ? tick < o.tick : rest < o.rest; }
    };
    std::vector<Key> keys(notes.size());
    for (size_t i = 0; i < notes.size(); ++i) {
      const Note& n = notes[i];
      keys[i] = {n.start_tick, (uint64_t(n.track) << 44) | (uint64_t(n.channel) << 40) | (uint64_t(n.pitch) << 32) | i};
    }
    sort_track_runs(keys);
    std::vector<Note> sorted;
    sorted.reserve(notes.size());
    for (const Key& k : keys) sorted.push_back(notes[k.rest & 0xFFFFFFFFu]);
    notes.swap(sorted);
  }

  /// Stable by tick: events of all tracks merged, ties in track order, then
  /// file order. Skipped when already in order (one track, the common case).
  template <typename T>
  static void merge_by_tick(std::vector<T>& events) {
    auto by_tick = [](const T& a, const T& b) { return a.tick < b.tick; };
    if (!std::is_sorted(events.begin(), events.end(), by_tick)) {
      std::stable_sort(events.begin(), events.end(), by_tick);
    }
  }

  void finish() {
    sort_notes();
    merge_by_tick(score_.controls);
    merge_by_tick(score_.programs);
    merge_by_tick(score_.texts);
    merge_by_tick(score_.time_signatures);
    merge_by_tick(score_.key_signatures);
    score_.update_times();
    if (score_.stats.repairs > static_cast<int64_t>(score_.stats.warnings.size())) {
      score_.stats.warnings.push_back(fmt::format("{} more repairs not listed",
                                                  score_.stats.repairs - static_cast<int64_t>(score_.stats.warnings.size())));
    }
  }

  const uint8_t* data_;
  size_t size_;
  const std::string& name_;
  bool strict_;
  Score score_;
  size_t pos_ = 0;
  int header_tracks_ = 0;
  int tracks_read_ = 0;

  // State of the track being read.
  int track_ = 0;
  int64_t tick_ = 0;
  bool end_of_track_seen_ = false;
  bool track_named_ = false;
  size_t track_first_note_ = 0;
  std::array<int, 16> programs_{};
  std::array<int32_t, kKeys> head_{};  // earliest open note per (channel, pitch), -1 when none
  std::array<int32_t, kKeys> tail_{};  // latest open note per key
  std::vector<int32_t> next_open_;     // per note: the next open note of the same key
};

}  // namespace

Score read_midi_bytes(std::string_view bytes, const std::string& name, const ReadOptions& options) {
  return Parser(bytes, name, options).run();
}

Score read_midi_file(const std::string& path, const ReadOptions& options) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw DataError(fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw DataError(fmt::format("{}: not a regular file", path));
  if (st.st_size > options.max_file_bytes) {
    throw DataError(fmt::format("{}: file of {} bytes exceeds the reader's limit of {} bytes (ReadOptions::max_file_bytes)",
                                path, static_cast<int64_t>(st.st_size), options.max_file_bytes));
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw DataError(fmt::format("{}: read failed: {}", path, std::strerror(errno)));
    }
    if (n == 0) {  // the file shrank while we read it
      bytes.resize(done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return read_midi_bytes(bytes, path, options);
}

}  // namespace kmidi::midi
