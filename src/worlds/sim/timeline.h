// A run's timeline as CSV (`prescale sim --timeline`): one row per policy, service and record
// interval, with the interval's records and the last replica-count change the controller applied
// to the service in it. Columns: docs/simulator.md, "prescale sim --timeline columns".
#pragma once

#include <ostream>

#include "worlds/sim/experiment.h"

namespace prescale::sim {

// Needs the runs' records and events: run_experiment() with ExperimentOptions::keep_timeline.
void write_timeline_csv(std::ostream& out, const ExperimentResult& result);

}  // namespace prescale::sim
