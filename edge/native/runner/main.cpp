// edgekit-runner: the native board runner (mirror of edge/board/runner.py; one JSON line on stdout).
//
//   edgekit-runner probe
//   edgekit-runner bench --param M.param [--bin M.bin] --input data --shape C,H,W [--outputs a,b]
//                        [--precision fp32|fp16|int8] [--threads 1,2] [--loops N] [--warmup N] [--powersave 0|1|2]
//                        [--vulkan 0|1]   (--vulkan 1: ncnn's Vulkan compute; refused where there is none)
//   edgekit-runner detect --build DIR [--precision P] [--threads N] [--score S] [--nms T] [--max-det K]
//                         [--memory 1] [--vulkan 0|1] --out detections.json IMAGE...   (--memory 1: open_build_memory)
//   edgekit-runner policy --precision P [--threads N]      (the ncnn options the policy sets)
//   edgekit-runner preprocess --build DIR --out tensor.f32 IMAGE   (the network input, raw float32)
//   edgekit-runner decode --out pixels.bgr IMAGE   (the decoded image, raw BGR bytes, row by row)
//
// Errors: {"error": "usage"|"model"|"input"|"internal", "message": ...} and exit 2 / 4 / 5 / 1.
#include <sys/auxv.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../src/internal.h"

#ifndef EDGEKIT_NCNN_VERSION
#define EDGEKIT_NCNN_VERSION "unknown"
#endif

using json = nlohmann::ordered_json;
using edgekit::Error;

namespace {

[[noreturn]] void emit_exit(const json& j, int code) {
    std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);  // leave at once, as runner.py does
}

int exit_code(const std::string& kind) {
    if (kind == "usage") return 2;
    if (kind == "model") return 4;
    if (kind == "input") return 5;
    return 1;
}

struct Args {
    std::map<std::string, std::string> opts;
    std::vector<std::string> positional;
    std::string get(const std::string& k, const std::string& fallback = "") const {
        auto it = opts.find(k);
        return it == opts.end() ? fallback : it->second;
    }
    std::string need(const std::string& k) const {
        auto it = opts.find(k);
        if (it == opts.end()) throw Error("usage", "missing --" + k);
        return it->second;
    }
};

Args parse(int argc, char** argv, int start, const std::vector<std::string>& known) {
    Args a;
    for (int i = start; i < argc; i++) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0) {
            std::string key = s.substr(2), value;
            auto eq = key.find('=');
            if (eq != std::string::npos) {
                value = key.substr(eq + 1);
                key = key.substr(0, eq);
            } else {
                if (i + 1 >= argc) throw Error("usage", "--" + key + " needs a value");
                value = argv[++i];
            }
            bool ok = false;
            for (const std::string& k : known) ok = ok || k == key;
            if (!ok) throw Error("usage", "unknown option --" + key);
            a.opts[key] = value;
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

int to_int(const std::string& s, const std::string& what) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < INT_MIN || v > INT_MAX) throw Error("usage", what + " must be an integer, got '" + s + "'");
    return static_cast<int>(v);
}

float to_float(const std::string& s, const std::string& what) {
    char* end = nullptr;
    float v = std::strtof(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) throw Error("usage", what + " must be a number, got '" + s + "'");
    return v;
}

bool to_bool(const std::string& s, const std::string& what) {
    if (s == "0" || s == "1") return s == "1";
    throw Error("usage", what + " must be 0 or 1, got '" + s + "'");
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    if (!in) return "";
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// --- probe ------------------------------------------------------------------------------------

json probe() {
    std::string model;
    std::set<std::string> parts;
    int cores = 0;
    std::istringstream cpuinfo(read_text("/proc/cpuinfo"));
    std::string line;
    while (std::getline(cpuinfo, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
        for (auto& ch : key) ch = static_cast<char>(std::tolower(ch));
        if (key == "processor" && !value.empty() && value.find_first_not_of("0123456789") == std::string::npos) cores++;
        else if ((key == "model name" || key == "hardware" || key == "cpu model" || key == "uarch") && !value.empty() && model.empty())
            model = value;
        else if (key == "cpu part" && !value.empty()) parts.insert(value);
    }
    if (model.empty() && !parts.empty()) {
        model = "ARM CPU part ";
        bool first = true;
        for (const auto& p : parts) model += (first ? "" : "/") + p, first = false;
    }
    struct utsname u{};
    uname(&u);
    const std::string machine = u.machine;
    const bool arm = machine.rfind("aarch64", 0) == 0 || machine.rfind("arm", 0) == 0;
    std::string pretty;
    std::istringstream os(read_text("/etc/os-release"));
    while (std::getline(os, line))
        if (line.rfind("PRETTY_NAME=", 0) == 0) {
            pretty = trim(line.substr(12));
            if (pretty.size() >= 2 && pretty.front() == '"') pretty = pretty.substr(1, pretty.size() - 2);
        }
    std::string kernel = std::string(u.sysname) + " " + u.release;
    std::string governor = trim(read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"));
    json features = json::object();
    for (const auto& f : edgekit::cpu_features()) features[f.first] = f.second;
    json j;
    j["cpu"] = model.empty() ? machine : model;
    j["cores"] = cores ? cores : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    j["governor"] = governor.empty() ? json(nullptr) : json(governor);
    j["os"] = pretty.empty() ? kernel : pretty + " (" + kernel + ")";
    j["machine"] = machine;
    j["ncnn_version"] = EDGEKIT_NCNN_VERSION;
    j["arm_fp16"] = arm && features["fp16"].get<bool>();
    j["arm_dotprod"] = arm && features["dotprod"].get<bool>();
    j["arm_neon"] = arm && features["neon"].get<bool>();
    j["x86_avx2"] = features["avx2"].get<bool>();
    j["python"] = nullptr;
    j["ncnn_cpu_count"] = edgekit::cpu_count();
    j["ncnn_little_cores"] = edgekit::little_cpu_count();
    j["ncnn_big_cores"] = edgekit::big_cpu_count();
    j["runner"] = "native";
    j["ncnn_features"] = features;
#if defined(__aarch64__)
    j["hwcap"] = static_cast<unsigned long long>(getauxval(AT_HWCAP));
#endif
    return j;
}

// --- bench ------------------------------------------------------------------------------------

json bench(const Args& a) {
    edgekit::BenchOptions o;
    o.param = a.need("param");
    o.bin = a.get("bin");
    o.input = a.need("input");
    auto shape = split(a.need("shape"));
    if (shape.size() != 3) throw Error("usage", "--shape needs C,H,W");
    o.c = to_int(shape[0], "--shape");
    o.h = to_int(shape[1], "--shape");
    o.w = to_int(shape[2], "--shape");
    o.outputs = split(a.get("outputs"));
    o.precision = a.get("precision", "fp32");
    o.threads.clear();
    for (const auto& t : split(a.get("threads", "1"))) o.threads.push_back(to_int(t, "--threads"));
    if (o.threads.empty()) throw Error("usage", "--threads needs at least one value");
    o.loops = to_int(a.get("loops", "100"), "--loops");
    o.warmup = to_int(a.get("warmup", "10"), "--warmup");
    o.powersave = to_int(a.get("powersave", "0"), "--powersave");
    o.use_vulkan = to_bool(a.get("vulkan", "0"), "--vulkan");
    return json::parse(edgekit::bench_json(o, edgekit::bench(o)));
}

// --- detect -----------------------------------------------------------------------------------

double round_to(double v, double scale) { return std::nearbyint(v * scale) / scale; }

void write_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp-" + std::to_string(getpid());
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw Error("usage", "cannot write " + path);
        out << text;
        if (!out.flush()) throw Error("usage", "cannot write " + path);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error("usage", "cannot write " + path);
    }
}

edgekit::Build open_from_memory(const std::string& dir, const std::string& precision, const edgekit::Options& options) {
    const std::string text = read_text(dir + "/manifest.json");
    if (text.empty()) throw Error("model", dir + " is not a build directory (no manifest.json)");
    edgekit::Manifest m = edgekit::parse_manifest(text, dir + "/manifest.json");
    auto files = m.files.find(precision);
    if (files == m.files.end()) throw Error("model", dir + ": this build has no " + precision + " model");
    std::ifstream bin_in(dir + "/" + files->second.second, std::ios::binary);
    std::ostringstream bin;
    bin << bin_in.rdbuf();
    const std::string bytes = bin.str();
    std::string name = dir;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    name = name.substr(name.find_last_of('/') + 1);
    return edgekit::open_build_memory(text, read_text(dir + "/" + files->second.first),
                                      reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), precision,
                                      options, name);
}

json detect(const Args& a) {
    const std::string dir = a.need("build"), out = a.need("out");
    const std::string precision = a.get("precision", "fp32");
    if (a.positional.empty()) throw Error("usage", "detect needs at least one IMAGE");
    edgekit::Options options;
    options.threads = to_int(a.get("threads", "1"), "--threads");
    options.use_vulkan = to_bool(a.get("vulkan", "0"), "--vulkan");
    edgekit::DetectOptions limits;
    if (a.opts.count("score")) limits.score_threshold = to_float(a.get("score"), "--score");
    if (a.opts.count("nms")) limits.nms_threshold = to_float(a.get("nms"), "--nms");
    if (a.opts.count("max-det")) limits.max_detections = to_int(a.get("max-det"), "--max-det");
    for (const std::string& path : a.positional) {
        std::ifstream probe(path, std::ios::binary);
        if (!probe) throw Error("input", "image not found: " + path);
    }
    // --memory 1: load through open_build_memory (the Android app's path) from the same files
    edgekit::Build build = a.get("memory", "0") == "1" ? open_from_memory(dir, precision, options)
                                                       : edgekit::open_build(dir, precision, options);
    json results = json::array();
    std::size_t total = 0;
    edgekit::StageTimes sum;
    for (const std::string& path : a.positional) {
        edgekit::OwnedImage image = edgekit::read_image(path);
        auto found = edgekit::detect(build, image.view(), limits);
        auto t = edgekit::last_times(build);
        sum.preprocess_ms += t.preprocess_ms;
        sum.inference_ms += t.inference_ms;
        sum.decode_ms += t.decode_ms;
        json dets = json::array();
        for (const auto& d : found)
            dets.push_back({{"class_id", d.label},
                            {"class_name", d.name},
                            {"score", round_to(d.score, 1e5)},
                            {"box", {round_to(d.x0, 100), round_to(d.y0, 100), round_to(d.x1, 100), round_to(d.y1, 100)}}});
        total += found.size();
        results.push_back({{"input", path}, {"width", image.width}, {"height", image.height}, {"detections", dets}});
    }
    json record = {{"model", build.name()},
                   {"precision", precision},
                   {"layout", build.manifest().decoder.layout},
                   {"results", results}};
    write_atomic(out, record.dump() + "\n");
    const double n = static_cast<double>(a.positional.size());
    return {{"model", build.name()},
            {"precision", precision},
            {"layout", build.manifest().decoder.layout},
            {"images", a.positional.size()},
            {"detections", total},
            {"out", out},
            {"ms_per_image", {{"preprocess", sum.preprocess_ms / n}, {"inference", sum.inference_ms / n}, {"decode", sum.decode_ms / n}}}};
}

// --- policy / preprocess ------------------------------------------------------------------------

json policy(const Args& a) {
    json j = json::object();
    for (const auto& kv : edgekit::policy_options(a.need("precision"), to_int(a.get("threads", "1"), "--threads"))) {
        if (kv.first == "num_threads") j[kv.first] = kv.second;
        else j[kv.first] = kv.second != 0;
    }
    return j;
}

json preprocess(const Args& a) {
    if (a.positional.size() != 1) throw Error("usage", "preprocess needs exactly one IMAGE");
    const std::string dir = a.need("build");
    edgekit::Manifest m = edgekit::parse_manifest(read_text(dir + "/manifest.json"), dir + "/manifest.json");
    edgekit::OwnedImage image = edgekit::read_image(a.positional[0]);
    edgekit::Transform t;
    ncnn::Mat mat = edgekit::preprocess(image.view(), m.input, t);
    edgekit::Tensor tensor = edgekit::to_tensor(mat);
    std::string bytes(reinterpret_cast<const char*>(tensor.data.data()), tensor.data.size() * sizeof(float));
    write_atomic(a.need("out"), bytes);
    return {{"shape", tensor.shape},
            {"image", {image.width, image.height}},
            {"transform", {{"scale_x", t.scale_x}, {"scale_y", t.scale_y}, {"pad_x", t.pad_x}, {"pad_y", t.pad_y}}}};
}

json decode(const Args& a) {
    if (a.positional.size() != 1) throw Error("usage", "decode needs exactly one IMAGE");
    edgekit::OwnedImage image = edgekit::read_image(a.positional[0]);
    write_atomic(a.need("out"), std::string(image.bgr.begin(), image.bgr.end()));
    return {{"width", image.width}, {"height", image.height}, {"channels", 3}, {"order", "bgr"}};
}

const char* USAGE =
    "usage: edgekit-runner {probe|bench|detect|policy|preprocess|decode} [options] (see edge/native/runner/main.cpp)";

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 2) throw Error("usage", USAGE);
        const std::string command = argv[1];
        if (command == "probe") emit_exit(probe(), 0);
        if (command == "bench")
            emit_exit(bench(parse(argc, argv, 2, {"param", "bin", "input", "shape", "outputs", "precision", "threads",
                                                  "loops", "warmup", "powersave", "vulkan"})), 0);
        if (command == "detect")
            emit_exit(detect(parse(argc, argv, 2,
                                  {"build", "precision", "threads", "score", "nms", "max-det", "out", "memory", "vulkan"})),
                      0);
        if (command == "policy") emit_exit(policy(parse(argc, argv, 2, {"precision", "threads"})), 0);
        if (command == "preprocess") emit_exit(preprocess(parse(argc, argv, 2, {"build", "out"})), 0);
        if (command == "decode") emit_exit(decode(parse(argc, argv, 2, {"out"})), 0);
        throw Error("usage", "unknown command '" + command + "'; " + USAGE);
    } catch (const Error& e) {
        emit_exit({{"error", e.kind()}, {"message", e.what()}}, exit_code(e.kind()));
    } catch (const std::bad_alloc&) {
        emit_exit({{"error", "model"}, {"message", "out of memory (a model or image too large for this device)"}}, 4);
    } catch (const std::exception& e) {
        emit_exit({{"error", "internal"}, {"message", e.what()}}, 1);
    }
}
