// ErrorCode wire names (error_code.h).
#include "zerofarm/base/error_code.h"

#include <array>
#include <ostream>
#include <utility>

#include "zerofarm/base/enum_names.h"

namespace zerofarm {
namespace {

constexpr std::array<std::pair<ErrorCode, std::string_view>, 106> kNames = {{
    {ErrorCode::kInvalidArgument, "invalid_argument"},
    {ErrorCode::kInternal, "internal"},
    {ErrorCode::kIoError, "io_error"},
    {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kAlreadyExists, "already_exists"},
    {ErrorCode::kConflict, "conflict"},
    {ErrorCode::kUnsupported, "unsupported"},
    {ErrorCode::kNotImplemented, "not_implemented"},
    {ErrorCode::kUnavailable, "unavailable"},
    {ErrorCode::kTimeout, "timeout"},
    {ErrorCode::kCancelled, "cancelled"},
    {ErrorCode::kTooLarge, "too_large"},
    {ErrorCode::kTooMany, "too_many"},
    {ErrorCode::kForbidden, "forbidden"},
    {ErrorCode::kExpired, "expired"},
    {ErrorCode::kNotReady, "not_ready"},
    {ErrorCode::kAddressInUse, "address_in_use"},
    {ErrorCode::kInsecureKeyFile, "insecure_key_file"},
    {ErrorCode::kCorrupt, "corrupt"},
    {ErrorCode::kCorruptRing, "corrupt_ring"},
    {ErrorCode::kChecksumMismatch, "checksum_mismatch"},
    {ErrorCode::kSuperseded, "superseded"},
    {ErrorCode::kDeleted, "deleted"},
    {ErrorCode::kDiskFull, "disk_full"},
    {ErrorCode::kClockSkew, "clock_skew"},
    {ErrorCode::kBusy, "busy"},
    {ErrorCode::kDeadlineExceeded, "deadline_exceeded"},
    {ErrorCode::kBadMessage, "bad_message"},
    {ErrorCode::kUnsupportedVersion, "unsupported_version"},
    {ErrorCode::kUnknownOp, "unknown_op"},
    {ErrorCode::kNoQuorum, "no_quorum"},
    {ErrorCode::kTaskException, "task_exception"},
    {ErrorCode::kEmptyInput, "empty_input"},
    {ErrorCode::kNotMedia, "not_media"},
    {ErrorCode::kTruncated, "truncated"},
    {ErrorCode::kNoVideoStream, "no_video_stream"},
    {ErrorCode::kUnsupportedCodec, "unsupported_codec"},
    {ErrorCode::kEncrypted, "encrypted"},
    {ErrorCode::kCorruptContainer, "corrupt_container"},
    {ErrorCode::kUndecodable, "undecodable"},
    {ErrorCode::kBadStream, "bad_stream"},
    {ErrorCode::kInvalidTask, "invalid_task"},
    {ErrorCode::kOutputMismatch, "output_mismatch"},
    {ErrorCode::kVerifyFailed, "verify_failed"},
    {ErrorCode::kMalformedElf, "malformed_elf"},
    {ErrorCode::kNotAFile, "not_a_file"},
    {ErrorCode::kNotSealed, "not_sealed"},
    {ErrorCode::kNotValidated, "not_validated"},
    {ErrorCode::kRejected, "rejected"},
    {ErrorCode::kBadSpec, "bad_spec"},
    {ErrorCode::kBadReport, "bad_report"},
    {ErrorCode::kCacheDirUnsafe, "cache_dir_unsafe"},
    {ErrorCode::kLayerMissing, "layer_missing"},
    {ErrorCode::kSandboxSetup, "sandbox_setup"},
    {ErrorCode::kSeccomp, "seccomp"},
    {ErrorCode::kCgroup, "cgroup"},
    {ErrorCode::kWorkerFailed, "worker_failed"},
    {ErrorCode::kWorkerRejected, "worker_rejected"},
    {ErrorCode::kSandboxRefused, "sandbox_refused"},
    {ErrorCode::kSpawnFailed, "spawn_failed"},
    {ErrorCode::kNotRun, "not_run"},
    {ErrorCode::kBadOutcome, "bad_outcome"},
    {ErrorCode::kUploadIncomplete, "upload_incomplete"},
    {ErrorCode::kUploadLost, "upload_lost"},
    {ErrorCode::kTooManyUploads, "too_many_uploads"},
    {ErrorCode::kNotAProgram, "not_a_program"},
    {ErrorCode::kProgramRejected, "program_rejected"},
    {ErrorCode::kProgramChanged, "program_changed"},
    {ErrorCode::kProgramFailed, "program_failed"},
    {ErrorCode::kBadJob, "bad_job"},
    {ErrorCode::kBadRequest, "bad_request"},
    {ErrorCode::kBadPath, "bad_path"},
    {ErrorCode::kBadFraming, "bad_framing"},
    {ErrorCode::kBadMultipart, "bad_multipart"},
    {ErrorCode::kBodyLimit, "body_limit"},
    {ErrorCode::kConnectionLost, "connection_lost"},
    {ErrorCode::kHeaderTooLarge, "header_too_large"},
    {ErrorCode::kRequestTimeout, "request_timeout"},
    {ErrorCode::kTooManyConnections, "too_many_connections"},
    {ErrorCode::kRouteNotFound, "route_not_found"},
    {ErrorCode::kMethodNotAllowed, "method_not_allowed"},
    {ErrorCode::kUnauthorized, "unauthorized"},
    {ErrorCode::kTusVersion, "tus_version"},
    {ErrorCode::kUnsupportedMediaType, "unsupported_media_type"},
    {ErrorCode::kOffsetMismatch, "offset_mismatch"},
    {ErrorCode::kUploadBusy, "upload_busy"},
    {ErrorCode::kRangeNotSatisfiable, "range_not_satisfiable"},
    {ErrorCode::kUnreachable, "unreachable"},
    {ErrorCode::kBadContainerName, "bad_container_name"},
    {ErrorCode::kBadObjectName, "bad_object_name"},
    {ErrorCode::kChildFailed, "child_failed"},
    {ErrorCode::kCompileFailed, "compile_failed"},
    {ErrorCode::kClipGenerationFailed, "clip_generation_failed"},
    {ErrorCode::kToolFailed, "tool_failed"},
    {ErrorCode::kOpenFailed, "open_failed"},
    {ErrorCode::kWriteFailed, "write_failed"},
    {ErrorCode::kAvError, "av_error"},
    {ErrorCode::kBadInput, "bad_input"},
    {ErrorCode::kBadJson, "bad_json"},
    {ErrorCode::kBadManifest, "bad_manifest"},
    {ErrorCode::kBadPlaylist, "bad_playlist"},
    {ErrorCode::kBadAttributes, "bad_attributes"},
    {ErrorCode::kBadBox, "bad_box"},
    {ErrorCode::kNoBox, "no_box"},
    {ErrorCode::kNoCount, "no_count"},
    {ErrorCode::kNoMoov, "no_moov"},
}};

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) { return NameIn(kNames, code, "internal"); }

std::optional<ErrorCode> ErrorCodeFromName(std::string_view name) {
  return ValueIn<ErrorCode>(kNames, name);
}

std::ostream& operator<<(std::ostream& out, ErrorCode code) { return out << ErrorCodeName(code); }

}  // namespace zerofarm
