// edgekit native core: open a build through its manifest v2, detect objects, benchmark a model.
//
// The same preprocessing, ncnn option policy, decoders and NMS as edgekit's Python runtime
// (edge/preprocess.py, edge/board/runner.py:ncnn_options, edge/decoders/), so a build gives the
// same detections on a phone, a board and the host. Every failure is an edgekit::Error carrying
// one line and a kind ("model", "input", "usage"). The header does not expose ncnn or JSON types.
//
// Typical use (files):
//     edgekit::Build build = edgekit::open_build("path/to/build", "fp16", edgekit::Options{});
//     edgekit::OwnedImage image = edgekit::read_image("street.jpg");
//     std::vector<edgekit::Detection> found = edgekit::detect(build, image.view(), {});
// Android (assets read into memory by the caller):
//     edgekit::Build build = edgekit::open_build_memory(manifest_text, param_text, bin_bytes, bin_size,
//                                                       "fp16", options);
//     edgekit::Image view{width, height, stride, edgekit::PixelOrder::RGBA, pixels};
//     auto found = edgekit::detect(build, view, {});
// A Build is movable, not copyable; detect() on one Build must not run concurrently from two
// threads (use one Build per thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgekit {

/// One clear line; kind is "model" (build/manifest/weights), "input" (image) or "usage".
class Error : public std::runtime_error {
public:
    Error(std::string kind, const std::string& message) : std::runtime_error(message), kind_(std::move(kind)) {}
    const std::string& kind() const { return kind_; }

private:
    std::string kind_;
};

/// Channel order of caller-supplied pixels (8 bits per channel, rows `stride` bytes apart).
enum class PixelOrder { BGR, RGB, BGRA, RGBA, GRAY };

/// A non-owning view of an 8-bit image.
struct Image {
    int width = 0;
    int height = 0;
    int stride = 0;  // bytes per row (0: tightly packed)
    PixelOrder order = PixelOrder::BGR;
    const std::uint8_t* data = nullptr;
};

/// A decoded image (BGR, tightly packed), as read_image / decode_image return it.
struct OwnedImage {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> bgr;
    Image view() const { return Image{width, height, width * 3, PixelOrder::BGR, bgr.data()}; }
};

/// Decode a JPEG/PNG/BMP/... file (JPEG: libjpeg-turbo as OpenCV's imread does it, when built with it;
/// others: stb_image through ncnn's simpleocv); Error("input") if it cannot.
OwnedImage read_image(const std::string& path);
/// The same from encoded bytes in memory.
OwnedImage decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& what = "image");

/// How a build is opened.
struct Options {
    int threads = 1;
    bool verify_checksums = true;  // size + sha256 of param and bin against the manifest
    /// ncnn's Vulkan compute (GPU). Error("usage") when this ncnn was built without Vulkan or the
    /// device has no Vulkan GPU; never a silent CPU run.
    bool use_vulkan = false;
};

/// Post-processing limits; a negative value (or INT_MIN for max_detections) keeps the manifest's.
struct DetectOptions {
    float score_threshold = -1.f;
    float nms_threshold = -1.f;
    int max_detections = -2147483647 - 1;
};

/// One detection: contiguous class id, its name, score and box in image pixels (x0,y0 top-left).
struct Detection {
    int label = 0;
    std::string name;
    float score = 0.f;
    float x0 = 0.f, y0 = 0.f, x1 = 0.f, y1 = 0.f;
};

/// The manifest's input section (what preprocessing does).
struct InputSpec {
    std::string name, ncnn_name;
    int channels = 3, height = 0, width = 0;
    std::string color = "BGR";  // channel order fed to the network
    float mean[3] = {0, 0, 0};
    float norm[3] = {1, 1, 1};
    std::string resize = "stretch";  // or "letterbox"
    int pad_multiple = 32;
    float pad_value = 0.f;
};

/// The manifest's decoder section, with the family's config flattened into known fields.
struct DecoderSpec {
    std::string family, preset, layout;
    std::map<std::string, std::string> roles;  // role -> ncnn blob
    std::vector<std::string> class_names;
    std::vector<int> category_ids;
    float score_threshold = 0.4f, nms_threshold = 0.5f;
    int max_detections = 100;
    // nanodet / yolov8
    std::vector<int> strides;
    int reg_max = 7;
    float center_offset = 0.f;
    std::string class_scores, distances;  // nanodet: "" when the manifest leaves them null
    // ssd
    int image_size = 1200;
    std::vector<int> feature_sizes;
    std::vector<float> scales;
    std::vector<std::vector<int>> aspect_ratios;
    float variances[2] = {0.1f, 0.2f};
    int candidates_per_class = 200;
};

/// What open_build read from manifest.json.
struct Manifest {
    std::string schema;
    InputSpec input;
    std::vector<std::pair<std::string, std::string>> outputs;  // (ONNX name, ncnn blob)
    DecoderSpec decoder;
    bool has_decoder = false;
    std::map<std::string, std::pair<std::string, std::string>> files;  // precision -> (param, bin) paths
};

/// Parse manifest JSON text (edgekit.manifest/2); Error("model") naming what is wrong.
Manifest parse_manifest(const std::string& json_text, const std::string& where = "manifest.json");

/// A loaded build: manifest + ncnn net with the precision's options. Movable only.
class Build {
public:
    struct Impl;
    explicit Build(std::unique_ptr<Impl> impl);
    Build(Build&&) noexcept;
    Build& operator=(Build&&) noexcept;
    ~Build();
    const Manifest& manifest() const;
    const std::string& precision() const;
    const std::string& name() const;  // the build directory's name (or "memory")
    Impl& impl();

private:
    std::unique_ptr<Impl> impl_;
};

/// Open the build directory `dir` at `precision` ("fp32", "fp16", "int8").
Build open_build(const std::string& dir, const std::string& precision, const Options& options = {});

/// Open a build from memory (e.g. Android assets): manifest text, .param text, .bin bytes.
/// The bytes are copied; the caller's buffers may be freed after the call.
Build open_build_memory(const std::string& manifest_text, const std::string& param_text, const std::uint8_t* bin,
                        std::size_t bin_size, const std::string& precision, const Options& options = {},
                        const std::string& name = "memory");

/// Detect objects in one image: best score first, boxes in image pixels.
std::vector<Detection> detect(Build& build, const Image& image, const DetectOptions& options = {});

/// Per-stage time of the last detect() call on a build, in milliseconds.
struct StageTimes {
    double preprocess_ms = 0, inference_ms = 0, decode_ms = 0;
};
StageTimes last_times(const Build& build);

// --- benchmarking (edge/board/runner.py bench) ---------------------------------------------------

struct BenchOptions {
    std::string param, bin;  // bin empty: zero weights like benchncnn
    std::string input;
    int c = 3, h = 0, w = 0;
    std::vector<std::string> outputs;  // empty: the graph's outputs
    std::string precision = "fp32";
    std::vector<int> threads{1};
    int loops = 100, warmup = 10;
    int powersave = 0;  // ncnn set_cpu_powersave: 0 all cores, 1 little, 2 big
    bool use_vulkan = false;  // as Options::use_vulkan
};

struct BenchRun {
    int threads = 1;
    double load_ms = 0;
    std::vector<double> latencies_ms;
    double peak_rss_mb = -1;  // < 0: unknown
    std::string peak_rss_scope;
    std::vector<std::string> outputs;
};

/// Load once per thread count, warm up, time `loops` inferences (new extractor, input, every output).
std::vector<BenchRun> bench(const BenchOptions& options);

/// The one JSON line of `edgekit-runner bench` (= edge/board/runner.py bench, no newline):
/// {"precision", "powersave", "runs": [{"threads", "load_ms", "latencies_ms", "peak_rss_mb" (null if
/// unknown), "peak_rss_scope", "outputs"}]}, then "vulkan": true only when options.use_vulkan, then
/// `extra` string fields in order (the app adds "runner" and "bundle").
std::string bench_json(const BenchOptions& options, const std::vector<BenchRun>& runs,
                       const std::vector<std::pair<std::string, std::string>>& extra = {});

// --- runtime facts ---------------------------------------------------------------------------------

/// edgekit's ncnn option policy for a precision and thread count, as name -> value (bools as 0/1).
/// Mirrors edge/board/runner.py ncnn_options; Error("usage") for an unknown precision.
std::vector<std::pair<std::string, int>> policy_options(const std::string& precision, int threads);

/// ncnn's CPU feature answers (cpu_support_*), e.g. {"fp16": true, "dotprod": false, ...}.
std::vector<std::pair<std::string, bool>> cpu_features();
int cpu_count();
int little_cpu_count();
int big_cpu_count();

/// Refuse a .param text that ncnn cannot load here: Error("model") naming a layer type this ncnn
/// does not have or that this build compiled out. Returns the layer types used.
std::vector<std::string> check_param_layers(const std::string& param_text, const std::string& where);

}  // namespace edgekit
