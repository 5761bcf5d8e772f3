#include "datasets/tokenizer/detail/ConfigJson.h"

namespace kmidi::tokenizer::detail {
namespace {

using Json = nlohmann::ordered_json;

class JsonWriter final : public config::Visitor {
 public:
  explicit JsonWriter(Json& out) : stack_{&out} {}
  bool reading() const override { return false; }
  [[noreturn]] void fail(std::string_view key, std::string_view message) override {
    throw config::ConfigError(std::string(key) + ": " + std::string(message));
  }
  void field(std::string_view k, bool& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, int& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, int64_t& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, double& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, float& v, const config::Spec&) override { put(k, static_cast<double>(v)); }
  void field(std::string_view k, std::string& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, config::Path& v, const config::Spec&) override { put(k, v.value); }
  void field(std::string_view k, std::vector<int64_t>& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, std::vector<double>& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, std::vector<std::string>& v, const config::Spec&) override { put(k, v); }
  void field(std::string_view k, std::vector<config::Path>& v, const config::Spec&) override {
    Json list = Json::array();
    for (const auto& p : v) list.push_back(p.value);
    put(k, list);
  }
  void section(std::string_view key, config::Section& value, const config::Spec&) override {
    Json& child = (*stack_.back())[std::string(key)] = Json::object();
    stack_.push_back(&child);
    value.visit(*this);
    stack_.pop_back();
  }

 protected:
  std::optional<size_t> begin_list(std::string_view key, size_t n, const config::Spec&) override {
    Json& list = (*stack_.back())[std::string(key)] = Json::array();
    lists_.push_back(&list);
    return n;
  }
  void list_item(size_t, config::Section& item) override {
    lists_.back()->push_back(Json::object());
    stack_.push_back(&lists_.back()->back());
    item.visit(*this);
    stack_.pop_back();
  }
  void end_list() override { lists_.pop_back(); }

 private:
  template <class T>
  void put(std::string_view key, const T& value) {
    (*stack_.back())[std::string(key)] = value;
  }
  std::vector<Json*> stack_;
  std::vector<Json*> lists_;
};

}  // namespace

Json config_to_json(config::Section& section) {
  Json out = Json::object();
  JsonWriter writer(out);
  section.visit(writer);
  return out;
}

void config_from_json(const Json& object, const std::string& origin, config::Section& section) {
  if (!object.is_object()) throw config::ConfigError(origin + ": expected a JSON object");
  const config::Document doc = config::Document::load_string(object.dump(), origin, ".");
  doc.read_into(section);
}

}  // namespace kmidi::tokenizer::detail
