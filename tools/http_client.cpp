#include "tools/http_client.h"

#include <curl/curl.h>

#include <cstdint>

#include <cstring>
#include <utility>

namespace tokenledger::tools {
namespace {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

// Owns a curl_slist; append() keeps ownership on failure.
class CurlHeaderList {
 public:
  CurlHeaderList() = default;
  ~CurlHeaderList() { curl_slist_free_all(list_); }
  CurlHeaderList(const CurlHeaderList&) = delete;
  CurlHeaderList& operator=(const CurlHeaderList&) = delete;

  bool append(const std::string& line) {
    curl_slist* grown = curl_slist_append(list_, line.c_str());
    if (grown == nullptr) return false;
    list_ = grown;
    return true;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

size_t appendToString(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

constexpr size_t kMaxResponseBytes = 16u << 20;

size_t appendToBoundedString(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * count > kMaxResponseBytes) return 0;  // aborts the transfer
  return appendToString(data, size, count, user);
}

class CurlHttpClient final : public HttpClient {
 public:
  CurlHttpClient(std::chrono::milliseconds timeout, std::string userAgent)
      : timeout_(timeout), userAgent_(std::move(userAgent)) {}

  bool perform(const HttpRequest& request, HttpResponse& response, TransportError& error) override {
    CurlEasy curl(curl_easy_init());
    if (!curl) {
      error.message = "could not initialize libcurl";
      return false;
    }
    CURL* h = curl.get();
    char errorBuffer[CURL_ERROR_SIZE] = {};
    response = HttpResponse{};

    CurlHeaderList headers;
    for (const std::string& line : request.headers) {
      if (!headers.append(line)) {
        error.message = "out of memory building request headers";
        return false;
      }
    }
    // No "Expect: 100-continue" round trip for small JSON bodies, and no default
    // form Content-Type on a POST without a body.
    if (!headers.append("Expect:") || (!request.body && !headers.append("Content-Type:"))) {
      error.message = "out of memory building request headers";
      return false;
    }

    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errorBuffer);
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(h, CURLOPT_USERAGENT, userAgent_.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, appendToBoundedString);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);

    if (request.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      const std::string& body = request.body ? *request.body : emptyBody_;
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    } else if (request.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
      error.message = errorBuffer[0] != '\0' ? std::string(errorBuffer) : curl_easy_strerror(rc);
      while (!error.message.empty() &&
             (error.message.back() == '\n' || error.message.back() == '\r')) {
        error.message.pop_back();
      }
      return false;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    return true;
  }

 private:
  std::chrono::milliseconds timeout_;
  std::string userAgent_;
  const std::string emptyBody_;
};

}  // namespace

CurlGlobal::CurlGlobal() : ok_(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) {}

CurlGlobal::~CurlGlobal() {
  if (ok_) curl_global_cleanup();
}

std::unique_ptr<HttpClient> newCurlHttpClient(std::chrono::milliseconds timeout,
                                              std::string userAgent) {
  return std::make_unique<CurlHttpClient>(timeout, std::move(userAgent));
}

std::string base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t n = (uint32_t(uint8_t(data[i])) << 16) | (uint32_t(uint8_t(data[i + 1])) << 8) |
                 uint32_t(uint8_t(data[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t n = uint32_t(uint8_t(data[i])) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t n = (uint32_t(uint8_t(data[i])) << 16) | (uint32_t(uint8_t(data[i + 1])) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace tokenledger::tools
