#include "http/server.h"

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>

#include "http/internal/server_internal.h"

namespace prescale::http {
namespace internal {
namespace {

using SoReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);
constexpr int kListenBacklog = 4096;

}  // namespace

void ServerShared::reject(int status) const {
  if (!options.on_rejected) return;
  try {
    options.on_rejected(status);
  } catch (...) {
    // A failing observer must not take the connection down with it.
  }
}

void ServerShared::connection_closed() {
  if (connections.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      draining.load(std::memory_order_acquire)) {
    std::lock_guard lock(drain_mu);
    drain_cv.notify_all();
  }
}

Worker::Worker(std::shared_ptr<ServerShared> shared) : shared_(std::move(shared)) {}

Worker::~Worker() = default;

boost::system::error_code Worker::listen(const tcp::endpoint& endpoint, bool reuse_port) {
  boost::system::error_code ec;
  acceptor_.emplace(ioc_);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && reuse_port) acceptor_->set_option(SoReusePort(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(kListenBacklog, ec);
  if (ec) acceptor_.reset();
  return ec;
}

uint16_t Worker::local_port() const {
  boost::system::error_code ec;
  if (!acceptor_) return 0;
  auto ep = acceptor_->local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void Worker::close_acceptor() {
  if (!acceptor_) return;
  boost::system::error_code ignored;
  acceptor_->close(ignored);
}

void Worker::set_accept_targets(std::vector<std::shared_ptr<Worker>> targets) {
  accept_targets_ = std::move(targets);
}

void Worker::run() {
  if (acceptor_) do_accept();
  arm_sweep();
  thread_ = std::thread([this] {
    // OpenSSL writes TLS records with send() without MSG_NOSIGNAL: a client gone would raise
    // SIGPIPE, whose default kills the process. Blocked in this thread, the write fails with
    // EPIPE instead, whatever the process does with the signal elsewhere.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    set_current_io_thread(&io_thread_);
    while (true) {
      try {
        ioc_.run();
        return;
      } catch (...) {
        // Handlers do not throw by design; keep serving if one does.
      }
    }
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::do_accept() {
  Worker* target = this;
  if (!accept_targets_.empty()) {
    target = accept_targets_[next_target_++ % accept_targets_.size()].get();
  }
  acceptor_->async_accept(
      target->ioc_, [self = shared_from_this(), target = target->shared_from_this()](
                        const boost::system::error_code& ec, tcp::socket socket) {
        if (self->stopping_ || !self->acceptor_->is_open()) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // Out of descriptors (or a transient error): retry shortly instead of spinning.
          self->accept_retry_timer_.expires_after(kAcceptRetryDelay);
          self->accept_retry_timer_.async_wait([self](const boost::system::error_code& e) {
            if (!e && !self->stopping_) self->do_accept();
          });
          return;
        }
        if (target.get() == self.get()) {
          self->on_accepted(std::move(socket));
        } else {
          asio::post(target->ioc_, [target, s = std::move(socket)]() mutable {
            target->on_accepted(std::move(s));
          });
        }
        self->do_accept();
      });
}

void Worker::on_accepted(tcp::socket socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  const size_t open = shared_->connections.fetch_add(1, std::memory_order_acq_rel) + 1;
  auto conn = std::make_shared<Connection>(shared_from_this(), std::move(socket));
  if (stopping_ || shared_->draining.load(std::memory_order_acquire)) {
    conn->close();
  } else if (open > shared_->options.max_connections) {
    if (shared_->options.tls) {
      shared_->reject(503);
      conn->close();  // an answer would need a handshake first
    } else {
      conn->start_rejected(503);
    }
  } else {
    conn->start();
  }
}

void Worker::arm_sweep() {
  sweep_timer_.expires_after(shared_->sweep_period);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    sweep();
    arm_sweep();
  });
}

template <class Fn>
void Worker::for_each_connection(Fn&& fn) {
  // Snapshot under the lock, act without it: acting may end a connection, whose destructor
  // takes the lock to unlink itself.
  scratch_.clear();
  {
    std::lock_guard lock(list_mu_);
    for (Connection* c = head_; c != nullptr; c = c->next) {
      if (auto p = c->weak_from_this().lock()) scratch_.push_back(std::move(p));
    }
  }
  for (auto& c : scratch_) fn(*c);
  scratch_.clear();
}

void Worker::sweep() {
  const Clock::TimePoint t = Clock::real().now();
  for_each_connection([t](Connection& c) { c.on_sweep(t); });
}

void Worker::begin_drain() {
  close_acceptor();
  for_each_connection([](Connection& c) { c.begin_drain(); });
}

void Worker::force_close_all() {
  stopping_ = true;
  close_acceptor();
  sweep_timer_.cancel();
  accept_retry_timer_.cancel();
  for_each_connection([](Connection& c) { c.close(); });
  io_thread_.stop();
}

void Worker::finish() {
  {
    std::lock_guard lock(post_mu_);
    accepting_posts_ = false;
  }
  // Run what responders posted between run() returning and the flag above; every connection
  // is closed, so these only drop their responses.
  ioc_.restart();
  ioc_.poll();
}

void Worker::link(Connection* c) {
  std::lock_guard lock(list_mu_);
  c->prev = nullptr;
  c->next = head_;
  if (head_ != nullptr) head_->prev = c;
  head_ = c;
}

void Worker::unlink(Connection* c) {
  std::lock_guard lock(list_mu_);
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (head_ == c) head_ = c->next;
  c->prev = c->next = nullptr;
}

}  // namespace internal

struct Server::Impl {
  std::shared_ptr<internal::ServerShared> shared = std::make_shared<internal::ServerShared>();
  std::vector<std::shared_ptr<internal::Worker>> workers;
  std::atomic<uint16_t> port{0};
  std::mutex mu;  // start/shutdown
  bool started = false;
  bool stopped = false;
};

Server::Server(ServerOptions options, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared->set_tls(options.tls);
  impl_->shared->options = std::move(options);
  impl_->shared->handler = std::move(handler);
}

Result<void> Server::replace_tls(std::shared_ptr<const TlsContext> tls) {
  if (!impl_->shared->options.tls) {
    return make_error(ErrorCode::kInvalidArgument, "the server was started without TLS");
  }
  if (!tls) return make_error(ErrorCode::kInvalidArgument, "no TLS context given");
  impl_->shared->set_tls(std::move(tls));
  return {};
}

Server::~Server() { shutdown(std::chrono::milliseconds(0)); }

Result<void> Server::start() {
  using internal::tcp;
  std::lock_guard lock(impl_->mu);
  if (impl_->started) return make_error(ErrorCode::kInternal, "server already started");
  auto& shared = *impl_->shared;
  const ServerOptions& opts = shared.options;
  if (!shared.handler) return make_error(ErrorCode::kInvalidArgument, "server has no handler");

  boost::system::error_code ec;
  auto address =
      boost::asio::ip::make_address(opts.address == "localhost" ? "127.0.0.1" : opts.address, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid listen address '" + opts.address + "' (an IP literal is required)");
  }

  const auto shortest = std::min({opts.read_timeout, opts.idle_timeout, opts.write_timeout});
  shared.sweep_period = std::clamp<Clock::Duration>(shortest / 8, std::chrono::milliseconds(5),
                                                    std::chrono::milliseconds(250));

  int threads =
      opts.threads > 0 ? opts.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(threads, 1);
  auto& workers = impl_->workers;
  for (int i = 0; i < threads; ++i) {
    workers.push_back(std::make_shared<internal::Worker>(impl_->shared));
  }

  // The first acceptor picks the port (possibly ephemeral); the others join it through
  // SO_REUSEPORT so the kernel balances connections across threads.
  tcp::endpoint endpoint(address, opts.port);
  if (opts.port != 0 && threads > 1) {
    // SO_REUSEPORT would let us share a fixed port with another server of the same user and
    // split its traffic; an exclusive test bind first turns that into "address in use". (An
    // ephemeral port is never handed out shared.)
    tcp::acceptor probe(workers[0]->io());
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    boost::system::error_code ignored;
    probe.close(ignored);
  }
  if (!ec) ec = workers[0]->listen(endpoint, /*reuse_port=*/threads > 1);
  if (ec && threads > 1) ec = workers[0]->listen(endpoint, /*reuse_port=*/false);
  if (ec) {
    workers.clear();
    return make_error(ErrorCode::kUnavailable, "cannot listen on " + opts.address + ":" +
                                                   std::to_string(opts.port) + ": " + ec.message());
  }
  impl_->port = workers[0]->local_port();
  endpoint.port(impl_->port);
  bool reuse_port_ok = true;
  for (int i = 1; i < threads && reuse_port_ok; ++i) {
    reuse_port_ok = !workers[i]->listen(endpoint, /*reuse_port=*/true);
  }
  if (!reuse_port_ok) {
    // Fallback: one acceptor hands sockets to all threads round-robin.
    for (int i = 1; i < threads; ++i) workers[i]->close_acceptor();
    workers[0]->set_accept_targets(workers);
  }

  for (auto& w : workers) w->run();
  impl_->started = true;
  return {};
}

uint16_t Server::port() const { return impl_->port.load(); }

void Server::shutdown(std::chrono::milliseconds deadline) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  auto& shared = *impl_->shared;
  const Clock::TimePoint until = Clock::real().now() + deadline;

  shared.draining.store(true, std::memory_order_release);
  for (auto& w : impl_->workers) {
    boost::asio::post(w->io(), [w] { w->begin_drain(); });
  }
  {
    std::unique_lock l(shared.drain_mu);
    shared.drain_cv.wait_until(l, until, [&] { return shared.connections.load() == 0; });
  }
  for (auto& w : impl_->workers) {
    boost::asio::post(w->io(), [w] { w->force_close_all(); });
  }
  for (auto& w : impl_->workers) w->join();
  for (auto& w : impl_->workers) w->finish();
}

size_t Server::inflight() const {
  size_t n = 0;
  for (const auto& w : impl_->workers) n += w->inflight().load(std::memory_order_relaxed);
  return n;
}

size_t Server::connections() const { return impl_->shared->connections.load(); }

}  // namespace prescale::http
