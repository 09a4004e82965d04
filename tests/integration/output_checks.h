// Catch2 checks of what `zerofarm transcode` leaves in OUTDIR, against facts about the source
// measured independently with ffprobe. Used by the integration tests; each function records
// its findings as Catch2 assertions (REQUIRE only where later checks would be meaningless).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "run_command.h"
#include "zerofarm/base/status.h"

namespace zerofarm::test {

// One AAC frame at 48 kHz: the tolerance on audio length.
inline constexpr double kAacFrameSeconds = 1024.0 / 48000.0;

// What the tests know about a source, measured without zerofarm.
struct SourceFacts {
  std::string path;
  int64_t frames = 0;     // video frames every rendition must have
  int display_width = 0;  // the frame as shown: sample aspect and rotation applied
  int display_height = 0;
  std::optional<double> audio_seconds;  // nullopt when the source has no audio stream
};

// Measures a source. `frames` overrides the count (the corpus manifest gives it); otherwise
// ffprobe -count_frames decides.
Result<SourceFacts> DescribeSource(const std::string& path,
                                   std::optional<int64_t> frames = std::nullopt);

// The whole output contract: master playlist, every rung's HLS and MP4 (frame count, PTS
// order, keyframe alignment, a keyframe opening every segment, geometry), audio length,
// playability by ffmpeg, thumbnail and report. `ladder` is the requested rung short sides.
void CheckTranscodeOutput(const std::filesystem::path& out, const SourceFacts& source,
                          const std::vector<int>& ladder);

// A refusal done right: not killed, not a signal, non-zero exit, exactly one stderr line
// "zerofarm: error: ..." naming the problem with one of `phrases` (case-insensitive), and no
// OUTDIR/master.m3u8.
void CheckCleanRejection(const CommandResult& run, const std::filesystem::path& out,
                         const std::vector<std::string>& phrases);

// Every phrase the contract allows for a refused input.
const std::vector<std::string>& AnyRejectionPhrase();

}  // namespace zerofarm::test
