#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/Commands.h"
#include "onnx/ModelCheck.h"

namespace kmidi::cli {
namespace {

std::string shown(const std::string& value) {
  constexpr size_t kMax = 72;
  if (value.size() <= kMax) return value;
  return value.substr(0, kMax) + "... (" + std::to_string(value.size()) + " bytes)";
}

void print_values(const char* title, const std::vector<onnx::ValueSpec>& values) {
  std::printf("%s:\n", title);
  for (const auto& v : values) {
    std::printf("  %-24s %-8s %s\n", v.name.c_str(), std::string(onnx::dtype_name(v.dtype)).c_str(),
                v.rank_known ? onnx::shape_to_string(v.shape).c_str() : "(no shape)");
  }
}

}  // namespace

void register_onnx(CLI::App& app) {
  auto* cmd = add_command(app, "onnx");
  cmd->require_subcommand(1);
  auto* inspect = cmd->add_subcommand("inspect", "print a file's inputs, outputs and metadata; --check runs "
                                                  "the onnx checker, shape inference and kmidi's conventions");
  auto path = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  inspect->add_option("file", *path, "the .onnx file")->required();
  inspect->add_flag("--check", *check, "also check the file (exit 4 when a check fails)");
  inspect->callback([path, check] {
    const onnx::OnnxModelInfo info = onnx::read_model_info(*path);
    std::printf("%s: IR %lld, opset %lld, producer %s %s, %zu nodes, %zu initializers (%lld values)\n",
                path->c_str(), static_cast<long long>(info.ir_version), static_cast<long long>(info.opset),
                info.producer_name.c_str(), info.producer_version.c_str(), info.node_count, info.initializer_count,
                static_cast<long long>(info.parameter_count));
    print_values("inputs", info.inputs);
    print_values("outputs", info.outputs);
    std::printf("metadata:\n");
    for (const auto& [key, value] : info.metadata) std::printf("  %s = %s\n", key.c_str(), shown(value).c_str());
    if (*check) {
      onnx::check_model_file(*path);
      std::printf("check passed\n");
    }
  });
}

}  // namespace kmidi::cli
