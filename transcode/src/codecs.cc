#include "zerofarm/transcode/codecs.h"

#include <algorithm>
#include <array>

extern "C" {
#include <libavcodec/codec_id.h>
}

namespace zerofarm::transcode {

bool IsSupportedVideoCodec(int id) {
  static constexpr std::array kVideo = {
      AV_CODEC_ID_H264,      AV_CODEC_ID_HEVC,   AV_CODEC_ID_VP8,        AV_CODEC_ID_VP9,
      AV_CODEC_ID_AV1,       AV_CODEC_ID_MPEG4,  AV_CODEC_ID_MPEG2VIDEO, AV_CODEC_ID_MPEG1VIDEO,
      AV_CODEC_ID_H263,      AV_CODEC_ID_H263P,  AV_CODEC_ID_MSMPEG4V1,  AV_CODEC_ID_MSMPEG4V2,
      AV_CODEC_ID_MSMPEG4V3, AV_CODEC_ID_WMV1,   AV_CODEC_ID_WMV2,       AV_CODEC_ID_WMV3,
      AV_CODEC_ID_VC1,       AV_CODEC_ID_THEORA, AV_CODEC_ID_MJPEG,      AV_CODEC_ID_PRORES,
      AV_CODEC_ID_DNXHD,     AV_CODEC_ID_FLV1,   AV_CODEC_ID_RAWVIDEO,   AV_CODEC_ID_FFV1,
  };
  return std::find(kVideo.begin(), kVideo.end(), id) != kVideo.end();
}

bool IsSupportedAudioCodec(int id) {
  static constexpr std::array kAudio = {
      AV_CODEC_ID_AAC,       AV_CODEC_ID_MP3,           AV_CODEC_ID_MP2,
      AV_CODEC_ID_MP1,       AV_CODEC_ID_AC3,           AV_CODEC_ID_EAC3,
      AV_CODEC_ID_VORBIS,    AV_CODEC_ID_OPUS,          AV_CODEC_ID_FLAC,
      AV_CODEC_ID_ALAC,      AV_CODEC_ID_PCM_S16LE,     AV_CODEC_ID_PCM_S16BE,
      AV_CODEC_ID_PCM_S24LE, AV_CODEC_ID_PCM_S32LE,     AV_CODEC_ID_PCM_F32LE,
      AV_CODEC_ID_PCM_U8,    AV_CODEC_ID_PCM_ALAW,      AV_CODEC_ID_PCM_MULAW,
      AV_CODEC_ID_AMR_NB,    AV_CODEC_ID_AMR_WB,        AV_CODEC_ID_WMAV1,
      AV_CODEC_ID_WMAV2,     AV_CODEC_ID_ADPCM_IMA_WAV, AV_CODEC_ID_ADPCM_MS,
      AV_CODEC_ID_DTS,       AV_CODEC_ID_TRUEHD,
  };
  return std::find(kAudio.begin(), kAudio.end(), id) != kAudio.end();
}

}  // namespace zerofarm::transcode
