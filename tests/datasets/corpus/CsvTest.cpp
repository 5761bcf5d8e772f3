// CSV parsing: quoting rules, line numbers, errors; row counts of the real manifests.

#include "datasets/corpus/Csv.h"

#include <gtest/gtest.h>

#include "core/Errors.h"
#include "Scratch.h"

namespace kmidi::corpus {
namespace {

TEST(Csv, QuotingLineEndingsAndLineNumbers) {
  const CsvTable t = parse_csv(
      "\xEF\xBB\xBF" "name,note,split\r\n"
      "a.mid,\"comma, inside\",train\r\n"
      "\n"
      "\"b \"\"q\"\".mid\",\"two\nlines\",test\n"
      "c.mid,,validation\n"
      "short\n",
      "m.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"name", "note", "split"}));
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"a.mid", "comma, inside", "train"}));
  EXPECT_EQ(t.rows[1], (std::vector<std::string>{"b \"q\".mid", "two\nlines", "test"}));
  EXPECT_EQ(t.rows[2], (std::vector<std::string>{"c.mid", "", "validation"}));
  EXPECT_EQ(t.rows[3], (std::vector<std::string>{"short"}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 4, 6, 7}));
  EXPECT_EQ(t.where(1), "m.csv:4");
  EXPECT_EQ(t.column("split"), 2);
  EXPECT_EQ(t.column("missing"), -1);
}

TEST(Csv, Errors) {
  try {
    parse_csv("a,b\n1,2\n3,\"open\n", "m.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "m.csv:3: unterminated quoted field");
  }
  try {
    parse_csv("\n\n", "e.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "e.csv: empty file, expected a header row");
  }
  try {
    read_csv("/nonexistent/m.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("/nonexistent/m.csv: cannot open", 0), 0u);
  }
}

TEST(Csv, RealManifestsHaveTheirDocumentedRowCounts) {
  const CsvTable groove = read_csv(testing::shared("groove-midi/groove/info.csv"));
  EXPECT_EQ(groove.rows.size(), 1150u);  // PROVENANCE.md: 1,150 performances
  EXPECT_EQ(groove.column("split"), 10);
  for (const auto& row : groove.rows) ASSERT_EQ(row.size(), groove.header.size());
  const CsvTable emopia = read_csv(testing::shared("emopia/EMOPIA_1.0/label.csv"));
  EXPECT_EQ(emopia.rows.size(), 1078u);
  EXPECT_EQ(emopia.header, (std::vector<std::string>{"ID", "4Q", "annotator"}));
}

}  // namespace
}  // namespace kmidi::corpus
