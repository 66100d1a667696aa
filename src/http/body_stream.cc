#include "http/body_stream.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

namespace prescale::http {

bool BodyStream::write(std::string_view data) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mu_);
    if (gone_ || ended_ || aborted_) return false;
    if (data.empty()) return true;
    pieces_.emplace_back(data);
    queued_ += data.size();
    if (queued_ > kHighWater) was_full_ = true;
    if (waiting_) {
      waiting_ = false;
      wake = wake_;
    }
  }
  if (wake) wake();
  return true;
}

void BodyStream::end() { finish(ended_); }

void BodyStream::end(Headers trailers) {
  {
    std::lock_guard lock(mu_);
    if (gone_ || ended_ || aborted_) return;
    trailers_ = std::move(trailers);
  }
  finish(ended_);
}

Headers BodyStream::take_trailers() {
  std::lock_guard lock(mu_);
  return std::exchange(trailers_, Headers());
}

void BodyStream::abort() { finish(aborted_); }

void BodyStream::finish(bool& how) {
  std::function<void()> wake;
  std::function<void(BodyEnd)> over;
  {
    std::lock_guard lock(mu_);
    if (gone_ || ended_ || aborted_) return;
    how = true;
    if (waiting_) {
      waiting_ = false;
      wake = wake_;
    }
    over.swap(on_over_);
  }
  if (wake) wake();
  if (over) over(&how == &ended_ ? BodyEnd::kEnded : BodyEnd::kAborted);
}

bool BodyStream::full() const {
  std::lock_guard lock(mu_);
  return queued_ > kHighWater;
}

size_t BodyStream::queued() const {
  std::lock_guard lock(mu_);
  return queued_;
}

bool BodyStream::gone() const {
  std::lock_guard lock(mu_);
  return gone_;
}

// The callbacks a stream replaces or drops are destroyed outside its lock: one may hold the last
// reference to state whose destructor calls back in (end(), abort()), or to the stream itself.
void BodyStream::set_on_drained(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  on_drained_.swap(fn);
}

void BodyStream::set_on_gone(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  on_gone_.swap(fn);
}

void BodyStream::set_on_over(std::function<void(BodyEnd)> fn) {
  std::optional<BodyEnd> over;
  {
    std::lock_guard lock(mu_);
    if (ended_) {
      over = BodyEnd::kEnded;
    } else if (aborted_) {
      over = BodyEnd::kAborted;
    } else if (gone_) {
      over = BodyEnd::kClientGone;
    } else {
      on_over_.swap(fn);
    }
  }
  if (over && fn) fn(*over);
}

void BodyStream::attach(std::function<void()> wake) {
  std::lock_guard lock(mu_);
  wake_ = std::move(wake);
}

BodyStream::Take BodyStream::take(std::string& out, bool chunked, size_t& data_bytes) {
  std::vector<std::string> pieces;
  bool ended = false;
  bool aborted = false;
  {
    std::lock_guard lock(mu_);
    // At most about kHighWater a batch (one piece at least): the server's write timeout bounds
    // each batch, so a client that reads slowly but steadily is not cut off.
    size_t bytes = 0;
    while (!pieces_.empty() && (pieces.empty() || bytes + pieces_.front().size() <= kHighWater)) {
      bytes += pieces_.front().size();
      pieces.push_back(std::move(pieces_.front()));
      pieces_.pop_front();
    }
    ended = ended_ && pieces_.empty();
    aborted = aborted_ && pieces_.empty();
    waiting_ = pieces.empty() && !ended && !aborted;
  }
  data_bytes = 0;
  for (const std::string& piece : pieces) {
    data_bytes += piece.size();
    if (chunked) {
      char size[16];
      auto r = std::to_chars(size, size + sizeof size, piece.size(), 16);
      out.append(size, r.ptr);
      out += "\r\n";
      out += piece;
      out += "\r\n";
    } else {
      out += piece;
    }
  }
  if (!pieces.empty()) return Take::kData;
  if (ended || aborted) {
    // Nothing more to wake the server for or tell the producer: the functions go (the wake holds
    // the server's thread, a producer's callback perhaps the producer).
    std::function<void()> wake, drained, gone;
    std::lock_guard lock(mu_);
    wake.swap(wake_);
    drained.swap(on_drained_);
    gone.swap(on_gone_);
  }
  if (aborted) return Take::kAbort;
  if (ended) return Take::kEnd;
  return Take::kWait;
}

void BodyStream::sent(size_t data_bytes) {
  std::function<void()> drained;
  {
    std::lock_guard lock(mu_);
    queued_ -= std::min(queued_, data_bytes);
    if (was_full_ && queued_ <= kLowWater) {
      was_full_ = false;
      drained = on_drained_;
    }
  }
  if (drained) drained();
}

void BodyStream::client_gone() {
  std::function<void()> gone, wake, drained, unused;
  std::function<void(BodyEnd)> over;
  {
    std::lock_guard lock(mu_);
    if (gone_) return;
    gone_ = true;
    pieces_.clear();
    queued_ = 0;
    waiting_ = false;
    wake.swap(wake_);
    drained.swap(on_drained_);
    if (!ended_ && !aborted_) {
      gone.swap(on_gone_);
      over.swap(on_over_);
    } else {
      unused.swap(on_gone_);
    }
  }
  if (gone) gone();
  if (over) over(BodyEnd::kClientGone);
}

}  // namespace prescale::http
