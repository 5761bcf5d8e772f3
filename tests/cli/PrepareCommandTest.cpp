// `kmidi prepare` picks the preparation by the config's `kind`: a spectocloud
// config (configs/prepare_spectocloud*.yaml) or a token corpus (no kind).

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "core/Files.h"
#include "tests/support/TestSupport.h"

namespace kmidi::cli {
namespace {

struct Result {
  int code = -1;
  std::string output;
};

Result kmidi(const std::string& args) {
  const std::string command = test::shell_quote(KMIDI_CLI) + " " + args + " 2>&1";
  const test::CommandResult r = test::run_shell(command);
  return {r.exit_code, r.output};
}

TEST(PrepareCommand, SpectocloudKindReadsTheSpectocloudConfig) {
  const Result r = kmidi("prepare --config " + test::source_path("configs/prepare_spectocloud.yaml") + " --print-config");
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* key : {"kind: spectocloud", "sources:", "points: 1200", "n_fft: 2048", "cache_dir:"}) {
    EXPECT_NE(r.output.find(key), std::string::npos) << key << "\n" << r.output;
  }
  const Result tokens = kmidi("prepare --config " + test::source_path("configs/prepare_pop909_sample.yaml") + " --print-config");
  EXPECT_EQ(tokens.code, 0) << tokens.output;
  EXPECT_NE(tokens.output.find("tokenizer:"), std::string::npos) << tokens.output;
}

TEST(PrepareCommand, UnknownKindIsAUsageError) {
  const std::string dir = test::scratch_dir("cli_prepare_kind");
  files::write_atomic(dir + "/p.yaml", "kind: pictures\n");
  const Result r = kmidi("prepare --config " + dir + "/p.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("kind: expected spectocloud (or no kind for a MIDI token corpus), got 'pictures'"), std::string::npos)
      << r.output;
}

TEST(PrepareCommand, SpectocloudConfigMistakesExitWith2) {
  const std::string dir = test::scratch_dir("cli_prepare_spectocloud");
  files::write_atomic(dir + "/p.yaml", "kind: spectocloud\nsources: [{name: a, kind: video, root: .}]\n");
  const Result r = kmidi("prepare --config " + dir + "/p.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("sources[0].kind"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kmidi::cli
