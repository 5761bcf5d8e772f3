#include "train/TrainConfig.h"

#include <gtest/gtest.h>

#include "core/Config.h"

namespace kmidi::train {
namespace {

struct Root : config::Section {
  RunConfig run;
  TrainConfig train;
  void visit(config::Visitor& v) override {
    v.section("run", run);
    v.section("train", train);
  }
};

std::string error_of(const std::string& yaml) {
  try {
    config::Document d = config::Document::load_string(yaml, "job.yaml", "/base");
    Root r;
    d.read_into(r);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(TrainConfig, ReadsEveryField) {
  config::Document d = config::Document::load_string(
      "run: {name: demo, device: cpu, threads: 2, resume: none}\n"
      "train:\n"
      "  max_steps: 100\n  batch_size: 64\n  grad_accumulation: 4\n  precision: bf16\n  nonfinite: skip_step\n"
      "  optimizer: {lr: 1e-3, betas: [0.8, 0.95], eps: 1e-6, weight_decay: 0.1, amsgrad: true}\n"
      "  schedule: {name: linear, warmup_steps: 10, min_lr_ratio: 0.1}\n"
      "  early_stopping: {monitor: mae, mode: min, patience: 3, min_delta: 0.01, min_steps: 50}\n"
      "  ema: {decay: 0.99}\n",
      "job.yaml", "/base");
  Root r;
  d.read_into(r);
  EXPECT_EQ(r.run.name, "demo");
  EXPECT_EQ(r.run.output_dir.str(), "/base/runs");
  EXPECT_EQ(r.train.optimizer.betas, (std::vector<double>{0.8, 0.95}));
  EXPECT_TRUE(r.train.optimizer.amsgrad);
  EXPECT_EQ(r.train.schedule.name, "linear");
  EXPECT_EQ(r.train.early_stopping.patience, 3);
  EXPECT_DOUBLE_EQ(r.train.ema.decay, 0.99);
  // The resolved config round-trips.
  const std::string yaml = config::to_yaml(r);
  Root again;
  config::Document::load_string(yaml, "resolved.yaml", "/").read_into(again);
  EXPECT_EQ(config::to_yaml(again), yaml);
}

TEST(TrainConfig, ErrorsNameKeyAndLine) {
  EXPECT_NE(error_of("run: {name: a}\ntrain:\n  max_steps: 10\n  schedule: {name: cosin}\n")
                .find("job.yaml:4:20: train.schedule.name: must be one of constant, linear, cosine; got 'cosin' "
                      "(did you mean 'cosine'?)"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain:\n  max_steps: 10\n  schedule: {warmup_steps: 50}\n")
                .find("train.schedule: warmup_steps (50) exceeds max_steps (10)"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {batch_size: 8}\n").find("train.max_steps: set max_steps or epochs"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, epochs: 2}\n").find("train.epochs: set either max_steps (5) or epochs (2), not both"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, batch_size: 10, grad_accumulation: 4}\n")
                .find("train.batch_size: must be a multiple of grad_accumulation (4), got 10"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, optimizer: {betas: [0.9, 1.0]}}\n")
                .find("train.optimizer.betas[1]: must be in [0, 1), got 1.0"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, nonfinite: ignore}\n")
                .find("train.nonfinite: must be one of stop, skip_step; got 'ignore'"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a/b}\ntrain: {max_steps: 5}\n").find("run.name: must be a non-empty folder name"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, early_stopping: {mode: lowest}}\n")
                .find("train.early_stopping.mode: must be one of min, max"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, ema: {decay: 1.5}}\n").find("train.ema.decay: must be in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of("run: {name: a}\ntrain: {max_steps: 5, lr: 0.1}\n").find("train.lr: unknown key"), std::string::npos);
}

TEST(TrainConfig, DescribeListsEveryKeyWithHelp) {
  Root r;
  const std::string text = config::describe(r);
  for (const char* key : {"train.optimizer.amsgrad", "train.schedule.min_lr_ratio", "train.early_stopping.min_steps",
                          "train.ema.decay", "train.nonfinite", "run.resume", "run.threads", "train.bucket_batches"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace kmidi::train
