// Image -> network input, the pixel conventions of edge/preprocess.py (bit for bit on 8-bit input):
// one affine warp `net = image * scale + pad` sampled like OpenCV 5's cv2.warpAffine (INTER_LINEAR,
// BORDER_CONSTANT with the manifest's pad value), then the colour order, then
// `pixel * norm - mean * norm` in float32. Build with -ffp-contract=off: no fused multiply-adds
// except where OpenCV's vector path fuses (emulated exactly in double).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "internal.h"

namespace edgekit {
namespace {

/// The image as tightly packed BGR (what cv2.imdecode(IMREAD_COLOR) gives the Python runtime).
std::vector<std::uint8_t> to_bgr(const Image& image) {
    if (image.width <= 0 || image.height <= 0 || image.data == nullptr)
        throw Error("input", "empty image (" + std::to_string(image.width) + "x" + std::to_string(image.height) + ")");
    int channels = 3;
    switch (image.order) {
        case PixelOrder::BGR:
        case PixelOrder::RGB: channels = 3; break;
        case PixelOrder::BGRA:
        case PixelOrder::RGBA: channels = 4; break;
        case PixelOrder::GRAY: channels = 1; break;
    }
    const int stride = image.stride > 0 ? image.stride : image.width * channels;
    std::vector<std::uint8_t> out(static_cast<std::size_t>(image.width) * image.height * 3);
    for (int y = 0; y < image.height; y++) {
        const std::uint8_t* row = image.data + static_cast<std::size_t>(y) * stride;
        std::uint8_t* dst = out.data() + static_cast<std::size_t>(y) * image.width * 3;
        for (int x = 0; x < image.width; x++, dst += 3) {
            const std::uint8_t* p = row + x * channels;
            switch (image.order) {
                case PixelOrder::BGR:
                case PixelOrder::BGRA: dst[0] = p[0]; dst[1] = p[1]; dst[2] = p[2]; break;
                case PixelOrder::RGB:
                case PixelOrder::RGBA: dst[0] = p[2]; dst[1] = p[1]; dst[2] = p[0]; break;
                case PixelOrder::GRAY: dst[0] = dst[1] = dst[2] = p[0]; break;
            }
        }
    }
    return out;
}

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

/// Python's round(): to nearest, ties to even.
int py_round(double v) { return static_cast<int>(std::nearbyint(v)); }

std::uint8_t saturate_u8(float v) {
    float r = std::nearbyint(v);  // cvRound: ties to even
    return static_cast<std::uint8_t>(std::min(255.f, std::max(0.f, r)));
}

/// cv2.warpAffine(src, [[sx,0,px],[0,sy,py]], (W,H), INTER_LINEAR, BORDER_CONSTANT, border) in BGR.
void warp_affine(const std::vector<std::uint8_t>& src, int sw, int sh, const Transform& t, std::uint8_t border,
                 std::vector<std::uint8_t>& dst) {
    // OpenCV inverts the matrix in double (invertAffineTransform), then works in float.
    double M[6] = {t.scale_x, 0.0, t.pad_x, 0.0, t.scale_y, t.pad_y};
    double D = M[0] * M[4] - M[1] * M[3];
    D = D != 0 ? 1. / D : 0;
    double A11 = M[4] * D, A22 = M[0] * D;
    M[0] = A11;
    M[1] *= -D;
    M[3] *= -D;
    M[4] = A22;
    double b1 = -M[0] * M[2] - M[1] * M[5];
    double b2 = -M[3] * M[2] - M[4] * M[5];
    M[2] = b1;
    M[5] = b2;
    float F[6];
    for (int i = 0; i < 6; i++) F[i] = static_cast<float>(M[i]);

    const int W = t.input_width, H = t.input_height;
    dst.assign(static_cast<std::size_t>(W) * H * 3, border);
    const std::size_t step = static_cast<std::size_t>(sw) * 3;
    // The matrix is diagonal (M[1] = M[3] = 0), so source x depends on x only and source y on y
    // only: OpenCV's per-row M_x = y*M[1] + M[2] is M[2] exactly, and fma(M[3], x, M_y) is M_y.
    // Sample positions are therefore computed once per column and once per row.
    std::vector<int> ixs(W);
    std::vector<float> axs(W);
    for (int x = 0; x < W; x++) {
        float mx = 0.f * F[1];
        mx = mx + F[2];
        // OpenCV's vector path: fma(M0, x, M_x) (fused: emulated exactly through double)
        float fx = static_cast<float>(static_cast<double>(F[0]) * x + static_cast<double>(mx));
        ixs[x] = static_cast<int>(std::floor(fx));
        axs[x] = fx - static_cast<float>(ixs[x]);
    }
    for (int y = 0; y < H; y++) {
        float my = static_cast<float>(y) * F[4];
        my = my + F[5];
        const float fy = static_cast<float>(static_cast<double>(F[3]) * 0 + static_cast<double>(my));
        const int iy = static_cast<int>(std::floor(fy));
        const float ay = fy - static_cast<float>(iy);
        if (iy + 1 < 0 || iy >= sh) continue;  // the whole row samples outside: border
        const bool row_inner = iy >= 0 && iy < sh - 1;
        std::uint8_t* out = dst.data() + static_cast<std::size_t>(y) * W * 3;
        for (int x = 0; x < W; x++, out += 3) {
            const int ix = ixs[x];
            const float ax = axs[x];
            if (ix + 1 < 0 || ix >= sw) continue;  // all four outside: border
            const bool inner = row_inner && ix >= 0 && ix < sw - 1;
            for (int c = 0; c < 3; c++) {
                float p[4];
                if (inner) {
                    const std::uint8_t* s0 = src.data() + iy * step + ix * 3 + c;
                    p[0] = s0[0];
                    p[1] = s0[3];
                    p[2] = s0[step];
                    p[3] = s0[step + 3];
                } else {
                    for (int k = 0; k < 4; k++) {
                        int xx = ix + (k & 1), yy = iy + (k >> 1);
                        bool ok = xx >= 0 && xx < sw && yy >= 0 && yy < sh;
                        p[k] = ok ? static_cast<float>(src[yy * step + xx * 3 + c]) : static_cast<float>(border);
                    }
                }
                float v0 = static_cast<float>(p[0] + static_cast<double>(ax) * (p[1] - p[0]));
                float v1 = static_cast<float>(p[2] + static_cast<double>(ax) * (p[3] - p[2]));
                float d = v1 - v0;
                float v = static_cast<float>(v0 + static_cast<double>(ay) * d);
                out[c] = saturate_u8(v);
            }
        }
    }
}

}  // namespace

ncnn::Mat preprocess(const Image& image, const InputSpec& spec, Transform& t) {
    std::vector<std::uint8_t> bgr = to_bgr(image);
    const int iw = image.width, ih = image.height, tw = spec.width, th = spec.height;
    t.image_width = iw;
    t.image_height = ih;
    if (spec.resize == "stretch") {
        t.scale_x = static_cast<double>(tw) / iw;
        t.scale_y = static_cast<double>(th) / ih;
        t.pad_x = t.pad_y = 0;
        t.input_width = tw;
        t.input_height = th;
    } else if (spec.resize == "letterbox") {
        double scale = std::min(static_cast<double>(tw) / iw, static_cast<double>(th) / ih);
        int rw = std::max(1, py_round(iw * scale)), rh = std::max(1, py_round(ih * scale));
        int pw = tw, ph = th;
        if (spec.pad_multiple > 0) {
            pw = std::min(round_up(rw, spec.pad_multiple), std::max(tw, rw));
            ph = std::min(round_up(rh, spec.pad_multiple), std::max(th, rh));
        }
        t.scale_x = static_cast<double>(rw) / iw;
        t.scale_y = static_cast<double>(rh) / ih;
        t.pad_x = (pw - rw) / 2;
        t.pad_y = (ph - rh) / 2;
        t.input_width = pw;
        t.input_height = ph;
    } else {
        throw Error("model", "unknown resize policy '" + spec.resize + "' (expected stretch or letterbox)");
    }
    std::vector<std::uint8_t> net;
    warp_affine(bgr, iw, ih, t, saturate_u8(spec.pad_value), net);
    const bool rgb = spec.color == "RGB";
    ncnn::Mat mat(t.input_width, t.input_height, 3);
    const int n = t.input_width * t.input_height;
    for (int c = 0; c < 3; c++) {
        const int source = rgb ? 2 - c : c;
        const float norm = spec.norm[c];
        const float offset = spec.mean[c] * norm;
        float* out = mat.channel(c);
        for (int i = 0; i < n; i++) {
            float v = static_cast<float>(net[static_cast<std::size_t>(i) * 3 + source]) * norm;
            out[i] = v - offset;
        }
    }
    return mat;
}

}  // namespace edgekit
