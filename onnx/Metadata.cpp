#include "onnx/Metadata.h"

namespace kmidi::onnx::meta {

bool is_valid_key(std::string_view key) {
  constexpr std::string_view kPrefix = "kmidi.";
  if (key.size() <= kPrefix.size() || key.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : key.substr(kPrefix.size())) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) return false;
  }
  return key.back() != '.';
}

}  // namespace kmidi::onnx::meta
