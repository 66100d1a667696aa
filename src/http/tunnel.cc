#include "http/tunnel.h"

#include <utility>

#include "http/internal/wire.h"

namespace prescale::http {

std::optional<std::string_view> upgrade_requested(const Request& request) {
  const auto connection = request.headers.get("Connection");
  if (!connection || !internal::has_token(*connection, "upgrade")) return std::nullopt;
  const auto upgrade = request.headers.get("Upgrade");
  if (!upgrade || internal::trim(*upgrade).empty()) return std::nullopt;
  return internal::trim(*upgrade);
}

Tunnel::Tunnel() : out_(std::make_shared<BodyStream>()) {}

void Tunnel::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void Tunnel::resume() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mu_);
    if (!paused_) return;
    paused_ = false;
    wake = wake_;
  }
  if (wake) wake();
}

void Tunnel::abort() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mu_);
    if (aborted_ || closed_) return;
    aborted_ = true;
    wake = wake_;
  }
  if (wake) wake();
}

bool Tunnel::aborted() const {
  std::lock_guard lock(mu_);
  return aborted_;
}

void Tunnel::attach(std::function<void()> wake) {
  std::lock_guard lock(mu_);
  wake_ = std::move(wake);
}

bool Tunnel::paused() const {
  std::lock_guard lock(mu_);
  return paused_;
}

void Tunnel::data(std::string_view bytes) {
  if (on_data_ && !bytes.empty()) on_data_(bytes);
}

void Tunnel::input_ended() {
  if (on_end_) on_end_();
}

void Tunnel::closed() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    wake.swap(wake_);
  }
  out_->client_gone();  // writes dropped, its callbacks too (on_gone first, unless it ended)
  // Moved out first: a callback may hold the last reference to the handler's state, or to this.
  auto on_closed = std::move(on_closed_);
  auto on_data = std::move(on_data_);
  auto on_end = std::move(on_end_);
  if (on_closed) on_closed();
}

}  // namespace prescale::http
