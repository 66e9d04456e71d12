// SSD decoder (edge/decoders/ssd.py): layout ssd-loc-conf, default boxes of the MLPerf SSD-ResNet34
// recipe, per-class candidates then the shared NMS. Float32 in the Python order.
#include <algorithm>
#include <cmath>

#include "decoding.h"

namespace edgekit::decoding {
namespace {

std::vector<int> resnet34_feature_sizes(int size) {
    auto up = [](int a, int b) { return (a + b - 1) / b; };
    int src = up(up(up(size, 2), 2), 2);
    std::vector<int> sources{src};
    for (int i = 0; i < 3; i++) sources.push_back(up(sources.back(), 2));
    sources.push_back((sources.back() - 3) / 2 + 1);
    sources.push_back(sources.back() - 2);
    if (sources.back() < 1) return {};
    std::vector<int> out;
    for (int s : sources) out.push_back(up(s, 3));
    return out;
}

int box_count(const DecoderSpec& d, const std::vector<int>& fs) {
    int n = 0;
    for (std::size_t l = 0; l < fs.size(); l++) n += static_cast<int>(2 + 2 * d.aspect_ratios[l].size()) * fs[l] * fs[l];
    return n;
}

}  // namespace

Raw decode_ssd(const DecoderSpec& d, const std::map<std::string, Tensor>& by_role, int w, int h, const Limits& limits) {
    if (d.layout != "ssd-loc-conf")
        throw Error("model", "layout " + d.layout + " of family ssd is not implemented by the native runtime");
    const Tensor& loc_t = role(d, by_role, "loc");
    const Tensor& conf_t = role(d, by_role, "conf");
    auto ls = squeeze(loc_t.shape, 2), cs = squeeze(conf_t.shape, 2);
    std::vector<int> fs = d.feature_sizes;
    int n = box_count(d, fs);
    auto holds = [&](const std::vector<int>& s, int v) { return std::find(s.begin(), s.end(), v) != s.end(); };
    if (!holds(ls, n) && !holds(cs, n) && w == h && w != d.image_size) {
        auto other = resnet34_feature_sizes(w);
        if (other.size() == fs.size()) fs = other, n = box_count(d, fs);
    }
    const int k = static_cast<int>(d.class_names.size()) + 1;
    bool loc_t_major, conf_t_major;  // stored 4 x N / K x N
    if (ls == std::vector<int>{n, 4}) loc_t_major = false;
    else if (ls == std::vector<int>{4, n}) loc_t_major = true;
    else mismatch(d, "loc needs 4x" + std::to_string(n) + ", got " + shape_text(loc_t.shape));
    if (cs == std::vector<int>{n, k}) conf_t_major = false;
    else if (cs == std::vector<int>{k, n}) conf_t_major = true;
    else mismatch(d, "conf needs " + std::to_string(k) + "x" + std::to_string(n) + ", got " + shape_text(conf_t.shape));
    auto loc = [&](int i, int j) { return loc_t_major ? loc_t.data[static_cast<std::size_t>(j) * n + i] : loc_t.data[static_cast<std::size_t>(i) * 4 + j]; };
    auto conf = [&](int i, int j) { return conf_t_major ? conf_t.data[static_cast<std::size_t>(j) * n + i] : conf_t.data[static_cast<std::size_t>(i) * k + j]; };
    // default boxes cx, cy, w, h (normalised), level, box kind, row, column; computed in double
    std::vector<float> priors;
    priors.reserve(static_cast<std::size_t>(n) * 4);
    for (std::size_t l = 0; l < fs.size(); l++) {
        const int fk = fs[l];
        double sk = d.scales[l] / static_cast<double>(d.image_size), sk1 = d.scales[l + 1] / static_cast<double>(d.image_size);
        std::vector<std::pair<double, double>> shapes{{sk, sk}, {std::sqrt(sk * sk1), std::sqrt(sk * sk1)}};
        for (int r : d.aspect_ratios[l]) {
            double q = std::sqrt(static_cast<double>(r));
            shapes.push_back({sk * q, sk / q});
            shapes.push_back({sk / q, sk * q});
        }
        for (const auto& wh : shapes)
            for (int y = 0; y < fk; y++)
                for (int x = 0; x < fk; x++) {
                    double v[4] = {(x + 0.5) / fk, (y + 0.5) / fk, wh.first, wh.second};
                    for (double e : v) priors.push_back(static_cast<float>(std::min(std::max(e, 0.0), 1.0)));
                }
    }
    struct Cand {
        int box, cls;
        float score;
    };
    std::vector<Cand> cands;
    std::vector<float> e(k);
    for (int i = 0; i < n; i++) {
        float mx = conf(i, 0);
        for (int j = 1; j < k; j++) mx = std::max(mx, conf(i, j));
        float sum = 0.f;
        for (int j = 0; j < k; j++) sum += (e[j] = std::exp(conf(i, j) - mx));
        for (int j = 1; j < k; j++) {
            float p = e[j] / sum;
            if (p > limits.score) cands.push_back({i, j - 1, p});
        }
    }
    // best candidates_per_class per class: class, then score descending (stable)
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
        return a.cls != b.cls ? a.cls < b.cls : a.score > b.score;
    });
    Raw raw;
    int rank = 0, last = -1;
    const float vxy = d.variances[0], vwh = d.variances[1];
    for (const Cand& cand : cands) {
        rank = cand.cls == last ? rank + 1 : 0;
        last = cand.cls;
        if (rank >= d.candidates_per_class) continue;
        const float* p = &priors[static_cast<std::size_t>(cand.box) * 4];
        float cx = vxy * loc(cand.box, 0) * p[2] + p[0];
        float cy = vxy * loc(cand.box, 1) * p[3] + p[1];
        float bw = std::exp(vwh * loc(cand.box, 2)) * p[2];
        float bh = std::exp(vwh * loc(cand.box, 3)) * p[3];
        raw.boxes.push_back((cx - bw / 2) * static_cast<float>(w));
        raw.boxes.push_back((cy - bh / 2) * static_cast<float>(h));
        raw.boxes.push_back((cx + bw / 2) * static_cast<float>(w));
        raw.boxes.push_back((cy + bh / 2) * static_cast<float>(h));
        raw.scores.push_back(cand.score);
        raw.classes.push_back(cand.cls);
    }
    return raw;
}

}  // namespace edgekit::decoding
