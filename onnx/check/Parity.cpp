#include "onnx/check/Parity.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/Errors.h"
#include "onnx/torch/TorchTensors.h"

namespace kmidi::onnx {
namespace {

std::string dtype_label(const at::Tensor& t) {
  try {
    return std::string(dtype_name(dtype_of(t.scalar_type())));
  } catch (const UsageError&) {
    return c10::toString(t.scalar_type());
  }
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

void compare_values(const at::Tensor& ref_in, const at::Tensor& cand_in, const Tolerance& tol, OutputParity& out) {
  out.numel = ref_in.numel();
  if (out.numel == 0) return;
  const bool floating = at::isFloatingType(ref_in.scalar_type());
  const at::Tensor r = ref_in.detach().to(at::kCPU).to(at::kDouble);
  const at::Tensor c = cand_in.detach().to(at::kCPU).to(at::kDouble);
  // Equal values (including equal infinities) and NaN against NaN differ by 0.
  const at::Tensor same = (r == c) | (r.isnan() & c.isnan());
  at::Tensor diff = at::where(same, at::zeros_like(r), (c - r).abs());
  diff = at::nan_to_num(diff, std::numeric_limits<double>::infinity());  // NaN on one side only
  out.max_abs_diff = diff.max().item<double>();
  const at::Tensor denom = r.abs();
  const at::Tensor counted = denom > tol.atol;
  if (counted.any().item<bool>()) {
    out.max_rel_diff = (diff.masked_select(counted) / denom.masked_select(counted)).max().item<double>();
  }
  at::Tensor ok;
  if (floating) {
    ok = same | (diff <= tol.atol + tol.rtol * denom);
  } else {
    ok = same;
  }
  out.mismatched = (~ok).sum().item<int64_t>();
  if (out.mismatched > 0) {
    out.problem = std::to_string(out.mismatched) + " of " + std::to_string(out.numel) + " values differ (max abs " +
                  number(out.max_abs_diff) + ", max rel " + number(out.max_rel_diff) + ")";
  }
}

}  // namespace

bool ParityReport::passed() const {
  if (!problems.empty()) return false;
  for (const auto& o : outputs) {
    if (!o.passed) return false;
  }
  return true;
}

std::string ParityReport::summary() const {
  std::string first_failure;
  if (!problems.empty()) first_failure = problems.front();
  for (const auto& o : outputs) {
    if (first_failure.empty() && !o.passed) first_failure = o.name + ": " + o.problem;
  }
  std::string s = passed() ? "parity passed" : "parity FAILED: " + first_failure;
  s += " (atol " + number(tolerance.atol) + ", rtol " + number(tolerance.rtol) + ")\n";
  for (const auto& o : outputs) {
    s += "  " + o.name + " " + o.reference_dtype + " " + shape_to_string(o.reference_shape) + ": max abs " +
         number(o.max_abs_diff) + ", max rel " + number(o.max_rel_diff) + ", " + (o.passed ? "ok" : o.problem) + "\n";
  }
  for (const auto& p : problems) s += "  " + p + "\n";
  return s;
}

void ParityReport::require_passed(const std::string& context) const {
  if (!passed()) throw CheckFailed(context + ": " + summary());
}

ParityReport compare_outputs(const data::NamedTensors& reference, const data::NamedTensors& candidate,
                             const Tolerance& tolerance) {
  if (!(tolerance.atol >= 0) || !(tolerance.rtol >= 0)) {
    throw UsageError("compare_outputs: tolerances must be >= 0, got atol " + number(tolerance.atol) + ", rtol " +
                     number(tolerance.rtol));
  }
  ParityReport report;
  report.tolerance = tolerance;
  const std::vector<std::string> ref_names = reference.names(), cand_names = candidate.names();
  for (const auto& name : cand_names) {
    if (!reference.contains(name)) report.problems.push_back("unexpected output '" + name + "'");
  }
  if (ref_names != cand_names && report.problems.empty() && ref_names.size() == cand_names.size()) {
    std::string expected, got;
    for (const auto& n : ref_names) expected += (expected.empty() ? "" : ", ") + n;
    for (const auto& n : cand_names) got += (got.empty() ? "" : ", ") + n;
    report.problems.push_back("output order differs: expected (" + expected + "), got (" + got + ")");
  }
  for (const auto& [name, ref] : reference.items()) {
    OutputParity o;
    o.name = name;
    o.reference_dtype = dtype_label(ref);
    o.reference_shape.assign(ref.sizes().begin(), ref.sizes().end());
    if (!candidate.contains(name)) {
      o.problem = "missing from the candidate";
    } else {
      const at::Tensor& cand = candidate.at(name);
      o.candidate_dtype = dtype_label(cand);
      o.candidate_shape.assign(cand.sizes().begin(), cand.sizes().end());
      if (o.candidate_dtype != o.reference_dtype) {
        o.problem = "dtype " + o.candidate_dtype + ", expected " + o.reference_dtype;
      } else if (o.candidate_shape != o.reference_shape) {
        o.problem = "shape " + shape_to_string(o.candidate_shape) + ", expected " + shape_to_string(o.reference_shape);
      } else {
        compare_values(ref, cand, tolerance, o);
      }
    }
    o.passed = o.problem.empty();
    report.outputs.push_back(std::move(o));
  }
  return report;
}

ParityReport onnxruntime_parity(const std::string& model_path, const data::NamedTensors& inputs,
                                const data::NamedTensors& reference, const Tolerance& tolerance,
                                const OrtOptions& options) {
  return compare_outputs(reference, run_onnxruntime(model_path, inputs, options), tolerance);
}

}  // namespace kmidi::onnx
