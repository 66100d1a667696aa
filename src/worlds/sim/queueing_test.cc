#include "worlds/sim/queueing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace prescale::sim {
namespace {

TEST(SimWorldQueueing, ErlangCMatchesClosedForms) {
  // M/M/1: an arrival waits with probability rho.
  EXPECT_NEAR(erlang_c(1, 0.7), 0.7, 1e-12);
  // c = 2, a = 1: C = (a^2/2 · 2/(2−1)) / (1 + a + a^2/2 · 2) = 1/3.
  EXPECT_NEAR(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12);
  EXPECT_EQ(erlang_c(4, 0.0), 0.0);
  EXPECT_EQ(erlang_c(4, 4.0), 1.0);
  // Large c stays finite and in (0, 1).
  const double c = erlang_c(2000, 1900);
  EXPECT_GT(c, 0.0);
  EXPECT_LT(c, 1.0);
}

TEST(SimWorldQueueing, MM1SojournIsExponential) {
  const double lambda = 30, mu = 50;
  const MmcQueue q = mmc_queue(1, lambda, mu);
  for (double t : {0.0, 0.01, 0.05, 0.2}) {
    EXPECT_NEAR(tail(q.sojourn, t), std::exp(-(mu - lambda) * t), 1e-12) << t;
  }
  EXPECT_NEAR(q.mean_queue_length, 0.6 * 0.6 / 0.4, 1e-12);  // rho^2 / (1 − rho)
  EXPECT_NEAR(quantile(q.sojourn, 0.99), std::log(100.0) / (mu - lambda), 1e-9);
}

TEST(SimWorldQueueing, ErlangTwoLimitIsContinuous) {
  // gamma = c·mu − lambda equal to mu takes the (1 + mu t) e^(−mu t) branch; rates on either
  // side must give the same tail.
  const double mu = 10;
  const int c = 3;
  const MmcQueue at = mmc_queue(c, 2 * mu, mu);  // gamma = 3·10 − 20 = mu
  const MmcQueue below = mmc_queue(c, 2 * mu * (1 + 1e-6), mu);
  const MmcQueue above = mmc_queue(c, 2 * mu * (1 - 1e-6), mu);
  for (double t : {0.01, 0.1, 0.5, 1.0}) {
    EXPECT_NEAR(tail(at.sojourn, t), tail(below.sojourn, t), 1e-5);
    EXPECT_NEAR(tail(at.sojourn, t), tail(above.sojourn, t), 1e-5);
  }
}

TEST(SimWorldQueueing, MMcTailMatchesMonteCarlo) {
  // Simulate a FIFO M/M/4 queue (Kiefer–Wolfowitz workload vector) and compare tails.
  const int c = 4;
  const double mu = 50, lambda = 160;  // rho = 0.8
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> inter(lambda), service(mu);
  std::vector<double> free_at(c, 0.0);
  double t = 0;
  const int n = 400000;
  std::vector<double> sojourn;
  sojourn.reserve(n);
  for (int i = 0; i < n; ++i) {
    t += inter(rng);
    auto it = std::min_element(free_at.begin(), free_at.end());
    const double start = std::max(t, *it);
    *it = start + service(rng);
    if (i > 10000) sojourn.push_back(*it - t);
  }
  const MmcQueue q = mmc_queue(c, lambda, mu);
  for (double x : {0.02, 0.05, 0.1, 0.15}) {
    double above = 0;
    for (double s : sojourn) above += s > x ? 1 : 0;
    EXPECT_NEAR(above / sojourn.size(), tail(q.sojourn, x), 0.01) << x;
  }
}

TEST(SimWorldQueueing, FluidTailIsUniformWaitPlusService) {
  const double mu = 20;
  const LatencyComponent f = fluid_sojourn(0.5, 0.1, mu, 3);  // order does not matter
  EXPECT_DOUBLE_EQ(f.w0, 0.1);
  EXPECT_DOUBLE_EQ(f.w1, 0.5);
  for (double t : {0.05, 0.1, 0.3, 0.5, 0.7}) {
    // Midpoint rule over the uniform wait.
    double p = 0;
    const int steps = 100000;
    for (int i = 0; i < steps; ++i) {
      const double u = 0.1 + 0.4 * (i + 0.5) / steps;
      p += t <= u ? 1.0 : std::exp(-mu * (t - u));
    }
    EXPECT_NEAR(tail(f, t), p / steps, 1e-6) << t;
  }
  const LatencyComponent point = fluid_sojourn(0.2, 0.2, mu, 1);
  EXPECT_NEAR(tail(point, 0.3), std::exp(-mu * 0.1), 1e-12);
}

TEST(SimWorldQueueing, MixtureQuantileInvertsTheTail) {
  std::vector<LatencyComponent> mix;
  LatencyComponent m = mmc_queue(8, 300, 50).sojourn;
  m.weight = 900;
  mix.push_back(m);
  mix.push_back(fluid_sojourn(0.3, 1.2, 50, 100));
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double t = mixture_quantile(mix, q);
    EXPECT_NEAR(mixture_tail(mix, t), 1 - q, 1e-9) << q;
  }
  EXPECT_TRUE(std::isnan(mixture_quantile(std::vector<LatencyComponent>{}, 0.99)));
}

TEST(SimWorldQueueing, CapacityMeetsTheSloAtItsP99) {
  for (double s : {0.005, 0.02, 0.04}) {
    for (int workers : {1, 4, 16}) {
      for (double slo : {0.2, 0.5}) {
        auto cap = slo_capacity_rps(s, workers, slo);
        ASSERT_TRUE(cap) << cap.error().to_string();
        const double p99 = quantile(mmc_queue(workers, *cap, 1 / s).sojourn, 0.99);
        EXPECT_NEAR(p99, slo, 0.01 * slo) << s << " " << workers << " " << slo;
        EXPECT_LT(*cap, workers / s);
        EXPECT_GT(*cap, 0.0);
      }
    }
  }
  // 1 worker, mean 20 ms: p99 of M/M/1 is ln(100)/(mu − lambda) = 0.2 → lambda = mu − 23.03.
  EXPECT_NEAR(*slo_capacity_rps(0.02, 1, 0.2), 50 - std::log(100.0) / 0.2, 1e-6);
}

TEST(SimWorldQueueing, CapacityRejectsAnUnreachableSlo) {
  // Exponential service of mean 50 ms alone has p99 230 ms.
  auto cap = slo_capacity_rps(0.05, 4, 0.2);
  ASSERT_FALSE(cap);
  EXPECT_EQ(cap.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(cap.error().message.find("not reachable"), std::string::npos);
}

}  // namespace
}  // namespace prescale::sim

namespace prescale::sim {
namespace {

TEST(SimWorldQueueing, OccupancyAndItsDerivative) {
  for (int c : {1, 4, 40}) {
    for (double rho : {0.05, 0.3, 0.7, 0.95, 0.995}) {
      const MmcOccupancy o = mmc_occupancy(c, rho);
      // L = c·rho + Lq, and Lq from mmc_queue.
      const MmcQueue q = mmc_queue(c, c * rho * 10, 10);
      EXPECT_NEAR(o.in_system, c * rho + q.mean_queue_length, 1e-9 * o.in_system);
      const double h = 1e-6 * (1 - rho);
      const double numeric =
          (mmc_occupancy(c, rho + h).in_system - mmc_occupancy(c, rho - h).in_system) / (2 * h);
      EXPECT_NEAR(o.derivative, numeric, 1e-5 * numeric) << c << " " << rho;
    }
  }
}

TEST(SimWorldQueueing, PsffaRestsAtTheStationaryPointAndRelaxesTowardsIt) {
  const int c = 4;
  const double mu = 50, dt = 1, k = c * mu * dt;
  for (double rho : {0.2, 0.8, 0.97}) {
    const double lambda = rho * c * mu;
    // At the stationary point, a step with the same arrivals stays there.
    const double x = mmc_occupancy(c, rho).in_system;
    EXPECT_NEAR(psffa_utilization(c, x + lambda * dt, k, 0.5), rho, 1e-10);
    // From empty, utilisation climbs monotonically towards rho without passing it.
    double r = 0, xs = 0, previous = 0;
    for (int i = 0; i < 2000; ++i) {
      r = psffa_utilization(c, xs + lambda * dt, k, r);
      xs = mmc_occupancy(c, r).in_system;
      EXPECT_GE(r, previous - 1e-12);
      EXPECT_LE(r, rho + 1e-9);
      previous = r;
    }
    EXPECT_NEAR(r, rho, 1e-6 * rho) << rho;
  }
  // Near saturation the queue needs time to build: after 10 s at rho = 0.99 the utilisation the
  // arrivals see is well below 0.99 (a stationary model would jump there at once).
  double r = 0, xs = 0;
  for (int i = 0; i < 10; ++i) {
    r = psffa_utilization(c, xs + 0.99 * k, k, r);
    xs = mmc_occupancy(c, r).in_system;
  }
  EXPECT_LT(r, 0.985);
  EXPECT_GT(r, 0.9);
}

}  // namespace
}  // namespace prescale::sim
