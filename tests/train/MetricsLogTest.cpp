#include "train/MetricsLog.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi::train {
namespace {

namespace fs = std::filesystem;

TEST(MetricsLog, WritesRowsAndDropsRepeatedStepsOnResume) {
  const fs::path dir = test::scratch_dir("metrics_log");
  const std::string path = (dir / "metrics.jsonl").string();
  {
    MetricsLog log(path, -1);
    log.write(10, "train", {{"loss", 1.5}, {"lr", 1e-3}}, {{"throughput_unit", "samples"}});
    log.write(20, "train", {{"loss", std::nan("")}});
    log.write(30, "validation", {{"loss", 0.5}});
  }
  // A torn line, as a killed process leaves it.
  files::write_atomic(path, files::read_all(path) + "{\"step\": 40, \"spl");
  {
    MetricsLog resumed(path, 20);  // resumed from the checkpoint of step 20
    resumed.write(30, "train", {{"loss", 0.75}});
  }
  std::istringstream in(files::read_all(path));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["step"], 10);
  EXPECT_EQ(rows[0]["split"], "train");
  EXPECT_EQ(rows[0]["loss"], 1.5);
  EXPECT_EQ(rows[0]["throughput_unit"], "samples");
  EXPECT_TRUE(rows[1]["loss"].is_null());  // NaN is not JSON: written as null
  EXPECT_EQ(rows[2]["step"], 30);
  EXPECT_EQ(rows[2]["loss"], 0.75);
  EXPECT_EQ(rows[2]["split"], "train");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kmidi::train
