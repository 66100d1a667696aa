#include "forecast/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <string>

namespace prescale::forecast {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string source_dir() {
  const char* dir = std::getenv("PRESCALE_SOURCE_DIR");
  return dir != nullptr ? dir : PRESCALE_TEST_SOURCE_DIR;
}

std::string fixture(const std::string& name) {
  return source_dir() + "/src/forecast/testdata/" + name;
}

std::string shared_trace(const std::string& name) {
  return source_dir() + "/../shared/data/" + name;
}

#define SKIP_WITHOUT_SHARED_DATA()                                         \
  if (!std::filesystem::exists(source_dir() + "/../shared/data/traces")) { \
    GTEST_SKIP() << "skipped: ../shared/data missing";                     \
  }

TraceOptions column(std::string name) {
  TraceOptions options;
  options.column = std::move(name);
  return options;
}

TraceOptions step(double seconds) {
  TraceOptions options;
  options.step_seconds = seconds;
  return options;
}

TraceOptions decode_weight(double weight) {
  TraceOptions options;
  options.decode_token_weight = weight;
  return options;
}

Trace series(double step_seconds, std::vector<double> counts) {
  Trace t;
  t.step_seconds = step_seconds;
  t.counts = std::move(counts);
  return t;
}

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// ---- formats -------------------------------------------------------------------------------

TEST(TraceReadTest, NasaMinutesFillGapsAndConvertEdtToUtc) {
  auto t = read_trace(fixture("nasa_minutes.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->name, "nasa_minutes");
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->start_unix_seconds, 804571200);  // 1995-07-01 00:00 EDT = 04:00 UTC
  EXPECT_THAT(t->counts, ElementsAre(42, 61, 0, 0, 10, 7));
  EXPECT_DOUBLE_EQ(t->rate_rps(1), 61.0 / 60);
  EXPECT_DOUBLE_EQ(t->peak_rps(), 61.0 / 60);
  EXPECT_EQ(t->duration_seconds(), 360);
  EXPECT_EQ(t->total_requests(), 120);
  EXPECT_TRUE(t->arrival_seconds.empty());
}

TEST(TraceReadTest, AlibabaRatesBecomeRequestsPerMinute) {
  auto t = read_trace(fixture("alibaba_minutes.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->start_unix_seconds, 1662859140);
  ASSERT_EQ(t->counts.size(), 5u);  // two missing minutes filled with 0
  EXPECT_NEAR(t->counts[0], 0.09 * 60, 1e-9);
  EXPECT_NEAR(t->counts[1], 0.75 * 60, 1e-9);
  EXPECT_EQ(t->counts[2], 0);
  EXPECT_EQ(t->counts[3], 0);
  EXPECT_NEAR(t->counts[4], 60, 1e-9);
  EXPECT_NEAR(t->peak_rps(), 1.0, 1e-12);  // the value is a rate: 1.0 req/s over the minute

  auto generative = read_trace(fixture("alibaba_minutes.csv"), column("generative_qps_sum"));
  ASSERT_TRUE(generative) << generative.error().to_string();
  EXPECT_NEAR(generative->counts[1], 30, 1e-9);
  auto api = read_trace(fixture("alibaba_minutes.csv"), column("api_qps_sum"));
  ASSERT_TRUE(api) << api.error().to_string();
  EXPECT_NEAR(api->counts[0], 5.4, 1e-9);
  EXPECT_NEAR(api->counts[4], 0, 1e-12);
}

TEST(TraceReadTest, AzureRequestsGiveArrivalsCostsAndPerSecondCounts) {
  auto t = read_trace(fixture("azure_requests.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 1);
  EXPECT_EQ(t->start_unix_seconds, 1700158623);  // 18:17:03 UTC, the first arrival's second
  EXPECT_THAT(t->counts, ElementsAre(2, 0, 2));
  EXPECT_THAT(t->arrival_seconds, ElementsAre(0.25, 0.75, 2.0, 2.5));
  // cost ∝ context + 4 * generated: 140, 300, 200, 20 (mean 165)
  ASSERT_EQ(t->request_cost.size(), 4u);
  EXPECT_DOUBLE_EQ(t->request_cost[0], 140.0 / 165);
  EXPECT_DOUBLE_EQ(t->request_cost[1], 300.0 / 165);
  EXPECT_DOUBLE_EQ(t->request_cost[2], 200.0 / 165);
  EXPECT_DOUBLE_EQ(t->request_cost[3], 20.0 / 165);
  EXPECT_NEAR(mean(t->request_cost), 1.0, 1e-12);

  auto coarse = read_trace(fixture("azure_requests.csv"), step(2));
  ASSERT_TRUE(coarse) << coarse.error().to_string();
  EXPECT_EQ(coarse->start_unix_seconds, 1700158622);  // aligned to the 2 s grid
  EXPECT_THAT(coarse->counts, ElementsAre(2, 2));
  EXPECT_THAT(coarse->arrival_seconds, ElementsAre(1.25, 1.75, 3.0, 3.5));

  auto prefill_only = read_trace(fixture("azure_requests.csv"), decode_weight(0));
  ASSERT_TRUE(prefill_only);
  EXPECT_DOUBLE_EQ(prefill_only->request_cost[3], 0);
}

TEST(TraceReadTest, UnsortedRequestLogIsSortedByArrival) {
  auto t = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
      "2023-11-16 18:17:05.5,10,0\n"
      "2023-11-16 18:17:03.0,30,0\n",
      "log.csv");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_THAT(t->arrival_seconds, ElementsAre(0.0, 2.5));
  EXPECT_THAT(t->request_cost, ElementsAre(1.5, 0.5));
  EXPECT_THAT(t->counts, ElementsAre(1, 0, 1));
}

TEST(TraceReadTest, NabSeriesDetectsFiveMinuteStepAndFillsGap) {
  auto t = read_trace(fixture("nab_tweets.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 300);
  EXPECT_EQ(t->start_unix_seconds, 1424986973);
  EXPECT_THAT(t->counts, ElementsAre(104, 100, 99, 0, 154));
}

TEST(TraceReadTest, GenericIsoTimestampsDetectTheMostCommonStep) {
  auto t = read_trace(fixture("generic_iso.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 10);
  EXPECT_EQ(t->start_unix_seconds, 1704067200);
  EXPECT_THAT(t->counts, ElementsAre(5, 7, 0, 0, 3, 1));
}

TEST(TraceReadTest, GenericUnixSecondsAndColumnChoice) {
  auto t = read_trace(fixture("generic_unix.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->start_unix_seconds, 1704067200);
  EXPECT_THAT(t->counts, ElementsAre(12, 18, 30));
  auto errors = read_trace(fixture("generic_unix.csv"), column("errors"));
  ASSERT_TRUE(errors) << errors.error().to_string();
  EXPECT_THAT(errors->counts, ElementsAre(0, 1, 0));
  auto missing = read_trace(fixture("generic_unix.csv"), column("latency"));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("\"latency\" not found"));
  EXPECT_THAT(missing.error().message, HasSubstr("requests, errors"));
}

TEST(TraceReadTest, GenericUnixMillisecondsAndFractionalSeconds) {
  auto ms = parse_trace("t,n\n1704067200000,1\n1704067201000,2\n", "ms.csv");
  ASSERT_TRUE(ms) << ms.error().to_string();
  EXPECT_EQ(ms->step_seconds, 1);
  EXPECT_EQ(ms->start_unix_seconds, 1704067200);
  auto frac =
      parse_trace("t,n\n1704067200.5,1\n1704067201.0,2\n1704067202.0,3\n1704067203.0,4\n", "f.csv");
  ASSERT_TRUE(frac) << frac.error().to_string();
  EXPECT_EQ(frac->step_seconds, 1);  // the largest group of differences
  EXPECT_EQ(frac->start_unix_seconds, 1704067200.5);
  EXPECT_THAT(frac->counts, ElementsAre(1, 2, 3, 4));
  auto mixed = parse_trace("t,n\n0.0,1\n1704067200.5,1\n", "mixed.csv");
  ASSERT_FALSE(mixed);  // a step index first, then a timestamp: the kinds must not mix
}

TEST(TraceReadTest, GenericStepIndexUsesOptionStepAndFillsGaps) {
  auto t = read_trace(fixture("generic_index.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 60);  // the default when the file has no time
  EXPECT_EQ(t->start_unix_seconds, 0);
  EXPECT_THAT(t->counts, ElementsAre(4, 6, 8, 0, 2));
  auto per_second = read_trace(fixture("generic_index.csv"), step(1));
  ASSERT_TRUE(per_second);
  EXPECT_EQ(per_second->step_seconds, 1);
  EXPECT_THAT(per_second->counts, ElementsAre(4, 6, 8, 0, 2));
}

TEST(TraceReadTest, OffGridRowsGoToTheNearestStep) {
  auto t = parse_trace("t,n\n0,1\n", "one.csv", step(5));
  ASSERT_TRUE(t);
  EXPECT_THAT(t->counts, ElementsAre(1));
  auto jitter = parse_trace(
      "t,n\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,2\n2024-01-01 00:02:01,3\n"
      "2024-01-01 00:03:00,4\n2024-01-01 00:04:00,5\n",
      "jitter.csv");
  ASSERT_TRUE(jitter) << jitter.error().to_string();
  EXPECT_EQ(jitter->step_seconds, 60);
  EXPECT_THAT(jitter->counts, ElementsAre(1, 2, 3, 4, 5));
}

TEST(TraceReadTest, MillisecondJitterKeepsTheMinuteStepAndOneStepPerRow) {
  // Per-minute rows stamped with a scrape's jitter of up to ±50 ms (Unix seconds with
  // milliseconds, as Prometheus exports them): 2,000 minutes of 5 requests. The exact most
  // common difference would be some 59.98 s, making a phantom empty minute or two rows summed.
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> jitter_ms(-50, 50);
  std::string text = "t,n\n";
  char row[64];
  for (int k = 0; k < 2000; ++k) {
    const long long ms = 1700000000000LL + 60000LL * k + jitter_ms(rng);
    std::snprintf(row, sizeof row, "%lld.%03lld,5\n", ms / 1000, ms % 1000);
    text += row;
  }
  auto t = parse_trace(text, "jitter.csv");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->counts.size(), 2000u);
  EXPECT_EQ(std::count(t->counts.begin(), t->counts.end(), 0.0), 0);
}

TEST(TraceReadTest, ExactFractionalStepIsNotSnappedToWholeMilliseconds) {
  // A step of 1/3 s has no jitter to absorb: rounding it to 333 ms would misplace the rows
  // after the 500th.
  constexpr const char* kThirds[] = {".000000000", ".333333333", ".666666667"};
  std::string text = "t,n\n";
  for (int k = 0; k < 3000; ++k) {
    text += std::to_string(1704067200 + k / 3) + kThirds[k % 3] + ",1\n";
  }
  auto t = parse_trace(text, "third.csv");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_NEAR(t->step_seconds, 1.0 / 3, 1e-6);
  EXPECT_EQ(t->counts.size(), 3000u);
  EXPECT_EQ(std::count(t->counts.begin(), t->counts.end(), 1.0), 3000);
}

TEST(TraceReadTest, QuotedTimestampsWithTrailingSpacesReadTheValueColumn) {
  auto t = parse_trace(
      "timestamp,requests,errors\n"
      "\"2024-01-01T00:00:00Z\",5,9  \n"
      "\"2024-01-01T00:01:00Z\",6,9  \n",
      "q.csv");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_THAT(t->counts, ElementsAre(5, 6));  // not the "errors" column
}

TEST(TraceReadTest, OptionStepResamplesAggregatedTraces) {
  auto t = read_trace(fixture("nasa_minutes.csv"), step(120));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 120);
  EXPECT_THAT(t->counts, ElementsAre(103, 0, 17));
}

// ---- errors --------------------------------------------------------------------------------

TEST(TraceErrorTest, MissingFileIsNotFound) {
  auto t = read_trace(fixture("no_such_trace.csv"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(t.error().message, HasSubstr("no_such_trace.csv"));
}

TEST(TraceErrorTest, EmptyFile) {
  auto t = read_trace(fixture("empty.csv"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(t.error().message, HasSubstr("empty.csv: empty file"));
}

TEST(TraceErrorTest, NonNumericValueNamesLineAndColumn) {
  auto t = read_trace(fixture("bad_value.csv"));
  ASSERT_FALSE(t);
  EXPECT_THAT(t.error().message,
              HasSubstr("bad_value.csv:4: column 2 \"requests\": expected a number, got \"x\""));
}

TEST(TraceErrorTest, DuplicateAndDecreasingTimesNameTheLine) {
  auto dup = read_trace(fixture("duplicate_time.csv"));
  ASSERT_FALSE(dup);
  EXPECT_THAT(dup.error().message,
              HasSubstr("duplicate_time.csv:4: duplicate time \"2015-02-26 21:47:53\""));
  auto dec = parse_trace("t,n\n5,1\n6,1\n\n4,1\n", "dec.csv");
  ASSERT_FALSE(dec);
  EXPECT_THAT(dec.error().message, HasSubstr("dec.csv:5: decreasing time \"4\""));
}

TEST(TraceErrorTest, NegativeCount) {
  auto t = read_trace(fixture("negative_count.csv"));
  ASSERT_FALSE(t);
  EXPECT_THAT(t.error().message,
              HasSubstr("negative_count.csv:3: column 2 \"requests\": expected a non-negative "
                        "count, got \"-6\""));
}

TEST(TraceErrorTest, BadHeadersAndRows) {
  auto one_column = parse_trace("requests\n1\n", "one.csv");
  ASSERT_FALSE(one_column);
  EXPECT_THAT(one_column.error().message, HasSubstr("one.csv:1: bad header"));

  auto no_header = parse_trace("0,5\n1,6\n", "nohdr.csv");
  ASSERT_FALSE(no_header);
  EXPECT_THAT(no_header.error().message, HasSubstr("nohdr.csv:1: expected a header row"));

  auto header_only = parse_trace("t,n\n", "hdr.csv");
  ASSERT_FALSE(header_only);
  EXPECT_THAT(header_only.error().message, HasSubstr("hdr.csv: no data rows"));

  auto short_row = parse_trace("t,n\n0,1\n1\n", "short.csv");
  ASSERT_FALSE(short_row);
  EXPECT_THAT(short_row.error().message, HasSubstr("short.csv:3: expected 2 fields"));

  // A row with more fields than the header was read up to the value column and the rest
  // dropped: a decimal comma ("12,5") read as 12; one with fewer (but the value column) passed.
  auto long_row = parse_trace("t,n\n0,1\n1,12,5\n", "long.csv");
  ASSERT_FALSE(long_row);
  EXPECT_THAT(long_row.error().message,
              HasSubstr("long.csv:3: expected 2 fields like the header, got 3"));
  auto fewer = parse_trace("t,n,errors\n0,1,0\n1,2\n", "fewer.csv");
  ASSERT_FALSE(fewer);
  EXPECT_THAT(fewer.error().message,
              HasSubstr("fewer.csv:3: expected 3 fields like the header, got 2"));
  auto long_request = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0,10,1,5\n", "llm.csv");
  ASSERT_FALSE(long_request);
  EXPECT_THAT(long_request.error().message,
              HasSubstr("llm.csv:2: expected 3 fields like the header, got 4"));

  auto bad_time = parse_trace("time,n\n2024-01-01 00:00,1\nyesterday,2\n", "time.csv");
  ASSERT_FALSE(bad_time);
  EXPECT_THAT(bad_time.error().message,
              HasSubstr("time.csv:3: column 1 \"time\": expected a timestamp, got \"yesterday\""));

  auto bad_index = parse_trace("step,n\n0,1\n1.5,2\n", "idx.csv");
  ASSERT_FALSE(bad_index);
  EXPECT_THAT(bad_index.error().message, HasSubstr("idx.csv:3: column 1 \"step\""));

  auto bad_tokens = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0,ten,1\n", "llm.csv");
  ASSERT_FALSE(bad_tokens);
  EXPECT_THAT(bad_tokens.error().message,
              HasSubstr("llm.csv:2: column 2 \"ContextTokens\": expected a non-negative token "
                        "count, got \"ten\""));

  auto huge_gap = parse_trace(
      "t,n\n2024-01-01 00:00:00,1\n2024-01-01 00:00:01,1\n"
      "2099-01-01 00:00:00,1\n",
      "gap.csv");
  ASSERT_FALSE(huge_gap);
  EXPECT_EQ(huge_gap.error().code, ErrorCode::kOutOfRange);

  EXPECT_FALSE(parse_trace("t,n\n0,1\n", "s.csv", step(-1)));
  EXPECT_FALSE(parse_trace("t,n\n0,1\n", "s.csv", step(1e-6)));
  // A step beyond a year: in nanoseconds, 1e300 s overflowed an int64 (a negative step).
  for (double huge : {1e300, 366.5 * 86400}) {
    auto too_long = parse_trace("t,n\n2024-01-01,1\n2024-01-02,1\n", "s.csv", step(huge));
    ASSERT_FALSE(too_long) << huge;
    EXPECT_THAT(too_long.error().message, HasSubstr("at most 31622400 s"));
  }
  auto yearly = parse_trace("t,n\n2023-01-01,1\n2024-01-01,1\n", "s.csv", step(366 * 86400.0));
  ASSERT_TRUE(yearly) << yearly.error().message;
  EXPECT_EQ(yearly->step_seconds, 366 * 86400.0);
  auto tiny_step = parse_trace("t,n\n2024-01-01,1\n2025-01-01,1\n", "s.csv", step(0.001));
  ASSERT_FALSE(tiny_step);
  EXPECT_EQ(tiny_step.error().code, ErrorCode::kOutOfRange);
  auto far_future = parse_trace("t,n\n1e300,1\n", "f.csv");
  ASSERT_FALSE(far_future);
  EXPECT_THAT(far_future.error().message, HasSubstr("expected Unix seconds"));
}

TEST(TraceErrorTest, StrayHugeTimesAreErrorsNotOverflows) {
  // A stray value near INT64_MAX after a step index: the span of the rows overflowed an int64
  // and the gap filling threw std::length_error. Times are bounded where they are read.
  Result<Trace> index = make_error(ErrorCode::kInternal, "not run");
  EXPECT_NO_THROW(index = parse_trace("i,n\n-99999999,1\n9223372036854774000,2\n", "i.csv"));
  ASSERT_FALSE(index);
  EXPECT_THAT(index.error().message,
              HasSubstr("i.csv:3: column 1 \"i\": expected a step index (an integer below 1e15)"));
  auto far_apart = parse_trace("t,n\n-3.9e9,1\n-3899999999,1\n3.9e9,1\n", "u.csv");
  ASSERT_FALSE(far_apart);  // 7.8e18 ns apart: within an int64, past the 50 million steps
  EXPECT_EQ(far_apart.error().code, ErrorCode::kOutOfRange);
  auto too_far = parse_trace("t,n\n0.5,1\n9e9,1\n", "u.csv");
  ASSERT_FALSE(too_far);
  EXPECT_THAT(too_far.error().message, HasSubstr("u.csv:3: column 1 \"t\": expected Unix seconds"));
  auto calendar = parse_trace("t,n\n1700-01-01,1\n2200-01-01,1\n", "c.csv");
  ASSERT_FALSE(calendar);
  EXPECT_THAT(calendar.error().message,
              HasSubstr("c.csv:2: column 1 \"t\": expected a timestamp in the years 1824 to 2115"));
  auto requests = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n1700-01-01 00:00:00,1,1\n2200-01-01 00:00:00,1,1\n",
      "llm.csv");
  ASSERT_FALSE(requests);
  EXPECT_THAT(requests.error().message, HasSubstr("llm.csv:2: column 1"));
}

TEST(TraceErrorTest, ValuesTooLargeToAddUpAreErrorsNotInfinities) {
  // Each value is finite, but the request counts or costs made from them were not: an infinite
  // count, or a NaN cost after normalising by an infinite mean.
  auto rates = parse_trace(
      "minute_ts_anon,generative_qps_sum,api_qps_sum\n1700000000,1,2\n1700000060,1e308,1e308\n",
      "qps.csv");
  ASSERT_FALSE(rates);
  EXPECT_THAT(rates.error().message, HasSubstr("qps.csv:3: "));
  auto scaled = parse_trace("minute_ts_anon,generative_qps_sum,api_qps_sum\n1700000000,1e307,0\n",
                            "qps.csv", column("generative_qps_sum"));
  ASSERT_FALSE(scaled);
  EXPECT_THAT(scaled.error().message, HasSubstr("qps.csv:2: "));
  auto same_step = parse_trace("t,n\n0,1e308\n1,1e308\n", "sum.csv");
  ASSERT_FALSE(same_step);
  EXPECT_THAT(same_step.error().message, HasSubstr("sum.csv"));
  auto tokens = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0,1e308,1e308\n"
      "2023-11-16 18:17:04.0,1,1\n",
      "llm.csv");
  ASSERT_FALSE(tokens);
  EXPECT_THAT(tokens.error().message, HasSubstr("llm.csv:2: "));
  auto total = parse_trace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0,1e308,0\n"
      "2023-11-16 18:17:04.0,1e308,0\n",
      "llm.csv");
  ASSERT_FALSE(total);
  EXPECT_THAT(total.error().message, HasSubstr("llm.csv"));
}

// ---- rescale and resample ------------------------------------------------------------------

TEST(TraceTransformTest, RescaleToPeakScalesCounts) {
  Trace t = series(10, {10, 50, 20});
  Trace r = rescale_to_peak(t, 20);
  EXPECT_DOUBLE_EQ(r.peak_rps(), 20);
  EXPECT_THAT(r.counts, ElementsAre(40, 200, 80));
  EXPECT_THAT(rescale_to_peak(t, 0).counts, ElementsAre(10, 50, 20));
  Trace zero = series(60, {0, 0});
  EXPECT_THAT(rescale_to_peak(zero, 5).counts, ElementsAre(0, 0));
}

// What every rescaled per-request trace promises: counts are exactly the binned arrivals, which
// are sorted and inside the trace, one cost each, costs averaging 1.
void ExpectConsistentPerRequestTrace(const Trace& t) {
  ASSERT_FALSE(t.counts.empty());
  std::vector<double> binned(t.counts.size(), 0);
  for (size_t i = 0; i < t.arrival_seconds.size(); ++i) {
    if (i > 0) {
      ASSERT_LE(t.arrival_seconds[i - 1], t.arrival_seconds[i]);
    }
    ASSERT_GE(t.arrival_seconds[i], 0);
    ASSERT_LT(t.arrival_seconds[i], t.duration_seconds());
    binned[static_cast<size_t>(t.arrival_seconds[i] / t.step_seconds)] += 1;
  }
  EXPECT_EQ(binned, t.counts);
  ASSERT_EQ(t.request_cost.size(), t.arrival_seconds.size());
  if (!t.request_cost.empty()) {
    EXPECT_NEAR(mean(t.request_cost), 1.0, 1e-9);
  }
}

// A per-request trace of Poisson arrivals at `rps(second)`, binned at `step_seconds`, with
// distinct random costs.
template <typename Rate>
Trace poisson_trace(double seconds, double step_seconds, uint64_t seed, Rate rps) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  Trace t;
  t.step_seconds = step_seconds;
  t.counts.assign(static_cast<size_t>(std::ceil(seconds / step_seconds)), 0);
  for (int s = 0; s < static_cast<int>(seconds); ++s) {
    std::poisson_distribution<int> in_second(rps(s));
    std::vector<double> at(static_cast<size_t>(in_second(rng)));
    for (double& a : at) a = s + uniform(rng);
    std::sort(at.begin(), at.end());
    for (double a : at) {
      t.arrival_seconds.push_back(a);
      t.request_cost.push_back(0.2 + 2 * uniform(rng));
      t.counts[static_cast<size_t>(a / step_seconds)] += 1;
    }
  }
  const double m = mean(t.request_cost);
  for (double& c : t.request_cost) c /= m;
  return t;
}

// Variance over mean of counts[begin, end): 1 for Poisson counts.
double index_of_dispersion(const std::vector<double>& counts, size_t begin, size_t end) {
  const std::vector<double> part(counts.begin() + static_cast<long>(begin),
                                 counts.begin() + static_cast<long>(end));
  const double m = mean(part);
  double var = 0;
  for (double c : part) var += (c - m) * (c - m);
  return var / static_cast<double>(part.size() - 1) / m;
}

TEST(TraceTransformTest, RescaleUpSuperposesCopiesAndThinsDown) {
  auto t = read_trace(fixture("azure_requests.csv"));
  ASSERT_TRUE(t);
  Trace up = rescale_to_peak(*t, 5.0);  // x2.5: the trace, one full copy, half a copy
  EXPECT_EQ(up.arrival_seconds.size(), 10u);
  EXPECT_EQ(up.total_requests(), 10);
  ExpectConsistentPerRequestTrace(up);
  Trace down = rescale_to_peak(*t, 0.5);  // x0.25: one of the four requests
  EXPECT_THAT(down.arrival_seconds, ElementsAre(2.5));
  EXPECT_THAT(down.counts, ElementsAre(0, 0, 1));
  EXPECT_THAT(down.request_cost, ElementsAre(1.0));
  ExpectConsistentPerRequestTrace(down);
}

TEST(TraceTransformTest, RescaleUpCopiesEveryRequestWithItsCostAndIsDeterministic) {
  const Trace t = poisson_trace(600, 1, 11, [](int) { return 5.0; });
  const double factor = 3.4;
  const Trace up = rescale_to_peak(t, factor * t.peak_rps());
  ExpectConsistentPerRequestTrace(up);
  const auto n = static_cast<double>(t.arrival_seconds.size());
  EXPECT_EQ(up.arrival_seconds.size(), static_cast<size_t>(std::llround(factor * n)));
  // Costs are the originals', each 3 or 4 times, all scaled by the one renormalising factor.
  std::map<double, size_t> copies;  // original cost -> times seen
  for (double c : t.request_cost) copies[c] = 0;
  ASSERT_EQ(copies.size(), t.request_cost.size()) << "the costs must be distinct";
  const double scale =
      *std::min_element(up.request_cost.begin(), up.request_cost.end()) / copies.begin()->first;
  for (double c : up.request_cost) {
    auto it = copies.lower_bound(c / scale * (1 - 1e-12));
    ASSERT_NE(it, copies.end());
    ASSERT_NEAR(it->first * scale, c, 1e-12 * c);
    ++it->second;
  }
  for (const auto& [cost, seen] : copies) {
    EXPECT_TRUE(seen == 3 || seen == 4) << cost << " seen " << seen;
  }
  const Trace again = rescale_to_peak(t, factor * t.peak_rps());
  EXPECT_EQ(again.arrival_seconds, up.arrival_seconds);
  EXPECT_EQ(again.request_cost, up.request_cost);
  EXPECT_EQ(again.counts, up.counts);
}

// The reason for superposing: a Poisson stream scaled x10 must look like a Poisson stream ten
// times as busy (per-second index of dispersion 1), not like ten coincident copies of one (10).
TEST(TraceTransformTest, RescaleUpKeepsAPoissonStreamPoisson) {
  const Trace t = poisson_trace(2000, 1, 7, [](int) { return 5.0; });
  const Trace up = rescale_to_peak(t, 10 * t.peak_rps());
  ExpectConsistentPerRequestTrace(up);
  const double original = index_of_dispersion(t.counts, 100, 1900);
  const double scaled = index_of_dispersion(up.counts, 100, 1900);
  std::vector<double> in_place = t.counts;  // what duplicating each arrival in place gives
  for (double& c : in_place) c *= 10;
  EXPECT_NEAR(original, 1, 0.15);
  EXPECT_NEAR(scaled, 1, 0.15);
  EXPECT_GT(index_of_dispersion(in_place, 100, 1900), 8);
  EXPECT_NEAR(mean(up.counts), 10 * mean(t.counts), 1e-9 * mean(up.counts));
  // Beyond ~37x the copies squeeze into ±30 s, closer than a step: dispersion about f / 60.
  const Trace x100 = rescale_to_peak(t, 100 * t.peak_rps());
  EXPECT_LT(index_of_dispersion(x100.counts, 100, 1900), 2.5);
}

// Shifts of a few seconds keep the shape on the scale of minutes: a rate that triples at
// 20 minutes stays a step, and every minute keeps f times its requests to within a few percent.
// The busiest step of a trace binned at 60 s is therefore within a few percent of the target.
TEST(TraceTransformTest, RescaleUpKeepsTheShapeAboveAMinute) {
  const Trace t = poisson_trace(2400, 60, 3, [](int s) { return s < 1200 ? 5.0 : 15.0; });
  const Trace up = rescale_to_peak(t, 8 * t.peak_rps());
  ExpectConsistentPerRequestTrace(up);
  ASSERT_EQ(up.counts.size(), 40u);
  for (size_t m = 0; m < up.counts.size(); ++m) {
    const double ratio = up.counts[m] / (8 * t.counts[m]);
    EXPECT_NEAR(ratio, 1, m == 19 || m == 20 ? 0.06 : 0.04) << "minute " << m;
  }
  EXPECT_NEAR(up.peak_rps() / (8 * t.peak_rps()), 1, 0.03);
}

TEST(TraceTransformTest, RescaleDownThinsWithinOneRequestPerStep) {
  const Trace t = poisson_trace(600, 1, 5, [](int s) { return 3.0 + s % 7; });
  const Trace down = rescale_to_peak(t, 0.37 * t.peak_rps());
  ExpectConsistentPerRequestTrace(down);
  for (size_t i = 0; i < t.counts.size(); ++i) {
    EXPECT_NEAR(down.counts[i], 0.37 * t.counts[i], 1.0) << "step " << i;
  }
  EXPECT_LT(std::abs(down.peak_rps() - 0.37 * t.peak_rps()), 1.0);
}

TEST(TraceTransformTest, ResampleSumsToCoarserAndSplitsToFinerSteps) {
  Trace t = series(60, {6, 12, 18, 24, 30});
  t.start_unix_seconds = 100;
  Trace coarse = resample(t, 120);
  EXPECT_EQ(coarse.step_seconds, 120);
  EXPECT_EQ(coarse.start_unix_seconds, 100);
  EXPECT_THAT(coarse.counts, ElementsAre(18, 42, 30));  // the last step is partial
  Trace fine = resample(t, 20);
  ASSERT_EQ(fine.counts.size(), 15u);
  EXPECT_THAT(std::vector<double>(fine.counts.begin(), fine.counts.begin() + 4),
              ElementsAre(2, 2, 2, 4));
  Trace odd = resample(t, 90);  // 1.5 old steps per new step
  ASSERT_EQ(odd.counts.size(), 4u);
  EXPECT_DOUBLE_EQ(odd.counts[0], 6 + 6);
  EXPECT_DOUBLE_EQ(odd.counts[1], 6 + 18);
  EXPECT_DOUBLE_EQ(odd.counts[2], 24 + 15);
  EXPECT_DOUBLE_EQ(odd.counts[3], 15);
  for (const Trace& r : {coarse, fine, odd}) {
    EXPECT_NEAR(r.total_requests(), t.total_requests(), 1e-9);
  }
  EXPECT_THAT(resample(t, 0).counts, ElementsAre(6, 12, 18, 24, 30));
}

// ---- the real traces in ../shared/data -----------------------------------------------------

TEST(TraceSharedDataTest, NasaJuly) {
  SKIP_WITHOUT_SHARED_DATA();
  auto begin = std::chrono::steady_clock::now();
  auto t = read_trace(shared_trace("traces/nasa-http-1995-07.csv"));
  auto elapsed =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin);
  ASSERT_TRUE(t) << t.error().to_string();
  std::cout << "read nasa-http-1995-07.csv (39,693 rows) in " << elapsed.count() << " ms\n";
  RecordProperty("nasa_read_ms", std::to_string(elapsed.count()));
  EXPECT_LT(elapsed.count(), 500);  // ~5 ms in a release build; generous for loaded machines
  EXPECT_EQ(t->name, "nasa-http-1995-07");
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->counts.size(), 39693u);  // 07-01 00:00 .. 07-28 13:32 with no missing minute
  EXPECT_EQ(t->total_requests(), 1891713);
  EXPECT_EQ(t->duration_seconds(), 39693 * 60);
  EXPECT_EQ(t->start_unix_seconds, 804571200);
  EXPECT_DOUBLE_EQ(t->peak_rps(), 405.0 / 60);
}

TEST(TraceSharedDataTest, AlibabaGenAi) {
  SKIP_WITHOUT_SHARED_DATA();
  auto t = read_trace(shared_trace("traces/alibaba-genai-2026-qps-per-minute.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->step_seconds, 60);
  EXPECT_EQ(t->counts.size(), 1340u);  // 1,090 rows over 1,340 minutes; idle minutes are 0
  EXPECT_NEAR(t->total_requests(), 3526.455 * 60, 1e-6);
  EXPECT_NEAR(t->peak_rps(), 15.27, 1e-9);
  auto generative = read_trace(shared_trace("traces/alibaba-genai-2026-qps-per-minute.csv"),
                               column("generative_qps_sum"));
  ASSERT_TRUE(generative) << generative.error().to_string();
  EXPECT_NEAR(generative->total_requests(), 2136.36 * 60, 1e-6);
}

TEST(TraceSharedDataTest, AzureLlmTraces) {
  SKIP_WITHOUT_SHARED_DATA();
  struct Case {
    const char* file;
    size_t rows;
    size_t seconds;
  };
  for (const Case& c : {Case{"traces/azure-llm-2023-code-requests.csv", 8819, 3437},
                        Case{"traces/azure-llm-2023-conv-requests.csv", 19366, 3503}}) {
    SCOPED_TRACE(c.file);
    auto t = read_trace(shared_trace(c.file));
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_EQ(t->step_seconds, 1);
    EXPECT_EQ(t->arrival_seconds.size(), c.rows);
    EXPECT_EQ(t->request_cost.size(), c.rows);
    EXPECT_EQ(t->total_requests(), static_cast<double>(c.rows));
    EXPECT_EQ(t->counts.size(), c.seconds);
    EXPECT_NEAR(mean(t->request_cost), 1.0, 1e-9);
    EXPECT_TRUE(std::is_sorted(t->arrival_seconds.begin(), t->arrival_seconds.end()));
    EXPECT_GE(t->arrival_seconds.front(), 0);
    EXPECT_LT(t->arrival_seconds.back(), t->duration_seconds());
    // The busiest minute scales by f to within 3 %; the busiest second, mostly noise (a burst
    // of 67 requests in the code trace), does not (rescale_to_peak's comment).
    const double factor = 200 / t->peak_rps();
    Trace scaled = rescale_to_peak(*t, 200);
    ExpectConsistentPerRequestTrace(scaled);
    EXPECT_EQ(scaled.arrival_seconds.size(),
              static_cast<size_t>(std::llround(factor * static_cast<double>(c.rows))));
    EXPECT_LT(scaled.peak_rps(), 200);
    EXPECT_NEAR(resample(scaled, 60).peak_rps() / (factor * resample(*t, 60).peak_rps()), 1, 0.03);
  }
}

TEST(TraceSharedDataTest, NabRealTweets) {
  SKIP_WITHOUT_SHARED_DATA();
  auto t = read_trace(shared_trace("nab/data/realTweets/Twitter_volume_AAPL.csv"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->name, "Twitter_volume_AAPL");
  EXPECT_EQ(t->step_seconds, 300);
  EXPECT_EQ(t->counts.size(), 15902u);
  EXPECT_EQ(t->total_requests(), 1360453);
  EXPECT_DOUBLE_EQ(t->peak_rps(), 13479.0 / 300);
}

TEST(RemoveCountingNoiseTest, RemovesPoissonNoiseAndKeepsBursts) {
  std::mt19937 rng(5);
  std::poisson_distribution<int> poisson(50);
  Trace t;
  t.step_seconds = 60;
  for (int i = 0; i < 2000; ++i) t.counts.push_back(poisson(rng));
  t.counts[1000] = 400;  // a real burst
  auto spread = [](const std::vector<double>& v) {
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    double ss = 0;
    for (double x : v) ss += (x - mean) * (x - mean);
    return std::sqrt(ss / static_cast<double>(v.size())) / mean;
  };
  auto quiet = [](const std::vector<double>& v) {  // the steps away from the burst
    return std::vector<double>(v.begin(), v.begin() + 900);
  };
  const double before = spread(quiet(t.counts));
  const Trace clean = remove_counting_noise(t);
  ASSERT_EQ(clean.counts.size(), t.counts.size());
  EXPECT_GT(before, 0.12);
  EXPECT_LT(spread(quiet(clean.counts)), 0.45 * before);
  EXPECT_NEAR(clean.total_requests(), t.total_requests(), 0.03 * t.total_requests());
  // The burst stays, less what counting noise could explain.
  EXPECT_GT(clean.counts[1000], 400 - 50 - 2 * std::sqrt(50.0) - 10);
}

TEST(RemoveCountingNoiseTest, EstimatesTheDispersionOfClumpedArrivals) {
  std::mt19937 rng(11);
  // Poisson counts: dispersion 1. Clumps of 4 requests (a page and its images) arriving as a
  // Poisson stream: the count's variance is 4 × its mean.
  Trace single, clumped;
  single.step_seconds = clumped.step_seconds = 60;
  for (int i = 0; i < 5000; ++i) {
    // A slow daily-like swing, so the estimate has to follow a moving level.
    const double swing = 1 + 0.5 * std::sin(i / 200.0);
    single.counts.push_back(std::poisson_distribution<int>(50 * swing)(rng));
    clumped.counts.push_back(4 * std::poisson_distribution<int>(50 * swing / 4)(rng));
  }
  EXPECT_NEAR(counting_dispersion(single), 1.0, 0.15);
  EXPECT_NEAR(counting_dispersion(clumped), 4.0, 0.6);
  // A few large bursts do not inflate it.
  Trace bursty = clumped;
  for (int i = 100; i < 5000; i += 250) bursty.counts[static_cast<size_t>(i)] *= 5;
  EXPECT_NEAR(counting_dispersion(bursty), counting_dispersion(clumped), 0.3);
  // Rates and short traces: 1.
  Trace rates;
  rates.step_seconds = 60;
  rates.counts.assign(100, 2.5);
  EXPECT_EQ(counting_dispersion(rates), 1.0);
  Trace tiny;
  tiny.step_seconds = 60;
  tiny.counts = {4, 8, 0, 12};
  EXPECT_EQ(counting_dispersion(tiny), 1.0);

  // Removing clumped noise leaves the same share of the step-to-step jitter as removing Poisson
  // noise does (about a tenth); with the dispersion forced to 1 (Poisson's threshold) three
  // times as much stays.
  auto jitter = [](const std::vector<double>& v) {  // RMS of step-to-step relative changes
    double ss = 0;
    for (size_t i = 1; i < v.size(); ++i) {
      const double d = (v[i] - v[i - 1]) / std::max(1.0, 0.5 * (v[i] + v[i - 1]));
      ss += d * d;
    }
    return std::sqrt(ss / static_cast<double>(v.size() - 1));
  };
  const double poisson_left = jitter(remove_counting_noise(single).counts);
  const double clumped_left = jitter(remove_counting_noise(clumped).counts);
  const double as_poisson_left = jitter(remove_counting_noise(clumped, 1.0).counts);
  const double poisson_share = poisson_left / jitter(single.counts);
  const double clumped_share = clumped_left / jitter(clumped.counts);
  EXPECT_LT(clumped_share, 1.25 * poisson_share);
  EXPECT_GT(as_poisson_left / jitter(clumped.counts), 2 * clumped_share);
  // Bursts beyond the noise stay, less it.
  const Trace cleaned = remove_counting_noise(bursty);
  EXPECT_GT(cleaned.counts[100], 2.5 * cleaned.counts[99]);
}

TEST(RemoveCountingNoiseTest, LeavesRatesAndPerRequestTracesAlone) {
  Trace rates;
  rates.step_seconds = 60;
  rates.counts = {1.5, 2.25, 3.0, 1.0, 2.0};
  EXPECT_EQ(remove_counting_noise(rates).counts, rates.counts);
  Trace requests;
  requests.step_seconds = 1;
  requests.counts = {1, 0, 2};
  requests.arrival_seconds = {0.1, 2.2, 2.5};
  requests.request_cost = {1, 1, 1};
  EXPECT_EQ(remove_counting_noise(requests).counts, requests.counts);
}

}  // namespace
}  // namespace prescale::forecast
