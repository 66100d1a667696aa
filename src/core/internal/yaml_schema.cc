#include "core/internal/yaml_schema.h"

namespace prescale::internal {

void Diagnostics::report(const YAML::Mark& mark, std::string_view path, std::string_view message) {
  std::string line = source_;
  if (!mark.is_null()) {
    // yaml-cpp counts from 0; editors count from 1.
    // (Appended piecewise: GCC 12 warns falsely on `":" + std::to_string(...)`.)
    line += ':';
    line += std::to_string(mark.line + 1);
    line += ':';
    line += std::to_string(mark.column + 1);
  }
  line += ": ";
  if (!path.empty()) {
    line += path;
    line += ": ";
  }
  line += message;
  errors_.push_back(std::move(line));
}

std::string Diagnostics::joined(std::size_t limit) const {
  std::string out;
  for (std::size_t i = 0; i < errors_.size() && i < limit; ++i) {
    if (i > 0) out += '\n';
    out += errors_[i];
  }
  if (errors_.size() > limit) {
    out += "\n... and " + std::to_string(errors_.size() - limit) + " more errors";
  }
  return out;
}

Site Site::key_child(const YAML::Node& key, const YAML::Node& value, std::string_view name) const {
  std::string child_path = path.empty() ? std::string(name) : path + "." + std::string(name);
  // An empty value has no useful position of its own; its key has.
  const YAML::Mark child_mark = value.IsNull() ? key.Mark() : value.Mark();
  return Site{value, std::move(child_path), child_mark.is_null() ? mark : child_mark};
}

Site Site::index_child(const YAML::Node& value, std::size_t index) const {
  const YAML::Mark child_mark = value.Mark();
  return Site{value, path + "[" + std::to_string(index) + "]",
              child_mark.is_null() ? mark : child_mark};
}

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "nothing";
}

Checker Checker::at(std::string_view key) const {
  if (site_.node.IsMap()) {
    for (auto it = site_.node.begin(); it != site_.node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        return Checker(site_.key_child(it->first, it->second, key), *diag_);
      }
    }
  }
  std::string child_path =
      site_.path.empty() ? std::string(key) : site_.path + "." + std::string(key);
  return Checker(Site{YAML::Node(), std::move(child_path), site_.mark}, *diag_);
}

Checker Checker::at(std::size_t index) const {
  if (site_.node.IsSequence() && index < site_.node.size()) {
    std::size_t i = 0;
    for (auto it = site_.node.begin(); it != site_.node.end(); ++it, ++i) {
      if (i == index) return Checker(site_.index_child(*it, index), *diag_);
    }
  }
  return Checker(Site{YAML::Node(), site_.path + "[" + std::to_string(index) + "]", site_.mark},
                 *diag_);
}

Checker Checker::key(std::string_view key) const {
  Checker child = at(key);
  if (site_.node.IsMap()) {
    for (auto it = site_.node.begin(); it != site_.node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) child.site_.mark = it->first.Mark();
    }
  }
  return child;
}

bool Checker::has(std::string_view key) const {
  if (!site_.node.IsMap()) return false;
  for (auto it = site_.node.begin(); it != site_.node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return !it->second.IsNull();
  }
  return false;
}

}  // namespace prescale::internal
