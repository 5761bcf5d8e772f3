// Slurm's hostlist and tasks-per-node notations against expansions written
// out by hand (and, for the forms Slurm documents, what `scontrol show
// hostnames` prints for them).

#include <gtest/gtest.h>

#include "core/Errors.h"
#include "core/Hostlist.h"

namespace kmidi::slurm {
namespace {

using Hosts = std::vector<std::string>;

TEST(Hostlist, PlainNamesAndCommas) {
  EXPECT_EQ(expand_hostlist("vm"), Hosts({"vm"}));
  EXPECT_EQ(expand_hostlist("a,b.example.org,c-1"), Hosts({"a", "b.example.org", "c-1"}));
}

TEST(Hostlist, RangesListsAndZeroPadding) {
  EXPECT_EQ(expand_hostlist("node[01-04,07],gpu5"),
            Hosts({"node01", "node02", "node03", "node04", "node07", "gpu5"}));
  EXPECT_EQ(expand_hostlist("n[8-10]"), Hosts({"n8", "n9", "n10"}));
  EXPECT_EQ(expand_hostlist("n[08-10]"), Hosts({"n08", "n09", "n10"}));
  EXPECT_EQ(expand_hostlist("n[7]"), Hosts({"n7"}));
  EXPECT_EQ(expand_hostlist("gpu-[1-2]-ib"), Hosts({"gpu-1-ib", "gpu-2-ib"}));
}

TEST(Hostlist, SeveralGroupsExpandAsAProductFirstGroupSlowest) {
  EXPECT_EQ(expand_hostlist("r[1-2]n[1-2]"), Hosts({"r1n1", "r1n2", "r2n1", "r2n2"}));
  EXPECT_EQ(expand_hostlist("a[1,3],b[0-1]x"), Hosts({"a1", "a3", "b0x", "b1x"}));
}

TEST(Hostlist, FirstHostIsTheFirstOfTheFirstItem) {
  EXPECT_EQ(expand_hostlist("gpu[12-13,2],cpu1").front(), "gpu12");
}

void expect_error(const std::string& expression, const std::string& substring) {
  try {
    expand_hostlist(expression);
    ADD_FAILURE() << "no error for '" << expression << "'";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + expression + "'"), std::string::npos) << e.what();
  }
}

TEST(Hostlist, ErrorsNameTheExpressionAndOffset) {
  expect_error("", "empty");
  expect_error("node[01-04", "'[' is never closed at offset 4");
  expect_error("node01]", "']' without a matching '['");
  expect_error("node[5-3]", "runs backwards at offset 7");
  expect_error("node[a-3]", "expected a number at offset 5");
  expect_error("node[1-]", "expected a number");
  expect_error("node[1;2]", "unexpected ';'");
  expect_error("a,,b", "empty host name at offset 2");
  expect_error("n[[1]]", "nested '['");
  expect_error("n[1-99999999]", "more than");
  expect_error("a, b", "whitespace");
}

TEST(TasksPerNode, RepeatsAndLists) {
  EXPECT_EQ(expand_tasks_per_node("4"), std::vector<int>({4}));
  EXPECT_EQ(expand_tasks_per_node("2(x3),1"), std::vector<int>({2, 2, 2, 1}));
  EXPECT_EQ(expand_tasks_per_node("1,3(x2)"), std::vector<int>({1, 3, 3}));
}

TEST(TasksPerNode, Errors) {
  for (const auto& [value, substring] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"}, {"2(3)", "expected '(x'"}, {"2(x3", "expected ')'"}, {"x", "expected a task count"},
           {"2,", "expected a task count at offset 2"}, {"2;3", "unexpected ';'"}}) {
    try {
      expand_tasks_per_node(value);
      ADD_FAILURE() << "no error for '" << value << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << value << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace kmidi::slurm
