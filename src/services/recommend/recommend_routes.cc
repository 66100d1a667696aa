// The HTTP side of RecommendService: parsing and validating requests, shaping responses.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "http/internal/wire.h"
#include "http/json.h"
#include "services/recommend/recommend_service.h"

namespace prescale::services {
namespace {

using recommend::ScoredItem;

// A JSON integer that is a signed 64-bit one (an unsigned one above INT64_MAX would wrap).
bool fits_int64(const nlohmann::json& v) {
  if (!v.is_number_integer()) return false;
  return !v.is_number_unsigned() ||
         v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

http::Response invalid(std::string_view message) {
  return http::error_response(400, "invalid_argument", message);
}

http::Response error(const Error& e) {
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      return invalid(e.message);
    case ErrorCode::kNotFound:
      return http::error_response(404, "not_found", e.message);
    case ErrorCode::kOutOfRange:
      return http::error_response(507, "limit_exceeded", e.message);
    default:
      return http::error_response(500, "internal", e.message);
  }
}

std::optional<int64_t> parse_int64(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string shown(std::string_view s) {
  std::string out = "\"";
  out.append(s.substr(0, 64));
  if (s.size() > 64) out += "...";
  return out + "\"";
}

// Rejects query parameters other than `allowed`, and any given twice (a misspelt filter, or the
// second half of a list split over two parameters, would otherwise be ignored). Keys are compared
// percent-decoded, as query_param() reads them ("%6B" is k); errors show them as written.
std::optional<std::string> unknown_query_parameter(
    std::string_view query, std::initializer_list<std::string_view> allowed) {
  unsigned seen = 0;  // a bit per allowed name
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::string_view key = pair.substr(0, pair.find('='));
    const auto at = std::find_if(allowed.begin(), allowed.end(), [&](std::string_view name) {
      return http::internal::percent_decoded_equals(key, name, true);
    });
    if (at == allowed.end()) {
      std::string expected;
      for (std::string_view name : allowed) {
        expected += expected.empty() ? (allowed.size() > 1 ? "one of " : "") : ", ";
        expected += name;
      }
      return "query parameter " + shown(key) + ": unknown (expected " + expected + ")";
    }
    const unsigned bit = 1U << static_cast<unsigned>(at - allowed.begin());
    if ((seen & bit) != 0) {
      return "query parameter " + shown(key) +
             ": given twice (list several ids in one, comma-separated)";
    }
    seen |= bit;
  }
  return std::nullopt;
}

Result<size_t> parse_k(const http::Request& req, int default_k, int max_k) {
  auto k = req.query_param("k");
  if (!k) return static_cast<size_t>(default_k);
  auto v = parse_int64(*k);
  if (!v || *v < 1 || *v > max_k) {
    return make_error(ErrorCode::kInvalidArgument, "query parameter k: expected an integer in 1.." +
                                                       std::to_string(max_k) + ", got " +
                                                       shown(*k));
  }
  return static_cast<size_t>(*v);
}

// "1,2,3" → ids; at most `max` of them.
Result<std::vector<int64_t>> parse_id_list(const http::Request& req, const char* name, size_t max) {
  std::vector<int64_t> ids;
  auto text = req.query_param(name);
  if (!text || text->empty()) return ids;
  std::string_view rest = *text;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view part = rest.substr(0, comma);
    auto id = parse_int64(part);
    if (!id) {
      return make_error(ErrorCode::kInvalidArgument,
                        std::string("query parameter ") + name + "[" + std::to_string(ids.size()) +
                            "]: expected an integer item id, got " + shown(part));
    }
    if (ids.size() == max) {
      return make_error(ErrorCode::kInvalidArgument, std::string("query parameter ") + name +
                                                         ": more than " + std::to_string(max) +
                                                         " item ids");
    }
    ids.push_back(*id);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return ids;
}

// The POST form's body: {"k": N, "exclude": [ids], "include": [ids]}, each optional; for filter
// lists too long for a URL.
Result<RecommendQuery> parse_query_body(std::string_view body, const RecommendServiceOptions& o) {
  auto json = http::parse_json(body);
  if (!json) return std::unexpected(json.error());
  if (!json->is_object())
    return make_error(ErrorCode::kInvalidArgument, "body: expected a JSON object");
  RecommendQuery q;
  q.k = static_cast<size_t>(o.default_k);
  for (const auto& [key, value] : json->items()) {
    if (key == "k") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
          value.get<int64_t>() > o.max_k) {
        return make_error(
            ErrorCode::kInvalidArgument,
            "k: expected an integer in 1.." + std::to_string(o.max_k) + ", got " + value.dump());
      }
      q.k = static_cast<size_t>(value.get<int64_t>());
    } else if (key == "exclude" || key == "include") {
      if (!value.is_array()) {
        return make_error(ErrorCode::kInvalidArgument, key + ": expected an array of item ids");
      }
      if (value.size() > o.max_filter_items) {
        return make_error(ErrorCode::kInvalidArgument,
                          key + ": more than " + std::to_string(o.max_filter_items) + " item ids");
      }
      std::vector<int64_t>& ids = key == "exclude" ? q.exclude : q.include;
      ids.reserve(value.size());
      for (size_t i = 0; i < value.size(); ++i) {
        if (!fits_int64(value[i])) {
          return make_error(ErrorCode::kInvalidArgument,
                            key + "[" + std::to_string(i) + "]: expected an integer item id, got " +
                                value[i].dump());
        }
        ids.push_back(value[i].get<int64_t>());
      }
    } else {
      return make_error(ErrorCode::kInvalidArgument,
                        key + ": unknown field (expected k, exclude, include)");
    }
  }
  return q;
}

Result<int64_t> path_id(const http::Request& req, const char* what) {
  const std::string_view text = *req.param("id");
  auto id = parse_int64(text);
  if (!id) {
    return make_error(ErrorCode::kInvalidArgument, std::string("path parameter id: expected an "
                                                               "integer ") +
                                                       what + " id, got " + shown(text));
  }
  return *id;
}

nlohmann::json items_json(const std::vector<ScoredItem>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const ScoredItem& s : items) out.push_back({{"item", s.item}, {"score", s.score}});
  return out;
}

// A user's recommendations, as both forms of the endpoint answer them.
http::Response recommendations_answer(int64_t user, const Recommendations& r) {
  return http::json_response(200, {{"user", user},
                                   {"model", recommend::to_string(r.model_kind)},
                                   {"model_version", r.model_version},
                                   {"cold_start", r.cold_start},
                                   {"items", items_json(r.items)}});
}

// One interaction object; `at` is its path in the body ("" or "interactions[3].").
Result<PostedInteraction> parse_interaction(const nlohmann::json& j, const std::string& at,
                                            float max_weight) {
  auto fail = [&](const std::string& field, const std::string& problem) {
    return make_error(ErrorCode::kInvalidArgument, at + field + ": " + problem);
  };
  if (!j.is_object()) {
    return make_error(ErrorCode::kInvalidArgument,
                      (at.empty() ? std::string("body") : at.substr(0, at.size() - 1)) +
                          ": expected an object with user, item and optional weight, timestamp");
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "user" && key != "item" && key != "weight" && key != "timestamp") {
      return fail(key, "unknown field");
    }
  }
  PostedInteraction x;
  for (const char* field : {"user", "item"}) {
    if (!j.contains(field)) return fail(field, "missing");
    const nlohmann::json& v = j.at(field);
    if (!fits_int64(v)) return fail(field, "expected an integer id");
    (std::string_view(field) == "user" ? x.user : x.item) = v.get<int64_t>();
  }
  if (j.contains("weight")) {
    const nlohmann::json& v = j.at("weight");
    const double w = v.is_number() ? v.get<double>() : -1;
    if (!v.is_number() || !(w > 0 && w <= max_weight)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "expected a number in (0, %g]", max_weight);
      return fail("weight", buf);
    }
    x.weight = static_cast<float>(w);
    if (!(x.weight > 0)) {  // kept as a 32-bit float, where it would be 0
      char buf[64];
      std::snprintf(buf, sizeof buf, "expected at least %g", std::numeric_limits<float>::min());
      return fail("weight", buf);
    }
  }
  if (j.contains("timestamp")) {
    const nlohmann::json& v = j.at("timestamp");
    if (!fits_int64(v)) return fail("timestamp", "expected Unix seconds (an integer)");
    x.timestamp = v.get<int64_t>();
  }
  return x;
}

Result<std::vector<PostedInteraction>> parse_interactions(std::string_view body,
                                                          const RecommendServiceOptions& o) {
  auto json = http::parse_json(body);
  if (!json) return std::unexpected(json.error());
  if (!json->is_object()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "body: expected a JSON object: an interaction or {\"interactions\": [...]}");
  }
  std::vector<PostedInteraction> out;
  if (!json->contains("interactions")) {
    auto x = parse_interaction(*json, "", o.max_weight);
    if (!x) return std::unexpected(x.error());
    out.push_back(*x);
    return out;
  }
  for (const auto& [key, value] : json->items()) {
    if (key != "interactions") {
      return make_error(ErrorCode::kInvalidArgument,
                        key + ": unknown field (a batch has only \"interactions\")");
    }
  }
  const nlohmann::json& list = json->at("interactions");
  if (!list.is_array() || list.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "interactions: expected a non-empty array of interactions");
  }
  if (list.size() > o.max_batch) {
    return make_error(ErrorCode::kInvalidArgument,
                      "interactions: " + std::to_string(list.size()) + " items, at most " +
                          std::to_string(o.max_batch) + " per request");
  }
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    auto x = parse_interaction(list[i], "interactions[" + std::to_string(i) + "].", o.max_weight);
    if (!x) return std::unexpected(x.error());
    out.push_back(*x);
  }
  return out;
}

}  // namespace

void RecommendService::register_routes(runtime::Routes& routes) {
  routes.get("/v1/users/{id}/recommendations",
             [this](http::Request& req, const http::Responder& respond) {
               const RecommendServiceOptions& o = options();
               if (auto bad = unknown_query_parameter(req.query, {"k", "exclude", "include"})) {
                 return respond(invalid(*bad));
               }
               RecommendQuery q;
               auto user = path_id(req, "user");
               if (!user) return respond(error(user.error()));
               q.user = *user;
               auto k = parse_k(req, o.default_k, o.max_k);
               if (!k) return respond(error(k.error()));
               q.k = *k;
               auto exclude = parse_id_list(req, "exclude", o.max_filter_items);
               if (!exclude) return respond(error(exclude.error()));
               q.exclude = std::move(*exclude);
               auto include = parse_id_list(req, "include", o.max_filter_items);
               if (!include) return respond(error(include.error()));
               q.include = std::move(*include);
               auto r = recommend(q);
               if (!r) return respond(error(r.error()));
               respond(recommendations_answer(q.user, *r));
             });

  // The same, its filters in a JSON body: exclude and include lists of up to max_filter_items
  // ids do not fit in a URL under the server's header limit (about 3,000 ids in 16 KiB).
  routes.post("/v1/users/{id}/recommendations",
              [this](http::Request& req, const http::Responder& respond) {
                auto user = path_id(req, "user");
                if (!user) return respond(error(user.error()));
                if (!req.query.empty()) {
                  return respond(
                      invalid("query parameters: none are taken with POST (the "
                              "filters go in the body)"));
                }
                auto q = parse_query_body(req.body, options());
                if (!q) return respond(error(q.error()));
                q->user = *user;
                auto r = recommend(*q);
                if (!r) return respond(error(r.error()));
                respond(recommendations_answer(q->user, *r));
              });

  routes.post("/v1/interactions", [this](http::Request& req, const http::Responder& respond) {
    auto list = parse_interactions(req.body, options());
    if (!list) return respond(error(list.error()));
    auto r = add_interactions(*list);
    if (!r) return respond(error(r.error()));
    respond(http::json_response(200, {{"accepted", r->accepted},
                                      {"ignored_unknown_items", r->ignored_unknown_items},
                                      {"users", r->users},
                                      {"model_version", r->model_version}}));
  });

  routes.get("/v1/items/{id}/similar", [this](http::Request& req, const http::Responder& respond) {
    const RecommendServiceOptions& o = options();
    if (auto bad = unknown_query_parameter(req.query, {"k"})) return respond(invalid(*bad));
    auto item = path_id(req, "item");
    if (!item) return respond(error(item.error()));
    auto k = parse_k(req, o.default_k, o.max_k);
    if (!k) return respond(error(k.error()));
    auto r = similar(*item, *k);
    if (!r) return respond(error(r.error()));
    respond(http::json_response(200, {{"item", *item},
                                      {"model", recommend::to_string(r->model_kind)},
                                      {"model_version", r->model_version},
                                      {"items", items_json(r->items)}}));
  });

  routes.get("/v1/model", [this](http::Request&, const http::Responder& respond) {
    const auto m = model();
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& [name, value] : m->metrics()) metrics[name] = value;
    respond(http::json_response(200, {{"model", recommend::to_string(m->kind())},
                                      {"model_version", m->version_label()},
                                      {"created_at", m->created_at()},
                                      {"data_hash", m->data_hash()},
                                      {"trained_through", m->trained_through()},
                                      {"users", m->user_count()},
                                      {"items", m->item_count()},
                                      {"metrics", metrics}}));
  });

  routes.post("/v1/model/reload", [this](http::Request&, const http::Responder& respond) {
    auto r = reload();
    if (!r) return respond(http::error_response(500, "reload_failed", r.error().message));
    respond(
        http::json_response(200, {{"reloaded", *r}, {"model_version", model()->version_label()}}));
  });
}

}  // namespace prescale::services
