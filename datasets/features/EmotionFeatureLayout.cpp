#include "datasets/features/EmotionFeatureLayout.h"

#include <nlohmann/json.hpp>

#include <sstream>
#include <stdexcept>
#include <vector>

namespace kmidi::features {
namespace {

/// The names of one slice's values (see EmotionFeatureSlice::value_names).
std::vector<std::string> value_names(const EmotionFeatureSlice& slice) {
  std::vector<std::string> names;
  if (*slice.value_names) {
    std::istringstream in(slice.value_names);
    for (std::string name; in >> name;) names.push_back(name);
  } else if (slice.count == 1) {
    names.push_back(slice.name);
  } else {
    for (size_t i = 0; i < slice.count; ++i) names.push_back(std::string(slice.name) + "_" + std::to_string(i));
  }
  return names;
}

}  // namespace

const std::array<const char*, kEmotionFeatureSize>& emotion_feature_names() {
  static const std::vector<std::string> storage = [] {
    std::vector<std::string> all;
    for (const EmotionFeatureSlice& slice : kEmotionFeatureLayout) {
      const std::vector<std::string> names = value_names(slice);
      if (names.size() != slice.count) {
        throw std::logic_error(std::string("emotion feature slice '") + slice.name + "' names " +
                               std::to_string(names.size()) + " values, expected " + std::to_string(slice.count));
      }
      all.insert(all.end(), names.begin(), names.end());
    }
    return all;
  }();
  static const std::array<const char*, kEmotionFeatureSize> pointers = [] {
    std::array<const char*, kEmotionFeatureSize> p{};
    for (size_t i = 0; i < kEmotionFeatureSize; ++i) p[i] = storage.at(i).c_str();
    return p;
  }();
  return pointers;
}

std::string emotion_feature_layout_json() {
  nlohmann::ordered_json slices = nlohmann::ordered_json::array();
  for (const EmotionFeatureSlice& slice : kEmotionFeatureLayout) {
    nlohmann::ordered_json j;
    j["name"] = slice.name;
    j["first"] = slice.first;
    j["count"] = slice.count;
    j["unit"] = slice.unit;
    j["description"] = slice.description;
    j["values"] = value_names(slice);
    slices.push_back(std::move(j));
  }
  return slices.dump();
}

}  // namespace kmidi::features
