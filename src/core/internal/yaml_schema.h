// A small declarative binding from YAML to plain structs, used by the config loader.
//
// Each struct gets one `describe` function listing its fields, one line each:
//
//   void describe(internal::Schema<SloConfig>& s) {
//     s.field("latency_p99_ms", &SloConfig::latency_p99_ms).greater_than(0.0);
//     s.field("error_budget", &SloConfig::error_budget).greater_than(0.0).less_than(1.0);
//   }
//
// The binding knows how to read bools, integers, doubles, strings, durations
// (std::chrono::milliseconds), enums (via an `enum_names(E)` overload found by ADL), lists,
// string-keyed maps and nested described structs. It rejects unknown keys (suggesting the
// nearest valid one), duplicate keys and wrong types, and reports every problem with its
// `file:line:column` and field path. A key whose value is empty (`key:` or `key: ~`) counts as
// absent. Cross-field rules go in `s.check(...)`; they run only when the struct's own fields
// all read cleanly, so one mistake does not cascade into several messages.
//
// `describe` and `enum_names` must be declared in the namespace of the struct/enum (ADL).
// Not public API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/byte_size.h"
#include "core/internal/config_scalars.h"

namespace prescale::internal {

// Collects problems as `source:line:column: path: message`.
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  void report(const YAML::Mark& mark, std::string_view path, std::string_view message);
  std::size_t count() const { return errors_.size(); }
  // All problems, one per line, at most `limit` of them plus a count of the rest.
  std::string joined(std::size_t limit = 25) const;

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

// A value being read: its node, its field path ("services[1].slo") and the position to report
// (the value's own, or its key's when the value is empty).
struct Site {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;

  Site key_child(const YAML::Node& key, const YAML::Node& value, std::string_view name) const;
  Site index_child(const YAML::Node& value, std::size_t index) const;
};

// `a mapping`, `a list`, `nothing` or the quoted scalar: what a message says was found.
std::string describe_node(const YAML::Node& node);

// Points cross-field rules at the offending value, so their messages carry its position.
class Checker {
 public:
  Checker(Site site, Diagnostics& diag) : site_(std::move(site)), diag_(&diag) {}

  // A key of this mapping / an element of this list. When absent, the child keeps this node's
  // position, so a message about a defaulted field points at the enclosing block.
  Checker at(std::string_view key) const;
  Checker at(std::size_t index) const;
  // The key itself rather than its value, for problems with the key's name.
  Checker key(std::string_view key) const;
  // Whether `key` was written with a non-empty value.
  bool has(std::string_view key) const;
  void error(std::string_view message) const { diag_->report(site_.mark, site_.path, message); }
  const std::string& path() const { return site_.path; }
  int line() const { return site_.mark.line + 1; }  // 1-based

 private:
  Site site_;
  Diagnostics* diag_;
};

template <typename E>
using EnumNames = std::span<const std::pair<std::string_view, E>>;

template <typename T>
class Schema;

template <typename T>
const Schema<T>& schema_of();

template <typename M>
struct IsVector : std::false_type {};
template <typename E>
struct IsVector<std::vector<E>> : std::true_type {};
template <typename M>
struct IsStringMap : std::false_type {};
template <typename V>
struct IsStringMap<std::map<std::string, V>> : std::true_type {};

// Reads `site` into `out`; on failure reports and returns false, leaving `out` unspecified.
template <typename M>
bool read_value(const Site& site, M& out, Diagnostics& diag) {
  const YAML::Node& node = site.node;
  auto wrong = [&](std::string_view expected) {
    diag.report(site.mark, site.path,
                "expected " + std::string(expected) + ", got " + describe_node(node));
    return false;
  };
  if constexpr (std::is_same_v<M, bool>) {
    std::optional<bool> v = node.IsScalar() ? parse_bool(node.Scalar()) : std::nullopt;
    if (!v) return wrong("true or false");
    out = *v;
  } else if constexpr (std::is_integral_v<M>) {
    std::optional<std::int64_t> v = node.IsScalar() ? parse_integer(node.Scalar()) : std::nullopt;
    if (!v) return wrong("an integer");
    if (std::cmp_less(*v, std::numeric_limits<M>::min()) ||
        std::cmp_greater(*v, std::numeric_limits<M>::max())) {
      return wrong("an integer between " + std::to_string(std::numeric_limits<M>::min()) + " and " +
                   std::to_string(std::numeric_limits<M>::max()));
    }
    out = static_cast<M>(*v);
  } else if constexpr (std::is_floating_point_v<M>) {
    std::optional<double> v = node.IsScalar() ? parse_number(node.Scalar()) : std::nullopt;
    if (!v) return wrong("a number");
    out = static_cast<M>(*v);
  } else if constexpr (std::is_same_v<M, std::string>) {
    if (!node.IsScalar()) return wrong("a string");
    out = node.Scalar();
  } else if constexpr (std::is_same_v<M, std::chrono::milliseconds>) {
    if (!node.IsScalar()) return wrong(R"(a duration such as "500ms", "60s", "5m" or "1h")");
    auto v = parse_duration(node.Scalar());
    if (!v) {
      diag.report(site.mark, site.path, v.error());
      return false;
    }
    out = *v;
  } else if constexpr (std::is_same_v<M, ByteSize>) {
    if (!node.IsScalar()) return wrong(R"(a size such as "512Mi" or "1Gi")");
    auto v = parse_byte_size(node.Scalar());
    if (!v) {
      diag.report(site.mark, site.path, v.error());
      return false;
    }
    out = *v;
  } else if constexpr (std::is_enum_v<M>) {
    std::vector<std::string> allowed;
    for (const auto& [name, value] : enum_names(M{})) {
      if (node.IsScalar() && node.Scalar() == name) {
        out = value;
        return true;
      }
      allowed.emplace_back(name);
    }
    diag.report(site.mark, site.path,
                "must be one of " + join_names(allowed) + "; got " + describe_node(node));
    return false;
  } else if constexpr (IsVector<M>::value) {
    if (!node.IsSequence()) return wrong("a list");
    M result;
    bool ok = true;
    std::size_t i = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++i) {
      typename M::value_type element{};
      if (read_value(site.index_child(*it, i), element, diag)) {
        result.push_back(std::move(element));
      } else {
        ok = false;
      }
    }
    out = std::move(result);
    return ok;
  } else if constexpr (IsStringMap<M>::value) {
    if (!node.IsMap()) return wrong("a mapping");
    M result;
    bool ok = true;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const Site entry = site.key_child(it->first, it->second, it->first.Scalar());
      if (!it->first.IsScalar()) {
        diag.report(it->first.Mark(), site.path, "keys must be strings");
        ok = false;
        continue;
      }
      if (result.contains(it->first.Scalar())) {
        diag.report(it->first.Mark(), entry.path, "duplicate key");
        ok = false;
        continue;
      }
      typename M::mapped_type value{};
      if (read_value(entry, value, diag)) {
        result.emplace(it->first.Scalar(), std::move(value));
      } else {
        ok = false;
      }
    }
    out = std::move(result);
    return ok;
  } else {
    return schema_of<M>().read(site, out, diag);
  }
  return true;
}

template <typename T>
class FieldBase {
 public:
  explicit FieldBase(std::string name) : name_(std::move(name)) {}
  virtual ~FieldBase() = default;
  virtual bool read(const Site& site, T& obj, Diagnostics& diag) const = 0;

  const std::string& name() const { return name_; }
  bool is_required() const { return required_; }

 protected:
  std::string name_;
  bool required_ = false;
};

// One field: its key, where it lives in T, and the rules its value must meet. Rules are
// chained: `.required().at_least(0)`. A rule returns an empty string when the value is fine,
// otherwise what is wrong ("must be >= 0, got -1").
template <typename T, typename M>
class Field final : public FieldBase<T> {
 public:
  using Rule = std::function<std::string(const M&)>;

  Field(std::string name, M T::*member) : FieldBase<T>(std::move(name)), member_(member) {}

  Field& required() {
    this->required_ = true;
    return *this;
  }
  Field& check(Rule rule) {
    rules_.push_back(std::move(rule));
    return *this;
  }
  Field& at_least(M bound) {
    return compare(bound, ">=", [](const M& v, const M& b) { return v >= b; });
  }
  Field& greater_than(M bound) {
    return compare(bound, ">", [](const M& v, const M& b) { return v > b; });
  }
  Field& at_most(M bound) {
    return compare(bound, "<=", [](const M& v, const M& b) { return v <= b; });
  }
  Field& less_than(M bound) {
    return compare(bound, "<", [](const M& v, const M& b) { return v < b; });
  }

  bool read(const Site& site, T& obj, Diagnostics& diag) const override {
    M value = obj.*member_;  // nested structs start from their defaults
    if (!read_value(site, value, diag)) return false;
    for (const Rule& rule : rules_) {
      if (std::string problem = rule(value); !problem.empty()) {
        diag.report(site.mark, site.path, problem);
        return false;
      }
    }
    obj.*member_ = std::move(value);
    return true;
  }

 private:
  static std::string show(const M& v) {
    if constexpr (std::is_same_v<M, std::chrono::milliseconds>) {
      return format_duration(v);
    } else if constexpr (std::is_same_v<M, ByteSize>) {
      return format_byte_size(v);
    } else if constexpr (std::is_floating_point_v<M>) {
      return format_number(v);
    } else {
      return std::to_string(v);
    }
  }

  template <typename Cmp>
  Field& compare(M bound, std::string_view op, Cmp ok) {
    return check([bound, op = std::string(op), ok](const M& v) -> std::string {
      if (ok(v, bound)) return "";
      return "must be " + op + " " + show(bound) + ", got " + show(v);
    });
  }

  M T::*member_;
  std::vector<Rule> rules_;
};

template <typename T>
class Schema {
 public:
  using Check = std::function<void(T&, const Checker&)>;

  template <typename M>
  Field<T, M>& field(std::string name, M T::*member) {
    auto owned = std::make_unique<Field<T, M>>(std::move(name), member);
    Field<T, M>& ref = *owned;
    fields_.push_back(std::move(owned));
    return ref;
  }

  // A rule across fields, or a normalization (e.g. a default that depends on another field).
  void check(Check fn) { checks_.push_back(std::move(fn)); }

  bool read(const Site& site, T& out, Diagnostics& diag) const {
    const std::size_t before = diag.count();
    const YAML::Node& node = site.node;
    if (!node.IsNull() && !node.IsMap()) {
      diag.report(site.mark, site.path, "expected a mapping, got " + describe_node(node));
      return false;
    }
    std::vector<bool> seen(fields_.size(), false);
    // Where an empty-valued key sits, so "required field is missing" can point at it.
    std::vector<YAML::Mark> empty_at(fields_.size(), site.mark);
    std::vector<std::string> keys_written;
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;  // a copy: `it->first` is a temporary of the iterator
        const std::string name = key.Scalar();
        if (!key.IsScalar()) {
          diag.report(key.Mark(), site.path, "keys must be strings, got " + describe_node(key));
          continue;
        }
        if (std::find(keys_written.begin(), keys_written.end(), name) != keys_written.end()) {
          diag.report(key.Mark(), site.key_child(key, it->second, name).path, "duplicate key");
          continue;
        }
        keys_written.push_back(name);
        const std::size_t index = find(name);
        if (index == fields_.size()) {
          report_unknown(key, name, site, diag);
          continue;
        }
        if (it->second.IsNull()) {  // an empty value means "use the default"
          empty_at[index] = key.Mark();
          continue;
        }
        seen[index] = true;
        fields_[index]->read(site.key_child(key, it->second, name), out, diag);
      }
    }
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (fields_[i]->is_required() && !seen[i]) {
        diag.report(empty_at[i], join(site.path, fields_[i]->name()), "required field is missing");
      }
    }
    if (diag.count() != before) return false;
    const Checker checker(site, diag);
    for (const Check& check_fn : checks_) check_fn(out, checker);
    return diag.count() == before;
  }

 private:
  static std::string join(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }

  std::size_t find(const std::string& name) const {
    for (std::size_t i = 0; i < fields_.size(); ++i) {
      if (fields_[i]->name() == name) return i;
    }
    return fields_.size();
  }

  void report_unknown(const YAML::Node& key, const std::string& name, const Site& site,
                      Diagnostics& diag) const {
    std::vector<std::string> names;
    for (const auto& f : fields_) names.push_back(f->name());
    std::string message = "unknown key " + quote(name);
    if (std::optional<std::string> near = closest_match(name, names)) {
      message += "; did you mean " + quote(*near) + "?";
    } else {
      message += "; valid keys: " + join_names(names);
    }
    diag.report(key.Mark(), site.path, message);
  }

  std::vector<std::unique_ptr<FieldBase<T>>> fields_;
  std::vector<Check> checks_;
};

// The schema of T, built once from `describe(Schema<T>&)`.
template <typename T>
const Schema<T>& schema_of() {
  static const Schema<T> schema = [] {
    Schema<T> s;
    describe(s);
    return s;
  }();
  return schema;
}

}  // namespace prescale::internal
