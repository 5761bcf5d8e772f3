#pragma once
// Compares what an exported graph computes (onnxruntime) with what the trained
// model computes (LibTorch), output by output.

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/Batch.h"
#include "onnx/check/OrtRunner.h"

namespace kmidi::onnx {

/// numpy.allclose semantics per element: |candidate - reference| <= atol + rtol·|reference|.
/// Integer and bool outputs must match exactly.
struct Tolerance {
  double atol = 1e-4;
  double rtol = 1e-4;
};

/// One output's comparison.
struct OutputParity {
  std::string name;
  std::string reference_dtype, candidate_dtype;    ///< "float32", ... ("" when absent)
  std::vector<int64_t> reference_shape, candidate_shape;
  double max_abs_diff = 0.0;  ///< over all elements; inf when one side is NaN/inf and the other not
  /// max |c - r| / |r| over elements with |r| > atol (near zero, atol governs).
  double max_rel_diff = 0.0;
  int64_t mismatched = 0;     ///< elements outside the tolerance
  int64_t numel = 0;
  bool passed = false;
  std::string problem;        ///< why it failed, "" when passed
};

struct ParityReport {
  Tolerance tolerance;
  std::vector<OutputParity> outputs;  ///< in the reference's order
  /// Problems of the whole output list: names missing, extra or in another order.
  std::vector<std::string> problems;

  bool passed() const;
  /// A table, one line per output, then the problems; starts with "parity passed"
  /// or "parity FAILED" and the first failure, so that its first line says enough.
  std::string summary() const;
  /// Throws CheckFailed("<context>: <summary>") unless passed().
  void require_passed(const std::string& context) const;
};

/// Compares `candidate` with `reference`: the same names in the same order,
/// dtypes, shapes, then values within `tolerance`.
ParityReport compare_outputs(const data::NamedTensors& reference, const data::NamedTensors& candidate,
                             const Tolerance& tolerance = {});

/// Runs `model_path` in onnxruntime on `inputs` and compares with `reference`.
ParityReport onnxruntime_parity(const std::string& model_path, const data::NamedTensors& inputs,
                                const data::NamedTensors& reference, const Tolerance& tolerance = {},
                                const OrtOptions& options = {});

}  // namespace kmidi::onnx
