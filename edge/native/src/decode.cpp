// Decoders for every family and layout a manifest v2 can name (edge/decoders/): NanoDet (5 layouts)
// here, SSD (ssd-loc-conf) in decode_ssd.cpp, YOLOv8 (yolov8-dfl, yolov8-decoded) in decode_yolov8.cpp;
// layout_roles and decode_outputs (which then runs NMS). Outputs arrive by role (the manifest's
// decoder.roles -> ncnn blob); shapes are ncnn's with the batch dropped. Arithmetic in float32 in the
// Python decoders' order, so detections agree to float rounding.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "decoding.h"

namespace edgekit {
namespace decoding {

void mismatch(const DecoderSpec& d, const std::string& why) {
    throw Error("model", "outputs do not match layout " + d.layout + " of " + d.family + ": " + why);
}

std::string shape_text(const std::vector<int>& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); i++) out += (i ? "x" : "") + std::to_string(s[i]);
    return out.empty() ? "scalar" : out;
}

std::vector<int> squeeze(std::vector<int> s, int ndim) {
    while (static_cast<int>(s.size()) > ndim && s[0] == 1) s.erase(s.begin());
    return s;
}

const Tensor& role(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, const std::string& name) {
    auto it = by_role.find(name);
    if (it == by_role.end()) mismatch(d, "no output plays role " + name);
    return it->second;
}

std::vector<Level> levels(const std::vector<int>& strides, int w, int h) {
    std::vector<Level> out;
    for (int s : strides) out.push_back({s, (h + s - 1) / s, (w + s - 1) / s});
    return out;
}

int location_count(const std::vector<Level>& ls) {
    int n = 0;
    for (const Level& l : ls) n += l.rows * l.cols;
    return n;
}

namespace {

// --- NanoDet -------------------------------------------------------------------------------------

struct DenseHead {
    int n = 0, classes = 0, dwidth = 0;
    std::vector<float> scores;  // class-major (C x N) when class_major, else N x C
    bool class_major = false;
    bool logits = false;
    std::vector<float> dist;  // N x dwidth
    bool in_bins = false;     // dwidth == 4: integrated in bins (else pixels)
    std::vector<Level> levels;
    float score(int i, int c) const { return class_major ? scores[c * n + i] : scores[i * classes + c]; }
};

bool logits_mode(const DecoderSpec& d, bool fallback) {
    return d.class_scores.empty() ? fallback : d.class_scores == "logits";
}

void check_distribution(const DecoderSpec& d) {
    if (!d.distances.empty() && d.distances != "distribution") mismatch(d, "distances are integrated in this model");
}

DenseHead nanodet_head(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h) {
    DenseHead head;
    const int c = static_cast<int>(d.class_names.size());
    const int bins = 4 * (d.reg_max + 1);
    const int k = c + bins;
    head.classes = c;
    head.levels = levels(d.strides, w, h);
    head.n = location_count(head.levels);
    const int n = head.n;
    const std::string& layout = d.layout;
    if (layout == "nanodet-single" || layout == "nanodet-single-chw") {
        check_distribution(d);
        const bool chw = layout == "nanodet-single-chw";
        const Tensor& t = role(d, by_role, "head");
        auto s = squeeze(t.shape, 2);
        std::vector<int> want = chw ? std::vector<int>{k, n} : std::vector<int>{n, k};
        if (s != want) mismatch(d, "head needs shape " + shape_text(want) + ", got " + shape_text(t.shape));
        head.logits = logits_mode(d, chw);
        head.class_major = chw;
        head.dwidth = bins;
        head.scores.resize(static_cast<std::size_t>(n) * c);
        head.dist.resize(static_cast<std::size_t>(n) * bins);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) {
                float v = chw ? t.data[static_cast<std::size_t>(j) * n + i] : t.data[static_cast<std::size_t>(i) * k + j];
                if (j < c)
                    head.scores[chw ? static_cast<std::size_t>(j) * n + i : static_cast<std::size_t>(i) * c + j] = v;
                else
                    head.dist[static_cast<std::size_t>(i) * bins + (j - c)] = v;
            }
        }
        return head;
    }
    if (layout == "nanodet-strides" || layout == "nanodet-cls-dis") {
        check_distribution(d);
        const bool strides = layout == "nanodet-strides";
        head.logits = logits_mode(d, strides);
        head.class_major = true;
        head.dwidth = bins;
        head.scores.assign(static_cast<std::size_t>(n) * c, 0.f);
        head.dist.assign(static_cast<std::size_t>(n) * bins, 0.f);
        int offset = 0;
        for (const Level& l : head.levels) {
            const int hw = l.rows * l.cols;
            const std::string s = std::to_string(l.stride);
            if (strides) {
                const Tensor& t = role(d, by_role, "head" + s);
                auto sh = squeeze(t.shape, 3);
                if (sh != std::vector<int>{k, l.rows, l.cols})
                    mismatch(d, "head" + s + " needs " + std::to_string(k) + "x" + std::to_string(l.rows) + "x" +
                                    std::to_string(l.cols) + ", got " + shape_text(t.shape));
                for (int ch = 0; ch < k; ch++)
                    for (int i = 0; i < hw; i++) {
                        float v = t.data[static_cast<std::size_t>(ch) * hw + i];
                        if (ch < c)
                            head.scores[static_cast<std::size_t>(ch) * n + offset + i] = v;
                        else
                            head.dist[static_cast<std::size_t>(offset + i) * bins + (ch - c)] = v;
                    }
            } else {
                const Tensor& cls = role(d, by_role, "cls" + s);
                const Tensor& dis = role(d, by_role, "dis" + s);
                auto cs = squeeze(cls.shape, 3), ds = squeeze(dis.shape, 3);
                if (cs != std::vector<int>{c, l.rows, l.cols})
                    mismatch(d, "cls" + s + " needs " + std::to_string(c) + "x" + std::to_string(l.rows) + "x" +
                                    std::to_string(l.cols) + ", got " + shape_text(cls.shape));
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < hw; i++)
                        head.scores[static_cast<std::size_t>(ch) * n + offset + i] = cls.data[static_cast<std::size_t>(ch) * hw + i];
                if (ds == std::vector<int>{l.rows, l.cols, bins}) {
                    std::copy(dis.data.begin(), dis.data.begin() + static_cast<std::ptrdiff_t>(hw) * bins,
                              head.dist.begin() + static_cast<std::ptrdiff_t>(offset) * bins);
                } else if (ds == std::vector<int>{bins, l.rows, l.cols}) {
                    for (int ch = 0; ch < bins; ch++)
                        for (int i = 0; i < hw; i++)
                            head.dist[static_cast<std::size_t>(offset + i) * bins + ch] = dis.data[static_cast<std::size_t>(ch) * hw + i];
                } else {
                    mismatch(d, "dis" + s + " needs " + std::to_string(l.rows) + "x" + std::to_string(l.cols) + "x" +
                                    std::to_string(bins) + ", got " + shape_text(dis.shape));
                }
            }
            offset += hw;
        }
        return head;
    }
    if (layout == "nanodet-legacy") {
        head.logits = logits_mode(d, false);
        head.class_major = false;
        head.scores.reserve(static_cast<std::size_t>(n) * c);
        int width = -1;
        for (const Level& l : head.levels) {
            const int hw = l.rows * l.cols;
            const std::string s = std::to_string(l.stride);
            const Tensor& cls = role(d, by_role, "cls" + s);
            const Tensor& dis = role(d, by_role, "dis" + s);
            auto cs = squeeze(cls.shape, 2), ds = squeeze(dis.shape, 2);
            if (cs != std::vector<int>{hw, c})
                mismatch(d, "cls_pred_stride_" + s + " needs " + std::to_string(hw) + "x" + std::to_string(c) +
                                ", got " + shape_text(cls.shape));
            if (ds.size() != 2 || ds[0] != hw || (ds[1] != bins && ds[1] != 4))
                mismatch(d, "dis_pred_stride_" + s + " needs " + std::to_string(hw) + "x" + std::to_string(bins) +
                                " or " + std::to_string(hw) + "x4, got " + shape_text(dis.shape));
            if (width >= 0 && width != ds[1]) mismatch(d, "dis_pred_stride_* outputs mix integrated and raw distances");
            width = ds[1];
            head.scores.insert(head.scores.end(), cls.data.begin(), cls.data.begin() + static_cast<std::ptrdiff_t>(hw) * c);
            head.dist.insert(head.dist.end(), dis.data.begin(), dis.data.begin() + static_cast<std::ptrdiff_t>(hw) * width);
        }
        head.dwidth = width;
        if (width == 4) {
            if (d.distances == "distribution") mismatch(d, "distances are integrated, the config says distribution");
            if (!d.distances.empty()) {
                head.in_bins = d.distances == "bins";
            } else {
                float mx = 0.f;
                for (float v : head.dist) mx = std::max(mx, v);
                head.in_bins = mx <= d.reg_max + 1e-3;
            }
        } else if (!d.distances.empty() && d.distances != "distribution") {
            mismatch(d, "distances are bin logits, the config says " + d.distances);
        }
        return head;
    }
    throw Error("model", "layout " + layout + " of family nanodet is not implemented by the native runtime");
}

}  // namespace

Raw decode_nanodet(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h,
                   const Limits& limits) {
    DenseHead head = nanodet_head(d, by_role, w, h);
    float threshold = limits.score;
    if (head.logits) {
        double p = limits.score;
        threshold = p <= 0 ? -std::numeric_limits<float>::infinity()
                           : p >= 1 ? std::numeric_limits<float>::infinity() : static_cast<float>(std::log(p / (1 - p)));
    }
    // candidates in the Python decoder's order (class-major heads: class outer)
    std::vector<int> loc, cls;
    if (head.class_major) {
        for (int c = 0; c < head.classes; c++)
            for (int i = 0; i < head.n; i++)
                if (head.score(i, c) > threshold) loc.push_back(i), cls.push_back(c);
    } else {
        for (int i = 0; i < head.n; i++)
            for (int c = 0; c < head.classes; c++)
                if (head.score(i, c) > threshold) loc.push_back(i), cls.push_back(c);
    }
    Raw raw;
    if (loc.empty()) return raw;
    // location -> (cx, cy, stride)
    std::vector<float> prior(static_cast<std::size_t>(head.n) * 3);
    {
        int i = 0;
        const float off = d.center_offset;
        for (const Level& l : head.levels)
            for (int r = 0; r < l.rows; r++)
                for (int col = 0; col < l.cols; col++, i++) {
                    prior[3 * i] = (static_cast<float>(col) + off) * static_cast<float>(l.stride);
                    prior[3 * i + 1] = (static_cast<float>(r) + off) * static_cast<float>(l.stride);
                    prior[3 * i + 2] = static_cast<float>(l.stride);
                }
    }
    const int bins = d.reg_max + 1;
    std::vector<float> boxes_of(static_cast<std::size_t>(head.n) * 4);
    std::vector<char> done(head.n, 0);
    auto box_at = [&](int i) -> const float* {
        float* b = &boxes_of[static_cast<std::size_t>(i) * 4];
        if (done[i]) return b;
        done[i] = 1;
        float dist[4];
        const float* row = &head.dist[static_cast<std::size_t>(i) * head.dwidth];
        const float stride = prior[3 * i + 2];
        if (head.dwidth == 4) {
            for (int s = 0; s < 4; s++) dist[s] = head.in_bins ? row[s] * stride : row[s];
        } else {
            for (int s = 0; s < 4; s++) {
                const float* x = row + s * bins;
                float mx = *std::max_element(x, x + bins);
                float num = 0.f, den = 0.f;
                for (int j = 0; j < bins; j++) {
                    float e = std::exp(x[j] - mx);
                    num += e * static_cast<float>(j);
                    den += e;
                }
                dist[s] = num / den * stride;
            }
        }
        b[0] = std::min(std::max(prior[3 * i] - dist[0], 0.f), static_cast<float>(w));
        b[1] = std::min(std::max(prior[3 * i + 1] - dist[1], 0.f), static_cast<float>(h));
        b[2] = std::min(std::max(prior[3 * i] + dist[2], 0.f), static_cast<float>(w));
        b[3] = std::min(std::max(prior[3 * i + 1] + dist[3], 0.f), static_cast<float>(h));
        return b;
    };
    for (std::size_t k = 0; k < loc.size(); k++) {
        float s = head.score(loc[k], cls[k]);
        raw.scores.push_back(head.logits ? sigmoid(s) : s);
        raw.classes.push_back(cls[k]);
        const float* b = box_at(loc[k]);
        raw.boxes.insert(raw.boxes.end(), b, b + 4);
    }
    return raw;
}

}  // namespace decoding

using decoding::decode_nanodet;
using decoding::decode_ssd;
using decoding::decode_yolov8;

std::vector<std::string> layout_roles(const DecoderSpec& d) {
    std::vector<std::string> roles;
    if (d.family == "nanodet") {
        if (d.layout == "nanodet-single" || d.layout == "nanodet-single-chw") return {"head"};
        for (int s : d.strides) {
            const std::string t = std::to_string(s);
            if (d.layout == "nanodet-strides") roles.push_back("head" + t);
            else if (d.layout == "nanodet-cls-dis" || d.layout == "nanodet-legacy") {
                roles.push_back("cls" + t);
                roles.push_back("dis" + t);
            } else {
                throw Error("model", "the native runtime has no nanodet layout " + d.layout +
                                         " (it has nanodet-single, nanodet-single-chw, nanodet-strides, "
                                         "nanodet-cls-dis, nanodet-legacy)");
            }
        }
        return roles;
    }
    if (d.family == "yolov8") {
        if (d.layout == "yolov8-dfl" || d.layout == "yolov8-decoded") return {"head"};
        throw Error("model", "the native runtime has no yolov8 layout " + d.layout + " (it has yolov8-dfl, yolov8-decoded)");
    }
    if (d.family == "ssd") {
        if (d.layout == "ssd-loc-conf") return {"loc", "conf"};
        throw Error("model", "the native runtime has no ssd layout " + d.layout + " (it has ssd-loc-conf)");
    }
    throw Error("model", "the native runtime has no decoder family " + d.family + " (it has nanodet, ssd, yolov8)");
}

Raw decode_outputs(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h,
                   const Limits& limits) {
    Raw raw;
    if (d.family == "nanodet") raw = decode_nanodet(d, by_role, w, h, limits);
    else if (d.family == "yolov8") raw = decode_yolov8(d, by_role, w, h, limits);
    else if (d.family == "ssd") raw = decode_ssd(d, by_role, w, h, limits);
    else layout_roles(d);  // throws the clear error
    std::vector<int> keep = batched_nms(raw.boxes, raw.scores, raw.classes, limits.nms, limits.max_detections);
    Raw out;
    for (int i : keep) {
        out.boxes.insert(out.boxes.end(), raw.boxes.begin() + 4 * i, raw.boxes.begin() + 4 * i + 4);
        out.scores.push_back(raw.scores[i]);
        out.classes.push_back(raw.classes[i]);
    }
    return out;
}

}  // namespace edgekit
