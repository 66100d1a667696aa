// ws_load: a closed-loop WebSocket load client for bench/websocket.sh. Each of --connections
// threads opens one WebSocket (GET --path with the RFC 6455 handshake), then sends a masked
// binary message of --bytes and waits for its echo, again and again for --duration seconds.
// Prints one line: `messages_per_s=N p50_us=N p99_us=N connections=N`, the messages echoed per
// second over all connections and the quantiles of each message's round trip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/websocket.h"

namespace {

namespace ws = prescale::http::websocket;
using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  int connections = 8;
  double duration_s = 5;
  size_t bytes = 64;
  std::string path = "/ws";
};

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "ws_load: %s\n", why.c_str());
  std::exit(1);
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int open_websocket(const Options& o) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("cannot create a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(o.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    die("cannot connect to port " + std::to_string(o.port));
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string request = "GET " + o.path +
                              " HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  if (!send_all(fd, request)) die("cannot send the handshake");
  std::string head;
  char c;
  while (!head.ends_with("\r\n\r\n")) {  // byte by byte: nothing of the frames that follow
    if (::recv(fd, &c, 1, 0) != 1) die("the connection closed during the handshake");
    head += c;
  }
  if (!head.starts_with("HTTP/1.1 101 ")) die("handshake refused: " + head);
  return fd;
}

void run_connection(const Options& o, Clock::time_point end, std::vector<double>& rtts_us) {
  const int fd = open_websocket(o);
  std::string frame;
  ws::append_frame(frame, ws::Opcode::kBinary, std::string(o.bytes, 'm'), true,
                   std::array<uint8_t, 4>{0x12, 0x34, 0x56, 0x78});
  ws::FrameParser parser(ws::FrameParser::Role::kClient, o.bytes + 1024);
  std::vector<ws::Frame> frames;
  std::vector<char> buf(64 * 1024);
  while (Clock::now() < end) {
    const auto start = Clock::now();
    if (!send_all(fd, frame)) die("send failed");
    frames.clear();
    while (frames.empty()) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) die("the connection closed mid-run");
      auto parsed = parser.parse(std::string_view(buf.data(), static_cast<size_t>(n)), frames);
      if (!parsed) die("bad frame: " + parsed.error().to_string());
    }
    if (frames.size() != 1 || frames[0].payload.size() != o.bytes) die("unexpected echo");
    rtts_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::string close;
  ws::append_frame(close, ws::Opcode::kClose, ws::close_payload(ws::kCloseNormal), true,
                   std::array<uint8_t, 4>{1, 2, 3, 4});
  send_all(fd, close);
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--port") {
      o.port = std::atoi(value);
    } else if (flag == "--connections") {
      o.connections = std::atoi(value);
    } else if (flag == "--duration") {
      o.duration_s = std::atof(value);
    } else if (flag == "--bytes") {
      o.bytes = static_cast<size_t>(std::atol(value));
    } else if (flag == "--path") {
      o.path = value;
    } else {
      die("unknown flag " + std::string(flag));
    }
  }
  if (o.port <= 0 || o.connections <= 0 || o.duration_s <= 0) {
    die("usage: ws_load --port P [--connections N] [--duration S] [--bytes B] [--path /ws]");
  }
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.duration_s));
  std::vector<std::vector<double>> rtts(static_cast<size_t>(o.connections));
  std::vector<std::thread> threads;
  for (auto& r : rtts) threads.emplace_back([&o, end, &r] { run_connection(o, end, r); });
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (const auto& r : rtts) all.insert(all.end(), r.begin(), r.end());
  if (all.empty()) die("no message was echoed");
  std::sort(all.begin(), all.end());
  const auto at = [&](double q) { return all[static_cast<size_t>(q * (all.size() - 1))]; };
  std::printf("messages_per_s=%.0f p50_us=%.1f p99_us=%.1f connections=%d\n",
              static_cast<double>(all.size()) / o.duration_s, at(0.5), at(0.99), o.connections);
  return 0;
}
