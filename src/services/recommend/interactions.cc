#include "services/recommend/interactions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_map>

#include "core/text_file.h"
#include "forecast/csv.h"
#include "services/recommend/internal/matrix.h"

namespace prescale::recommend {
namespace {

std::optional<int64_t> parse_integer(std::string_view text) {
  auto v = forecast::parse_number(text);
  if (!v || *v != std::floor(*v) || std::abs(*v) > 9e15) return std::nullopt;
  return static_cast<int64_t>(*v);
}

}  // namespace

Result<std::vector<Interaction>> read_ratings_csv(const std::string& path,
                                                  const ImplicitOptions& options) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  forecast::CsvReader reader(*text, path);
  std::vector<std::string_view> header;
  if (!reader.next(header)) {
    return make_error(ErrorCode::kInvalidArgument, path + ": empty file, expected a header row");
  }
  const char* names[] = {"userId", "movieId", "rating", "timestamp"};
  size_t column[4];
  for (int c = 0; c < 4; ++c) {
    auto found = forecast::find_column(header, names[c]);
    if (!found) {
      return std::unexpected(reader.error(std::string("no column \"") + names[c] +
                                          "\" in the header (need userId, movieId, rating, "
                                          "timestamp)"));
    }
    column[c] = *found;
  }
  const size_t needed = *std::max_element(std::begin(column), std::end(column)) + 1;

  std::vector<Interaction> out;
  out.reserve(text->size() / 24);
  std::vector<std::string_view> row;
  while (reader.next(row)) {
    if (row.size() < needed) {
      return std::unexpected(reader.error("expected " + std::to_string(header.size()) +
                                          " columns, got " + std::to_string(row.size())));
    }
    auto user = parse_integer(row[column[0]]);
    if (!user)
      return std::unexpected(reader.field_error(header, column[0], "an integer", row[column[0]]));
    auto item = parse_integer(row[column[1]]);
    if (!item)
      return std::unexpected(reader.field_error(header, column[1], "an integer", row[column[1]]));
    auto rating = forecast::parse_number(row[column[2]]);
    if (!rating)
      return std::unexpected(reader.field_error(header, column[2], "a number", row[column[2]]));
    auto timestamp = parse_integer(row[column[3]]);
    if (!timestamp) {
      return std::unexpected(
          reader.field_error(header, column[3], "Unix seconds (an integer)", row[column[3]]));
    }
    if (*rating < options.min_rating) continue;
    const double weight = options.weight_by_rating ? *rating - options.min_rating + 1 : 1.0;
    out.push_back({*user, *item, static_cast<float>(weight), *timestamp});
  }
  return out;
}

TemporalSplit split_by_time(const std::vector<Interaction>& interactions, double holdout_share) {
  std::unordered_map<int64_t, std::vector<size_t>> by_user;
  for (size_t i = 0; i < interactions.size(); ++i) by_user[interactions[i].user].push_back(i);
  std::vector<char> held_out(interactions.size(), 0);
  for (auto& [user, rows] : by_user) {
    const size_t n = rows.size();
    if (n < 2) continue;
    size_t hold = static_cast<size_t>(std::lround(holdout_share * static_cast<double>(n)));
    hold = std::clamp<size_t>(hold, 1, n - 1);
    std::stable_sort(rows.begin(), rows.end(), [&](size_t a, size_t b) {
      return interactions[a].timestamp < interactions[b].timestamp;
    });
    for (size_t k = n - hold; k < n; ++k) held_out[rows[k]] = 1;
  }
  TemporalSplit split;
  for (size_t i = 0; i < interactions.size(); ++i) {
    (held_out[i] ? split.test : split.train).push_back(interactions[i]);
  }
  return split;
}

Result<std::string> file_hash(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return std::unexpected(text.error());
  const uint64_t h = internal::fnv1a(*text);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf);
}

}  // namespace prescale::recommend
