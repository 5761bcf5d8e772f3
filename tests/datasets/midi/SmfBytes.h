#pragma once
// Hand-built Standard MIDI File bytes for the reader and writer tests: every
// byte is spelled out by the test, independent of the writer under test.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kmidi::midi::testing {

inline std::string vlq(uint32_t value) {
  std::string out(1, static_cast<char>(value & 0x7F));
  while (value >>= 7) out.insert(out.begin(), static_cast<char>((value & 0x7F) | 0x80));
  return out;
}

inline std::string raw(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

/// One event: a delta time then its bytes (status included or not).
inline std::string ev(uint32_t delta, std::initializer_list<int> values) { return vlq(delta) + raw(values); }

inline std::string meta(uint32_t delta, int type, const std::string& data) {
  return vlq(delta) + raw({0xFF, type}) + vlq(static_cast<uint32_t>(data.size())) + data;
}

inline std::string tempo(uint32_t delta, int us_per_quarter) {
  return meta(delta, 0x51, raw({(us_per_quarter >> 16) & 0xFF, (us_per_quarter >> 8) & 0xFF, us_per_quarter & 0xFF}));
}

inline std::string end_of_track(uint32_t delta = 0) { return meta(delta, 0x2F, ""); }

inline std::string be32(uint32_t v) {
  return raw({static_cast<int>(v >> 24), static_cast<int>((v >> 16) & 0xFF), static_cast<int>((v >> 8) & 0xFF),
              static_cast<int>(v & 0xFF)});
}

inline std::string chunk(const std::string& id, const std::string& body) {
  return id + be32(static_cast<uint32_t>(body.size())) + body;
}

inline std::string header(int format, int tracks, int division) {
  return chunk("MThd", raw({format >> 8, format & 0xFF, tracks >> 8, tracks & 0xFF, division >> 8, division & 0xFF}));
}

/// A whole file: header announcing tracks.size() tracks, then one MTrk chunk each.
inline std::string smf(int format, int division, const std::vector<std::string>& tracks) {
  std::string out = header(format, static_cast<int>(tracks.size()), division);
  for (const std::string& t : tracks) out += chunk("MTrk", t);
  return out;
}

}  // namespace kmidi::midi::testing
