#include "core/Csv.h"

#include <gtest/gtest.h>

#include "core/Errors.h"

namespace kmidi::csv {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse(text, "labels.csv");
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, QuotesEscapesNewlinesAndCrlf) {
  const Table t = parse("\xEF\xBB\xBFid,name,bpm\r\n1,\"a, \"\"b\"\"\",120\r\n\r\n2,\"two\nlines\",90\n", "x.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"id", "name", "bpm"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0][1], "a, \"b\"");
  EXPECT_EQ(t.rows[1][1], "two\nlines");
  EXPECT_EQ(t.lines[0], 2u);
  EXPECT_EQ(t.lines[1], 4u);
  EXPECT_EQ(t.where(1), "x.csv:4");
  EXPECT_EQ(t.column("bpm"), 2u);
}

TEST(Csv, EmptyFieldsAndNoTrailingNewline) {
  const Table t = parse(",clip_name\n0,Q1_a\n1,", "split.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.header[0], "");
  EXPECT_EQ(t.rows[1][1], "");
}

TEST(Csv, ErrorsNameFileAndLine) {
  EXPECT_NE(error_of("a,b\n1,2\n3\n").find("labels.csv:3: expected 2 fields, got 1"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,\"2\n").find("labels.csv:2: unterminated quoted field"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,x\"y\n").find("labels.csv:2: stray quote"), std::string::npos);
  EXPECT_NE(error_of("").find("empty CSV file"), std::string::npos);
  try {
    parse("a,b\n1,2\n", "t.csv").column("c");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("t.csv: missing column 'c'; columns are a, b"), std::string::npos);
  }
}

TEST(Csv, ReadsTheRealGrooveInfoFile) {
  const Table t = read(std::string(KMIDI_SHARED_DATA) + "/groove-midi/groove/info.csv");
  EXPECT_EQ(t.rows.size(), 1150u);
  const size_t split = t.column("split");
  size_t train = 0, validation = 0, test = 0;
  for (const auto& row : t.rows) {
    train += row[split] == "train";
    validation += row[split] == "validation";
    test += row[split] == "test";
  }
  // Counts from the data set's PROVENANCE.md.
  EXPECT_EQ(train, 897u);
  EXPECT_EQ(validation, 124u);
  EXPECT_EQ(test, 129u);
}

}  // namespace
}  // namespace kmidi::csv
