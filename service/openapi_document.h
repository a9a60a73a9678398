// docs/openapi.yaml, the API's contract, compiled into the binary (served at
// GET /v1/openapi.yaml byte for byte; service/embed_document.cmake generates it).
#pragma once

#include <string_view>

namespace tokenledger {

std::string_view openapiDocument();

}  // namespace tokenledger
