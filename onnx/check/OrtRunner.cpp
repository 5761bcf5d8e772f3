#include "onnx/check/OrtRunner.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Strings.h"
#include "onnx/torch/TorchTensors.h"

#ifndef KMIDI_SOURCE_DIR
#error "kmidi_onnx_check needs KMIDI_SOURCE_DIR (set by onnx/check/CMakeLists.txt)"
#endif

extern char** environ;

namespace kmidi::onnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kWhat = "onnxruntime runner";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

bool is_executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

/// The node executable as an absolute path, or UsageError.
std::string find_node(const OrtOptions& options) {
  const std::string wanted = options.node.empty() ? env_or("KMIDI_NODE", "node") : options.node;
  if (wanted.find('/') != std::string::npos) {
    if (is_executable(wanted)) return wanted;
    throw UsageError(std::string(kWhat) + ": node executable '" + wanted +
                     "' does not exist or is not executable; install Node.js (scripts/setup.sh) or set KMIDI_NODE");
  }
  const std::string path = env_or("PATH", "");
  for (const std::string& dir : strings::split(path, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + wanted;
    if (is_executable(candidate)) return candidate;
  }
  throw UsageError(std::string(kWhat) + ": '" + wanted + "' not found on PATH (" + path +
                   "); install Node.js (scripts/setup.sh) or set KMIDI_NODE");
}

struct Setup {
  std::string node, node_modules, script;
};

Setup locate(const OrtOptions& options) {
  Setup s;
  s.node = find_node(options);
  s.node_modules = options.node_modules.empty()
                       ? env_or("KMIDI_NODE_MODULES", std::string(KMIDI_SOURCE_DIR) + "/node_modules")
                       : options.node_modules;
  if (!fs::exists(fs::path(s.node_modules) / "onnxruntime-node" / "package.json")) {
    throw UsageError(std::string(kWhat) + ": onnxruntime-node not found in " + s.node_modules +
                     "; run scripts/setup.sh or set KMIDI_NODE_MODULES to the node_modules folder holding it");
  }
  s.script = options.script.empty() ? env_or("KMIDI_ORT_SCRIPT", std::string(KMIDI_SOURCE_DIR) + "/scripts/ort_run.js")
                                    : options.script;
  if (!fs::exists(s.script)) {
    throw UsageError(std::string(kWhat) + ": runner script " + s.script + " not found; set KMIDI_ORT_SCRIPT");
  }
  return s;
}

/// A private temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kmidi-ort-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) {
      throw DataError(std::string(kWhat) + ": cannot create a temporary folder from " + pattern + ": " +
                      std::strerror(errno));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct ProcessResult {
  bool timed_out = false;
  int exit_code = -1;  ///< when it exited
  int signal = 0;      ///< when a signal ended it
};

/// Runs argv with stdin from /dev/null, stdout and stderr into files, in its own
/// process group so that a timeout kills node and anything it started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                          const std::string& stdout_path, const std::string& stderr_path, double timeout_seconds) {
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    bool overridden = false;
    for (const auto& extra : extra_env) {
      const std::string key = extra.substr(0, extra.find('=') + 1);
      overridden = overridden || strings::starts_with(entry, key);
    }
    if (!overridden) env_strings.push_back(entry);
  }
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  sigset_t no_signals, default_signals;
  sigemptyset(&no_signals);
  sigemptyset(&default_signals);
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD}) sigaddset(&default_signals, sig);
  posix_spawnattr_setsigmask(&attr, &no_signals);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw UsageError(std::string(kWhat) + ": cannot start " + argv[0] + ": " + std::strerror(rc));
  }

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  auto pause = std::chrono::milliseconds(1);
  ProcessResult result;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
      return result;
    }
    if (done < 0 && errno != EINTR) {
      throw DataError(std::string(kWhat) + ": waiting for node failed: " + std::strerror(errno));
    }
    if (Clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);  // the whole process group: node and anything it started
      ::waitpid(pid, &status, 0);
      result.timed_out = true;
      return result;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

std::string tail(const std::string& text, size_t max_chars = 4000) {
  std::string t = strings::trim(text);
  return t.size() <= max_chars ? t : "..." + t.substr(t.size() - max_chars);
}

/// Writes the inputs and the request, runs the script, returns outputs.json.
json run_script(const std::string& model_path, const data::NamedTensors& inputs, const OrtOptions& options,
                const json* timing, const TempDir& dir, const Setup& setup) {
  if (!fs::exists(model_path)) throw DataError(std::string(kWhat) + ": model " + model_path + " does not exist");
  if (options.intra_op_threads < 0) {
    throw UsageError(std::string(kWhat) + ": intra_op_threads must be >= 0, got " +
                     std::to_string(options.intra_op_threads));
  }
  if (!(options.timeout_seconds > 0)) throw UsageError(std::string(kWhat) + ": timeout_seconds must be > 0");
  json request;
  request["inputs"] = json::array();
  size_t i = 0;
  for (const auto& [name, tensor] : inputs.items()) {
    const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const DType dtype = dtype_of(t.scalar_type());
    const std::string file = "in_" + std::to_string(i++) + ".bin";
    files::write_atomic((dir.path() / file).string(),
                        std::string_view(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
    request["inputs"].push_back(
        {{"name", name}, {"dtype", dtype_name(dtype)}, {"shape", std::vector<int64_t>(t.sizes().begin(), t.sizes().end())}, {"file", file}});
  }
  request["output_dir"] = "out";
  request["intra_op_threads"] = options.intra_op_threads;
  request["graph_optimization"] = options.optimize ? "all" : "disabled";
  if (timing) request["timing"] = *timing;
  const std::string request_path = (dir.path() / "request.json").string();
  files::write_atomic(request_path, request.dump());

  const std::string absolute_model = fs::absolute(model_path).string();
  const std::string out_log = (dir.path() / "stdout.txt").string();
  const std::string err_log = (dir.path() / "stderr.txt").string();
  const ProcessResult r = run_process({setup.node, "--expose-gc", setup.script, absolute_model, request_path},
                                      {"KMIDI_NODE_MODULES=" + fs::absolute(setup.node_modules).string()}, out_log,
                                      err_log, options.timeout_seconds);
  const std::string err = fs::exists(err_log) ? tail(files::read_all(err_log)) : std::string();
  const std::string where = std::string(kWhat) + " (" + model_path + ")";
  if (r.timed_out) {
    char limit[32];
    std::snprintf(limit, sizeof limit, "%g", options.timeout_seconds);
    throw DataError(where + ": timed out, no result within " + limit + " s; node was killed" +
                    (err.empty() ? "" : "; stderr: " + err));
  }
  if (r.signal) throw DataError(where + ": node died from signal " + std::to_string(r.signal) + "; stderr: " + err);
  switch (r.exit_code) {
    case 0: break;
    case 3: throw CheckFailed(where + ": " + err);
    case 4: throw UsageError(where + ": " + err + "; run scripts/setup.sh or set KMIDI_NODE_MODULES");
    default:
      throw DataError(where + ": node exited with code " + std::to_string(r.exit_code) + ": " + err);
  }
  const fs::path listing = dir.path() / "out" / "outputs.json";
  if (!fs::exists(listing)) throw DataError(where + ": the runner exited 0 but wrote no " + listing.string());
  try {
    return json::parse(files::read_all(listing.string()));
  } catch (const json::exception& e) {
    throw DataError(where + ": malformed " + listing.string() + ": " + e.what());
  }
}

data::NamedTensors read_outputs(const json& listing, const fs::path& out_dir, const std::string& model_path) {
  data::NamedTensors outputs;
  try {
    for (const auto& o : listing.at("outputs")) {
      const std::string name = o.at("name").get<std::string>();
      const DType dtype = dtype_from_name(o.at("dtype").get<std::string>());
      const std::vector<int64_t> shape = o.at("shape").get<std::vector<int64_t>>();
      const std::string bytes = files::read_all((out_dir / o.at("file").get<std::string>()).string());
      outputs.set(name, to_tensor(TensorData::from_raw(dtype, shape, bytes.data(), bytes.size())));
    }
  } catch (const json::exception& e) {
    throw DataError(std::string(kWhat) + " (" + model_path + "): malformed output listing: " + e.what());
  } catch (const UsageError& e) {
    throw DataError(std::string(kWhat) + " (" + model_path + "): unusable output: " + e.what());
  }
  return outputs;
}

}  // namespace

data::NamedTensors run_onnxruntime(const std::string& model_path, const data::NamedTensors& inputs,
                                   const OrtOptions& options) {
  const Setup setup = locate(options);
  TempDir dir;
  const json listing = run_script(model_path, inputs, options, nullptr, dir, setup);
  return read_outputs(listing, dir.path() / "out", model_path);
}

OrtTiming time_onnxruntime(const std::string& model_path, const data::NamedTensors& inputs,
                           const TimingOptions& timing, const OrtOptions& options) {
  if (timing.warmup_runs < 0 || timing.timed_runs < 1) {
    throw UsageError(std::string(kWhat) + ": timing needs warmup_runs >= 0 and timed_runs >= 1, got " +
                     std::to_string(timing.warmup_runs) + " and " + std::to_string(timing.timed_runs));
  }
  const Setup setup = locate(options);
  TempDir dir;
  const json request_timing = {{"warmup", timing.warmup_runs}, {"runs", timing.timed_runs}};
  const json listing = run_script(model_path, inputs, options, &request_timing, dir, setup);
  OrtTiming result;
  try {
    const json& t = listing.at("timing");
    result.median_ms = t.at("median_ms").get<double>();
    result.p90_ms = t.at("p90_ms").get<double>();
    result.runs_ms = t.at("runs_ms").get<std::vector<double>>();
  } catch (const json::exception& e) {
    throw DataError(std::string(kWhat) + " (" + model_path + "): malformed timing listing: " + e.what());
  }
  return result;
}

}  // namespace kmidi::onnx
