#include "scaling/callgraph.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <utility>

#include "core/text_file.h"
#include "forecast/csv.h"

namespace prescale::scaling {

using forecast::CsvReader;

int CallGraph::index_of(std::string_view name) const {
  for (size_t i = 0; i < services.size(); ++i) {
    if (services[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<double> CallGraph::service_load(double entry_rps) const {
  std::unordered_map<std::string_view, size_t> index;
  for (size_t i = 0; i < services.size(); ++i) index.emplace(services[i], i);
  std::vector<double> load(services.size(), 0.0);
  for (const auto& entry : entries) {
    if (auto it = index.find(entry); it != index.end()) load[it->second] = entry_rps;
  }
  // A caller's load is complete once every edge into it is added; callers earlier in the
  // topological order come first.
  std::vector<std::pair<size_t, const CallEdge*>> by_caller;
  by_caller.reserve(edges.size());
  for (const auto& edge : edges) {
    auto caller = index.find(edge.caller);
    if (caller != index.end() && index.contains(edge.callee)) {
      by_caller.emplace_back(caller->second, &edge);
    }
  }
  std::stable_sort(by_caller.begin(), by_caller.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [caller, edge] : by_caller) {
    load[index.at(edge->callee)] += edge->fanout * load[caller];
  }
  return load;
}

namespace {

// Services and edges by index, the working form while a graph is built.
struct IndexedEdge {
  size_t caller, callee;
  CallEdge edge;
};

// A cycle as service indices [a, b, ..., z] meaning a->b->...->z->a, or nullopt.
std::optional<std::vector<size_t>> find_cycle(size_t service_count,
                                              const std::vector<IndexedEdge>& edges) {
  std::vector<std::vector<size_t>> out(service_count);
  for (const auto& e : edges) out[e.caller].push_back(e.callee);
  enum Color { kWhite, kGrey, kBlack };
  std::vector<Color> color(service_count, kWhite);
  std::vector<size_t> path;
  std::optional<std::vector<size_t>> cycle;
  std::function<void(size_t)> visit = [&](size_t v) {
    color[v] = kGrey;
    path.push_back(v);
    for (size_t w : out[v]) {
      if (cycle) return;
      if (color[w] == kGrey) {
        cycle.emplace(std::find(path.begin(), path.end(), w), path.end());
        return;
      }
      if (color[w] == kWhite) visit(w);
    }
    path.pop_back();
    color[v] = kBlack;
  };
  for (size_t v = 0; v < service_count && !cycle; ++v) {
    if (color[v] == kWhite) visit(v);
  }
  return cycle;
}

std::string describe_cycle(const std::vector<size_t>& cycle,
                           const std::vector<std::string>& names) {
  std::string text;
  for (size_t v : cycle) text += names[v] + " -> ";
  return text + names[cycle.front()];
}

// Orders an acyclic graph: entries (no callers) first, by name, then the others in
// topological order, ties by name; edges by caller, then callee.
CallGraph finish(const std::vector<std::string>& names, std::vector<IndexedEdge> edges,
                 std::vector<std::string> warnings) {
  const size_t n = names.size();
  std::vector<int> in_degree(n, 0);
  std::vector<std::vector<size_t>> out(n);
  for (const auto& e : edges) {
    ++in_degree[e.callee];
    out[e.caller].push_back(e.callee);
  }
  auto by_name = [&names](size_t a, size_t b) { return names[a] > names[b]; };
  std::vector<size_t> entries;
  for (size_t v = 0; v < n; ++v) {
    if (in_degree[v] == 0) entries.push_back(v);
  }
  std::sort(entries.begin(), entries.end(),
            [&names](size_t a, size_t b) { return names[a] < names[b]; });
  std::priority_queue<size_t, std::vector<size_t>, decltype(by_name)> ready(by_name);
  std::vector<size_t> order;
  auto emit = [&](size_t v) {
    order.push_back(v);
    for (size_t w : out[v]) {
      if (--in_degree[w] == 0) ready.push(w);
    }
  };
  for (size_t v : entries) emit(v);
  while (!ready.empty()) {
    size_t v = ready.top();
    ready.pop();
    emit(v);
  }
  std::vector<size_t> position(n);
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  std::sort(edges.begin(), edges.end(), [&position](const IndexedEdge& a, const IndexedEdge& b) {
    return std::pair(position[a.caller], position[a.callee]) <
           std::pair(position[b.caller], position[b.callee]);
  });

  CallGraph graph;
  for (size_t v : order) graph.services.push_back(names[v]);
  for (size_t v : entries) graph.entries.push_back(names[v]);
  for (auto& e : edges) graph.edges.push_back(std::move(e.edge));
  graph.warnings = std::move(warnings);
  return graph;
}

// Interns service names in order of first appearance.
class ServiceNames {
 public:
  size_t intern(std::string_view name) {
    auto [it, inserted] = index_.try_emplace(std::string(name), names_.size());
    if (inserted) names_.emplace_back(name);
    return it->second;
  }
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::string> names_;
};

std::string format_calls(double calls) {
  if (calls == std::floor(calls) && calls < 1e15) {
    return std::to_string(static_cast<long long>(calls));
  }
  return std::to_string(calls);
}

}  // namespace

Result<CallGraph> single_service_graph(std::string name) {
  if (name.empty()) return make_error(ErrorCode::kInvalidArgument, "service name is empty");
  CallGraph graph;
  graph.services = {name};
  graph.entries = {std::move(name)};
  return graph;
}

Result<CallGraph> make_callgraph(std::vector<CallEdge> edges,
                                 std::vector<std::string> extra_services) {
  ServiceNames names;
  std::vector<IndexedEdge> indexed;
  std::vector<std::string> warnings;
  std::set<std::pair<size_t, size_t>> seen;
  for (auto& edge : edges) {
    if (edge.caller.empty() || edge.callee.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "call edge with an empty service name");
    }
    std::string name = edge.caller + " -> " + edge.callee;
    if (!std::isfinite(edge.fanout) || edge.fanout < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "call edge " + name + ": fan-out must be a finite number >= 0, got " +
                            std::to_string(edge.fanout));
    }
    if (!std::isfinite(edge.mean_callee_span_ms) || edge.mean_callee_span_ms < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "call edge " + name + ": mean callee span must be >= 0 ms");
    }
    size_t caller = names.intern(edge.caller);
    size_t callee = names.intern(edge.callee);
    if (caller == callee) {
      warnings.push_back("ignored self-call " + name +
                         " (it does not change the load other services see)");
      continue;
    }
    if (seen.contains({caller, callee})) {
      return make_error(ErrorCode::kInvalidArgument, "call edge " + name + " is listed twice");
    }
    seen.insert({caller, callee});
    indexed.push_back({caller, callee, std::move(edge)});
  }
  for (const auto& service : extra_services) {
    if (service.empty()) return make_error(ErrorCode::kInvalidArgument, "service name is empty");
    names.intern(service);
  }
  if (names.names().empty()) {
    return make_error(ErrorCode::kInvalidArgument, "a call graph needs at least one service");
  }
  if (auto cycle = find_cycle(names.names().size(), indexed)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "call graph has a cycle: " + describe_cycle(*cycle, names.names()));
  }
  return finish(names.names(), std::move(indexed), std::move(warnings));
}

namespace {

// Calls measured on one edge over the whole capture.
struct Measured {
  double calls = 0, span_weighted_us = 0, span_calls = 0;
  std::map<size_t, double> calls_by_minute;
};

struct EdgeCounts {
  ServiceNames names;
  std::map<std::pair<size_t, size_t>, Measured> measured;  // ordered: deterministic output
  std::map<std::string, double> self_calls;
};

Result<EdgeCounts> read_edge_counts(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());

  CsvReader csv(*text, path);
  std::vector<std::string_view> header, fields;
  if (!csv.next(header)) {
    return make_error(ErrorCode::kInvalidArgument, path + ": empty file (expected a header row)");
  }
  auto caller_col = forecast::find_column(header, "caller_service");
  auto callee_col = forecast::find_column(header, "callee_service");
  auto calls_col = forecast::find_column(header, "calls");
  auto span_col = forecast::find_column(header, "mean_callee_span_us");
  if (!caller_col || !callee_col || !calls_col) {
    return std::unexpected(
        csv.error("bad header: expected columns caller_service, callee_service and calls"));
  }
  // Rows of one minute share these columns' values.
  std::vector<size_t> minute_cols;
  for (auto name : {"date", "minute_file", "minute", "timestamp"}) {
    if (auto col = forecast::find_column(header, name)) minute_cols.push_back(*col);
  }
  size_t needed = 1 + std::max({*caller_col, *callee_col, *calls_col, span_col.value_or(0)});
  for (size_t col : minute_cols) needed = std::max(needed, col + 1);

  EdgeCounts counts;
  std::map<std::string, size_t, std::less<>> minutes;
  while (csv.next(fields)) {
    if (fields.size() < needed) {
      return std::unexpected(csv.error("expected " + std::to_string(header.size()) +
                                       " fields like the header, got " +
                                       std::to_string(fields.size())));
    }
    std::string_view caller = fields[*caller_col], callee = fields[*callee_col];
    for (size_t col : {*caller_col, *callee_col}) {
      if (fields[col].empty()) {
        return std::unexpected(csv.field_error(header, col, "a service name", ""));
      }
    }
    auto calls = forecast::parse_number(fields[*calls_col]);
    if (!calls || *calls < 0) {
      return std::unexpected(
          csv.field_error(header, *calls_col, "a non-negative call count", fields[*calls_col]));
    }
    std::optional<double> span_us;
    if (span_col && !fields[*span_col].empty()) {
      span_us = forecast::parse_number(fields[*span_col]);
      if (!span_us || *span_us < 0) {
        return std::unexpected(
            csv.field_error(header, *span_col, "a non-negative duration", fields[*span_col]));
      }
    }
    if (caller == callee) {
      counts.names.intern(caller);
      counts.self_calls[std::string(caller)] += *calls;
      continue;
    }
    std::string minute_key;
    for (size_t col : minute_cols) {
      minute_key += fields[col];
      minute_key += '\x1f';
    }
    size_t minute = minutes.try_emplace(minute_key, minutes.size()).first->second;
    Measured& m = counts.measured[{counts.names.intern(caller), counts.names.intern(callee)}];
    m.calls += *calls;
    m.calls_by_minute[minute] += *calls;
    if (span_us) {
      m.span_weighted_us += *span_us * *calls;
      m.span_calls += *calls;
    }
  }
  return counts;
}

}  // namespace

Result<CallGraph> load_callgraph_dir(const std::string& dir, const CallGraphOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return make_error(ErrorCode::kNotFound, dir + ": no such call-graph directory");
  }
  const std::string path = dir + "/edges-per-minute.csv";
  auto counts = read_edge_counts(path);
  if (!counts) return std::unexpected(counts.error());
  const auto& all_names = counts->names.names();
  const auto& measured = counts->measured;

  std::vector<std::string> warnings;
  for (const auto& [service, calls] : counts->self_calls) {
    warnings.push_back("ignored " + format_calls(calls) + " self-calls of " + service +
                       " (they do not change the load other services see)");
  }
  std::vector<std::pair<size_t, size_t>> kept;
  for (const auto& [key, m] : measured) {
    if (m.calls > 0) {
      kept.push_back(key);
    } else {
      warnings.push_back("ignored " + all_names[key.first] + " -> " + all_names[key.second] +
                         ": no calls recorded");
    }
  }
  // Break cycles: in each cycle found, drop the edge with the fewest calls (the back edge of
  // the dominant direction of traffic).
  for (;;) {
    std::vector<IndexedEdge> probe;
    for (const auto& [a, b] : kept) probe.push_back({a, b, {}});
    auto cycle = find_cycle(all_names.size(), probe);
    if (!cycle) break;
    size_t weakest = 0;
    double fewest = -1;
    for (size_t i = 0; i < cycle->size(); ++i) {
      std::pair<size_t, size_t> key{(*cycle)[i], (*cycle)[(i + 1) % cycle->size()]};
      double calls = measured.at(key).calls;
      if (fewest < 0 || calls < fewest) {
        fewest = calls;
        weakest = i;
      }
    }
    std::pair<size_t, size_t> drop{(*cycle)[weakest], (*cycle)[(weakest + 1) % cycle->size()]};
    warnings.push_back("dropped " + all_names[drop.first] + " -> " + all_names[drop.second] + " (" +
                       format_calls(fewest) + " calls) to break the cycle " +
                       describe_cycle(*cycle, all_names));
    kept.erase(std::find(kept.begin(), kept.end(), drop));
  }
  if (kept.empty()) {
    return make_error(ErrorCode::kInvalidArgument, path + ": no calls between distinct services");
  }

  // Services are those joined by a kept edge; a service seen only in ignored rows is reported.
  std::vector<bool> connected(all_names.size(), false);
  std::vector<bool> has_caller(all_names.size(), false);
  for (const auto& [a, b] : kept) {
    connected[a] = connected[b] = true;
    has_caller[b] = true;
  }
  ServiceNames services;
  std::vector<size_t> renumber(all_names.size(), 0);
  for (size_t v = 0; v < all_names.size(); ++v) {
    if (connected[v]) renumber[v] = services.intern(all_names[v]);
  }
  for (size_t v = 0; v < all_names.size(); ++v) {
    if (!connected[v]) {
      warnings.push_back("left out " + all_names[v] + ": no calls to or from other services");
    }
  }

  // Load of each service over the whole capture: calls into it, or the entry estimate.
  std::vector<double> load(all_names.size(), 0.0);
  std::vector<std::map<size_t, double>> entry_minutes(all_names.size());
  for (const auto& [a, b] : kept) {
    const Measured& m = measured.at({a, b});
    load[b] += m.calls;
    if (has_caller[a]) continue;
    for (const auto& [minute, calls] : m.calls_by_minute) {
      double& slot = entry_minutes[a][minute];
      slot =
          options.entry_load == EntryLoadEstimate::kAllCalls ? slot + calls : std::max(slot, calls);
    }
  }
  for (size_t v = 0; v < all_names.size(); ++v) {
    if (connected[v] && !has_caller[v]) {
      for (const auto& [minute, calls] : entry_minutes[v]) load[v] += calls;
    }
  }

  std::vector<IndexedEdge> edges;
  for (const auto& [a, b] : kept) {
    const Measured& m = measured.at({a, b});
    CallEdge edge{all_names[a], all_names[b], m.calls / load[a],
                  m.span_calls > 0 ? m.span_weighted_us / m.span_calls / 1000.0 : 0.0};
    edges.push_back({renumber[a], renumber[b], std::move(edge)});
  }
  return finish(services.names(), std::move(edges), std::move(warnings));
}

Result<CallGraph> builtin_topology(std::string_view name, const std::string& data_dir) {
  if (name == "single") return single_service_graph("app");
  if (name == "online-boutique") {
    // The frontend is a backend-for-frontend: one page calls several services.
    return load_callgraph_dir(data_dir + "/callgraphs/online-boutique",
                              {.entry_load = EntryLoadEstimate::kBusiestCallee});
  }
  if (name == "train-ticket") {
    // ts-gateway-service routes each request to exactly one backend service.
    return load_callgraph_dir(data_dir + "/callgraphs/train-ticket",
                              {.entry_load = EntryLoadEstimate::kAllCalls});
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown topology \"" + std::string(name) +
                        "\"; built-in topologies are single, online-boutique and train-ticket");
}

}  // namespace prescale::scaling
