#include "services/recommend/recommend_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "core/text_file.h"
#include "http/json.h"
#include "services/recommend/model_file.h"
#include "services/recommend/user_store.h"
#include "telemetry/registry.h"

namespace prescale::services {

using recommend::ItemWeight;
using recommend::Model;
using recommend::ScoredItem;

namespace {

// The training history merged with posted events of known items (weights of one item summed),
// sorted by item index.
std::vector<ItemWeight> merged_history(const Model& model, std::span<const ItemWeight> trained,
                                       std::span<const recommend::PostedEvent> events) {
  std::vector<ItemWeight> all(trained.begin(), trained.end());
  for (const recommend::PostedEvent& e : events) {
    if (auto i = model.item_index(e.item)) all.push_back({*i, e.weight});
  }
  std::sort(all.begin(), all.end(),
            [](const ItemWeight& a, const ItemWeight& b) { return a.item < b.item; });
  std::vector<ItemWeight> out;
  out.reserve(all.size());
  for (const ItemWeight& e : all) {
    if (!out.empty() && out.back().item == e.item) {
      out.back().weight += e.weight;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

// The model's indices of the known ids, each once (an id listed twice is one item).
std::vector<int32_t> known_items(const Model& model, const std::vector<int64_t>& ids) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    if (auto i = model.item_index(id)) out.push_back(*i);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The manifest's path, and its and its data file's (the one it names) size and time: when they
// differ from those of the served model, the files hold another model, even under the same
// version (recommend-v2.* deleted and a new v2 trained).
std::string files_stamp(const std::string& manifest) {
  std::string out = manifest;
  std::filesystem::path data(manifest);
  data.replace_extension(".bin");
  if (auto text = read_text_file(manifest)) {
    if (auto json = http::parse_json(*text);
        json && json->is_object() && json->contains("file") && (*json)["file"].is_string()) {
      data = std::filesystem::path(manifest).parent_path() / (*json)["file"].get<std::string>();
    }
  }
  for (const std::filesystem::path& p : {std::filesystem::path(manifest), data}) {
    std::error_code size_ec, time_ec;
    const auto size = std::filesystem::file_size(p, size_ec);
    const auto time = std::filesystem::last_write_time(p, time_ec);
    out += "|" + (size_ec ? std::string("-") : std::to_string(size)) + "@" +
           (time_ec ? std::string("-") : std::to_string(time.time_since_epoch().count()));
  }
  return out;
}

}  // namespace

// EASE history scores of users with long histories, for one model: computing them costs a row
// of B per history item, reading them a lookup. An entry is for the user's revision in the
// UserStore (0: the training history alone). Bounded in bytes; once full, other users are scored
// per request.
class ScoreCache {
 public:
  explicit ScoreCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  std::shared_ptr<const std::vector<float>> find(int64_t user, uint64_t revision) const {
    std::shared_lock lock(mu_);
    auto it = entries_.find(user);
    return it == entries_.end() || it->second.revision != revision ? nullptr : it->second.scores;
  }
  void insert(int64_t user, uint64_t revision, std::shared_ptr<const std::vector<float>> scores) {
    const size_t bytes = scores->size() * sizeof(float);
    std::unique_lock lock(mu_);
    auto it = entries_.find(user);
    if (it != entries_.end()) {
      bytes_ -= it->second.scores->size() * sizeof(float);
      entries_.erase(it);
    }
    if (bytes_ + bytes > max_bytes_) return;
    entries_.emplace(user, Entry{revision, std::move(scores)});
    bytes_ += bytes;
  }

 private:
  struct Entry {
    uint64_t revision = 0;
    std::shared_ptr<const std::vector<float>> scores;
  };
  const size_t max_bytes_;
  mutable std::shared_mutex mu_;
  std::unordered_map<int64_t, Entry> entries_;
  size_t bytes_ = 0;
};

// The served model with the generation number that tags per-user caches computed from it.
struct RecommendService::Served {
  std::shared_ptr<const Model> model;
  uint64_t generation = 0;
  std::shared_ptr<ScoreCache> scores;  // EASE only
};

class RecommendService::Impl {
 public:
  Impl(std::shared_ptr<const Model> model, RecommendServiceOptions o,
       std::optional<std::string> model_files)
      : options(std::move(o)),
        users(options.max_users, options.max_events_per_user),
        served_files(std::move(model_files)) {
    served.store(std::make_shared<const Served>(make_served(std::move(model), 1)));
    if (options.registry != nullptr) {
      telemetry::Registry& r = *options.registry;
      model_info = &r.gauge("prescale_model_info", "The model a service serves: 1 for its version",
                            {"service", "version"});
      ignored_unknown = &r.counter("prescale_recommend_ignored_unknown_items_total",
                                   "Posted interactions ignored: the item is not in the model")
                             .with();
      accepted = &r.counter("prescale_recommend_interactions_total",
                            "Posted interactions folded into users' recommendations")
                      .with();
      cold_starts = &r.counter("prescale_recommend_cold_starts_total",
                               "Recommendations for users without interactions (popular items)")
                         .with();
      reloads = &r.counter("prescale_recommend_reloads_total",
                           "Model reloads by result (ok, error)", {"result"});
      tracked_users = &r.gauge("prescale_recommend_users_with_interactions",
                               "Users with interactions posted since the model was trained")
                           .with();
      model_info->with({"recommend", current()->model->version_label()}).set(1);
    }
    next_poll = options.clock->now();
    if (options.poll_interval.count() > 0 && options.background_poll) {
      poller = std::thread([this] { poll_loop(); });
    }
  }

  ~Impl() { stop(); }

  void stop() {
    stopping.store(true, std::memory_order_release);
    if (poller.joinable()) poller.join();
  }

  std::shared_ptr<const Served> current() const { return served.load(); }

  Served make_served(std::shared_ptr<const Model> model, uint64_t generation) const {
    Served s{std::move(model), generation, nullptr};
    if (s.model->kind() == recommend::ModelKind::kEase && options.score_cache_bytes > 0) {
      s.scores = std::make_shared<ScoreCache>(options.score_cache_bytes);
    }
    return s;
  }

  // What the model takes as Query::factors for the user's `history`: ALS factors (trained,
  // cached, or folded in now and cached), EASE history scores (cached, or computed now and
  // cached, for a long history); null when the model is best left to compute them.
  std::shared_ptr<const std::vector<float>> factors_for(
      const Served& s, int64_t user, const std::optional<recommend::UserStore::Snapshot>& snapshot,
      std::span<const ItemWeight> history) {
    const Model& m = *s.model;
    if (m.kind() == recommend::ModelKind::kEase) {
      if (s.scores == nullptr || history.size() < options.score_cache_min_history) return nullptr;
      const uint64_t revision = snapshot ? snapshot->revision : 0;
      if (auto hit = s.scores->find(user, revision)) return hit;
      auto computed = std::make_shared<const std::vector<float>>(m.history_scores(history));
      s.scores->insert(user, revision, computed);
      return computed;
    }
    if (m.kind() != recommend::ModelKind::kAls) return nullptr;
    if (!snapshot) {
      auto trained = m.factors(user);
      return std::make_shared<const std::vector<float>>(trained.begin(), trained.end());
    }
    if (snapshot->factors && snapshot->factors->model_generation == s.generation &&
        snapshot->factors->revision == snapshot->revision) {
      return {snapshot->factors, &snapshot->factors->factors};
    }
    auto cached = std::make_shared<recommend::CachedFactors>();
    cached->model_generation = s.generation;
    cached->revision = snapshot->revision;
    cached->factors = m.fold_in(history);
    std::shared_ptr<const recommend::CachedFactors> out = cached;
    users.set_factors(user, std::move(cached));
    return {out, &out->factors};
  }

  Result<bool> reload() {
    std::lock_guard lock(reload_mu);
    auto latest = recommend::latest_manifest(options.model_dir);
    if (!latest) return failed_reload(latest.error());
    const std::shared_ptr<const Served> old = current();
    // The files, not the version: a v2 deleted and trained again is another model. A model
    // handed to the constructor came from no files known here: its version stands for them.
    const std::string stamp = files_stamp(latest->path);
    if (served_files ? stamp == *served_files : latest->version == old->model->version()) {
      return false;
    }
    // A model that failed to load is not read (nor counted, nor logged) again until its
    // manifest or its data file changes.
    if (failed && failed->first == stamp) return std::unexpected(failed->second);
    auto model = recommend::load_model(latest->path);
    if (!model) {
      failed.emplace(stamp, model.error());
      return failed_reload(model.error());
    }
    failed.reset();
    served_files = stamp;
    served.store(std::make_shared<const Served>(make_served(*model, old->generation + 1)));
    // Events the new model was trained on would otherwise count twice.
    users.forget_through((*model)->trained_through());
    if (model_info != nullptr) {
      model_info->with({"recommend", old->model->version_label()}).set(0);
      model_info->with({"recommend", (*model)->version_label()}).set(1);
      reloads->with({"ok"}).inc();
      tracked_users->set(static_cast<double>(users.users()));
    }
    spdlog::info("recommend: serving model {} ({}) from {}", (*model)->version_label(),
                 recommend::to_string((*model)->kind()), latest->path);
    return true;
  }

  Result<bool> poll() {
    if (options.poll_interval.count() <= 0 || options.model_dir.empty()) return false;
    {
      std::lock_guard lock(poll_mu);
      const Clock::TimePoint now = options.clock->now();
      if (now < next_poll) return false;
      next_poll = now + options.poll_interval;
    }
    return reload();
  }

  RecommendServiceOptions options;
  std::atomic<std::shared_ptr<const Served>> served;
  recommend::UserStore users;

  telemetry::GaugeFamily* model_info = nullptr;
  telemetry::Counter* ignored_unknown = nullptr;
  telemetry::Counter* accepted = nullptr;
  telemetry::Counter* cold_starts = nullptr;
  telemetry::CounterFamily* reloads = nullptr;
  telemetry::Gauge* tracked_users = nullptr;

 private:
  std::optional<std::string> served_files;              // files_stamp(); guarded by reload_mu
  std::optional<std::pair<std::string, Error>> failed;  // guarded by reload_mu

  std::unexpected<Error> failed_reload(const Error& e) {
    if (reloads != nullptr) reloads->with({"error"}).inc();
    spdlog::warn("recommend: reload failed, the served model stays: {}", e.message);
    return std::unexpected(e);
  }

  // Sleeps in steps of at most 100 ms of clock time, so that stop() returns quickly.
  void poll_loop() {
    while (!stopping.load(std::memory_order_acquire)) {
      const auto step =
          std::min<Clock::Duration>(options.poll_interval, std::chrono::milliseconds(100));
      options.clock->sleep_until(options.clock->now() + step);
      if (stopping.load(std::memory_order_acquire)) break;
      (void)poll();  // failures are logged and counted
    }
  }

  std::mutex reload_mu;
  std::mutex poll_mu;
  Clock::TimePoint next_poll;
  std::atomic<bool> stopping{false};
  std::thread poller;
};

RecommendService::RecommendService(std::shared_ptr<const Model> model,
                                   RecommendServiceOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options), std::nullopt)) {}

RecommendService::RecommendService(std::shared_ptr<const Model> model,
                                   RecommendServiceOptions options, std::string model_files)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options), std::move(model_files))) {}

RecommendService::~RecommendService() = default;

void RecommendService::on_drain() { impl_->stop(); }

std::shared_ptr<const Model> RecommendService::model() const { return impl_->current()->model; }

const RecommendServiceOptions& RecommendService::options() const { return impl_->options; }

Result<bool> RecommendService::reload() { return impl_->reload(); }
Result<bool> RecommendService::poll() { return impl_->poll(); }

Result<Recommendations> RecommendService::recommend(const RecommendQuery& query) const {
  if (query.k < 1 || query.k > static_cast<size_t>(impl_->options.max_k)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "k: expected 1.." + std::to_string(impl_->options.max_k));
  }
  const std::shared_ptr<const Served> served = impl_->current();
  const Model& m = *served->model;
  const std::vector<int32_t> exclude = known_items(m, query.exclude);
  std::vector<int32_t> include;
  if (!query.include.empty()) include = known_items(m, query.include);

  Model::Query q;
  q.k = query.k;
  q.exclude = exclude;
  if (!query.include.empty()) q.allow = &include;

  Recommendations out;
  out.model_kind = m.kind();
  out.model_version = m.version_label();
  const auto snapshot = impl_->users.get(query.user);
  std::vector<ItemWeight> merged;
  q.history = m.history(query.user);
  if (snapshot) {
    merged = merged_history(m, q.history, snapshot->events);
    q.history = merged;
  }
  // A history the model cannot score (empty, or, for EASE, none of it in its item set) would
  // rank every item at 0: such a user is answered as a new one.
  if (!m.scores_history(q.history)) {
    out.cold_start = true;
    out.items = m.popular(q);
    if (impl_->cold_starts != nullptr) impl_->cold_starts->inc();
    return out;
  }
  const auto factors = impl_->factors_for(*served, query.user, snapshot, q.history);
  if (factors != nullptr) q.factors = *factors;
  out.items = m.recommend(q);
  return out;
}

Result<InteractionsResult> RecommendService::add_interactions(
    std::span<const PostedInteraction> interactions) {
  const std::shared_ptr<const Served> served = impl_->current();
  const Model& m = *served->model;
  InteractionsResult result;
  result.model_version = m.version_label();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       impl_->options.clock->wall_now().time_since_epoch())
                       .count();
  std::map<int64_t, std::vector<recommend::PostedEvent>> by_user;
  for (const PostedInteraction& x : interactions) {
    if (!m.item_index(x.item)) {
      ++result.ignored_unknown_items;
      continue;
    }
    by_user[x.user].push_back({x.item, x.weight, x.timestamp.value_or(now)});
    ++result.accepted;
  }
  if (impl_->ignored_unknown != nullptr) {
    impl_->ignored_unknown->inc(static_cast<double>(result.ignored_unknown_items));
  }
  for (const auto& [user, events] : by_user) {
    auto added = impl_->users.add(user, events);
    if (!added) return std::unexpected(added.error());
    if (impl_->accepted != nullptr) impl_->accepted->inc(static_cast<double>(events.size()));
    // ALS: fold the user in now, so the next recommendation costs no solve.
    if (m.kind() == recommend::ModelKind::kAls) {
      const auto snapshot = impl_->users.get(user);
      const auto history = merged_history(m, m.history(user), snapshot ? snapshot->events : events);
      (void)impl_->factors_for(*served, user, snapshot, history);
    }
  }
  result.users = by_user.size();
  if (impl_->tracked_users != nullptr) {
    impl_->tracked_users->set(static_cast<double>(impl_->users.users()));
  }
  return result;
}

Result<SimilarItems> RecommendService::similar(int64_t item, size_t k) const {
  if (k < 1 || k > static_cast<size_t>(impl_->options.max_k)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "k: expected 1.." + std::to_string(impl_->options.max_k));
  }
  const std::shared_ptr<const Served> served = impl_->current();
  auto index = served->model->item_index(item);
  if (!index) {
    return make_error(ErrorCode::kNotFound,
                      "item " + std::to_string(item) + " is not in the model's catalogue");
  }
  return SimilarItems{served->model->similar(*index, k), served->model->kind(),
                      served->model->version_label()};
}

Result<std::unique_ptr<RecommendService>> make_recommend_service(RecommendServiceOptions options) {
  auto manifests = recommend::list_manifests(options.model_dir);
  if (!manifests) return std::unexpected(manifests.error());
  // Newest first; a version that does not load is skipped for the one before it, as the fraud
  // and forecast services do. The poller tries the newest again once its files change.
  std::optional<Error> newest_error;
  for (const recommend::ManifestEntry& manifest : *manifests) {
    std::string stamp = files_stamp(manifest.path);
    auto model = recommend::load_model(manifest.path);
    if (!model) {
      spdlog::warn("recommend: model v{} skipped: {}", manifest.version, model.error().message);
      if (!newest_error) newest_error = model.error();
      continue;
    }
    spdlog::info("recommend: serving model {} ({}) from {}", (*model)->version_label(),
                 recommend::to_string((*model)->kind()), manifest.path);
    return std::unique_ptr<RecommendService>(
        new RecommendService(std::move(*model), std::move(options), std::move(stamp)));
  }
  return std::unexpected(*newest_error);  // none loads: the newest's error
}

}  // namespace prescale::services
