#include "onnx/check/IncrementalCheck.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "core/Errors.h"
#include "onnx/ModelCheck.h"

namespace kmidi::onnx {
namespace {

struct CachePair {
  std::string past, present;
  std::vector<int64_t> empty_shape;  ///< the first run's past tensor shape
};

std::vector<CachePair> cache_pairs(const OnnxModelInfo& info, const std::string& path,
                                   const IncrementalCheckOptions& options, int64_t batch) {
  std::vector<CachePair> pairs;
  const std::vector<std::string> outputs = info.output_names();
  for (const ValueSpec& input : info.inputs) {
    if (input.name.compare(0, options.past_prefix.size(), options.past_prefix) != 0) continue;
    CachePair pair;
    pair.past = input.name;
    pair.present = options.present_prefix + input.name.substr(options.past_prefix.size());
    if (std::find(outputs.begin(), outputs.end(), pair.present) == outputs.end()) {
      throw CheckFailed(path + ": input " + pair.past + " has no output " + pair.present +
                        " to feed it from the previous run");
    }
    bool has_growing_axis = false;
    for (const Dim& dim : input.shape) {
      if (dim.is_fixed()) pair.empty_shape.push_back(dim.size());
      else if (dim.is_symbolic() && dim.symbol() == "batch") pair.empty_shape.push_back(batch);
      else if (dim.is_symbolic() && dim.symbol() == "past_sequence") {
        pair.empty_shape.push_back(0);
        has_growing_axis = true;
      } else {
        throw CheckFailed(path + ": input " + pair.past + " has axis " + shape_to_string(input.shape) +
                          " that is neither fixed, batch nor past_sequence");
      }
    }
    if (!has_growing_axis) {
      throw CheckFailed(path + ": input " + pair.past + " " + shape_to_string(input.shape) +
                        " has no past_sequence axis");
    }
    pairs.push_back(std::move(pair));
  }
  if (pairs.empty()) {
    throw CheckFailed(path + ": no input starts with '" + options.past_prefix + "'; expected an incremental graph");
  }
  return pairs;
}

}  // namespace

ParityReport check_incremental_matches_full(const std::string& full_path, const std::string& incremental_path,
                                            const data::NamedTensors& inputs,
                                            const IncrementalCheckOptions& options) {
  if (options.prompt_length < 1) throw UsageError("check_incremental_matches_full: prompt_length must be >= 1");
  torch::NoGradGuard no_grad;
  const at::Tensor& ids = inputs.at(options.sequence_input);
  if (ids.dim() != 2) {
    throw UsageError("check_incremental_matches_full: " + options.sequence_input + " must be [batch, sequence]");
  }
  const int64_t batch = ids.size(0), length = ids.size(1);
  const data::NamedTensors full_out = run_onnxruntime(full_path, inputs, options.ort);
  const at::Tensor& full_logits = full_out.at(options.logits_output);

  const OnnxModelInfo info = read_model_info(incremental_path);
  const std::vector<CachePair> pairs = cache_pairs(info, incremental_path, options, batch);
  std::vector<at::Tensor> past;
  for (const CachePair& p : pairs) past.push_back(torch::zeros(p.empty_shape, torch::kFloat));

  std::vector<at::Tensor> stitched;
  for (int64_t start = 0, run = 0; start < length; ++run) {
    const int64_t count = start == 0 ? std::min(options.prompt_length, length) : 1;
    data::NamedTensors step;
    for (const auto& [name, tensor] : inputs.items()) {
      step.set(name, name == options.sequence_input ? tensor.narrow(1, start, count).contiguous() : tensor);
    }
    for (size_t i = 0; i < pairs.size(); ++i) step.set(pairs[i].past, past[i]);
    const data::NamedTensors out = run_onnxruntime(incremental_path, step, options.ort);
    const at::Tensor& logits = out.at(options.logits_output);
    data::NamedTensors expected, got;
    expected.set(options.logits_output, full_logits.narrow(1, start, count));
    got.set(options.logits_output, logits);
    const ParityReport step_report = compare_outputs(expected, got, options.tolerance);
    if (!step_report.passed()) {
      throw CheckFailed(incremental_path + ": run " + std::to_string(run) + " (tokens " + std::to_string(start) +
                        ".." + std::to_string(start + count - 1) + ") differs from the full graph " + full_path +
                        ": " + step_report.summary());
    }
    stitched.push_back(logits);
    for (size_t i = 0; i < pairs.size(); ++i) past[i] = out.at(pairs[i].present);
    start += count;
  }
  data::NamedTensors expected, got;
  expected.set(options.logits_output, full_logits);
  got.set(options.logits_output, torch::cat(stitched, 1));
  return compare_outputs(expected, got, options.tolerance);
}

}  // namespace kmidi::onnx
