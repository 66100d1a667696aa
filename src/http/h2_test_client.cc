#include "http/h2_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http/internal/wire.h"

namespace prescale::http::testing {

std::optional<std::string> H2Reply::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (internal::iequals(n, name)) return v;
  }
  return std::nullopt;
}

struct H2ClientCallbacks {
  static H2Client& of(void* user) { return *static_cast<H2Client*>(user); }

  static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Reply& r = of(user).replies_[frame->hd.stream_id];
    const std::string n(reinterpret_cast<const char*>(name), namelen);
    const std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      const int status = std::atoi(v.c_str());
      if (status == 100) {
        r.continued = true;
      } else {
        r.status = status;
      }
      return 0;
    }
    if (r.head_done) {
      r.trailers.emplace_back(n, v);
    } else if (r.status != 0) {
      r.headers.emplace_back(n, v);
    }
    return 0;
  }

  static int data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                        size_t len, void* user) {
    of(user).replies_[stream_id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Client& self = of(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self.goaway_ = true;
      self.goaway_code_ = frame->goaway.error_code;
      self.goaway_last_ = frame->goaway.last_stream_id;
    } else if (frame->hd.type == NGHTTP2_HEADERS) {
      H2Reply& r = self.replies_[frame->hd.stream_id];
      if (r.status != 0) r.head_done = true;
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
      H2Reply& r = self.replies_[frame->hd.stream_id];
      r.reset = true;
      r.reset_code = frame->rst_stream.error_code;
    }
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
    of(user).replies_[stream_id].closed = true;
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* user) {
    auto& body = of(user).bodies_[stream_id];
    const size_t n = std::min(length, body.data.size() - body.off);
    if (n == 0 && body.more) return NGHTTP2_ERR_DEFERRED;  // until send_body()
    std::memcpy(buf, body.data.data() + body.off, n);
    body.off += n;
    if (body.off == body.data.size() && !body.more) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

H2Client::H2Client(uint16_t port, int32_t window) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2ClientCallbacks::header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2ClientCallbacks::data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2ClientCallbacks::frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, H2ClientCallbacks::stream_close);
  nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(window)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
}

H2Client::~H2Client() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (fd_ >= 0) ::close(fd_);
}

int32_t H2Client::submit(std::string_view method, std::string_view path, Fields fields,
                         std::string body) {
  return submit(method, path, std::move(fields), std::move(body), false);
}

int32_t H2Client::submit_open(std::string_view method, std::string_view path) {
  return submit(method, path, {}, {}, true);
}

int32_t H2Client::submit_streaming(std::string_view method, std::string_view path, Fields fields) {
  return submit(method, path, std::move(fields), {}, true);
}

void H2Client::send_body(int32_t id, std::string_view data, bool end) {
  auto it = bodies_.find(id);
  if (it == bodies_.end()) return;
  it->second.data += data;
  it->second.more = !end;
  nghttp2_session_resume_data(session_, id);
}

size_t H2Client::body_sent(int32_t id) const {
  auto it = bodies_.find(id);
  return it == bodies_.end() ? 0 : it->second.off;
}

int32_t H2Client::submit(std::string_view method, std::string_view path, Fields fields,
                         std::string body, bool open) {
  fields.insert(fields.begin(), {{":method", std::string(method)},
                                 {":scheme", "http"},
                                 {":authority", "localhost"},
                                 {":path", std::string(path)}});
  std::vector<nghttp2_nv> nva;
  for (auto& [n, v] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                   n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider provider{};
  provider.read_callback = H2ClientCallbacks::read_body;
  const bool has_body = !body.empty() || open;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                            has_body ? &provider : nullptr, nullptr);
  if (id > 0) {
    replies_[id];
    if (has_body) bodies_[id] = {std::move(body), 0, open};
  }
  return id;
}

void H2Client::cancel(int32_t id) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
}

bool H2Client::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// One round: everything the session has to send, then one read (or the deadline).
bool H2Client::pump(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    if (!send_raw(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) {
      eof_ = true;
      return false;
    }
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  // A short wait at a time: what a test waits for may happen at the server, with nothing sent.
  pollfd p{fd_, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 20)));
  if (r < 0) return false;
  if (r == 0) return true;
  char buf[16384];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
  return true;
}

bool H2Client::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (eof_ || !pump(deadline)) return done();
  }
  // What the last frames asked for (acknowledgements, window updates) goes out too.
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    send_raw(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
  }
  return true;
}

bool H2Client::finish(const std::vector<int32_t>& ids, std::chrono::milliseconds timeout) {
  return run_until(
      [&] {
        return std::all_of(ids.begin(), ids.end(), [&](int32_t id) { return replies_[id].closed; });
      },
      timeout);
}

bool H2Client::run_to_close(std::chrono::milliseconds timeout) {
  return run_until([&] { return eof_; }, timeout);
}

}  // namespace prescale::http::testing
