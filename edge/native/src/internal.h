// Internal pieces of the core shared by its source files (not part of the public API).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "edgekit/core.h"
#include "datareader.h"
#include "net.h"

namespace edgekit {

/// A float tensor in ncnn's axis order, batch dropped: [w], [h, w], [c, h, w] or [c, d, h, w].
struct Tensor {
    std::vector<int> shape;
    std::vector<float> data;
    int ndim() const { return static_cast<int>(shape.size()); }
};

/// How an image became the network input: net = image * scale + pad, per axis.
struct Transform {
    double scale_x = 1, scale_y = 1, pad_x = 0, pad_y = 0;
    int image_width = 0, image_height = 0, input_width = 0, input_height = 0;
};

/// Preprocess (preprocess.cpp): an image -> CxHxW float tensor and the transform (edge/preprocess.py).
ncnn::Mat preprocess(const Image& image, const InputSpec& spec, Transform& transform);

/// Raw detections in network-input pixels (decoders): boxes xyxy, scores, class ids.
struct Raw {
    std::vector<float> boxes;  // 4 per detection
    std::vector<float> scores;
    std::vector<int> classes;
};

struct Limits {
    float score, nms;
    int max_detections;
};

/// Per-class greedy NMS (nms.cpp, edge/decoders/nms.py): indices kept, best score first.
std::vector<int> batched_nms(const std::vector<float>& boxes, const std::vector<float>& scores,
                             const std::vector<int>& classes, float iou_threshold, int max_detections);

/// Decode with the manifest's family and layout (decode.cpp); outputs keyed by role.
Raw decode_outputs(const DecoderSpec& decoder, const std::map<std::string, Tensor>& by_role, int input_width,
                   int input_height, const Limits& limits);
/// The roles a layout needs (Error("model") for a family or layout this core does not have).
std::vector<std::string> layout_roles(const DecoderSpec& decoder);

/// Policy (policy.cpp): apply edgekit's ncnn options for a precision to `opt`.
void apply_policy(ncnn::Option& opt, const std::string& precision, int threads);
/// Vulkan compute on `opt` when `on`: Error("usage") if this ncnn has no Vulkan or finds no GPU.
void apply_vulkan(ncnn::Option& opt, bool on);

/// Hex sha256 of a buffer (sha256.cpp).
std::string sha256_hex(const void* data, std::size_t size);

/// Layer facts of a .param text (param.cpp).
struct ParamFacts {
    std::vector<std::string> types;
    std::set<std::string> consumed;        // blobs some layer reads
    std::vector<std::string> output_blobs;  // blobs nothing reads
};
ParamFacts read_param_facts(const std::string& param_text, const std::string& where);

/// A bounded in-memory reader for ncnn::Net::load_model (a short buffer fails instead of overrunning).
class BoundedReader : public ncnn::DataReader {
public:
    BoundedReader(const unsigned char* data, std::size_t size) : data_(data), size_(size) {}
    std::size_t read(void* buf, std::size_t size) const override;
    std::size_t reference(std::size_t size, const void** buf) const override;
    std::size_t remaining() const { return size_ - pos_; }

private:
    const unsigned char* data_;
    std::size_t size_;
    mutable std::size_t pos_ = 0;
};

/// Copy an extracted ncnn::Mat (fp32, elempack 1) into a Tensor.
Tensor to_tensor(const ncnn::Mat& m);

/// Peak RSS (VmHWM) in MiB, or -1.
double peak_rss_mb();
bool reset_peak_rss();

}  // namespace edgekit
