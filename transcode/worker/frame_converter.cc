#include "frame_converter.h"

#include <algorithm>
#include <cmath>

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include "rotate.h"

namespace zerofarm::transcode::worker {
namespace {

bool IsSdrYuvMatrix(int m) {
  return m == AVCOL_SPC_BT709 || m == AVCOL_SPC_BT470BG || m == AVCOL_SPC_SMPTE170M;
}

bool IsSpecified(int m) { return m != AVCOL_SPC_UNSPECIFIED && m != AVCOL_SPC_RESERVED; }

// The matrix players assume for an untagged stream: BT.709 for HD, BT.601 below.
AVColorSpace GuessMatrix(int width, int height) {
  return std::min(width, height) >= 720 || width >= 1280 ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
}

bool IsRgbLike(int format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(format));
  return desc && (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL));
}

bool IsGray(int format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(format));
  return desc && desc->nb_components <= 2 && !(desc->flags & AV_PIX_FMT_FLAG_PAL);
}

// The deprecated full-range "J" formats, as their plain twin plus full range.
AVPixelFormat Unjpeg(AVPixelFormat format, bool* full_range) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return format;
  }
}

int SwsMatrix(int matrix) {
  switch (matrix) {
    case AVCOL_SPC_BT709:
      return SWS_CS_ITU709;
    case AVCOL_SPC_FCC:
      return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M:
      return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      return SWS_CS_BT2020;  // constant luminance approximated
    default:
      return SWS_CS_ITU601;
  }
}

}  // namespace

AVColorSpace ResolveSourceMatrix(const StreamHeader& source) {
  if (IsSpecified(source.color_space)) return static_cast<AVColorSpace>(source.color_space);
  return GuessMatrix(source.width, source.height);
}

OutputColor ChooseOutputColor(const StreamHeader& source, int width, int height) {
  OutputColor out;
  const AVColorSpace src = ResolveSourceMatrix(source);
  if (!IsRgbLike(source.format) && IsSdrYuvMatrix(src)) {
    out.matrix = src;
  } else {
    out.matrix = std::min(width, height) >= 720 ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
  }
  const bool hd = out.matrix == AVCOL_SPC_BT709;
  switch (source.color_primaries) {
    case AVCOL_PRI_BT709:
    case AVCOL_PRI_BT470M:
    case AVCOL_PRI_BT470BG:
    case AVCOL_PRI_SMPTE170M:
      out.primaries = static_cast<AVColorPrimaries>(source.color_primaries);
      break;
    default:
      out.primaries = hd ? AVCOL_PRI_BT709 : AVCOL_PRI_SMPTE170M;
  }
  switch (source.color_trc) {
    case AVCOL_TRC_BT709:
    case AVCOL_TRC_SMPTE170M:
    case AVCOL_TRC_GAMMA22:
    case AVCOL_TRC_GAMMA28:
    case AVCOL_TRC_IEC61966_2_1:
      out.trc = static_cast<AVColorTransferCharacteristic>(source.color_trc);
      break;
    default:
      out.trc = hd ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M;
  }
  return out;
}

int QuarterTurns(double degrees) {
  if (!std::isfinite(degrees)) return 0;
  long quarters = std::lround(degrees / 90.0) % 4;
  if (quarters < 0) quarters += 4;
  return static_cast<int>(quarters) * 90;
}

Status FrameConverter::EnsureFrame(FramePtr* frame, int width, int height) {
  if (*frame && (*frame)->width == width && (*frame)->height == height)
    return av_frame_make_writable(frame->get()) < 0
               ? Status::Error(ErrorCode::kInternal, "out of memory for a picture")
               : Status::Ok();
  *frame = MakeFrame();
  if (!*frame) return Status::Error(ErrorCode::kInternal, "out of memory for a picture");
  (*frame)->format = AV_PIX_FMT_YUV420P;
  (*frame)->width = width;
  (*frame)->height = height;
  if (av_frame_get_buffer(frame->get(), 0) < 0)
    return Status::Error(ErrorCode::kInternal, "out of memory for a picture");
  return Status::Ok();
}

Status FrameConverter::Configure(const SourceKey& key) {
  const auto format = static_cast<AVPixelFormat>(key.format);
  if (!sws_isSupportedInput(format)) {
    const char* name = av_get_pix_fmt_name(format);
    return Status::Error(
        ErrorCode::kUnsupported,
        std::string("pixel format ") + (name ? name : "unknown") + " cannot be converted");
  }
  const bool turned = target_.rotation == 90 || target_.rotation == 270;
  const int scaled_w = turned ? target_.height : target_.width;
  const int scaled_h = turned ? target_.width : target_.height;
  SwsContextPtr sws(sws_alloc_context());
  if (!sws) return Status::Error(ErrorCode::kInternal, "out of memory for a scaler");
  const bool options_ok =
      av_opt_set_int(sws.get(), "srcw", key.width, 0) >= 0 &&
      av_opt_set_int(sws.get(), "srch", key.height, 0) >= 0 &&
      av_opt_set_int(sws.get(), "src_format", format, 0) >= 0 &&
      av_opt_set_int(sws.get(), "dstw", scaled_w, 0) >= 0 &&
      av_opt_set_int(sws.get(), "dsth", scaled_h, 0) >= 0 &&
      av_opt_set_int(sws.get(), "dst_format", AV_PIX_FMT_YUV420P, 0) >= 0 &&
      av_opt_set_int(sws.get(), "sws_flags", SWS_BICUBIC, 0) >= 0 &&
      av_opt_set_int(sws.get(), "src_range", key.full_range, 0) >= 0 &&
      av_opt_set_int(sws.get(), "dst_range", target_.full_range ? 1 : 0, 0) >= 0;
  if (!options_ok) return Status::Error(ErrorCode::kInternal, "cannot configure the scaler");
  if (sws_init_context(sws.get(), nullptr, nullptr) < 0)
    return Status::Error(ErrorCode::kUnsupported, "the scaler refuses a " +
                                                      std::to_string(key.width) + "x" +
                                                      std::to_string(key.height) + " picture");
  // Same table on both sides means "scale only"; RGB and gray sources use the output's.
  const int* dst_table = sws_getCoefficients(SwsMatrix(target_.matrix));
  const int* src_table = IsRgbLike(key.format) || IsGray(key.format)
                             ? dst_table
                             : sws_getCoefficients(SwsMatrix(key.matrix));
  if (sws_setColorspaceDetails(sws.get(), src_table, key.full_range, dst_table,
                               target_.full_range ? 1 : 0, 0, 1 << 16, 1 << 16) < 0)
    return Status::Error(ErrorCode::kInternal, "cannot set the scaler's color matrices");
  sws_ = std::move(sws);
  key_ = key;
  if (turned || target_.rotation == 180)
    ZF_RETURN_IF_ERROR(EnsureFrame(&scaled_, scaled_w, scaled_h));
  return Status::Ok();
}

Result<AVFrame*> FrameConverter::Convert(const AVFrame& src) {
  bool full_range = src.color_range == AVCOL_RANGE_JPEG;
  const AVPixelFormat format = Unjpeg(static_cast<AVPixelFormat>(src.format), &full_range);
  if (IsRgbLike(format)) full_range = true;
  const int matrix = IsSpecified(src.colorspace) ? src.colorspace : target_.source_matrix;
  const SourceKey key{src.width, src.height, format, full_range ? 1 : 0, matrix};
  if (!key_ || !(*key_ == key)) ZF_RETURN_IF_ERROR(Configure(key));

  ZF_RETURN_IF_ERROR(EnsureFrame(&output_, target_.width, target_.height));
  AVFrame* scaled = target_.rotation == 0 ? output_.get() : scaled_.get();
  if (scaled != output_.get() && av_frame_make_writable(scaled) < 0)
    return Status::Error(ErrorCode::kInternal, "out of memory for a picture");
  int rows =
      sws_scale(sws_.get(), src.data, src.linesize, 0, src.height, scaled->data, scaled->linesize);
  if (rows <= 0) return Status::Error(ErrorCode::kInternal, "the scaler produced no picture");
  if (scaled != output_.get()) RotateFrame420(*scaled, target_.rotation, output_.get());

  AVFrame* out = output_.get();
  out->pts = src.pts;
  out->pict_type = AV_PICTURE_TYPE_NONE;
  out->sample_aspect_ratio = AVRational{1, 1};
  out->color_range = target_.full_range ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  out->colorspace = target_.matrix;
  out->chroma_location = AVCHROMA_LOC_LEFT;
  return out;
}

}  // namespace zerofarm::transcode::worker
