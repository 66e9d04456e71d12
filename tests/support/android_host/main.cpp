// bundle-host: drives the Android demo's asset loader on the host, as the app's JNI glue does.
//
//   bundle-host list   --assets DIR
//   bundle-host detect --assets DIR --bundle NAME --precision P [--threads N] [--gpu 0|1] IMAGE...
//   bundle-host bench  --assets DIR --bundle NAME --precision P --threads 1,2 --loops N --warmup N
//                      --scratch DIR [--powersave K] [--sha256 HEX] [--gpu 0|1]
//
// detect prints one JSON line: {"results": [{"input", "width", "height", "detections": [{"class_id",
// "class_name", "score", "box"}]}]} (the records of `edgekit detect --json`); bench prints the JSON of
// `edgekit-runner bench`. Errors: {"error": kind, "message": ...} and exit 4 (model), 5 (input), 2.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bundle_assets.h"

using edgekit::app::DirectoryReader;
using nlohmann::json;

namespace {

struct Args {
    std::string command;
    std::map<std::string, std::string> options;
    std::vector<std::string> positional;

    std::string get(const std::string& key, const std::string& fallback = "") const {
        auto it = options.find(key);
        if (it != options.end()) return it->second;
        if (fallback.empty()) throw edgekit::Error("usage", "missing --" + key);
        return fallback;
    }
};

Args parse(int argc, char** argv) {
    if (argc < 2) throw edgekit::Error("usage", "usage: bundle-host list|detect|bench --assets DIR ...");
    Args args;
    args.command = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0) {
            if (i + 1 >= argc) throw edgekit::Error("usage", a + " needs a value");
            args.options[a.substr(2)] = argv[++i];
        } else {
            args.positional.push_back(a);
        }
    }
    return args;
}

std::vector<int> int_list(const std::string& text) {
    std::vector<int> out;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) out.push_back(std::stoi(item));
    return out;
}

int run(const Args& args) {
    DirectoryReader reader(args.get("assets"));
    if (args.command == "list") {
        std::printf("%s\n", edgekit::app::bundles_json(edgekit::app::read_index(reader)).c_str());
        return 0;
    }
    const std::string bundle = args.get("bundle"), precision = args.get("precision");
    if (args.command == "detect") {
        edgekit::Options options;
        options.threads = std::stoi(args.get("threads", "1"));
        options.use_vulkan = args.get("gpu", "0") == "1";  // the app's GPU switch
        edgekit::Build build = edgekit::app::open_bundle(reader, bundle, precision, options);
        json results = json::array();
        for (const auto& path : args.positional) {
            edgekit::OwnedImage image = edgekit::read_image(path);
            json found = json::array();
            for (const auto& d : edgekit::detect(build, image.view(), {}))
                found.push_back({{"class_id", d.label},
                                 {"class_name", d.name},
                                 {"score", d.score},
                                 {"box", {d.x0, d.y0, d.x1, d.y1}}});
            results.push_back(
                {{"input", path}, {"width", image.width}, {"height", image.height}, {"detections", found}});
        }
        std::printf("%s\n", json{{"bundle", bundle}, {"precision", precision}, {"results", results}}.dump().c_str());
        return 0;
    }
    if (args.command == "bench") {
        edgekit::app::BundleBench plan;
        plan.threads = int_list(args.get("threads", "1"));
        plan.loops = std::stoi(args.get("loops", "10"));
        plan.warmup = std::stoi(args.get("warmup", "1"));
        plan.powersave = std::stoi(args.get("powersave", "0"));
        plan.expect_bin_sha256 = args.options.count("sha256") ? args.options.at("sha256") : "";
        plan.scratch_dir = args.get("scratch");
        plan.use_vulkan = args.get("gpu", "0") == "1";  // BenchActivity's extra gpu
        std::printf("%s\n", edgekit::app::bench_bundle_json(reader, bundle, precision, plan).c_str());
        return 0;
    }
    throw edgekit::Error("usage", "unknown command " + args.command);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const edgekit::Error& e) {
        std::printf("%s\n", edgekit::app::error_json(e.kind(), e.what()).c_str());
        return e.kind() == "usage" ? 2 : e.kind() == "input" ? 5 : 4;
    } catch (const std::exception& e) {
        std::printf("%s\n", edgekit::app::error_json("usage", e.what()).c_str());
        return 2;
    }
}
