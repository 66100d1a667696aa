// Dashboard: the live web UI and its JSON API, served from a DashboardModel.
//
//   GET /ui, /ui/{file...}    the single-page UI (files compiled into the binary); "/" and "/ui/"
//                             redirect to /ui
//   GET /api/v1/overview      run totals
//   GET /api/v1/services      every service with its latest point and decision
//   GET /api/v1/services/{name}[?since=T]   one service's series (points after T) and forecast
//   GET /api/v1/graph         the learned call graph
//   GET /api/v1/events[?since=T][&after_id=N]   the timeline, newest first
// Field names and error shapes: docs/dashboard.md. API answers carry Cache-Control: no-cache.
//
// Thread safety: add_routes() is called once while wiring the router; the handlers it registers
// only read the model and may run on any number of threads. The model must outlive them.
#pragma once

#include "dashboard/dashboard_model.h"
#include "http/router.h"

namespace prescale::dashboard {

class Dashboard {
 public:
  explicit Dashboard(const DashboardModel& model) : model_(model) {}

  // Registers the routes above. The handlers refer to the model, not to this object.
  void add_routes(http::Router& router) const;

 private:
  const DashboardModel& model_;
};

}  // namespace prescale::dashboard
