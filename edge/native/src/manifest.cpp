// manifest.json (edgekit.manifest/2) -> Manifest, with nlohmann/json. See docs/manifest.md.
#include <nlohmann/json.hpp>

#include "internal.h"

namespace edgekit {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& where, const std::string& message) {
    throw Error("model", where + ": " + message);
}

const json& field(const json& obj, const char* key, const std::string& where) {
    if (!obj.is_object() || !obj.contains(key)) fail(where, std::string("missing field '") + key + "'");
    return obj.at(key);
}

template <typename T>
T get(const json& obj, const char* key, const std::string& where) {
    const json& value = field(obj, key, where);
    try {
        return value.get<T>();
    } catch (const json::exception&) {
        fail(where, std::string("field '") + key + "' has the wrong type (" + value.type_name() + ")");
    }
}

template <typename T>
T get_or(const json& obj, const char* key, T fallback, const std::string& where) {
    if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return fallback;
    return get<T>(obj, key, where);
}

InputSpec parse_input(const json& j, const std::string& where) {
    InputSpec in;
    in.name = get<std::string>(j, "name", where);
    in.ncnn_name = get<std::string>(j, "ncnn_name", where);
    auto shape = get<std::vector<int>>(j, "shape", where);
    if (shape.size() != 4 || shape[1] != 3 || shape[2] <= 0 || shape[3] <= 0)
        fail(where, "input.shape must be [1, 3, H, W] with positive H and W");
    in.channels = shape[1];
    in.height = shape[2];
    in.width = shape[3];
    in.color = get_or<std::string>(j, "color", "BGR", where);
    if (in.color != "BGR" && in.color != "RGB") fail(where, "input.color must be BGR or RGB, not " + in.color);
    auto mean = get_or<std::vector<float>>(j, "mean", {0, 0, 0}, where);
    auto norm = get_or<std::vector<float>>(j, "norm", {1, 1, 1}, where);
    if (mean.size() != 3 || norm.size() != 3) fail(where, "input.mean and input.norm need 3 values");
    for (int i = 0; i < 3; i++) {
        in.mean[i] = mean[i];
        in.norm[i] = norm[i];
    }
    in.resize = get_or<std::string>(j, "resize", "stretch", where);
    if (in.resize != "stretch" && in.resize != "letterbox")
        fail(where, "input.resize must be stretch or letterbox, not " + in.resize);
    in.pad_multiple = get_or<int>(j, "pad_multiple", 32, where);
    in.pad_value = get_or<float>(j, "pad_value", 0.f, where);
    return in;
}

DecoderSpec parse_decoder(const json& j, const std::string& where) {
    DecoderSpec d;
    d.family = get<std::string>(j, "family", where);
    d.preset = get<std::string>(j, "preset", where);
    d.layout = get<std::string>(j, "layout", where);
    d.roles = get_or<std::map<std::string, std::string>>(j, "roles", {}, where);
    d.class_names = get<std::vector<std::string>>(j, "class_names", where);
    if (d.class_names.empty()) fail(where, "decoder.class_names is empty");
    d.category_ids = get_or<std::vector<int>>(j, "category_ids", {}, where);
    d.score_threshold = get<float>(j, "score_threshold", where);
    d.nms_threshold = get<float>(j, "nms_threshold", where);
    d.max_detections = get<int>(j, "max_detections", where);
    const json& c = field(j, "config", where);
    const std::string cw = where + " decoder.config";
    if (d.family == "nanodet") {
        d.strides = get<std::vector<int>>(c, "strides", cw);
        d.reg_max = get_or<int>(c, "reg_max", 7, cw);
        d.center_offset = get_or<float>(c, "center_offset", 0.f, cw);
        d.class_scores = get_or<std::string>(c, "class_scores", "", cw);
        d.distances = get_or<std::string>(c, "distances", "", cw);
    } else if (d.family == "yolov8") {
        d.strides = get_or<std::vector<int>>(c, "strides", {8, 16, 32}, cw);
        d.reg_max = get_or<int>(c, "reg_max", 16, cw);
    } else if (d.family == "ssd") {
        d.image_size = get_or<int>(c, "image_size", 1200, cw);
        d.feature_sizes = get_or<std::vector<int>>(c, "feature_sizes", {50, 25, 13, 7, 3, 3}, cw);
        d.scales = get_or<std::vector<float>>(c, "scales", {84, 180, 396, 612, 828, 1044, 1260}, cw);
        d.aspect_ratios = get_or<std::vector<std::vector<int>>>(c, "aspect_ratios",
                                                                 {{2}, {2, 3}, {2, 3}, {2, 3}, {2}, {2}}, cw);
        auto var = get_or<std::vector<float>>(c, "variances", {0.1f, 0.2f}, cw);
        if (var.size() != 2) fail(cw, "variances needs 2 values");
        d.variances[0] = var[0];
        d.variances[1] = var[1];
        d.candidates_per_class = get_or<int>(c, "candidates_per_class", 200, cw);
        if (d.scales.size() != d.feature_sizes.size() + 1 || d.aspect_ratios.size() != d.feature_sizes.size())
            fail(cw, "scales needs one more value than feature_sizes, aspect_ratios one list per level");
    }
    // other families are refused with a clear error when decoding is set up (layout_roles)
    for (int s : d.strides)
        if (s <= 0) fail(cw, "strides must be positive");
    return d;
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& where) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        fail(where, std::string("not valid JSON (") + e.what() + ")");
    }
    Manifest m;
    m.schema = get<std::string>(j, "schema", where);
    if (m.schema != "edgekit.manifest/2")
        fail(where, "schema " + m.schema + " is not supported here (expected edgekit.manifest/2; re-run "
                                           "`edgekit convert` to write a version 2 manifest)");
    m.input = parse_input(field(j, "input", where), where + " input");
    for (const json& o : get<std::vector<json>>(j, "outputs", where))
        m.outputs.emplace_back(get<std::string>(o, "name", where), get<std::string>(o, "ncnn_name", where));
    const json& decoder = field(j, "decoder", where);
    m.has_decoder = !decoder.is_null();
    if (m.has_decoder) m.decoder = parse_decoder(decoder, where);
    const json& artifacts = field(j, "artifacts", where);
    if (artifacts.contains("ncnn")) {
        for (const auto& item : artifacts.at("ncnn").items()) {
            const json& files = field(item.value(), "files", where);
            m.files[item.key()] = {get<std::string>(field(files, "param", where), "path", where),
                                   get<std::string>(field(files, "bin", where), "path", where)};
        }
    }
    return m;
}

/// The expected sha256 and size (-1: not recorded) of one artifact file.
void file_record(const std::string& text, const std::string& precision, const std::string& role, std::string& sha256,
                 long long& bytes) {
    json j = json::parse(text);
    const json& f = j.at("artifacts").at("ncnn").at(precision).at("files").at(role);
    sha256 = f.value("sha256", std::string());
    bytes = f.contains("bytes") && f.at("bytes").is_number_integer() ? f.at("bytes").get<long long>() : -1;
}

}  // namespace edgekit
