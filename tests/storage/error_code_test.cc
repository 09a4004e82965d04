// ErrorCode: one wire name per code, both ways, and the Status that carries it.
#include "zerofarm/base/error_code.h"

#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "zerofarm/base/status.h"

using zerofarm::ErrorCode;
using zerofarm::ErrorCodeFromName;
using zerofarm::ErrorCodeName;
using zerofarm::Status;

namespace {

// kNoMoov is the last enumerator (error_code.h).
constexpr int kCodeCount = static_cast<int>(ErrorCode::kNoMoov) + 1;

}  // namespace

TEST_CASE("every error code has a distinct, non-empty wire name that reads back as itself",
          "[error_code]") {
  std::set<std::string_view> names;
  for (int i = 0; i < kCodeCount; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const std::string_view name = ErrorCodeName(code);
    INFO("enumerator " << i << " is named '" << name << "'");
    CHECK(!name.empty());
    CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos);
    CHECK(names.insert(name).second);
    CHECK(ErrorCodeFromName(name) == code);
  }
  CHECK(names.size() == static_cast<size_t>(kCodeCount));
}

TEST_CASE("wire names are the ones the API and the node protocol have always sent",
          "[error_code]") {
  CHECK(ErrorCodeName(ErrorCode::kInvalidArgument) == "invalid_argument");
  CHECK(ErrorCodeName(ErrorCode::kIoError) == "io_error");
  CHECK(ErrorCodeName(ErrorCode::kNotAFile) == "not_a_file");
  CHECK(ErrorCodeName(ErrorCode::kNoQuorum) == "no_quorum");
  CHECK(ErrorCodeName(ErrorCode::kUploadIncomplete) == "upload_incomplete");
}

TEST_CASE("text that names no error code decodes to nothing", "[error_code]") {
  CHECK(!ErrorCodeFromName(""));
  CHECK(!ErrorCodeFromName("ok"));
  CHECK(!ErrorCodeFromName("Not_Found"));
  CHECK(!ErrorCodeFromName("not_found "));
  CHECK(!ErrorCodeFromName("kNotFound"));
}

TEST_CASE("an error code prints as its wire name", "[error_code]") {
  std::ostringstream out;
  out << ErrorCode::kCorruptRing;
  CHECK(out.str() == "corrupt_ring");
}

TEST_CASE("a status names its code on the wire and in ToString, and none when ok", "[error_code]") {
  const Status error = Status::Error(ErrorCode::kNotFound, "no video v1");
  CHECK(!error.ok());
  CHECK(error.code() == ErrorCode::kNotFound);
  CHECK(error.code_name() == "not_found");
  CHECK(error.ToString() == "not_found: no video v1");
  CHECK(error.WithContext("GET").ToString() == "not_found: GET: no video v1");
  CHECK(Status::Ok().code_name().empty());
  CHECK(Status::Ok().ToString() == "ok");
}
