// The web page's files (service/web/), compiled into the binary.
#pragma once

#include <string_view>
#include <vector>

namespace tokenledger {

struct WebAsset {
  std::string_view path;  // "/index.html", "/app.js", …
  std::string_view contentType;
  std::string_view body;
};

const std::vector<WebAsset>& webAssets();

}  // namespace tokenledger
