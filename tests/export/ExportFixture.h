#pragma once
// TEST FIXTURE ONLY: the trainer's Groove fixture task (tests/train/GrooveFixture)
// made exportable, to test the export pipeline before and independently of
// the model families. It delegates everything to test::GrooveTask and adds
// graphs(): the main graph "<model>" and a second one "<model>_mirror" (the
// same network), so that a failure in the second graph proves that the first
// is not published either. Faults can be injected into the second graph.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/train/GrooveFixture.h"
#include "train/Task.h"

namespace kmidi::test {

enum class ExportFault {
  kNone,
  kEmitThrows,          ///< the mirror graph's emit throws
  kCheckerFails,        ///< the mirror graph declares an output shape that shape inference refutes
  kPerturbedReference,  ///< LibTorch's reference of the mirror graph is perturbed by 1e-3
  kExtraCheckFails,     ///< the mirror graph's extra_check refuses
  kRegistryOutOfRange,  ///< the mirror graph's registry input_size is 129 (> 128)
};

/// The fault of tasks built by the "groove_fixture_b" entry (tests set it).
ExportFault& fault_of_b();

class ExportableGrooveTask final : public train::Task {
 public:
  ExportableGrooveTask(const GrooveTaskConfig& config, ExportFault fault);
  torch::nn::Module& model() override { return inner_->model(); }
  std::shared_ptr<const data::Dataset> dataset(train::Split split) override { return inner_->dataset(split); }
  train::ForwardOutput forward(const data::Batch& batch, bool training) override {
    return inner_->forward(batch, training);
  }
  train::MetricValues finalize(const train::MetricValues& sums, train::Split split) const override {
    return inner_->finalize(sums, split);
  }
  data::NamedTensors predict(const data::Batch& batch) override { return inner_->predict(batch); }
  std::map<std::string, std::string> artifacts() const override { return inner_->artifacts(); }
  std::string throughput_unit() const override { return inner_->throughput_unit(); }
  std::vector<train::GraphExport> graphs() override;

  GrooveNet net() { return inner_->net(); }
  /// The candidate files the last extra_check saw (suffix -> path).
  std::map<std::string, std::string> seen_candidates;

 private:
  std::unique_ptr<GrooveTask> inner_;
  ExportFault fault_;
};

/// "groove_fixture" (never faulty) and "groove_fixture_b" (fault_of_b()).
const train::TaskRegistry& export_fixture_registry();

/// A job config for the fixture: run `name` in `runs_dir`, task `task`.
std::string export_job_yaml(const std::string& runs_dir, const std::string& name, const std::string& task,
                            int64_t max_steps);

}  // namespace kmidi::test
