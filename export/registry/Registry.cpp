#include "export/registry/Registry.h"

// rapidjson 1.1's own regex engine lacks {n} repetition; a defined
// RAPIDJSON_SCHEMA_USE_INTERNALREGEX switches its schema validator to std::regex.
#define RAPIDJSON_SCHEMA_USE_INTERNALREGEX 0
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <initializer_list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/Errors.h"
#include "core/Files.h"
#include "core/Hash.h"
#include "core/Strings.h"

#if !RAPIDJSON_SCHEMA_USE_STDREGEX
#error "the registry validator needs rapidjson's std::regex patterns"
#endif

namespace kmidi::registry {

namespace detail {
extern const std::string_view kRegistrySchemaText;  // generated from export/schema/registry.schema.json
}

namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// ---- the compiled-in schema ---------------------------------------------------

/// Every "pattern" must compile: rapidjson silently skips a pattern it cannot
/// compile, which would turn a check off without a word.
void require_patterns_compile(const rapidjson::Value& node, const std::string& where) {
  if (node.IsObject()) {
    for (auto it = node.MemberBegin(); it != node.MemberEnd(); ++it) {
      const std::string key(it->name.GetString(), it->name.GetStringLength());
      if (key == "pattern" && it->value.IsString()) {
        try {
          std::regex re(it->value.GetString(), std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          throw std::logic_error("registry schema: pattern at " + where + " does not compile: " + e.what());
        }
      }
      require_patterns_compile(it->value, where + "/" + key);
    }
  } else if (node.IsArray()) {
    for (rapidjson::SizeType i = 0; i < node.Size(); ++i) require_patterns_compile(node[i], where + "/" + std::to_string(i));
  }
}

struct Schema {
  rapidjson::Document document;
  std::unique_ptr<rapidjson::SchemaDocument> compiled;
};

const Schema& schema() {
  static Schema s;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string_view text = detail::kRegistrySchemaText;
    s.document.Parse(text.data(), text.size());
    if (s.document.HasParseError()) {
      throw std::logic_error(std::string("registry schema: not JSON at byte ") +
                             std::to_string(s.document.GetErrorOffset()) + ": " +
                             rapidjson::GetParseError_En(s.document.GetParseError()));
    }
    require_patterns_compile(s.document, "#");
    s.compiled = std::make_unique<rapidjson::SchemaDocument>(s.document);
  });
  return s;
}

// ---- messages -------------------------------------------------------------------

std::string pointer_text(const rapidjson::Pointer& p) {
  rapidjson::StringBuffer buf;
  p.Stringify(buf);
  return buf.GetSize() ? std::string(buf.GetString(), buf.GetSize()) : std::string();
}

std::string json_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  std::string s(buf.GetString(), buf.GetSize());
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

std::string type_name(const rapidjson::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "boolean";
  if (v.IsObject()) return "object";
  if (v.IsArray()) return "array";
  if (v.IsString()) return "string";
  if (v.IsInt64() || v.IsUint64()) return "integer";
  return "number";
}

std::string list_text(const rapidjson::Value& v) {
  if (v.IsString()) return v.GetString();
  if (!v.IsArray()) return json_text(v);
  std::string s;
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    s += (i ? ", " : "") + (v[i].IsString() ? std::string(v[i].GetString()) : json_text(v[i]));
  }
  return s;
}

/// One problem, located: the entry (when inside "models") and a JSON pointer.
struct Problem {
  std::string pointer, message;
};

/// "models[3] (id \"groove\")" for pointers under /models/3, "" otherwise.
std::string entry_label(const rapidjson::Document& doc, const std::string& pointer) {
  static const std::regex kEntry("^/models/([0-9]+)(/|$)");
  std::smatch m;
  if (!std::regex_search(pointer, m, kEntry)) return {};
  const std::string index = m[1].str();
  std::string label = "models[" + index + "]";
  const rapidjson::Value* id = rapidjson::Pointer(("/models/" + index + "/id").c_str()).Get(doc);
  label += id && id->IsString() ? " (id \"" + std::string(id->GetString()) + "\")" : " (no id)";
  return label;
}

std::string format(const rapidjson::Document& doc, const std::string& origin, const std::vector<Problem>& problems) {
  auto line = [&](const Problem& p) {
    const std::string label = entry_label(doc, p.pointer);
    return (label.empty() ? "" : label + " ") + "at " + (p.pointer.empty() ? "the top level" : p.pointer) + ": " +
           p.message;
  };
  std::string text = origin + ": " + line(problems.front());
  if (problems.size() > 1) {
    text += " (and " + std::to_string(problems.size() - 1) + " more problem" + (problems.size() > 2 ? "s" : "") + ")";
    for (const auto& p : problems) text += "\n  " + line(p);
  }
  return text;
}

/// Turns rapidjson's (document pointer, schema pointer, keyword) into a sentence.
Problem explain_schema_failure(const rapidjson::Document& doc, const rapidjson::SchemaValidator& validator) {
  const std::string keyword = validator.GetInvalidSchemaKeyword();
  Problem p;
  p.pointer = pointer_text(validator.GetInvalidDocumentPointer());
  const rapidjson::Value* value = validator.GetInvalidDocumentPointer().Get(doc);
  const rapidjson::Value* rule = validator.GetInvalidSchemaPointer().Get(schema().document);
  const rapidjson::Value* arg = rule && rule->IsObject() && rule->HasMember(keyword.c_str()) ? &(*rule)[keyword.c_str()] : nullptr;
  const std::string got = value ? json_text(*value) : "nothing";
  if (keyword == "required" && value && value->IsObject() && arg && arg->IsArray()) {
    std::string missing;
    for (const auto& field : arg->GetArray()) {
      if (!value->HasMember(field)) missing += (missing.empty() ? "" : ", ") + std::string("\"") + field.GetString() + "\"";
    }
    p.message = "missing required field " + missing;
  } else if (keyword == "additionalProperties" && rule && rule->HasMember("properties")) {
    const rapidjson::Value& known = (*rule)["properties"];
    const rapidjson::Value* object = value;
    if (object && !object->IsObject()) {  // some versions point at the property itself
      p.pointer = p.pointer.substr(0, p.pointer.rfind('/'));
      object = rapidjson::Pointer(p.pointer.c_str()).Get(doc);
    }
    std::vector<std::string> names;
    for (auto it = known.MemberBegin(); it != known.MemberEnd(); ++it) names.emplace_back(it->name.GetString());
    std::string unknown;
    if (object && object->IsObject()) {
      for (auto it = object->MemberBegin(); it != object->MemberEnd(); ++it) {
        const std::string name = it->name.GetString();
        if (known.HasMember(it->name)) continue;
        const auto hint = strings::closest(name, names);
        unknown += (unknown.empty() ? "" : ", ") + ("\"" + name + "\"") + (hint ? " (did you mean \"" + *hint + "\"?)" : "");
      }
    }
    p.message = "unknown field " + unknown + "; expected only " + [&] {
      std::string s;
      for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
      return s;
    }();
  } else if (keyword == "type" && arg) {
    const bool show_value = value && !value->IsNull();
    p.message = "expected " + list_text(*arg) + ", got " + (value ? type_name(*value) : got) + (show_value ? " " + got : "");
  } else if (keyword == "enum" && arg) {
    p.message = got + " is not one of: " + list_text(*arg);
  } else if (keyword == "pattern" && arg) {
    p.message = got + " does not match the pattern " + arg->GetString();
  } else if ((keyword == "minimum" || keyword == "maximum") && arg) {
    p.message = "expected " + std::string(keyword == "minimum" ? "at least " : "at most ") + json_text(*arg) +
                ", got " + got;
  } else if (keyword == "minLength" && arg) {
    p.message = "expected a string of at least " + json_text(*arg) + " character(s), got " + got;
  } else if (keyword == "dependencies" && arg && value && value->IsObject()) {
    std::string needs;
    for (auto it = arg->MemberBegin(); it != arg->MemberEnd(); ++it) {
      if (value->HasMember(it->name)) needs += std::string("\"") + it->name.GetString() + "\" needs " + list_text(it->value);
    }
    p.message = needs.empty() ? "a field dependency is not met" : needs;
  } else {
    p.message = "fails the schema rule '" + keyword + "' at " + pointer_text(validator.GetInvalidSchemaPointer()) +
                " (value " + got + ")";
  }
  return p;
}

// ---- checks JSON Schema cannot express ---------------------------------------------

/// Checks a path field: inside base_dir, present as a regular file; returns the resolved path.
std::optional<fs::path> check_path(const rapidjson::Value& entry, const char* field_pointer, const std::string& entry_pointer,
                                   const fs::path& base_dir, std::vector<Problem>& problems) {
  const rapidjson::Value* v = rapidjson::Pointer(field_pointer).Get(entry);
  if (!v || !v->IsString()) return std::nullopt;
  const std::string rel = v->GetString();
  const std::string pointer = entry_pointer + field_pointer;
  for (const auto& part : fs::path(rel)) {
    if (part == "..") {
      problems.push_back({pointer, "path \"" + rel + "\" leaves the manifest's folder; expected a path inside it"});
      return std::nullopt;
    }
  }
  const fs::path full = base_dir / rel;
  std::error_code ec;
  if (!fs::is_regular_file(full, ec)) {
    problems.push_back({pointer, "file \"" + rel + "\" not found (looked for " + full.string() + ")"});
    return std::nullopt;
  }
  return full;
}

void check_hash(const rapidjson::Value& entry, const char* hash_pointer, const std::optional<fs::path>& file,
                const std::string& entry_pointer, std::vector<Problem>& problems) {
  const rapidjson::Value* v = rapidjson::Pointer(hash_pointer).Get(entry);
  if (!v || !v->IsString() || !file) return;
  const std::string actual = hash::sha256_file(file->string());
  if (actual != v->GetString()) {
    problems.push_back({entry_pointer + hash_pointer, "sha256 mismatch for " + file->filename().string() +
                                                          "; expected (manifest) " + v->GetString() + ", got (file) " +
                                                          actual});
  }
}

/// A published model says what it was trained on and where its ONNX file is:
/// the fields engines and licence audits read, which JSON Schema draft 4
/// cannot require for some statuses only.
void check_published_fields(const rapidjson::Value& e, const std::string& at, std::vector<Problem>& problems) {
  const std::string status = e["status"].GetString();
  if (status != "trained" && status != "production") return;
  const auto missing_of = [&](const char* object, std::initializer_list<const char*> fields) {
    const rapidjson::Value* o = rapidjson::Pointer(object).Get(e);
    std::string missing;
    for (const char* f : fields) {
      if (!o || !o->IsObject() || !o->HasMember(f)) missing += (missing.empty() ? "\"" : ", \"") + std::string(f) + "\"";
    }
    return missing;
  };
  const std::string training = missing_of("/training", {"dataset_id", "dataset_license"});
  if (!training.empty()) {
    problems.push_back({at + "/training", "missing required field " + training + "; an entry with status \"" + status +
                                              "\" names the data set it was trained on and its licence"});
  }
  if (std::string(e["format"].GetString()) == "onnx") {
    const std::string exports = missing_of("/exports", {"onnx_path"});
    if (!exports.empty()) {
      problems.push_back({at + "/exports", "missing required field " + exports + "; an ONNX entry with status \"" +
                                               status + "\" gives the path of its ONNX file"});
    }
  }
}

std::vector<Problem> check_entries(const rapidjson::Document& doc, const fs::path& base_dir, bool check_files) {
  std::vector<Problem> problems;
  std::map<std::string, size_t> first_use;
  const rapidjson::Value& models = doc["models"];
  for (rapidjson::SizeType i = 0; i < models.Size(); ++i) {
    const rapidjson::Value& e = models[i];
    const std::string at = "/models/" + std::to_string(i);
    const std::string id = e["id"].GetString();
    const auto [it, fresh] = first_use.emplace(id, i);
    if (!fresh) {
      problems.push_back({at + "/id", "duplicate id \"" + id + "\"; expected unique ids, first used by models[" +
                                          std::to_string(it->second) + "]"});
    }
    check_published_fields(e, at, problems);
    if (!check_files) continue;
    const auto file = check_path(e, "/file", at, base_dir, problems);
    check_hash(e, "/exports/sha256", file, at, problems);
    const auto onnx = check_path(e, "/exports/onnx_path", at, base_dir, problems);
    check_hash(e, "/exports/onnx_sha256", onnx, at, problems);
    check_path(e, "/model_card", at, base_dir, problems);
  }
  return problems;
}

// ---- JSON <-> entries ---------------------------------------------------------------------

template <class T>
void put(ordered_json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

template <class T>
void take(const ordered_json& j, const char* key, std::optional<T>& v) {
  if (j.contains(key)) v = j.at(key).get<T>();
}

ordered_json to_ordered_json(const RegistryEntry& e) {
  ordered_json j;
  j["id"] = e.id;
  j["file"] = e.file;
  j["format"] = e.format;
  j["task"] = e.task;
  j["input_size"] = e.input_size;
  j["output_size"] = e.output_size;
  j["status"] = e.status;
  if (e.training) {
    const TrainingInfo& t = *e.training;
    ordered_json tj = ordered_json::object();
    put(tj, "dataset_id", t.dataset_id);
    put(tj, "dataset_version", t.dataset_version);
    put(tj, "dataset_license", t.dataset_license);
    put(tj, "epochs", t.epochs);
    put(tj, "batch_size", t.batch_size);
    put(tj, "learning_rate", t.learning_rate);
    put(tj, "optimizer", t.optimizer);
    put(tj, "loss", t.loss);
    put(tj, "train_loss", t.train_loss);
    put(tj, "val_loss", t.val_loss);
    put(tj, "test_loss", t.test_loss);
    put(tj, "run_id", t.run_id);
    put(tj, "git_commit", t.git_commit);
    put(tj, "training_date", t.training_date);
    put(tj, "hardware", t.hardware);
    put(tj, "duration_seconds", t.duration_seconds);
    j["training"] = tj;
  }
  if (e.exports) {
    ordered_json xj = ordered_json::object();
    put(xj, "sha256", e.exports->sha256);
    put(xj, "onnx_path", e.exports->onnx_path);
    put(xj, "onnx_sha256", e.exports->onnx_sha256);
    j["exports"] = xj;
  }
  put(j, "model_card", e.model_card);
  put(j, "license", e.license);
  return j;
}

RegistryEntry from_json(const ordered_json& j) {
  RegistryEntry e;
  e.id = j.at("id").get<std::string>();
  e.file = j.at("file").get<std::string>();
  e.format = j.at("format").get<std::string>();
  e.task = j.at("task").get<std::string>();
  e.input_size = j.at("input_size").get<int64_t>();
  e.output_size = j.at("output_size").get<int64_t>();
  e.status = j.at("status").get<std::string>();
  if (j.contains("training")) {
    const ordered_json& tj = j.at("training");
    TrainingInfo t;
    take(tj, "dataset_id", t.dataset_id);
    take(tj, "dataset_version", t.dataset_version);
    take(tj, "dataset_license", t.dataset_license);
    take(tj, "epochs", t.epochs);
    take(tj, "batch_size", t.batch_size);
    take(tj, "learning_rate", t.learning_rate);
    take(tj, "optimizer", t.optimizer);
    take(tj, "loss", t.loss);
    take(tj, "train_loss", t.train_loss);
    take(tj, "val_loss", t.val_loss);
    take(tj, "test_loss", t.test_loss);
    take(tj, "run_id", t.run_id);
    take(tj, "git_commit", t.git_commit);
    take(tj, "training_date", t.training_date);
    take(tj, "hardware", t.hardware);
    take(tj, "duration_seconds", t.duration_seconds);
    e.training = t;
  }
  if (j.contains("exports")) {
    ExportInfo x;
    take(j.at("exports"), "sha256", x.sha256);
    take(j.at("exports"), "onnx_path", x.onnx_path);
    take(j.at("exports"), "onnx_sha256", x.onnx_sha256);
    e.exports = x;
  }
  take(j, "model_card", e.model_card);
  take(j, "license", e.license);
  return e;
}

std::string folder_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

std::string_view registry_schema() { return detail::kRegistrySchemaText; }

void validate_manifest_text(std::string_view text, const std::string& base_dir, const std::string& origin,
                            bool check_files) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    throw DataError(origin + ": not valid JSON at byte " + std::to_string(doc.GetErrorOffset()) + ": " +
                    rapidjson::GetParseError_En(doc.GetParseError()));
  }
  rapidjson::SchemaValidator validator(*schema().compiled);
  if (!doc.Accept(validator)) {
    throw CheckFailed(format(doc, origin, {explain_schema_failure(doc, validator)}));
  }
  const std::vector<Problem> problems = check_entries(doc, base_dir, check_files);
  if (!problems.empty()) throw CheckFailed(format(doc, origin, problems));
}

void validate_manifest(const std::string& path) { validate_manifest_text(files::read_all(path), folder_of(path), path); }

std::vector<RegistryEntry> read_registry(const std::string& path, bool check_files) {
  const std::string text = files::read_all(path);
  validate_manifest_text(text, folder_of(path), path, check_files);
  const ordered_json root = ordered_json::parse(text);
  std::vector<RegistryEntry> entries;
  for (const auto& j : root.at("models")) entries.push_back(from_json(j));
  return entries;
}

std::string to_json(const std::vector<RegistryEntry>& entries) {
  ordered_json models = ordered_json::array();
  for (const auto& e : entries) models.push_back(to_ordered_json(e));
  ordered_json root;
  root["models"] = models;
  // NaN and infinity become null here, which the schema then refuses as "expected number".
  return root.dump(2) + "\n";
}

void write_registry(const std::string& path, const std::vector<RegistryEntry>& entries) {
  const std::string text = to_json(entries);
  validate_manifest_text(text, folder_of(path), path);
  files::write_atomic(path, text);
}

void fill_hashes(RegistryEntry& entry, const std::string& base_dir) {
  if (!entry.exports) entry.exports = ExportInfo{};
  entry.exports->sha256 = hash::sha256_file((fs::path(base_dir) / entry.file).string());
  if (entry.exports->onnx_path) {
    entry.exports->onnx_sha256 = hash::sha256_file((fs::path(base_dir) / *entry.exports->onnx_path).string());
  }
}

}  // namespace kmidi::registry
