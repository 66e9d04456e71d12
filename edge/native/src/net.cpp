// Opening a build (files or memory), checking it, and detect(): preprocess -> ncnn -> decode -> image.
#include <chrono>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cpu.h"
#include "layer.h"

#include "internal.h"

namespace edgekit {

void file_record(const std::string& text, const std::string& precision, const std::string& role, std::string& sha256,
                 long long& bytes);

std::size_t BoundedReader::read(void* buf, std::size_t size) const {
    std::size_t n = std::min(size, size_ - pos_);
    std::memcpy(buf, data_ + pos_, n);
    pos_ += n;
    return n;
}

std::size_t BoundedReader::reference(std::size_t, const void**) const { return 0; }

ParamFacts read_param_facts(const std::string& text, const std::string& where) {
    std::istringstream in(text);
    std::string line;
    int magic = 0;
    if (!std::getline(in, line) || std::sscanf(line.c_str(), "%d", &magic) != 1 || magic != 7767517)
        throw Error("model", where + ": not an ncnn text .param (first line must be 7767517; binary .param.bin is "
                                     "not supported)");
    int layers = 0, blobs = 0;
    if (!std::getline(in, line) || std::sscanf(line.c_str(), "%d %d", &layers, &blobs) != 2 || layers <= 0)
        throw Error("model", where + ": second line must be 'layer_count blob_count'");
    ParamFacts facts;
    std::vector<std::string> produced;
    int seen = 0;
    while (seen < layers && std::getline(in, line)) {
        std::istringstream fields(line);
        std::string type, name;
        int n_in = 0, n_out = 0;
        if (!(fields >> type)) continue;  // blank line
        if (!(fields >> name >> n_in >> n_out) || n_in < 0 || n_out < 0)
            throw Error("model", where + ": malformed layer line " + std::to_string(seen + 1) + ": " + line.substr(0, 80));
        for (int i = 0; i < n_in + n_out; i++) {
            std::string blob;
            if (!(fields >> blob)) throw Error("model", where + ": layer " + name + " lists fewer blobs than it declares");
            if (i < n_in) facts.consumed.insert(blob);
            else produced.push_back(blob);
        }
        facts.types.push_back(type);
        seen++;
    }
    if (seen != layers)
        throw Error("model", where + ": declares " + std::to_string(layers) + " layers but holds " + std::to_string(seen));
    for (const std::string& b : produced)
        if (!facts.consumed.count(b)) facts.output_blobs.push_back(b);
    return facts;
}

std::vector<std::string> check_param_layers(const std::string& text, const std::string& where) {
    ParamFacts facts = read_param_facts(text, where);
    std::set<std::string> checked;
    for (const std::string& type : facts.types) {
        if (!checked.insert(type).second) continue;
        int index = ncnn::layer_to_index(type.c_str());
        if (index < 0)
            throw Error("model", where + ": layer type " + type + " is not an ncnn layer (unknown to ncnn " +
                                     "this runner was built with)");
        ncnn::Layer* layer = ncnn::create_layer_cpu(index);
        if (layer == nullptr)
            throw Error("model", where + ": layer type " + type + " is not compiled into this native runner (edgekit "
                                     "builds ncnn with the layer types listed in edge/native/layers.py; add " + type +
                                     " there and re-run `edgekit native build`)");
        delete layer;
    }
    return std::vector<std::string>(checked.begin(), checked.end());
}

Tensor to_tensor(const ncnn::Mat& m) {
    Tensor t;
    if (m.dims == 1) t.shape = {m.w};
    else if (m.dims == 2) t.shape = {m.h, m.w};
    else if (m.dims == 3) t.shape = {m.c, m.h, m.w};
    else t.shape = {m.c, m.d, m.h, m.w};
    const std::size_t plane = static_cast<std::size_t>(m.w) * m.h * m.d;
    t.data.resize(plane * (m.dims >= 3 ? m.c : 1));
    if (m.dims <= 2) {
        std::memcpy(t.data.data(), m.data, plane * sizeof(float));
    } else {
        for (int q = 0; q < m.c; q++) std::memcpy(t.data.data() + q * plane, m.channel(q).data, plane * sizeof(float));
    }
    return t;
}

struct Build::Impl {
    Manifest manifest;
    std::string precision, name;
    ncnn::Net net;
    std::vector<std::pair<std::string, std::string>> role_blobs;  // role -> blob
    StageTimes times;
};

Build::Build(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Build::Build(Build&&) noexcept = default;
Build& Build::operator=(Build&&) noexcept = default;
Build::~Build() = default;
const Manifest& Build::manifest() const { return impl_->manifest; }
const std::string& Build::precision() const { return impl_->precision; }
const std::string& Build::name() const { return impl_->name; }
Build::Impl& Build::impl() { return *impl_; }
StageTimes last_times(const Build& build) { return const_cast<Build&>(build).impl().times; }

namespace {

std::string read_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("model", what + " not found or unreadable: " + path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void verify(const std::string& manifest_text, const std::string& precision, const std::string& role,
            const std::string& label, const void* data, std::size_t size) {
    std::string sha;
    long long bytes = -1;
    file_record(manifest_text, precision, role, sha, bytes);
    if (bytes >= 0 && static_cast<long long>(size) != bytes)
        throw Error("model", label + " is " + std::to_string(size) + " bytes, the manifest says " + std::to_string(bytes) +
                                 " (truncated or replaced; rebuild it with `edgekit convert`)");
    if (!sha.empty() && sha256_hex(data, size) != sha)
        throw Error("model", label + " does not match the sha256 in its manifest (corrupt or replaced)");
}

std::unique_ptr<Build::Impl> load(Manifest manifest, const std::string& manifest_text, const std::string& param,
                                  const std::string& bin, const std::string& precision, const Options& options,
                                  const std::string& name, const std::string& param_label, const std::string& bin_label) {
    if (!manifest.has_decoder)
        throw Error("model", name + ": the manifest has no decoder (not a detector); detect needs one");
    if (options.threads < 1) throw Error("usage", "threads must be at least 1");
    auto impl = std::make_unique<Build::Impl>();
    impl->precision = precision;
    impl->name = name;
    const DecoderSpec& d = manifest.decoder;
    for (const std::string& r : layout_roles(d)) {
        auto it = d.roles.find(r);
        if (it == d.roles.end())
            throw Error("model", name + ": the manifest's decoder.roles has no '" + r + "' for layout " + d.layout);
        impl->role_blobs.emplace_back(r, it->second);
    }
    if (options.verify_checksums) {
        verify(manifest_text, precision, "param", param_label, param.data(), param.size());
        verify(manifest_text, precision, "bin", bin_label, bin.data(), bin.size());
    }
    ParamFacts facts = read_param_facts(param, param_label);
    check_param_layers(param, param_label);
    apply_policy(impl->net.opt, precision, options.threads);
    apply_vulkan(impl->net.opt, options.use_vulkan);
    for (const auto& rb : impl->role_blobs)
        if (facts.consumed.count(rb.second)) impl->net.opt.lightmode = false;  // extracting an intermediate blob
    if (impl->net.load_param_mem(param.c_str()) != 0) throw Error("model", param_label + ": ncnn could not parse it");
    BoundedReader reader(reinterpret_cast<const unsigned char*>(bin.data()), bin.size());
    if (impl->net.load_model(reader) != 0)
        throw Error("model", bin_label + ": ncnn could not load the weights (truncated or not this .param's)");
    if (reader.remaining() != 0)
        throw Error("model", bin_label + ": " + std::to_string(reader.remaining()) +
                                 " bytes left after the weights (not this .param's weights)");
    std::set<std::string> blobs;
    for (const ncnn::Blob& b : impl->net.blobs()) blobs.insert(b.name);
    if (!blobs.count(manifest.input.ncnn_name))
        throw Error("model", param_label + " has no input blob '" + manifest.input.ncnn_name + "' (manifest input.ncnn_name)");
    for (const auto& rb : impl->role_blobs)
        if (!blobs.count(rb.second))
            throw Error("model", param_label + " has no blob '" + rb.second + "' (manifest role " + rb.first + ")");
    impl->manifest = std::move(manifest);
    return impl;
}

void check_precision(const Manifest& m, const std::string& precision, const std::string& name) {
    if (precision != "fp32" && precision != "fp16" && precision != "int8")
        throw Error("usage", "unknown precision '" + precision + "' (expected fp32, fp16 or int8)");
    if (!m.files.count(precision)) {
        std::string have;
        for (const auto& f : m.files) have += (have.empty() ? "" : ", ") + f.first;
        throw Error("model", name + ": this build has no " + precision + " model (it has: " + (have.empty() ? "none" : have) + ")");
    }
}

std::string base_name(const std::string& dir) {
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    auto slash = d.find_last_of('/');
    return slash == std::string::npos ? d : d.substr(slash + 1);
}

}  // namespace

Build open_build(const std::string& dir, const std::string& precision, const Options& options) {
    const std::string name = base_name(dir);
    const std::string manifest_path = dir + "/manifest.json";
    std::ifstream probe(manifest_path);
    if (!probe) throw Error("model", dir + " is not a build directory (no manifest.json)");
    std::string text = read_file(manifest_path, "manifest");
    Manifest m = parse_manifest(text, manifest_path);
    check_precision(m, precision, name);
    const auto& files = m.files.at(precision);
    for (const std::string& rel : {files.first, files.second})
        if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos)
            throw Error("model", manifest_path + ": file paths must be relative to the build directory: " + rel);
    const std::string param_path = dir + "/" + files.first, bin_path = dir + "/" + files.second;
    std::string param = read_file(param_path, "model file");
    std::string bin = read_file(bin_path, "model file");
    return Build(load(std::move(m), text, param, bin, precision, options, name, param_path, bin_path));
}

Build open_build_memory(const std::string& manifest_text, const std::string& param_text, const std::uint8_t* bin,
                        std::size_t bin_size, const std::string& precision, const Options& options,
                        const std::string& name) {
    Manifest m = parse_manifest(manifest_text, name + " manifest");
    check_precision(m, precision, name);
    std::string bytes(reinterpret_cast<const char*>(bin), bin_size);
    return Build(load(std::move(m), manifest_text, param_text, bytes, precision, options, name,
                      name + " " + precision + " .param", name + " " + precision + " .bin"));
}

std::vector<Detection> detect(Build& build, const Image& image, const DetectOptions& options) {
    using clock = std::chrono::steady_clock;
    Build::Impl& b = build.impl();
    const Manifest& m = b.manifest;
    auto t0 = clock::now();
    Transform t;
    ncnn::Mat in = preprocess(image, m.input, t);
    auto t1 = clock::now();
    std::map<std::string, Tensor> by_role;
    {
        ncnn::Extractor ex = b.net.create_extractor();
        if (ex.input(m.input.ncnn_name.c_str(), in) != 0)
            throw Error("model", "ncnn refused the input blob " + m.input.ncnn_name);
        for (const auto& rb : b.role_blobs) {
            ncnn::Mat out;
            if (ex.extract(rb.second.c_str(), out) != 0 || out.empty())
                throw Error("model", "ncnn could not compute blob " + rb.second + " (role " + rb.first + ")");
            by_role[rb.first] = to_tensor(out);
        }
    }
    auto t2 = clock::now();
    const DecoderSpec& d = m.decoder;
    Limits limits{options.score_threshold >= 0 ? options.score_threshold : d.score_threshold,
                  options.nms_threshold >= 0 ? options.nms_threshold : d.nms_threshold,
                  options.max_detections != INT_MIN ? options.max_detections : d.max_detections};
    Raw raw = decode_outputs(d, by_role, t.input_width, t.input_height, limits);
    std::vector<Detection> found;
    for (std::size_t i = 0; i < raw.scores.size(); i++) {
        const float* bx = &raw.boxes[4 * i];
        Detection det;
        det.label = raw.classes[i];
        det.name = det.label < static_cast<int>(d.class_names.size()) ? d.class_names[det.label] : std::to_string(det.label);
        det.score = raw.scores[i];
        // Transform.to_image: float32 (box - pad) / scale, clipped to the image
        const float sx = static_cast<float>(t.scale_x), sy = static_cast<float>(t.scale_y);
        const float px = static_cast<float>(t.pad_x), py = static_cast<float>(t.pad_y);
        const float iw = static_cast<float>(t.image_width), ih = static_cast<float>(t.image_height);
        det.x0 = std::min(std::max((bx[0] - px) / sx, 0.f), iw);
        det.y0 = std::min(std::max((bx[1] - py) / sy, 0.f), ih);
        det.x1 = std::min(std::max((bx[2] - px) / sx, 0.f), iw);
        det.y1 = std::min(std::max((bx[3] - py) / sy, 0.f), ih);
        found.push_back(det);
    }
    auto t3 = clock::now();
    auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
    b.times = {ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)};
    return found;
}

}  // namespace edgekit
