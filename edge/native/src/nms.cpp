// Per-class greedy NMS, as edge/decoders/nms.py: best score first (stable), a box is dropped when a
// kept box of its class overlaps it more than the threshold (IoU of xyxy boxes, no +1, 0 when the
// union is empty); at most max_detections kept (<= 0: all).
#include <algorithm>
#include <numeric>

#include "internal.h"

namespace edgekit {
namespace {

float area(const float* b) { return std::max(b[2] - b[0], 0.f) * std::max(b[3] - b[1], 0.f); }

float iou(const float* a, const float* b) {
    float iw = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.f);
    float ih = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.f);
    float inter = iw * ih;
    float uni = (area(a) + area(b)) - inter;
    return uni > 0 ? inter / uni : 0.f;
}

}  // namespace

std::vector<int> batched_nms(const std::vector<float>& boxes, const std::vector<float>& scores,
                             const std::vector<int>& classes, float iou_threshold, int max_detections) {
    const int n = static_cast<int>(scores.size());
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
    const std::size_t limit = max_detections > 0 ? static_cast<std::size_t>(max_detections) : order.size();
    std::vector<int> kept;
    for (int i : order) {
        if (kept.size() >= limit) break;
        bool keep = true;
        for (int k : kept) {
            if (classes[k] == classes[i] && iou(&boxes[4 * k], &boxes[4 * i]) > iou_threshold) {
                keep = false;
                break;
            }
        }
        if (keep) kept.push_back(i);
    }
    return kept;
}

}  // namespace edgekit
