#include "tests/export/ExportFixture.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>
#include <mutex>

#include "core/Errors.h"
#include "onnx/torch/TorchTensors.h"
#include "onnx/Metadata.h"
#include "onnx/ModelBuilder.h"

namespace kmidi::test {

ExportFault& fault_of_b() {
  static ExportFault fault = ExportFault::kNone;
  return fault;
}

ExportableGrooveTask::ExportableGrooveTask(const GrooveTaskConfig& config, ExportFault fault)
    : inner_(std::make_unique<GrooveTask>(config)), fault_(fault) {}

std::vector<train::GraphExport> ExportableGrooveTask::graphs() {
  std::vector<train::GraphExport> out;
  for (const bool mirror : {false, true}) {
    const ExportFault fault = mirror ? fault_ : ExportFault::kNone;
    train::GraphExport g;
    g.suffix = mirror ? "mirror" : "";
    g.description = "Groove fixture: log duration of a performance from tempo, fill, meter, drummer";
    GrooveNet net = inner_->net();
    g.emit = [net, fault](onnx::ModelBuilder& b) {
      if (fault == ExportFault::kEmitThrows) throw std::runtime_error("emit exploded");
      b.set_metadata(onnx::meta::kModelFamily, "groove_fixture");
      b.set_metadata(onnx::meta::kProfile, "full");
      onnx::Value x = b.input("features", onnx::DType::kFloat32, {"batch", 4});
      x = b.relu(b.linear(x, onnx::to_tensor_data(net->fc1->weight), onnx::to_tensor_data(net->fc1->bias), "fc1"));
      x = b.layer_norm(x, onnx::to_tensor_data(net->norm->weight), onnx::to_tensor_data(net->norm->bias), 1e-5f,
                       "norm");
      x = b.relu(b.linear(x, onnx::to_tensor_data(net->fc2->weight), onnx::to_tensor_data(net->fc2->bias), "fc2"));
      x = b.squeeze(b.linear(x, onnx::to_tensor_data(net->out->weight), onnx::to_tensor_data(net->out->bias), "out"),
                    {1});
      if (fault == ExportFault::kCheckerFails) {
        b.output(x, "log_duration", onnx::DType::kFloat32, {"batch", 2});
      } else {
        b.output(x, "log_duration", onnx::DType::kFloat32, {"batch"});
      }
    };
    g.sample_inputs = [](int64_t batch, int64_t, uint64_t seed) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      data::NamedTensors in;
      in.set("features", torch::rand({batch, 4}, gen));
      return in;
    };
    g.reference = [net, fault](const data::NamedTensors& in) mutable {
      data::NamedTensors out;
      torch::Tensor y = net->forward(in.at("features"));
      if (fault == ExportFault::kPerturbedReference) y = y + 1e-3;
      out.set("log_duration", y);
      return out;
    };
    g.parity_shapes = {{1, 0}, {3, 0}, {17, 0}};
    g.metadata = {{"kmidi.features", "bpm/200,is_fill,meter,drummer/10"}};
    g.registry_task = "custom";
    g.registry_input_size = fault == ExportFault::kRegistryOutOfRange ? 129 : 4;
    g.registry_output_size = 1;
    if (mirror) {
      g.extra_check = [this, fault](const std::map<std::string, std::string>& candidates) {
        seen_candidates = candidates;
        if (fault == ExportFault::kExtraCheckFails) throw CheckFailed("the mirror disagrees with the main graph");
        // The hook's contract: every graph's checked candidate, by suffix, not yet in place.
        if (candidates.size() != 2 || !candidates.count("") || !candidates.count("mirror")) {
          throw CheckFailed("extra_check expected the candidates of '' and 'mirror'");
        }
        for (const auto& [suffix, path] : candidates) {
          if (path.find(".partial.") == std::string::npos || !std::filesystem::is_regular_file(path)) {
            throw CheckFailed("extra_check got '" + path + "', not an existing candidate file");
          }
        }
      };
    }
    out.push_back(std::move(g));
  }
  return out;
}

const train::TaskRegistry& export_fixture_registry() {
  static train::TaskRegistry registry;
  static std::once_flag once;
  std::call_once(once, [] {
    registry.add<GrooveTaskConfig>("groove_fixture", "test fixture: exportable Groove regression",
                                   [](GrooveTaskConfig& c, const train::TaskContext&) {
                                     return std::make_unique<ExportableGrooveTask>(c, ExportFault::kNone);
                                   });
    registry.add<GrooveTaskConfig>("groove_fixture_b", "test fixture: exportable Groove regression, faults on demand",
                                   [](GrooveTaskConfig& c, const train::TaskContext&) {
                                     return std::make_unique<ExportableGrooveTask>(c, fault_of_b());
                                   });
  });
  return registry;
}

std::string export_job_yaml(const std::string& runs_dir, const std::string& name, const std::string& task,
                            int64_t max_steps) {
  return "task: " + task + "\n" + "run: {name: " + name + ", output_dir: " + runs_dir +
         ", device: cpu, threads: 1, resume: auto}\n"
         "train: {max_steps: " + std::to_string(max_steps) +
         ", batch_size: 32, eval_every: 4, checkpoint_every: 4, log_every: 2, ema: {decay: 0.5}}\n"
         "model: {hidden: 32, dropout: 0.1}\n"
         "data: {prepare: " + std::string(KMIDI_SOURCE_DIR) + "/configs/prepare_groove.yaml}\n";
}

}  // namespace kmidi::test
