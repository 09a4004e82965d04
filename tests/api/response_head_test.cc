// The head of every answer the server writes (FormatResponseHead): what a client parses before
// the body, so it must frame the body exactly and carry each field once.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http_util.h"

using zerofarm::api::FormatResponseHead;

TEST_CASE("an answer's head frames its body and carries each field once, with its last value",
          "[api]") {
  const std::string head = FormatResponseHead(206,
                                              {{"Content-Type", "video/mp4"},
                                               {"Cache-Control", "no-cache"},
                                               {"content-length", "7"},
                                               {"cache-control", "private, max-age=86400"},
                                               {"Connection", "keep-alive"}},
                                              64, false);
  CHECK(head ==
        "HTTP/1.1 206 Partial Content\r\n"
        "Content-Type: video/mp4\r\n"
        "cache-control: private, max-age=86400\r\n"
        "Content-Length: 64\r\n"
        "\r\n");
}

TEST_CASE("an answer that ends the connection says so, and a bodiless one has no length", "[api]") {
  CHECK(FormatResponseHead(304, {{"ETag", "\"1\""}}, std::nullopt, true) ==
        "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\nConnection: close\r\n\r\n");
  CHECK(FormatResponseHead(404, {}, 0, false) ==
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("a field value cannot end the head or add a field of its own", "[api]") {
  const std::string head = FormatResponseHead(
      201, {{"Location", "/v1/videos/x\r\nSet-Cookie: a=b\r\n\r\nbody"}}, 0, false);
  CHECK(head ==
        "HTTP/1.1 201 Created\r\nLocation: /v1/videos/x  Set-Cookie: a=b    body\r\n"
        "Content-Length: 0\r\n\r\n");
}
