// kmidi_distributed_driver: a test-only program that trains a small
// byte-level transformer on real MIDI file bytes for N optimizer steps through
// DistributedContext and GradientSynchronizer, exactly as a trainer would,
// and writes every rank's final parameters to a file so that tests can
// compare runs (2 ranks x half batch against 1 rank x full batch).
//
// It reads its place in the job from the launcher's environment (torchrun,
// srun, mpirun or torchrun's variables set by hand), like `kmidi train`. When
// the real trainer lands, tests swap this program for `kmidi train --config`
// and keep their launch and comparison code.
//
// Determinism: rank r starts from seed 1000 + r, so equality with a single
// process also proves broadcast_module; step s uses the global batch of
// windows [s*B, (s+1)*B) of the concatenated files, split into W ranks x K
// micro-steps of B/(W*K) windows each.

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Logging.h"
#include "core/Strings.h"
#include "train/Distributed.h"
#include "train/runtime/Runtime.h"
#include "train/detail/GradientBuckets.h"

namespace {

using namespace kmidi;

struct Options {
  int64_t steps = 5;
  std::string optimizer = "sgd";
  double lr = 0.05;
  int64_t global_batch = 8;   ///< windows per optimizer step, all ranks together
  int64_t accumulation = 1;   ///< micro-steps per rank and step
  int64_t window = 16;        ///< tokens per window
  int64_t model_dim = 16;
  int64_t ff_dim = 32;
  int64_t layers = 1;
  int64_t heads = 2;
  std::string dtype = "float";
  bool unused_head = false;   ///< a registered head that forward never uses
  bool aux_branch = false;    ///< a branch used only by the first micro-batch of each step
  bool frozen = true;         ///< a parameter with requires_grad false
  std::vector<std::string> data;
  std::string out;            ///< parameters file; "{rank}" is replaced by the rank
  std::string device = "cpu";
  int threads = 1;
  int fail_rank = -1, fail_step = -1;  ///< throw a DataError there
  int hang_rank = -1, hang_step = -1;  ///< stop the process (SIGSTOP) there
  int sleep_rank = -1, sleep_step = -1;  ///< the training thread sleeps for an hour there (heartbeats go on)
  int mismatch_rank = -1;              ///< this rank builds a model with an extra head
  /// SIGTERM/SIGINT stop the job as they stop `kmidi train`: the flag is
  /// all-reduced with the step's unit count, then every rank meets in a
  /// barrier (where the trainer saves its checkpoint) and exits with 130.
  bool stop_on_signal = false;
  bool report = false;                 ///< print this process's place in the job
  int64_t timing_warmup = 1;           ///< steps left out of the printed step time
  train::DistributedConfig distributed;
};

struct ByteModelImpl : torch::nn::Module {
  ByteModelImpl(const Options& o) {
    embedding = register_module("embedding", torch::nn::Embedding(256, o.model_dim));
    position = register_buffer("position", torch::randn({o.window, o.model_dim}) * 0.1);
    if (o.frozen) {
      input_scale = register_parameter("input_scale", 1.0 + 0.1 * torch::randn({o.model_dim}), /*requires_grad=*/false);
    }
    for (int64_t i = 0; i < o.layers; ++i) {
      auto options = torch::nn::TransformerEncoderLayerOptions(o.model_dim, o.heads)
                         .dim_feedforward(o.ff_dim)
                         .dropout(0.0);
      blocks.push_back(register_module("block" + std::to_string(i), torch::nn::TransformerEncoderLayer(options)));
    }
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.model_dim})));
    head = register_module("head", torch::nn::Linear(o.model_dim, 256));
    if (o.aux_branch) aux = register_module("aux", torch::nn::Linear(o.model_dim, o.model_dim));
    if (o.unused_head) unused = register_module("unused_head", torch::nn::Linear(o.model_dim, 4));
    mask = register_buffer("causal_mask",
                           torch::triu(torch::full({o.window, o.window}, -1e9), /*diagonal=*/1));
  }

  /// tokens [B, T] -> logits [B, T, 256]
  torch::Tensor forward(const torch::Tensor& tokens, bool use_aux) {
    auto x = embedding->forward(tokens);
    if (input_scale.defined()) x = x * input_scale;
    x = x + position;
    if (use_aux) x = x + aux->forward(x);
    x = x.transpose(0, 1);  // [T, B, D]: the 1.13 layer is sequence-first
    for (auto& block : blocks) x = block->forward(x, mask);
    return head->forward(norm->forward(x.transpose(0, 1)));
  }

  torch::nn::Embedding embedding{nullptr};
  torch::Tensor position, input_scale, mask;
  std::vector<torch::nn::TransformerEncoderLayer> blocks;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr}, aux{nullptr}, unused{nullptr};
};
TORCH_MODULE(ByteModel);

/// Windows of T+1 bytes of the given files, one after another: [N, T + 1].
torch::Tensor load_windows(const std::vector<std::string>& paths, int64_t window) {
  std::string bytes;
  for (const auto& path : paths) bytes += files::read_all(path);
  const int64_t count = static_cast<int64_t>(bytes.size()) / (window + 1);
  if (count < 1) throw DataError("the training files hold fewer than " + std::to_string(window + 1) + " bytes");
  auto data = torch::empty({count, window + 1}, torch::kLong);
  auto* out = data.data_ptr<int64_t>();
  for (int64_t i = 0; i < count * (window + 1); ++i) out[i] = static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return data;
}

std::string replace_rank(std::string path, int rank) {
  const std::string token = "{rank}";
  for (size_t at = path.find(token); at != std::string::npos; at = path.find(token)) {
    path.replace(at, token.size(), std::to_string(rank));
  }
  return path;
}

void write_parameters(ByteModel& model, const std::string& path) {
  c10::Dict<std::string, at::Tensor> values;
  for (const auto& p : model->named_parameters(true)) values.insert(p.key(), p.value().detach().clone());
  for (const auto& b : model->named_buffers(true)) values.insert("buffer:" + b.key(), b.value().detach().clone());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(values));
  files::write_atomic(path, std::string_view(bytes.data(), bytes.size()));
}

int run(const Options& o) {
  // The process settings `kmidi train` makes (threads, and malloc kept from
  // unmapping the large buffers freed every step), so that scripts/bench_ddp.sh
  // measures what training gets.
  train::configure_process(o.threads);
  const auto context = train::DistributedContext::create(o.distributed, o.device);
  const int rank = context->rank();
  const int world = context->world_size();
  if (o.report) {
    const auto launch = train::detect_launch_environment(
        train::process_environment(), {o.distributed.master_addr, o.distributed.master_port});
    std::printf("rank=%d world=%d local_rank=%d local_world=%d launcher=%s device=%s backend=%s restart=%d "
                "agent_store=%d master=%s:%d\n",
                rank, world, context->local_rank(), context->local_world_size(), context->launcher().c_str(),
                context->device().str().c_str(), context->backend().c_str(), context->restart_count(),
                launch.agent_store ? 1 : 0, launch.master_addr.c_str(), launch.master_port);
    std::fflush(stdout);
  }
  if (o.global_batch % (world * o.accumulation) != 0) {
    throw UsageError("--global-batch " + std::to_string(o.global_batch) + " is not divisible by " +
                     std::to_string(world) + " ranks x " + std::to_string(o.accumulation) + " micro-steps");
  }
  const int64_t micro = o.global_batch / (world * o.accumulation);
  const auto dtype = o.dtype == "double" ? torch::kFloat64 : torch::kFloat32;

  if (o.report) {
    // What a trainer does with a run name that only rank 0 may choose.
    const std::string chosen = context->broadcast_string("chosen-by-rank-" + std::to_string(rank));
    std::printf("rank %d run_name=%s\n", rank, chosen.c_str());
  }
  torch::manual_seed(1000 + rank);
  Options model_options = o;
  if (rank == o.mismatch_rank) model_options.unused_head = !o.unused_head;
  ByteModel model(model_options);
  model->to(context->device(), dtype);
  context->broadcast_module(*model);
  auto synchronizer = context->synchronize_gradients(*model);

  std::vector<torch::Tensor> trainable;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (o.optimizer == "adam") {
    optimizer = std::make_unique<torch::optim::Adam>(trainable, torch::optim::AdamOptions(o.lr));
  } else {
    optimizer = std::make_unique<torch::optim::SGD>(trainable, torch::optim::SGDOptions(o.lr).momentum(0.9));
  }

  std::optional<train::StopSignals> signals;
  if (o.stop_on_signal) signals.emplace();
  const torch::Tensor windows = load_windows(o.data, o.window).to(context->device());
  const int64_t count = windows.size(0);
  std::vector<double> step_ms, backward_ms, finish_ms;
  for (int64_t step = 0; step < o.steps; ++step) {
    const auto started = std::chrono::steady_clock::now();
    files::fault_point("distributed_driver.step", "rank" + std::to_string(rank) + ".step" + std::to_string(step) +
                                                      ".attempt" + std::to_string(context->restart_count()));
    if (rank == o.fail_rank && step == o.fail_step) {
      throw DataError("rank " + std::to_string(rank) + " cannot read its batch of step " + std::to_string(step) +
                      " (requested by --fail-rank)");
    }
    if (rank == o.hang_rank && step == o.hang_step) std::raise(SIGSTOP);
    if (rank == o.sleep_rank && step == o.sleep_step) std::this_thread::sleep_for(std::chrono::hours(1));

    // Zeroed in place, as the trainer does: gradients then stay views of the
    // synchroniser's buckets and backward accumulates straight into them.
    for (auto& p : trainable) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    // Normalise by the global number of target tokens, counted before the forward pass.
    std::vector<double> units{static_cast<double>(o.accumulation * micro * o.window)};
    if (signals) units.push_back(train::StopSignals::requested() ? 1.0 : 0.0);
    context->all_reduce_sum(units);
    if (signals && units[1] > 0) {
      context->barrier();
      const std::string stop = "stop signal before step " + std::to_string(step);
      context->stop_on_request(stop);  // as the trainer does: a stop is no failure
      throw Interrupted(stop);
    }
    double loss_sum = 0.0;
    for (int64_t k = 0; k < o.accumulation; ++k) {
      const int64_t piece = rank * o.accumulation + k;
      const auto rows = (torch::arange(micro, torch::kLong) + step * o.global_batch + piece * micro)
                            .remainder(count)
                            .to(context->device());
      const auto batch = windows.index_select(0, rows);
      const auto inputs = batch.narrow(1, 0, o.window);
      const auto targets = batch.narrow(1, 1, o.window);
      synchronizer->set_enabled(k == o.accumulation - 1);
      const auto logits = model->forward(inputs, o.aux_branch && piece == 0);
      const auto loss = torch::nn::functional::cross_entropy(
                            logits.reshape({-1, 256}), targets.reshape({-1}),
                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                        units[0];
      loss.backward();
      loss_sum += loss.item<double>();
    }
    const auto backward_done = std::chrono::steady_clock::now();
    synchronizer->finish();
    const auto finished = std::chrono::steady_clock::now();
    backward_ms.push_back(std::chrono::duration<double, std::milli>(backward_done - started).count());
    finish_ms.push_back(std::chrono::duration<double, std::milli>(finished - backward_done).count());
    optimizer->step();
    std::vector<double> metrics{loss_sum};
    context->all_reduce_sum(metrics);
    step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    if (o.report && (step == 0 || step + 1 == o.steps)) {
      if (const auto* buckets = dynamic_cast<const train::detail::BucketedSynchronizer*>(synchronizer.get())) {
        std::printf("rank %d step %lld buckets=%zu cap_bytes=%lld launched_during_backward=%zu "
                    "grads_in_buckets=%zu/%zu\n",
                    rank, static_cast<long long>(step), buckets->layout().size(),
                    static_cast<long long>(buckets->bucket_cap_bytes()),
                    buckets->buckets_launched_during_last_backward(), buckets->gradients_in_buckets(),
                    buckets->parameter_count());
      }
    }
    if (context->is_main()) {
      std::printf("step %lld loss %.9f\n", static_cast<long long>(step), metrics[0]);
      std::fflush(stdout);
    }
  }
  if (context->is_main() && o.steps > o.timing_warmup) {
    const auto median = [&](const std::vector<double>& all) {
      std::vector<double> timed(all.begin() + o.timing_warmup, all.end());
      std::sort(timed.begin(), timed.end());
      return timed[timed.size() / 2];
    };
    // Forward and backward (gradient buckets are launched during it), then the
    // wait for the last all-reduces: the part of communication backward did not hide.
    std::printf("median_backward_ms %.3f\nmedian_finish_ms %.3f\n", median(backward_ms), median(finish_ms));
    std::printf("median_step_ms %.3f\n", median(step_ms));
  }
  std::fflush(stdout);
  if (!o.out.empty()) write_parameters(model, replace_rank(o.out, rank));
  context->barrier();
  return kExitOk;
}

int report(const char* kind, const std::string& message, int code) {
  spdlog::default_logger()->flush();
  std::fprintf(stderr, "kmidi_distributed_driver: %s%s\n", kind, message.substr(0, message.find('\n')).c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"test driver: N data-parallel steps of a small byte-level transformer"};
  // A repeated option takes its last value, so that tests can override a base command line.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  Options o;
  o.distributed.timeout_s = 30.0;
  app.add_option("--steps", o.steps)->check(CLI::PositiveNumber);
  app.add_option("--optimizer", o.optimizer)->check(CLI::IsMember({"sgd", "adam"}));
  app.add_option("--lr", o.lr);
  app.add_option("--global-batch", o.global_batch)->check(CLI::PositiveNumber);
  app.add_option("--accumulation", o.accumulation)->check(CLI::PositiveNumber);
  app.add_option("--window", o.window)->check(CLI::PositiveNumber);
  app.add_option("--model-dim", o.model_dim)->check(CLI::PositiveNumber);
  app.add_option("--ff-dim", o.ff_dim)->check(CLI::PositiveNumber);
  app.add_option("--layers", o.layers)->check(CLI::NonNegativeNumber);
  app.add_option("--heads", o.heads)->check(CLI::PositiveNumber);
  app.add_option("--dtype", o.dtype)->check(CLI::IsMember({"float", "double"}));
  app.add_flag("--unused-head", o.unused_head);
  app.add_flag("--aux-branch", o.aux_branch);
  app.add_option("--data", o.data, "training files (their bytes are the tokens)")->required()->check(CLI::ExistingFile)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--out", o.out, "parameters file; {rank} becomes the rank");
  app.add_option("--device", o.device);
  app.add_option("--threads", o.threads);
  app.add_option("--fail-rank", o.fail_rank);
  app.add_option("--fail-step", o.fail_step);
  app.add_option("--hang-rank", o.hang_rank);
  app.add_option("--hang-step", o.hang_step);
  app.add_option("--sleep-rank", o.sleep_rank);
  app.add_option("--sleep-step", o.sleep_step);
  app.add_option("--mismatch-rank", o.mismatch_rank);
  app.add_flag("--report", o.report);
  app.add_flag("--stop-on-signal", o.stop_on_signal);
  app.add_option("--timing-warmup", o.timing_warmup);
  app.add_option("--backend", o.distributed.backend);
  app.add_option("--world-size", o.distributed.world_size);
  app.add_option("--timeout", o.distributed.timeout_s);
  app.add_option("--bucket-mb", o.distributed.bucket_mb);
  app.add_flag("--find-unused", o.distributed.find_unused_parameters);
  app.add_option("--master-addr", o.distributed.master_addr);
  app.add_option("--master-port", o.distributed.master_port);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  try {
    logging::Options log;
    log.level = log_level;
    logging::init(log);
    return run(o);
  } catch (const UsageError& e) {
    return report("error: ", e.what(), kExitUsage);
  } catch (const DataError& e) {
    return report("data error: ", e.what(), kExitData);
  } catch (const PeerFailure& e) {
    return report("distributed failure: ", e.what(), kExitPeerFailed);
  } catch (const Interrupted& e) {
    return report("interrupted: ", e.what(), kExitInterrupted);
  } catch (const c10::Error& e) {
    return report("internal error (LibTorch): ", e.what_without_backtrace(), kExitInternal);
  } catch (const std::exception& e) {
    return report("internal error: ", e.what(), kExitInternal);
  }
}
