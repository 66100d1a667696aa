// The call graph the simulator routes load through: which services call which, and how many
// calls of the callee one request of the caller makes on average (the fan-out). Load enters at
// the entry services and propagates along the fan-outs, so the graph is kept acyclic.
//
// Graphs come from measured per-minute call counts (load_callgraph_dir: the Online Boutique and
// TrainTicket captures in ../shared/data/callgraphs), from explicit edges (make_callgraph, e.g.
// a prescale.yaml topology) or are built in (builtin_topology). docs/traces.md explains how
// fan-outs and the entry's load are estimated and how cycles are broken.
//
// Thread safety: a CallGraph is a value; its const methods are safe to call concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::scaling {

struct CallEdge {
  std::string caller, callee;
  double fanout = 0;               // mean calls of callee per request handled by caller
  double mean_callee_span_ms = 0;  // mean duration of one such call; 0 when unknown
};

struct CallGraph {
  std::vector<std::string> services;  // topologically ordered, entry service(s) first
  std::vector<std::string> entries;   // services with no callers (they receive the trace)
  std::vector<CallEdge> edges;        // ordered by caller, then callee, as in `services`
  // What was left out while building the graph (self-calls, edges dropped to break cycles),
  // one readable line each.
  std::vector<std::string> warnings;

  // Requests per second each service receives when every entry receives `entry_rps`, indexed
  // like `services`. Linear in entry_rps: callers that step often may compute it once for 1.0.
  std::vector<double> service_load(double entry_rps) const;
  int index_of(std::string_view name) const;  // -1 when absent
};

// How load_callgraph_dir estimates the requests an entry service handles, which the call
// counts do not record (only calls between traced services are counted).
enum class EntryLoadEstimate {
  // Per minute, the calls to the entry's busiest callee: one entry request makes at most one
  // call of each callee on average. Right for a backend-for-frontend that calls its busiest
  // dependency once per page; the lowest entry load (most downstream load per entry request)
  // consistent with that assumption.
  kBusiestCallee,
  // Per minute, all calls the entry makes: each entry request makes exactly one call. Right for
  // a routing gateway.
  kAllCalls,
};

struct CallGraphOptions {
  EntryLoadEstimate entry_load = EntryLoadEstimate::kBusiestCallee;
};

// One service and no edges.
Result<CallGraph> single_service_graph(std::string name = "app");

// A graph from explicit edges. Services are the edges' endpoints plus `extra_services`
// (services without edges). Self-calls are dropped with a warning; a cycle, a duplicate edge, an
// empty name or a negative or non-finite fan-out is an error.
Result<CallGraph> make_callgraph(std::vector<CallEdge> edges,
                                 std::vector<std::string> extra_services = {});

// Learns the graph from `dir`/edges-per-minute.csv (columns caller_service, callee_service,
// calls, optional mean_callee_span_us; rows of one minute share date and minute_file).
// fanout(A->B) = sum over minutes of calls(A->B) / sum over minutes of load(A), where load(A) is
// the calls into A, or the EntryLoadEstimate for an entry. Cycles are broken by dropping, in each
// cycle found, the edge with the fewest calls (reported in `warnings`).
Result<CallGraph> load_callgraph_dir(const std::string& dir, const CallGraphOptions& options = {});

// "single", "online-boutique" or "train-ticket"; `data_dir` is the shared data directory
// (../shared/data). Online Boutique's frontend uses kBusiestCallee, TrainTicket's gateway
// kAllCalls (docs/traces.md says why).
Result<CallGraph> builtin_topology(std::string_view name, const std::string& data_dir);

}  // namespace prescale::scaling
