// The accepted codecs (codecs.h). The decoders named here are the ones the worker's static
// FFmpeg is configured with (scripts/build-static-ffmpeg.sh).
#include "zerofarm/transcode/codecs.h"

extern "C" {
#include <libavcodec/codec_id.h>
}

namespace zerofarm::transcode {
namespace {

constexpr AcceptedCodec kVideo[] = {
    {AV_CODEC_ID_H264, {"h264"}},
    {AV_CODEC_ID_HEVC, {"hevc"}},
    {AV_CODEC_ID_VP8, {"vp8"}},
    {AV_CODEC_ID_VP9, {"vp9"}},
    {AV_CODEC_ID_AV1, {"libdav1d", "libaom-av1", "av1"}},
    {AV_CODEC_ID_MPEG4, {"mpeg4"}},
    {AV_CODEC_ID_MPEG2VIDEO, {"mpeg2video"}},
    {AV_CODEC_ID_MPEG1VIDEO, {"mpeg1video"}},
    {AV_CODEC_ID_H263, {"h263"}},
    {AV_CODEC_ID_H263P, {"h263p"}},
    {AV_CODEC_ID_H263I, {"h263i"}},
    {AV_CODEC_ID_FLV1, {"flv"}},
    {AV_CODEC_ID_MSMPEG4V1, {"msmpeg4v1"}},
    {AV_CODEC_ID_MSMPEG4V2, {"msmpeg4v2"}},
    {AV_CODEC_ID_MSMPEG4V3, {"msmpeg4"}},
    {AV_CODEC_ID_WMV1, {"wmv1"}},
    {AV_CODEC_ID_WMV2, {"wmv2"}},
    {AV_CODEC_ID_WMV3, {"wmv3"}},
    {AV_CODEC_ID_VC1, {"vc1"}},
    {AV_CODEC_ID_THEORA, {"theora"}},
    {AV_CODEC_ID_MJPEG, {"mjpeg"}},
    {AV_CODEC_ID_PRORES, {"prores"}},
    {AV_CODEC_ID_DNXHD, {"dnxhd"}},
    {AV_CODEC_ID_VP6, {"vp6"}},
    {AV_CODEC_ID_VP6F, {"vp6f"}},
    {AV_CODEC_ID_VP6A, {"vp6a"}},
    {AV_CODEC_ID_SVQ3, {"svq3"}},
    {AV_CODEC_ID_FFV1, {"ffv1"}},
    {AV_CODEC_ID_RAWVIDEO, {"rawvideo"}},
};

constexpr AcceptedCodec kAudio[] = {
    {AV_CODEC_ID_AAC, {"aac"}},
    {AV_CODEC_ID_AAC_LATM, {"aac_latm"}},
    {AV_CODEC_ID_MP3, {"mp3float", "mp3"}},
    {AV_CODEC_ID_MP2, {"mp2float", "mp2"}},
    {AV_CODEC_ID_MP1, {"mp1float", "mp1"}},
    {AV_CODEC_ID_AC3, {"ac3"}},
    {AV_CODEC_ID_EAC3, {"eac3"}},
    {AV_CODEC_ID_DTS, {"dca"}},
    {AV_CODEC_ID_TRUEHD, {"truehd"}},
    {AV_CODEC_ID_VORBIS, {"vorbis"}},
    {AV_CODEC_ID_OPUS, {"opus"}},
    {AV_CODEC_ID_FLAC, {"flac"}},
    {AV_CODEC_ID_ALAC, {"alac"}},
    {AV_CODEC_ID_WMAV1, {"wmav1"}},
    {AV_CODEC_ID_WMAV2, {"wmav2"}},
    {AV_CODEC_ID_AMR_NB, {"amrnb"}},
    {AV_CODEC_ID_AMR_WB, {"amrwb"}},
    {AV_CODEC_ID_PCM_S16LE, {"pcm_s16le"}},
    {AV_CODEC_ID_PCM_S16BE, {"pcm_s16be"}},
    {AV_CODEC_ID_PCM_U8, {"pcm_u8"}},
    {AV_CODEC_ID_PCM_S24LE, {"pcm_s24le"}},
    {AV_CODEC_ID_PCM_S24BE, {"pcm_s24be"}},
    {AV_CODEC_ID_PCM_S32LE, {"pcm_s32le"}},
    {AV_CODEC_ID_PCM_S32BE, {"pcm_s32be"}},
    {AV_CODEC_ID_PCM_F32LE, {"pcm_f32le"}},
    {AV_CODEC_ID_PCM_F32BE, {"pcm_f32be"}},
    {AV_CODEC_ID_PCM_F64LE, {"pcm_f64le"}},
    {AV_CODEC_ID_PCM_ALAW, {"pcm_alaw"}},
    {AV_CODEC_ID_PCM_MULAW, {"pcm_mulaw"}},
    {AV_CODEC_ID_PCM_DVD, {"pcm_dvd"}},
    {AV_CODEC_ID_PCM_BLURAY, {"pcm_bluray"}},
    {AV_CODEC_ID_ADPCM_IMA_WAV, {"adpcm_ima_wav"}},
    {AV_CODEC_ID_ADPCM_MS, {"adpcm_ms"}},
};

template <size_t N>
const AcceptedCodec* Find(const AcceptedCodec (&table)[N], int codec_id) {
  for (const AcceptedCodec& c : table)
    if (c.codec_id == codec_id) return &c;
  return nullptr;
}

}  // namespace

const AcceptedCodec* FindVideoCodec(int codec_id) { return Find(kVideo, codec_id); }
const AcceptedCodec* FindAudioCodec(int codec_id) { return Find(kAudio, codec_id); }

}  // namespace zerofarm::transcode
