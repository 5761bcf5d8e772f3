#pragma once
// Sampling pieces from a generator checkpoint, shared by kmidi generate and
// kmidi evaluate-generation (defined in cli/GenerateCommand.cpp).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace at {
class Tensor;
}
namespace kmidi::models {
struct SamplingOptions;
}
namespace kmidi::train {
struct LoadedGenerator;
}

namespace kmidi::cli {

/// "V,A[,I]" -> the contract's emotion vector [size]: [valence, arousal,
/// intensity, 0, ...]. Throws UsageError (naming --emotion) for bad text.
at::Tensor parse_emotion(const std::string& text, int64_t size);

/// The user's sampling options made ready for `g`: EOS stops, the other
/// special tokens are banned and the tokenizer's grammar masks every token
/// that would not decode.
models::SamplingOptions piece_sampling(const train::LoadedGenerator& g, const models::SamplingOptions& user);

/// Writes `count` pieces into `out_dir` (created if missing) as 000.mid,
/// 001.mid, ...; piece i uses seed sampling.seed + i. Returns generate's
/// summary: out_dir, count, checkpoint_step, guidance, skipped_tokens and
/// one entry per piece (out, seed, tokens, notes, skipped_tokens, ...).
nlohmann::ordered_json write_pieces(train::LoadedGenerator& g, const at::Tensor& emotion,
                                    const models::SamplingOptions& sampling, const std::string& out_dir,
                                    int64_t count);

}  // namespace kmidi::cli
