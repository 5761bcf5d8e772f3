#include "datasets/tokenizer/Vocabulary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/Errors.h"

namespace kmidi::tokenizer {

const char* kind_name(TokenKind kind) {
  switch (kind) {
    case TokenKind::kSpecial: return "Special";
    case TokenKind::kBar: return "Bar";
    case TokenKind::kPosition: return "Position";
    case TokenKind::kTimeSignature: return "TimeSig";
    case TokenKind::kTempo: return "Tempo";
    case TokenKind::kProgram: return "Program";
    case TokenKind::kPitch: return "Pitch";
    case TokenKind::kPitchDrum: return "PitchDrum";
    case TokenKind::kVelocity: return "Velocity";
    case TokenKind::kDuration: return "Duration";
  }
  return "?";
}

Vocabulary::Vocabulary(const TokenizerConfig& c) : positions_per_quarter_(c.positions_per_quarter) {
  // Specials first, at fixed ids: PAD 0, BOS 1, EOS 2, MASK 3.
  special_names_ = {"PAD", "BOS", "EOS", "MASK"};
  special_names_.insert(special_names_.end(), c.extra_special_tokens.begin(), c.extra_special_tokens.end());
  begin(TokenKind::kSpecial);
  for (size_t i = 0; i < special_names_.size(); ++i) {
    add(special_names_[i], TokenKind::kSpecial, static_cast<int32_t>(i));
  }
  end(TokenKind::kSpecial);

  begin(TokenKind::kBar);
  add("Bar", TokenKind::kBar, 0);
  end(TokenKind::kBar);

  if (c.time_signatures) {
    for (const std::string& text : c.allowed_time_signatures) {
      TimeSignatureValue ts;
      parse_time_signature(text, ts);  // validated by TokenizerConfig
      time_signatures_.push_back(ts);
    }
  } else {
    time_signatures_.push_back(TimeSignatureValue{4, 4});
  }
  int64_t longest_bar = 0;
  for (const TimeSignatureValue& ts : time_signatures_) longest_bar = std::max(longest_bar, bar_steps(ts));

  begin(TokenKind::kPosition);
  for (int64_t p = 0; p < longest_bar; ++p) add("Position_" + std::to_string(p), TokenKind::kPosition, static_cast<int32_t>(p));
  end(TokenKind::kPosition);

  begin(TokenKind::kTimeSignature);
  if (c.time_signatures) {
    for (size_t i = 0; i < time_signatures_.size(); ++i) {
      add("TimeSig_" + time_signatures_[i].text(), TokenKind::kTimeSignature, static_cast<int32_t>(i));
    }
  }
  end(TokenKind::kTimeSignature);

  log_tempo_min_ = std::log(c.tempo_min);
  log_tempo_span_ = std::log(c.tempo_max) - log_tempo_min_;
  for (int b = 0; b < c.tempo_bins; ++b) {
    tempo_values_.push_back(std::exp(log_tempo_min_ + log_tempo_span_ * b / (c.tempo_bins - 1)));
  }
  begin(TokenKind::kTempo);
  if (c.tempos) {
    for (int b = 0; b < c.tempo_bins; ++b) {
      char text[32];
      std::snprintf(text, sizeof text, "Tempo_%.2f", tempo_values_[static_cast<size_t>(b)]);
      add(text, TokenKind::kTempo, b);
    }
  }
  end(TokenKind::kTempo);

  begin(TokenKind::kProgram);
  if (c.program_mode != "none") {
    for (int p = 0; p < 128; ++p) add("Program_" + std::to_string(p), TokenKind::kProgram, p);
  }
  end(TokenKind::kProgram);

  begin(TokenKind::kPitch);
  for (int p = c.pitch_min; p <= c.pitch_max; ++p) add("Pitch_" + std::to_string(p), TokenKind::kPitch, p);
  end(TokenKind::kPitch);

  begin(TokenKind::kPitchDrum);
  if (c.drums) {
    for (int p = c.drum_pitch_min; p <= c.drum_pitch_max; ++p) {
      add("PitchDrum_" + std::to_string(p), TokenKind::kPitchDrum, p);
    }
  }
  end(TokenKind::kPitchDrum);

  for (int b = 0; b < c.velocity_bins; ++b) {
    velocity_values_.push_back(1 + static_cast<int>(std::lround(b * 126.0 / (c.velocity_bins - 1))));
  }
  velocity_bin_of_.assign(128, 0);
  for (int v = 1; v < 128; ++v) {
    int best = 0;  // ties go to the softer bin
    for (int b = 1; b < c.velocity_bins; ++b) {
      if (std::abs(velocity_values_[static_cast<size_t>(b)] - v) <
          std::abs(velocity_values_[static_cast<size_t>(best)] - v)) {
        best = b;
      }
    }
    velocity_bin_of_[static_cast<size_t>(v)] = best;
  }
  begin(TokenKind::kVelocity);
  for (int b = 0; b < c.velocity_bins; ++b) {
    add("Velocity_" + std::to_string(velocity_values_[static_cast<size_t>(b)]), TokenKind::kVelocity,
        velocity_values_[static_cast<size_t>(b)]);
  }
  end(TokenKind::kVelocity);

  begin(TokenKind::kDuration);
  const int32_t max_steps = c.duration_max_quarters * c.positions_per_quarter;
  for (int32_t d = 1; d <= max_steps; ++d) add("Duration_" + std::to_string(d), TokenKind::kDuration, d);
  end(TokenKind::kDuration);
}

int32_t Vocabulary::add(std::string name, TokenKind kind, int32_t value) {
  const int32_t id = static_cast<int32_t>(names_.size());
  ids_.emplace(name, id);
  names_.push_back(std::move(name));
  infos_.push_back(TokenInfo{kind, value});
  return id;
}

void Vocabulary::begin(TokenKind kind) { ranges_[static_cast<size_t>(kind)].first = size(); }

void Vocabulary::end(TokenKind kind) {
  IdRange& r = ranges_[static_cast<size_t>(kind)];
  r.count = size() - r.first;
}

const std::string& Vocabulary::name(int32_t id) const {
  if (id < 0 || id >= size()) {
    throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(size()) + ")");
  }
  return names_[static_cast<size_t>(id)];
}

int32_t Vocabulary::find(std::string_view name) const {
  const auto it = ids_.find(std::string(name));
  return it == ids_.end() ? -1 : it->second;
}

int Vocabulary::tempo_bin(double bpm) const {
  const int bins = static_cast<int>(tempo_values_.size());
  if (!(bpm > 0.0)) return 0;  // also NaN
  const double x = (std::log(bpm) - log_tempo_min_) / log_tempo_span_ * (bins - 1);
  // A tempo event of 0 microseconds per quarter reads as an infinite bpm.
  if (!(x < bins - 1)) return bins - 1;
  if (!(x > 0.0)) return 0;
  return static_cast<int>(std::lround(x));
}

int Vocabulary::time_signature_index(const TimeSignatureValue& ts) const {
  for (size_t i = 0; i < time_signatures_.size(); ++i) {
    if (time_signatures_[i] == ts) return static_cast<int>(i);
  }
  return -1;
}

int64_t Vocabulary::bar_steps(const TimeSignatureValue& ts) const {
  return static_cast<int64_t>(ts.numerator) * 4 * positions_per_quarter_ / ts.denominator;
}

}  // namespace kmidi::tokenizer
