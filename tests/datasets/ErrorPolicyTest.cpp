#include "datasets/ErrorPolicy.h"

#include <gtest/gtest.h>

#include "datasets/audio/AudioLoader.h"

namespace kmidi::data {
namespace {

TEST(ErrorPolicy, FailRethrowsTheDataError) {
  ErrorPolicy policy(OnError::kFail);
  EXPECT_THROW(policy.attempt("/nonexistent/a.wav", [] { return audio::load_audio("/nonexistent/a.wav"); }),
               DataError);
  EXPECT_EQ(policy.skipped_count(), 0u);
  EXPECT_EQ(policy.report(), "");
}

TEST(ErrorPolicy, SkipRecordsPathAndReasonInOrder) {
  ErrorPolicy policy(OnError::kSkip);
  const auto missing = policy.attempt("/nonexistent/a.wav", [] { return audio::load_audio("/nonexistent/a.wav"); });
  EXPECT_FALSE(missing.has_value());
  const auto fine = policy.attempt("ok", [] { return 7; });
  ASSERT_TRUE(fine.has_value());
  EXPECT_EQ(*fine, 7);
  policy.record("/data/b.mid", "caller's reason");

  const std::vector<SkippedItem> skipped = policy.skipped();
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped[0].path, "/nonexistent/a.wav");
  EXPECT_NE(skipped[0].reason.find("no such file"), std::string::npos) << skipped[0].reason;
  EXPECT_EQ(skipped[1].path, "/data/b.mid");
  const std::string report = policy.report();
  EXPECT_EQ(report.rfind("2 items skipped:\n  /nonexistent/a.wav: ", 0), 0u) << report;
  EXPECT_NE(report.find("  /data/b.mid: caller's reason\n"), std::string::npos) << report;
}

TEST(ErrorPolicy, OtherErrorsAlwaysPropagate) {
  ErrorPolicy policy(OnError::kSkip);
  EXPECT_THROW(policy.attempt("x", []() -> int { throw UsageError("bad option"); }), UsageError);
  EXPECT_EQ(policy.skipped_count(), 0u);
}

TEST(ErrorPolicy, ParsesModes) {
  EXPECT_EQ(parse_on_error("fail"), OnError::kFail);
  EXPECT_EQ(parse_on_error("skip"), OnError::kSkip);
  EXPECT_EQ(to_string(OnError::kSkip), "skip");
  try {
    parse_on_error("ignore");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("expected 'fail' or 'skip', got 'ignore'"), std::string::npos);
  }
}

}  // namespace
}  // namespace kmidi::data
