// The API's video object (api/openapi.yaml, "Video"), made from a typed Video at the edge: the
// HTTP layer adds its playback URLs and sends it, the webhooks send it as an event's data.
// Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "zerofarm/scheduler/video_record.h"

namespace zerofarm::scheduler {

// The video object; `with_chunks` adds the farm view of its tasks ("chunks", "audio"), which
// lists leave out.
nlohmann::json VideoJson(const Video& video, bool with_chunks);

}  // namespace zerofarm::scheduler
