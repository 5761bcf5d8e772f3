#include "datasets/fetch/Catalogue.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "core/Config.h"
#include "core/Files.h"

namespace kmidi::fetch {
namespace {

const std::set<std::string> kArchiveKinds = {"zip", "tar.gz", "tar", "file"};
const std::set<std::string> kKeys = {"title", "url", "archive", "size_bytes", "size", "sha256", "sha256_source",
                                     "licence", "notice", "non_commercial", "dest", "archive_root", "layout"};

std::string where(const std::string& path, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

bool is_hex_digest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

/// A safe relative folder: no absolute path, no "..", no empty parts.
bool is_safe_relative(const std::string& p) {
  if (p.empty() || p.front() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    const size_t slash = p.find('/', start);
    const std::string part = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

CatalogueEntry read_entry(const std::string& path, const std::string& name, const YAML::Node& node) {
  const std::string at = where(path, node) + ": " + name;
  if (!node.IsMap()) throw config::ConfigError(at + ": expected a mapping of url, licence, ...");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!kKeys.count(key)) throw config::ConfigError(where(path, kv.first) + ": " + name + "." + key + ": unknown key");
  }
  auto text = [&](const char* key, bool required) -> std::string {
    const YAML::Node v = node[key];
    if (!v) {
      if (required) throw config::ConfigError(at + ": missing required key '" + key + "'");
      return "";
    }
    if (!v.IsScalar()) throw config::ConfigError(where(path, v) + ": " + name + "." + key + ": expected text");
    return v.Scalar();
  };
  CatalogueEntry e;
  e.name = name;
  e.title = text("title", true);
  e.url = text("url", true);
  if (e.url.rfind("http://", 0) != 0 && e.url.rfind("https://", 0) != 0) {
    throw config::ConfigError(where(path, node["url"]) + ": " + name + ".url: expected an http(s) address, got '" +
                              e.url + "'");
  }
  e.archive = text("archive", false);
  if (e.archive.empty()) e.archive = archive_kind_from_url(e.url);
  if (!kArchiveKinds.count(e.archive)) {
    throw config::ConfigError(where(path, node["archive"]) + ": " + name +
                              ".archive: expected zip, tar.gz, tar or file, got '" + e.archive + "'");
  }
  if (node["size_bytes"]) {
    try {
      e.size_bytes = node["size_bytes"].as<int64_t>();
    } catch (const YAML::Exception&) {
      throw config::ConfigError(where(path, node["size_bytes"]) + ": " + name + ".size_bytes: expected a byte count");
    }
    if (*e.size_bytes <= 0) throw config::ConfigError(where(path, node["size_bytes"]) + ": " + name + ".size_bytes: must be > 0");
  }
  e.size_note = text("size", false);
  e.sha256 = text("sha256", false);
  if (!e.sha256.empty() && !is_hex_digest(e.sha256)) {
    throw config::ConfigError(where(path, node["sha256"]) + ": " + name +
                              ".sha256: expected 64 lower-case hex digits, got '" + e.sha256 + "'");
  }
  e.sha256_source = text("sha256_source", false);
  if (!e.sha256.empty() && e.sha256_source.empty()) {
    throw config::ConfigError(at + ": sha256 given without sha256_source (where was it published?)");
  }
  e.licence = text("licence", true);
  e.notice = text("notice", true);
  if (node["non_commercial"]) e.non_commercial = node["non_commercial"].as<bool>();
  e.dest = text("dest", false);
  if (e.dest.empty()) e.dest = name;
  if (!is_safe_relative(e.dest)) {
    throw config::ConfigError(at + ".dest: expected a relative folder without '..', got '" + e.dest + "'");
  }
  e.archive_root = text("archive_root", false);
  if (!e.archive_root.empty() && !is_safe_relative(e.archive_root)) {
    throw config::ConfigError(at + ".archive_root: expected a relative folder without '..', got '" + e.archive_root + "'");
  }
  e.layout = text("layout", false);
  return e;
}

}  // namespace

const CatalogueEntry* Catalogue::find(const std::string& name) const {
  for (const CatalogueEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string Catalogue::names() const {
  std::string out;
  for (const CatalogueEntry& e : entries) out += (out.empty() ? "" : ", ") + e.name;
  return out;
}

Catalogue load_catalogue(const std::string& path) {
  const std::string text = files::read_all(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw config::ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  const YAML::Node sets = root["datasets"];
  if (!root.IsMap() || !sets || !sets.IsMap()) {
    throw config::ConfigError(path + ": expected a top-level 'datasets:' mapping of name -> entry");
  }
  Catalogue catalogue;
  catalogue.path = path;
  for (const auto& kv : sets) {
    catalogue.entries.push_back(read_entry(path, kv.first.as<std::string>(), kv.second));
  }
  return catalogue;
}

std::string url_file_name(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = path.find("://");
  if (scheme != std::string::npos) {
    const size_t slash = path.find('/', scheme + 3);
    path = slash == std::string::npos ? "" : path.substr(slash);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string archive_kind_from_url(const std::string& url) {
  const std::string file = url_file_name(url);
  auto ends_with = [&](const std::string& suffix) {
    return file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".zip")) return "zip";
  if (ends_with(".tar.gz") || ends_with(".tgz")) return "tar.gz";
  if (ends_with(".tar")) return "tar";
  return "file";
}

}  // namespace kmidi::fetch
