#include "services/fraud/rules.h"

#include <array>
#include <cmath>

namespace prescale::fraud {
namespace {

constexpr double kBase = -2.9444389791664403;  // logit(0.05)
constexpr double kTinyAmount = 1.0;            // at most: a card-testing authorisation
constexpr double kTinyAmountWeight = 2.5;
constexpr double kLargeAmount = 1000.0;  // at least
constexpr double kLargeAmountWeight = 1.5;
constexpr double kNightEndSeconds = 6 * 3600.0;
constexpr double kNightWeight = 1.0;

}  // namespace

Score score_by_rules(const Features& x) {
  const size_t time = *feature_index("Time");
  const size_t amount = *feature_index("Amount");
  std::array<double, kFeatureCount> contributions{};
  const double a = x[amount];
  if (!std::isnan(a) && a <= kTinyAmount) contributions[amount] += kTinyAmountWeight;
  if (!std::isnan(a) && a >= kLargeAmount) contributions[amount] += kLargeAmountWeight;
  const double t = x[time];
  if (!std::isnan(t)) {
    const double of_day = std::fmod(std::fmod(t, 86400.0) + 86400.0, 86400.0);
    if (of_day < kNightEndSeconds) contributions[time] += kNightWeight;
  }
  Score score;
  const double margin = kBase + contributions[time] + contributions[amount];
  score.probability = 1 / (1 + std::exp(-margin));
  pick_top_features(contributions, score);
  return score;
}

}  // namespace prescale::fraud
