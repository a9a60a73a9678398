// A small blocking HTTP client for the command-line tools, built on libcurl.
//
// One HttpClient performs one request at a time on the calling thread. The CURL
// handle and header lists are owned by RAII wrappers and released on every path.
// Header values passed in (for example an Authorization header) are never
// logged or echoed by this module.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokenledger::tools {

struct HttpRequest {
  std::string method = "GET";        // GET or POST
  std::string url;                   // absolute URL
  std::vector<std::string> headers;  // "Name: value" lines
  std::optional<std::string> body;   // sent as-is; nullopt sends no body at all
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

// A failure below HTTP: DNS, connect, TLS, timeout, a broken connection.
struct TransportError {
  std::string message;  // curl's description, without request headers
};

// Keeps curl's process-wide state initialized for its lifetime. Create one in
// main() before any HttpClient; not thread-safe (curl_global_init is not).
class CurlGlobal {
 public:
  CurlGlobal();
  ~CurlGlobal();
  CurlGlobal(const CurlGlobal&) = delete;
  CurlGlobal& operator=(const CurlGlobal&) = delete;
  bool ok() const { return ok_; }

 private:
  bool ok_;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Performs the request; returns the response for any HTTP status, or a
  // TransportError when no HTTP answer was received.
  virtual bool perform(const HttpRequest& request, HttpResponse& response,
                       TransportError& error) = 0;
};

// `timeout` bounds the whole request, including connecting.
std::unique_ptr<HttpClient> newCurlHttpClient(std::chrono::milliseconds timeout,
                                              std::string userAgent);

// Standard base64 (RFC 4648, with padding).
std::string base64Encode(std::string_view data);

}  // namespace tokenledger::tools
