// YOLOv8 decoder (edge/decoders/yolov8.py): layouts yolov8-dfl (DFL distances, 4*reg_max + classes per
// location) and yolov8-decoded (cx, cy, w, h + classes), stored N x K or K x N. Float32 in the Python order.
#include <algorithm>
#include <cmath>

#include "decoding.h"

namespace edgekit::decoding {

Raw decode_yolov8(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h,
                  const Limits& limits) {
    const bool dfl = d.layout == "yolov8-dfl";
    if (!dfl && d.layout != "yolov8-decoded")
        throw Error("model", "layout " + d.layout + " of family yolov8 is not implemented by the native runtime");
    const int c = static_cast<int>(d.class_names.size());
    const int nb = 4 * d.reg_max;
    const int k = (dfl ? nb : 4) + c;
    std::vector<Level> ls = levels(d.strides, w, h);
    const int n = location_count(ls);
    const Tensor& t = role(d, by_role, "head");
    auto s = squeeze(t.shape, 2);
    bool transposed;  // stored K x N
    if (s == std::vector<int>{k, n}) transposed = k != n;
    else if (s == std::vector<int>{n, k}) transposed = false;
    else mismatch(d, "head needs " + std::to_string(k) + "x" + std::to_string(n) + " or " + std::to_string(n) + "x" +
                         std::to_string(k) + ", got " + shape_text(t.shape));
    auto at = [&](int i, int j) { return transposed ? t.data[static_cast<std::size_t>(j) * n + i] : t.data[static_cast<std::size_t>(i) * k + j]; };
    const int first = dfl ? nb : 4;
    Raw raw;
    int i = 0;
    for (const Level& l : ls)
        for (int r = 0; r < l.rows; r++)
            for (int col = 0; col < l.cols; col++, i++) {
                int best_c = 0;
                float best = at(i, first);
                for (int cc = 1; cc < c; cc++) {
                    float v = at(i, first + cc);
                    if (v > best) best = v, best_c = cc;
                }
                if (dfl) best = sigmoid(best);
                if (!(best > limits.score)) continue;
                float box[4];
                if (dfl) {
                    float dist[4];
                    for (int side = 0; side < 4; side++) {
                        float mx = at(i, side * d.reg_max);
                        for (int j = 1; j < d.reg_max; j++) mx = std::max(mx, at(i, side * d.reg_max + j));
                        float num = 0.f, den = 0.f;
                        for (int j = 0; j < d.reg_max; j++) {
                            float e = std::exp(at(i, side * d.reg_max + j) - mx);
                            num += e * static_cast<float>(j);
                            den += e;
                        }
                        dist[side] = num / den;
                    }
                    const float ax = static_cast<float>(col) + 0.5f, ay = static_cast<float>(r) + 0.5f;
                    const float st = static_cast<float>(l.stride);
                    box[0] = (ax - dist[0]) * st;
                    box[1] = (ay - dist[1]) * st;
                    box[2] = (ax + dist[2]) * st;
                    box[3] = (ay + dist[3]) * st;
                } else {
                    float cx = at(i, 0), cy = at(i, 1), bw = at(i, 2), bh = at(i, 3);
                    box[0] = cx - bw / 2;
                    box[1] = cy - bh / 2;
                    box[2] = cx + bw / 2;
                    box[3] = cy + bh / 2;
                }
                raw.boxes.insert(raw.boxes.end(), box, box + 4);
                raw.scores.push_back(best);
                raw.classes.push_back(best_c);
            }
    return raw;
}

}  // namespace edgekit::decoding
