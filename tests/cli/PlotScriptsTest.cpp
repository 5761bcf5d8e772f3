// scripts/plot_perplexity.sh: a PNG from a generator run's metrics.jsonl, and
// clear exits for bad input (2: usage, 3: data), never a file from bad data.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi {
namespace {

namespace fs = std::filesystem;

test::CommandResult plot(const std::string& args) {
  return test::run_shell(test::shell_quote(test::source_path("scripts/plot_perplexity.sh")) + " " + args + " 2>&1");
}

// Rows as `kmidi train` writes them for a midi_generator job.
const char* kMetrics =
    R"({"step":50,"split":"train","perplexity":40.5,"loss":3.9})" "\n"
    R"({"step":100,"split":"train","perplexity":20.1,"loss":3.2})" "\n"
    R"({"step":100,"split":"validation","perplexity":22.0,"unigram_perplexity":119.3})" "\n"
    R"({"step":150,"split":"train","perplexity":15.2,"loss":2.9})" "\n"
    R"({"step":200,"split":"validation","perplexity":16.4,"unigram_perplexity":119.3})" "\n"
    R"({"step":200,"split":"validation","loss":2.8})" "\n";  // no perplexity: not a point

TEST(PlotPerplexity, DrawsAPngFromTheValidationRows) {
  const std::string dir = test::scratch_dir("plot_perplexity");
  files::write_atomic(dir + "/metrics.jsonl", kMetrics);
  const auto r = plot("-m " + dir + "/metrics.jsonl -o " + dir + "/curve.png -t 'a title'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(2 validation points)"), std::string::npos) << r.output;
  const std::string png = files::read_all(dir + "/curve.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST(PlotPerplexity, BadInputExitsWithAMessageAndWritesNothing) {
  const std::string dir = test::scratch_dir("plot_perplexity_bad");
  const std::string out = dir + "/curve.png";

  auto missing = plot("-m " + dir + "/absent.jsonl -o " + out);
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_NE(missing.output.find(dir + "/absent.jsonl: no such file"), std::string::npos) << missing.output;

  files::write_atomic(dir + "/broken.jsonl", "{\"step\": 1, \"split\": \"validation\",\n");
  auto broken = plot("-m " + dir + "/broken.jsonl -o " + out);
  EXPECT_EQ(broken.exit_code, 3) << broken.output;
  EXPECT_NE(broken.output.find(dir + "/broken.jsonl: not JSON lines"), std::string::npos) << broken.output;

  // A run of another task: validation rows without perplexity.
  files::write_atomic(dir + "/groove.jsonl", R"({"step":500,"split":"validation","timing_ratio":0.8})" "\n");
  auto other = plot("-m " + dir + "/groove.jsonl -o " + out);
  EXPECT_EQ(other.exit_code, 3) << other.output;
  EXPECT_NE(other.output.find("no validation rows with perplexity and unigram_perplexity"), std::string::npos)
      << other.output;

  auto usage = plot("-m " + dir + "/groove.jsonl");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_NE(usage.output.find("need -m and -o"), std::string::npos) << usage.output;
  auto unknown = plot("-x 1 -m a -o b");
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;

  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace kmidi
