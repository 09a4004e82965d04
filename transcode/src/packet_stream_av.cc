#include "zerofarm/transcode/packet_stream_av.h"

#include <cmath>
#include <cstring>

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/intreadwrite.h>
}

namespace zerofarm::transcode {

std::string AvErrorString(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

namespace internal {

void CommonFromParameters(const AVCodecParameters& p, StreamHeader* h) {
  h->codec_id = p.codec_id;
  h->codec_tag = p.codec_tag;
  h->format = p.format;
  h->bit_rate = p.bit_rate;
  h->profile = p.profile;
  h->level = p.level;
  h->bits_per_coded_sample = p.bits_per_coded_sample;
  h->bits_per_raw_sample = p.bits_per_raw_sample;
  h->width = p.width;
  h->height = p.height;
  h->sar_num = p.sample_aspect_ratio.num;
  h->sar_den = p.sample_aspect_ratio.den ? p.sample_aspect_ratio.den : 1;
  h->field_order = p.field_order;
  h->color_range = p.color_range;
  h->color_primaries = p.color_primaries;
  h->color_trc = p.color_trc;
  h->color_space = p.color_space;
  h->chroma_location = p.chroma_location;
  h->video_delay = p.video_delay;
  h->sample_rate = p.sample_rate;
  h->channels = p.ch_layout.nb_channels;
  h->channel_mask = p.ch_layout.order == AV_CHANNEL_ORDER_NATIVE ? p.ch_layout.u.mask : 0;
  h->block_align = p.block_align;
  h->frame_size = p.frame_size;
  h->initial_padding = p.initial_padding;
  h->trailing_padding = p.trailing_padding;
  h->seek_preroll = p.seek_preroll;
  if (p.extradata && p.extradata_size > 0)
    h->extradata.assign(reinterpret_cast<const char*>(p.extradata), p.extradata_size);
}

}  // namespace internal

using internal::CommonFromParameters;

StreamHeader HeaderFromEncoder(const AVCodecContext& enc, MediaKind kind) {
  StreamHeader h;
  h.kind = kind;
  CodecParametersPtr par(avcodec_parameters_alloc());
  if (par && avcodec_parameters_from_context(par.get(), &enc) >= 0) CommonFromParameters(*par, &h);
  h.time_base_num = enc.time_base.num;
  h.time_base_den = enc.time_base.den;
  h.avg_fps_num = enc.framerate.num;
  h.avg_fps_den = enc.framerate.den ? enc.framerate.den : 1;
  return h;
}

Status HeaderToParameters(const StreamHeader& h, AVCodecParameters* p) {
  p->codec_type = h.kind == MediaKind::kAudio ? AVMEDIA_TYPE_AUDIO : AVMEDIA_TYPE_VIDEO;
  p->codec_id = static_cast<AVCodecID>(h.codec_id);
  p->codec_tag = h.codec_tag;
  p->format = h.format;
  p->bit_rate = h.bit_rate;
  p->profile = h.profile;
  p->level = h.level;
  p->bits_per_coded_sample = h.bits_per_coded_sample;
  p->bits_per_raw_sample = h.bits_per_raw_sample;
  p->width = h.width;
  p->height = h.height;
  p->sample_aspect_ratio = AVRational{h.sar_num, h.sar_den};
  p->field_order = static_cast<AVFieldOrder>(h.field_order);
  p->color_range = static_cast<AVColorRange>(h.color_range);
  p->color_primaries = static_cast<AVColorPrimaries>(h.color_primaries);
  p->color_trc = static_cast<AVColorTransferCharacteristic>(h.color_trc);
  p->color_space = static_cast<AVColorSpace>(h.color_space);
  p->chroma_location = static_cast<AVChromaLocation>(h.chroma_location);
  p->video_delay = h.video_delay;
  p->sample_rate = h.sample_rate;
  av_channel_layout_uninit(&p->ch_layout);
  if (h.channel_mask != 0) {
    av_channel_layout_from_mask(&p->ch_layout, h.channel_mask);
  } else if (h.channels > 0) {
    p->ch_layout.order = AV_CHANNEL_ORDER_UNSPEC;
    p->ch_layout.nb_channels = h.channels;
  }
  p->block_align = h.block_align;
  p->frame_size = h.frame_size;
  p->initial_padding = h.initial_padding;
  p->trailing_padding = h.trailing_padding;
  p->seek_preroll = h.seek_preroll;
  av_freep(&p->extradata);
  p->extradata_size = 0;
  if (!h.extradata.empty()) {
    p->extradata =
        static_cast<uint8_t*>(av_mallocz(h.extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!p->extradata) return Status::Error(ErrorCode::kInternal, "out of memory for extradata");
    std::memcpy(p->extradata, h.extradata.data(), h.extradata.size());
    p->extradata_size = static_cast<int>(h.extradata.size());
  }
  return Status::Ok();
}

Packet PacketFromAv(const AVPacket& pkt, uint64_t ordinal) {
  Packet p;
  p.pts = pkt.pts;
  p.dts = pkt.dts;
  p.duration = pkt.duration;
  p.flags = static_cast<uint32_t>(pkt.flags);
  p.ordinal = ordinal;
  size_t size = 0;
  if (const uint8_t* skip = av_packet_get_side_data(&pkt, AV_PKT_DATA_SKIP_SAMPLES, &size);
      skip && size >= 8) {
    p.skip_start = AV_RL32(skip);
    p.skip_end = AV_RL32(skip + 4);
  }
  p.data.assign(reinterpret_cast<const char*>(pkt.data), pkt.size);
  return p;
}

Status PacketToAv(const Packet& packet, AVPacket* pkt) {
  av_packet_unref(pkt);
  if (av_new_packet(pkt, static_cast<int>(packet.data.size())) < 0)
    return Status::Error(ErrorCode::kInternal, "out of memory for a packet");
  std::memcpy(pkt->data, packet.data.data(), packet.data.size());
  pkt->pts = packet.pts;
  pkt->dts = packet.dts;
  pkt->duration = packet.duration;
  pkt->flags = static_cast<int>(packet.flags);
  if (packet.skip_start || packet.skip_end) {
    uint8_t* skip = av_packet_new_side_data(pkt, AV_PKT_DATA_SKIP_SAMPLES, 10);
    if (!skip) return Status::Error(ErrorCode::kInternal, "out of memory for side data");
    AV_WL32(skip, packet.skip_start);
    AV_WL32(skip + 4, packet.skip_end);
    skip[8] = skip[9] = 0;
  }
  return Status::Ok();
}

}  // namespace zerofarm::transcode
