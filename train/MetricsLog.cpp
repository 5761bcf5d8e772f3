#include "train/MetricsLog.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/Errors.h"
#include "core/Files.h"

namespace kmidi::train {

MetricsLog::MetricsLog(std::string path, int64_t keep_through_step) : path_(std::move(path)) {
  std::error_code ec;
  if (keep_through_step < 0) {
    files::write_atomic(path_, "");
  } else if (std::filesystem::exists(path_, ec)) {
    std::istringstream in(files::read_all(path_));
    std::string line, kept;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A torn last line (a killed process) is dropped with the repeated steps.
      if (row.is_discarded() || !row.contains("step") || !row["step"].is_number_integer()) continue;
      if (row["step"].get<int64_t>() <= keep_through_step) kept += line + "\n";
    }
    files::write_atomic(path_, kept);
  }
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw DataError(path_ + ": cannot open metrics log: " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(int64_t step, const std::string& split, const std::map<std::string, double>& numbers,
                       const std::map<std::string, std::string>& texts) {
  nlohmann::ordered_json row;
  row["step"] = step;
  row["split"] = split;
  for (const auto& [key, value] : numbers) {
    if (std::isfinite(value)) row[key] = value;
    else row[key] = nullptr;
  }
  for (const auto& [key, value] : texts) row[key] = value;
  const std::string line = row.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    throw DataError(path_ + ": write failed: " + std::strerror(errno));
  }
}

}  // namespace kmidi::train
