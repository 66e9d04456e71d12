// Pieces shared by the decoders (decode.cpp: NanoDet, layout_roles, decode_outputs;
// decode_ssd.cpp; decode_yolov8.cpp). Internal to the core.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "internal.h"

namespace edgekit::decoding {

/// Error("model"): the outputs do not fit the manifest's layout, and why.
[[noreturn]] void mismatch(const DecoderSpec& d, const std::string& why);
/// "3x40x40" (or "scalar").
std::string shape_text(const std::vector<int>& s);
/// Drop leading size-1 axes down to ndim (base.squeeze).
std::vector<int> squeeze(std::vector<int> s, int ndim);
/// The output playing `name`; mismatch() when none does.
const Tensor& role(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, const std::string& name);

/// One stride level of an anchor-free head: rows x cols locations.
struct Level {
    int stride, rows, cols;
};
std::vector<Level> levels(const std::vector<int>& strides, int w, int h);
int location_count(const std::vector<Level>& ls);

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

/// Each family's decoder: raw detections in network-input pixels, before NMS.
Raw decode_nanodet(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h,
                   const Limits& limits);
Raw decode_yolov8(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h,
                  const Limits& limits);
Raw decode_ssd(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h, const Limits& limits);

}  // namespace edgekit::decoding
