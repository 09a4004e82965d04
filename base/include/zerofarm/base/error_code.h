// ErrorCode: the closed set of machine-readable error codes that a Status carries, with one wire
// name each ("not_found", "corrupt", ...). The names are what the HTTP API's error bodies, the
// node protocol's replies, the worker's report and the stored job and video records say; they
// are stable and tested, so a name never changes once shipped. Pure; no allocation.
#pragma once

#include <iosfwd>
#include <optional>
#include <string_view>

namespace zerofarm {

enum class ErrorCode {
  // General.
  kInvalidArgument,
  kInternal,
  kIoError,
  kNotFound,
  kAlreadyExists,
  kConflict,
  kUnsupported,
  kNotImplemented,
  kUnavailable,
  kTimeout,
  kCancelled,
  kTooLarge,
  kTooMany,
  kForbidden,
  kExpired,
  kNotReady,
  kAddressInUse,
  kInsecureKeyFile,
  // Storage (object store, ring, cluster and node protocol).
  kCorrupt,
  kCorruptRing,
  kChecksumMismatch,
  kSuperseded,
  kDeleted,
  kDiskFull,
  kClockSkew,
  kBusy,
  kDeadlineExceeded,
  kBadMessage,
  kUnsupportedVersion,
  kUnknownOp,
  kNoQuorum,
  kTaskException,
  // Media (ingest, transcode, stitch, verify).
  kEmptyInput,
  kNotMedia,
  kTruncated,
  kNoVideoStream,
  kUnsupportedCodec,
  kEncrypted,
  kCorruptContainer,
  kUndecodable,
  kBadStream,
  kInvalidTask,
  kOutputMismatch,
  kVerifyFailed,
  // Sandbox (validator, verdict cache, runner).
  kMalformedElf,
  kNotAFile,
  kNotSealed,
  kNotValidated,
  kRejected,
  kBadSpec,
  kBadReport,
  kCacheDirUnsafe,
  kLayerMissing,
  kSandboxSetup,
  kSeccomp,
  kCgroup,
  // Worker and job.
  kWorkerFailed,
  kWorkerRejected,
  kSandboxRefused,
  kSpawnFailed,
  kNotRun,
  kBadOutcome,
  kUploadIncomplete,
  kUploadLost,
  kTooManyUploads,
  kNotAProgram,
  kProgramRejected,
  kProgramChanged,
  kProgramFailed,
  kBadJob,
  // HTTP API and webhooks.
  kBadRequest,
  kBadPath,
  kBadFraming,
  kBadMultipart,
  kBodyLimit,
  kConnectionLost,
  kHeaderTooLarge,
  kRequestTimeout,
  kTooManyConnections,
  kRouteNotFound,
  kMethodNotAllowed,
  kUnauthorized,
  kTusVersion,
  kUnsupportedMediaType,
  kOffsetMismatch,
  kUploadBusy,
  kRangeNotSatisfiable,
  kUnreachable,
  kBadContainerName,
  kBadObjectName,
  // Benchmarks and test tools (clip generation, media checks).
  kChildFailed,
  kCompileFailed,
  kClipGenerationFailed,
  kToolFailed,
  kOpenFailed,
  kWriteFailed,
  kAvError,
  kBadInput,
  kBadJson,
  kBadManifest,
  kBadPlaylist,
  kBadAttributes,
  kBadBox,
  kNoBox,
  kNoCount,
  kNoMoov,
};

// The wire name of `code` ("invalid_argument" for kInvalidArgument); never empty.
std::string_view ErrorCodeName(ErrorCode code);

// The code whose wire name is `name`; nullopt for any other text (including "" and "ok").
std::optional<ErrorCode> ErrorCodeFromName(std::string_view name);

// Writes the wire name (so test frameworks print codes by name).
std::ostream& operator<<(std::ostream& out, ErrorCode code);

}  // namespace zerofarm
