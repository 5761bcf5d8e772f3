#pragma once
// The metadata_props keys of kmidi's ONNX files: one namespace, "kmidi.",
// documented in export/README.md (section "Metadata"). Keep this list and the
// README's table in step.

#include <string_view>

namespace kmidi::onnx::meta {

/// Version of the conventions in export/README.md that the file follows.
/// REQUIRED. Bump when a loader written for the old version would misread the file.
inline constexpr const char* kFormatVersion = "kmidi.format_version";
/// The format version kmidi writes today.
inline constexpr const char* kCurrentFormatVersion = "1";
/// "generator", "spectocloud", "emotion", "groove", ... REQUIRED.
inline constexpr const char* kModelFamily = "kmidi.model_family";
/// "full", "incremental" or "legacy" (the engines' static [1, N] -> [1, M] slot).
inline constexpr const char* kProfile = "kmidi.profile";
/// SHA-256 of the resolved training config (hex).
inline constexpr const char* kConfigSha256 = "kmidi.config_sha256";
inline constexpr const char* kGitCommit = "kmidi.git_commit";
/// Optimizer step of the exported checkpoint (decimal).
inline constexpr const char* kTrainStep = "kmidi.train_step";
/// Token models: the whole tokenizer as JSON.
inline constexpr const char* kTokenizer = "kmidi.tokenizer";
/// Token models: "kmidi.special_token.<name>" -> decimal id, one key per special token.
inline constexpr const char* kSpecialTokenPrefix = "kmidi.special_token.";

/// Keys every file carries; build() refuses a model without them.
inline constexpr const char* kRequiredKeys[] = {kFormatVersion, kModelFamily};

/// True for "kmidi." followed by lower-case letters, digits, '_' and '.'.
bool is_valid_key(std::string_view key);

}  // namespace kmidi::onnx::meta
