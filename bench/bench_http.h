// Benchmark support: a minimal HTTP/1.1 keep-alive client over raw loopback
// sockets (Content-Length framing only, which is all tokenledgerd sends), shared
// by create_load and propagation_bench. Not a general HTTP client.
#pragma once

#include <arpa/inet.h>
#include <sodium.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tlbench {

using Clock = std::chrono::steady_clock;

inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// User + system CPU seconds this process used so far.
inline double selfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string position;  // Tokenledger-Applied-Position header, if any
};

// Parses one complete response from the front of `buf` and erases it. Returns
// false when `buf` does not hold a whole response yet. Throws on garbage.
inline bool takeResponse(std::string& buf, HttpResponse& out) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  if (buf.compare(0, 5, "HTTP/") != 0 || end < 12) throw std::runtime_error("not an HTTP response");
  int status = std::atoi(buf.c_str() + 9);
  size_t length = 0;
  std::string position;
  size_t line = buf.find("\r\n");
  while (line < end) {
    size_t next = buf.find("\r\n", line + 2);
    std::string_view h(buf.data() + line + 2, next - line - 2);
    size_t colon = h.find(':');
    if (colon != std::string_view::npos) {
      std::string name(h.substr(0, colon));
      for (auto& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      std::string_view value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "content-length") length = std::strtoul(std::string(value).c_str(), nullptr, 10);
      if (name == "tokenledger-applied-position") position = value;
    }
    line = next;
  }
  if (buf.size() < end + 4 + length) return false;
  out.status = status;
  out.body.assign(buf, end + 4, length);
  out.position = std::move(position);
  buf.erase(0, end + 4 + length);
  return true;
}

inline int connectLoopback(int port, bool nonblocking) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + ": " + strerror(e));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nonblocking) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

inline std::string buildRequest(std::string_view method, std::string_view path,
                                const std::vector<std::string>& headers, std::string_view body) {
  std::string r;
  r.reserve(256 + body.size());
  r.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (const auto& h : headers) r.append(h).append("\r\n");
  if (!body.empty() || method == "POST")
    r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append("\r\n").append(body);
  return r;
}

// One blocking keep-alive connection to 127.0.0.1:port.
class Connection {
 public:
  explicit Connection(int port) : fd_(connectLoopback(port, false)) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error(std::string("send: ") + strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

  HttpResponse receive(int timeoutMs = 15000) {
    HttpResponse r;
    while (!takeResponse(buf_, r)) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeoutMs) <= 0)
        throw std::runtime_error("timed out waiting for a response");
      char tmp[16384];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) throw std::runtime_error("connection closed before a full response");
      buf_.append(tmp, static_cast<size_t>(n));
    }
    return r;
  }

  HttpResponse request(std::string_view method, std::string_view path,
                       const std::vector<std::string>& headers, std::string_view body = {}) {
    send(buildRequest(method, path, headers, body));
    return receive();
  }

 private:
  int fd_;
  std::string buf_;
};

inline std::string base64(std::string_view in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()),
                    in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

// The value of a top-level string field in a flat JSON object ("key":"value"),
// enough for tokenledgerd's responses (its values never contain escaped quotes
// in the fields read here: key, token, position).
inline std::string jsonString(const std::string& body, const std::string& field) {
  std::string pat = "\"" + field + "\":\"";
  size_t at = body.find(pat);
  if (at == std::string::npos) return "";
  at += pat.size();
  size_t end = body.find('"', at);
  return end == std::string::npos ? "" : body.substr(at, end - at);
}

// Percentile (0..100) of a sample by nearest rank; sorts `v`.
template <typename T>
T percentile(std::vector<T>& v, double pct) {
  if (v.empty()) return T{};
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(pct / 100.0 * static_cast<double>(v.size()) + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > v.size()) rank = v.size();
  return v[rank - 1];
}

}  // namespace tlbench
