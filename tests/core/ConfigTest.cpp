#include "core/Config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace kmidi::config {
namespace {

namespace fs = std::filesystem;

struct Optim : Section {
  double lr = 1e-3;
  std::vector<double> betas{0.9, 0.999};
  double weight_decay = 0.0;
  void visit(Visitor& v) override {
    v.field("lr", lr, Spec("learning rate").positive());
    v.field("betas", betas, Spec().size(2).min(0.0).less_than(1.0));
    v.field("weight_decay", weight_decay, Spec().non_negative());
  }
};

struct Head : Section {
  std::string name;
  std::string task = "regression";
  double weight = 1.0;
  void visit(Visitor& v) override {
    v.field("name", name, Spec().required());
    v.field("task", task, Spec().one_of({"regression", "classification"}));
    v.field("weight", weight, Spec().non_negative());
  }
};

struct Root : Section {
  Path data_root;
  std::string name = "run";
  int64_t steps = 10;
  int batch = 4;
  bool amp = false;
  Path corpus;
  Path out = "runs";
  Optim optim;
  std::vector<Head> heads;
  std::vector<std::string> tags;
  void visit(Visitor& v) override {
    v.field("data_root", data_root);
    v.field("name", name);
    v.field("steps", steps, Spec().min(1));
    v.field("batch", batch, Spec().positive());
    v.field("amp", amp);
    v.field("corpus", corpus, Spec().required().data_path());
    v.field("out", out);
    v.section("optim", optim);
    v.list("heads", heads);
    v.field("tags", tags);
    v.check(steps >= batch, "steps", "must be at least batch");
  }
};

Document load(const std::string& text) { return Document::load_string(text, "cfg.yaml", "/base"); }

std::string error_of(const std::string& text, std::vector<std::string> overrides = {}) {
  try {
    Document d = load(text);
    d.apply_overrides(overrides);
    Root r;
    d.read_into(r);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ReadsEveryTypeAndKeepsDefaults) {
  Document d = load(
      "name: demo\nsteps: 100\ncorpus: songs\namp: yes\n"
      "optim:\n  lr: 3e-4\n  betas: [0.8, 0.95]\n"
      "heads:\n  - {name: va}\n  - {name: quadrant, task: classification, weight: 2}\n"
      "tags: [a, b]\n");
  Root r;
  d.read_into(r);
  EXPECT_EQ(r.name, "demo");
  EXPECT_EQ(r.steps, 100);
  EXPECT_EQ(r.batch, 4);  // default kept
  EXPECT_TRUE(r.amp);
  EXPECT_DOUBLE_EQ(r.optim.lr, 3e-4);
  EXPECT_EQ(r.optim.betas, (std::vector<double>{0.8, 0.95}));
  EXPECT_DOUBLE_EQ(r.optim.weight_decay, 0.0);
  ASSERT_EQ(r.heads.size(), 2u);
  EXPECT_EQ(r.heads[0].task, "regression");
  EXPECT_EQ(r.heads[1].task, "classification");
  EXPECT_DOUBLE_EQ(r.heads[1].weight, 2.0);
  EXPECT_EQ(r.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.corpus.str(), "/base/songs");
  EXPECT_EQ(r.out.str(), "/base/runs");  // defaults resolve like written values
}

TEST(Config, MisspeltKeyNamesFileLineAndSuggestion) {
  const std::string e = error_of("corpus: x\noptim:\n  lr: 0.1\n  wieght_decay: 0.1\n");
  EXPECT_NE(e.find("cfg.yaml:4:3: optim.wieght_decay: unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'optim.weight_decay'"), std::string::npos) << e;
}

TEST(Config, UnknownTopLevelKeyWithoutNearMatchListsAllowedKeys) {
  const std::string e = error_of("corpus: x\nzzzzzzzzzz: 1\n");
  EXPECT_NE(e.find("cfg.yaml:2:1: zzzzzzzzzz: unknown key; allowed here:"), std::string::npos) << e;
}

TEST(Config, WrongTypes) {
  EXPECT_NE(error_of("corpus: x\nsteps: ten\n").find("cfg.yaml:2:8: steps: expected an integer, got 'ten'"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\nsteps: 2.5\n").find("steps: expected an integer, got '2.5'"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\namp: maybe\n").find("amp: expected true or false"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\noptim: 3\n").find("optim: expected a section"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\noptim: {lr: [1]}\n").find("optim.lr: expected a number, got a list"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\ntags: a\n").find("tags: expected a list of strings"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\nname:\n").find("name: has no value"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\nbatch: 99999999999\n").find("does not fit a 32-bit integer"), std::string::npos);
}

TEST(Config, OutOfRange) {
  EXPECT_NE(error_of("corpus: x\noptim: {lr: 0}\n").find("optim.lr: must be > 0, got 0"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\noptim: {betas: [0.9, 1.0]}\n").find("optim.betas[1]: must be in [0, 1), got 1.0"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\noptim: {betas: [0.9]}\n").find("optim.betas: expected 2 items, got 1"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\nheads: [{name: a, task: regresion}]\n")
                .find("heads[0].task: must be one of regression, classification; got 'regresion' (did you mean 'regression'?)"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\nsteps: 2\n").find("steps: must be at least batch"), std::string::npos);
}

TEST(Config, MissingRequired) {
  EXPECT_NE(error_of("name: x\n").find("corpus: missing required key"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\nheads: [{task: regression}]\n").find("heads[0].name: missing required key"),
            std::string::npos);
}

// A misspelt key first shows up as a missing key, a broken rule or a
// range error elsewhere; the unknown key is the one to report, with its line.
TEST(Config, UnknownKeysAreReportedBeforeEveryOtherMistake) {
  // The rule steps >= batch fails because `stpes` was not read as steps.
  EXPECT_EQ(error_of("corpus: x\nbatch: 20\nstpes: 100\n"),
            "cfg.yaml:3:1: stpes: unknown key (did you mean 'steps'?)");
  // A misspelt required key.
  EXPECT_EQ(error_of("corpsu: songs\n"), "cfg.yaml:1:1: corpsu: unknown key (did you mean 'corpus'?)");
  // A misspelt required key inside a list item.
  EXPECT_EQ(error_of("corpus: x\nheads:\n  - {name: a}\n  - {nmae: b}\n"),
            "cfg.yaml:4:6: heads[1].nmae: unknown key (did you mean 'heads[1].name'?)");
  // An unknown key in a later part of the document beats an earlier range error.
  EXPECT_EQ(error_of("corpus: x\noptim: {lr: -1}\ntgas: [a]\n"),
            "cfg.yaml:3:1: tgas: unknown key (did you mean 'tags'?)");
  // Without an unknown key, the first mistake is reported as before.
  EXPECT_NE(error_of("corpus: x\nbatch: 20\n").find("steps: must be at least batch"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\noptim: {lr: -1}\ntags: [a]\n").find("optim.lr: must be > 0, got -1"), std::string::npos);
}

TEST(Config, DuplicateKeysAreErrors) {
  EXPECT_NE(error_of("corpus: x\nsteps: 5\nsteps: 6\n").find("cfg.yaml:3:1: steps: duplicate key"),
            std::string::npos);
}

TEST(Config, YamlSyntaxErrorNamesLine) {
  const std::string e = error_of("corpus: x\noptim: {lr: 1\n");
  EXPECT_NE(e.find("cfg.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(Config, OverridesSetNestedValuesAndAreNamedInErrors) {
  Document d = load("corpus: x\noptim: {lr: 0.1}\nheads: [{name: a}]\n");
  d.apply_overrides({"optim.lr=0.5", "steps=20", "heads[0].weight=3", "tags=[x, y]", "optim.weight_decay=0.01"});
  Root r;
  d.read_into(r);
  EXPECT_DOUBLE_EQ(r.optim.lr, 0.5);
  EXPECT_EQ(r.steps, 20);
  EXPECT_DOUBLE_EQ(r.heads[0].weight, 3.0);
  EXPECT_DOUBLE_EQ(r.optim.weight_decay, 0.01);
  EXPECT_EQ(r.tags, (std::vector<std::string>{"x", "y"}));

  EXPECT_NE(error_of("corpus: x\n", {"optim.lr=abc"}).find("command-line override 'optim.lr=abc': optim.lr: expected a finite number"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\n", {"optim.lrr=1"}).find("command-line override 'optim.lrr=1': optim.lrr: unknown key (did you mean 'optim.lr'?)"),
            std::string::npos);
  EXPECT_NE(error_of("corpus: x\n", {"corpus.sub=1"}).find("'corpus' is not a section"), std::string::npos);
  EXPECT_NE(error_of("corpus: x\n", {"novalue"}).find("expected key.path=value"), std::string::npos);
}

TEST(Config, OverridePathsResolveAgainstWorkingDirectory) {
  Document d = load("corpus: x\n");
  d.apply_override("corpus=rel/dir");
  Root r;
  d.read_into(r);
  EXPECT_EQ(r.corpus.str(), (fs::current_path() / "rel/dir").lexically_normal().string());
}

TEST(Config, DataPathsResolveAgainstDataRoot) {
  Document d = load("data_root: ../data\ncorpus: pop909\nout: runs\n");
  Root r;
  d.read_into(r);
  EXPECT_EQ(r.corpus.str(), "/data/pop909");
  EXPECT_EQ(r.out.str(), "/base/runs");  // not a data path: config folder
  EXPECT_EQ(r.data_root.str(), "/data");
}

// KMIDI_DATA_ROOT acts only through a config's `data_root: ${KMIDI_DATA_ROOT...}`:
// a config without data_root keeps its data beside it (the repo's sample).
TEST(Config, DataRootComesOnlyFromTheDocument) {
  const char* saved = std::getenv("KMIDI_DATA_ROOT");
  const std::string restore = saved ? saved : "";
  ::setenv("KMIDI_DATA_ROOT", "/elsewhere", 1);
  Root plain;
  load("corpus: data/pop909-sample\n").read_into(plain);
  EXPECT_EQ(plain.corpus.str(), "/base/data/pop909-sample");
  Root shared;
  load("data_root: ${KMIDI_DATA_ROOT:-../shared}\ncorpus: pop909\nout: runs\n").read_into(shared);
  EXPECT_EQ(shared.corpus.str(), "/elsewhere/pop909");
  EXPECT_EQ(shared.out.str(), "/base/runs");  // not a data path
  ::unsetenv("KMIDI_DATA_ROOT");
  Root fallback;
  load("data_root: ${KMIDI_DATA_ROOT:-../shared}\ncorpus: pop909\n").read_into(fallback);
  EXPECT_EQ(fallback.corpus.str(), "/shared/pop909");
  if (saved) ::setenv("KMIDI_DATA_ROOT", restore.c_str(), 1);
}

TEST(Config, EnvironmentExpansion) {
  ::setenv("KMIDI_TEST_STEPS", "42", 1);
  ::unsetenv("KMIDI_TEST_UNSET");
  Document d = load("corpus: ${KMIDI_TEST_UNSET:-fallback}/x\nsteps: ${KMIDI_TEST_STEPS}\nname: cost$$5\n");
  Root r;
  d.read_into(r);
  EXPECT_EQ(r.steps, 42);
  EXPECT_EQ(r.corpus.str(), "/base/fallback/x");
  EXPECT_EQ(r.name, "cost$5");
  EXPECT_NE(error_of("corpus: ${KMIDI_TEST_UNSET}\n").find("cfg.yaml:1:9: corpus: environment variable 'KMIDI_TEST_UNSET' is not set"),
            std::string::npos);
}

TEST(Config, WriterRoundTripsResolvedValues) {
  Document d = load("corpus: songs\noptim: {lr: 0.25}\nheads: [{name: a, weight: 0.5}]\ntags: [t]\n");
  Root r;
  d.read_into(r);
  const std::string yaml = to_yaml(r);
  Document again = Document::load_string(yaml, "resolved.yaml", "/elsewhere");
  Root r2;
  again.read_into(r2);
  EXPECT_EQ(r2.corpus.str(), "/base/songs");  // absolute after resolution: base no longer matters
  EXPECT_DOUBLE_EQ(r2.optim.lr, 0.25);
  ASSERT_EQ(r2.heads.size(), 1u);
  EXPECT_DOUBLE_EQ(r2.heads[0].weight, 0.5);
  EXPECT_EQ(to_yaml(r2), yaml);
}

TEST(Config, DescribeListsEveryKey) {
  Root r;
  const std::string text = describe(r);
  EXPECT_NE(text.find("optim.lr  (float, default 0.001) > 0: learning rate"), std::string::npos) << text;
  EXPECT_NE(text.find("corpus  (path, required)"), std::string::npos) << text;
  EXPECT_NE(text.find("heads[].task"), std::string::npos) << text;
}

TEST(Config, LoadFileNamesMissingFile) {
  try {
    Document::load_file("/nonexistent/x.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.yaml: cannot open config file"), std::string::npos);
  }
}

TEST(Config, TopLevelMustBeAMapping) {
  EXPECT_THROW(load("- a\n- b\n"), ConfigError);
}

}  // namespace
}  // namespace kmidi::config
