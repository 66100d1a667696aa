#include "http/request_body.h"

#include <utility>

namespace prescale::http {

RequestBody::Read RequestBody::read(std::string& out) {
  size_t taken = 0;
  std::function<void(size_t)> consumed;
  {
    std::lock_guard lock(mu_);
    if (!data_.empty()) {
      taken = data_.size();
      if (out.empty()) {
        out.swap(data_);
      } else {
        out += data_;
      }
      data_.clear();
      consumed = consumed_;
    } else if (ended_) {
      return Read::kEnd;
    } else if (aborted_) {
      return Read::kAborted;
    } else {
      waiting_ = true;
      return Read::kWait;
    }
  }
  if (consumed) consumed(taken);
  return Read::kData;
}

void RequestBody::set_on_readable(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  std::swap(on_readable_, fn);  // the old one is destroyed outside the lock
}

void RequestBody::discard() {
  size_t dropped = 0;
  std::function<void(size_t)> consumed;
  std::function<void()> readable;
  {
    std::lock_guard lock(mu_);
    if (discarded_) return;
    discarded_ = true;
    waiting_ = false;
    dropped = data_.size();
    std::string().swap(data_);
    readable.swap(on_readable_);
    consumed = consumed_;
  }
  if (consumed && dropped > 0) consumed(dropped);
}

uint64_t RequestBody::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

void RequestBody::bind(std::function<void(size_t)> consumed) {
  std::lock_guard lock(mu_);
  consumed_ = std::move(consumed);
}

size_t RequestBody::unbind() {
  std::function<void(size_t)> consumed;
  std::lock_guard lock(mu_);
  consumed.swap(consumed_);
  return data_.size();
}

bool RequestBody::push(const char* data, size_t size, std::function<void()>& wake) {
  std::lock_guard lock(mu_);
  if (discarded_ || ended_ || aborted_) return false;
  data_.append(data, size);
  received_ += size;
  take_waiter(wake);
  return true;
}

void RequestBody::finish(bool complete, std::function<void()>& wake) {
  std::lock_guard lock(mu_);
  if (ended_ || aborted_) return;
  (complete ? ended_ : aborted_) = true;
  if (!discarded_) take_waiter(wake);
}

void RequestBody::take_waiter(std::function<void()>& wake) {
  if (!waiting_ || !on_readable_) return;
  waiting_ = false;
  wake = on_readable_;
}

}  // namespace prescale::http
