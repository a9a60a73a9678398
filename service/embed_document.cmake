# Turns docs/openapi.yaml into a C++ source holding it as a byte array, as
# web/embed.cmake does for the web page, so GET /v1/openapi.yaml serves exactly the
# file. Invoked as: cmake -DOUT=file.cpp -DIN=docs/openapi.yaml -P embed_document.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
set(body "// Generated from docs/openapi.yaml by embed_document.cmake. Do not edit.\n#include \"service/openapi_document.h\"\n\nnamespace tokenledger {\nnamespace {\nconst unsigned char kDocument[] = {${hex}};\n}  // namespace\n\nstd::string_view openapiDocument() {\n  return std::string_view(reinterpret_cast<const char*>(kDocument), sizeof kDocument);\n}\n\n}  // namespace tokenledger\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
