// The app's bundle loader (see bundle_assets.h). Compiled into the app and into the host test.
#include "bundle_assets.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

namespace edgekit::app {
namespace {

using nlohmann::json;

const char* const kIndex = "index.json";
const char* const kIndexSchema = "edgekit.bundles/1";

json parse(const std::vector<std::uint8_t>& bytes, const std::string& what) {
    json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) throw Error("model", what + " is not valid JSON");
    return doc;
}

std::string text(const std::vector<std::uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

/// The directory part of an asset path ("a/b/manifest.json" -> "a/b/").
std::string dir_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

/// A path from the index or a manifest must stay inside the assets root.
std::string checked_path(const std::string& path, const std::string& what) {
    if (path.empty() || path[0] == '/' || path.find('\\') != std::string::npos)
        throw Error("model", what + ": path '" + path + "' is not relative");
    std::size_t start = 0;
    while (start <= path.size()) {
        auto end = path.find('/', start);
        std::string part = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (part == ".." || part == "." || part.empty())
            throw Error("model", what + ": path '" + path + "' leaves its directory");
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return path;
}

const BundleEntry& find(const std::vector<BundleEntry>& bundles, const std::string& name) {
    for (const auto& b : bundles)
        if (b.name == name) return b;
    std::string listed;
    for (const auto& b : bundles) listed += (listed.empty() ? "" : ", ") + b.name;
    throw Error("usage", "the app has no bundle '" + name + "' (bundles: " + (listed.empty() ? "none" : listed) + ")");
}

}  // namespace

DirectoryReader::DirectoryReader(std::string root) : root_(std::move(root)) {}

std::vector<std::uint8_t> DirectoryReader::read(const std::string& path) const {
    std::ifstream in(root_ + "/" + checked_path(path, "asset"), std::ios::binary);
    if (!in) throw Error("model", "asset " + path + " is missing (" + root_ + ")");
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error("model", "cannot read asset " + path);
    return bytes;
}

std::vector<BundleEntry> read_index(const AssetReader& reader) {
    json index = parse(reader.read(kIndex), kIndex);
    if (!index.is_object() || index.value("schema", "") != kIndexSchema || !index["bundles"].is_array())
        throw Error("model", std::string(kIndex) + " is not an " + kIndexSchema + " index");
    std::vector<BundleEntry> bundles;
    for (const auto& item : index["bundles"]) {
        BundleEntry entry;
        try {
            entry.name = item.at("name").get<std::string>();
            entry.source = item.value("source", "");
            entry.manifest = checked_path(item.at("manifest").get<std::string>(), "index.json manifest");
            entry.precisions = item.at("precisions").get<std::vector<std::string>>();
        } catch (const json::exception& e) {
            throw Error("model", std::string(kIndex) + ": malformed bundle entry (" + e.what() + ")");
        }
        bundles.push_back(std::move(entry));
    }
    return bundles;
}

BundleFiles read_bundle(const AssetReader& reader, const std::string& name, const std::string& precision) {
    const std::vector<BundleEntry> bundles = read_index(reader);
    const BundleEntry& entry = find(bundles, name);
    BundleFiles files;
    files.name = name;
    files.precision = precision;
    files.manifest_text = text(reader.read(entry.manifest));
    json manifest = json::parse(files.manifest_text, nullptr, false);
    if (manifest.is_discarded()) throw Error("model", entry.manifest + " is not valid JSON");
    const json* artifact = nullptr;
    if (manifest.contains("artifacts") && manifest["artifacts"].contains("ncnn") &&
        manifest["artifacts"]["ncnn"].contains(precision))
        artifact = &manifest["artifacts"]["ncnn"][precision];
    if (artifact == nullptr) {
        std::string held;
        for (const auto& p : entry.precisions) held += (held.empty() ? "" : ", ") + p;
        throw Error("usage", "bundle " + name + " has no " + precision + " model (it has " + held + ")");
    }
    try {
        const std::string base = dir_of(entry.manifest);
        const auto& by_role = artifact->at("files");
        files.param_text = text(reader.read(base + checked_path(by_role.at("param").at("path"), entry.manifest)));
        files.bin = reader.read(base + checked_path(by_role.at("bin").at("path"), entry.manifest));
        files.bin_sha256 = by_role.at("bin").at("sha256").get<std::string>();
    } catch (const json::exception& e) {
        throw Error("model", entry.manifest + ": malformed " + precision + " artifact (" + e.what() + ")");
    }
    return files;
}

Build open_bundle(const AssetReader& reader, const std::string& name, const std::string& precision,
                  const Options& options) {
    BundleFiles files = read_bundle(reader, name, precision);
    return open_build_memory(files.manifest_text, files.param_text, files.bin.data(), files.bin.size(), precision,
                             options, name);
}

namespace {

void write_file(const std::string& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw Error("usage", "cannot write " + path);
}

}  // namespace

std::string bench_bundle_json(const AssetReader& reader, const std::string& name, const std::string& precision,
                              const BundleBench& plan) {
    BundleFiles files = read_bundle(reader, name, precision);
    if (!plan.expect_bin_sha256.empty() && plan.expect_bin_sha256 != files.bin_sha256)
        throw Error("model", "bundle " + name + " " + precision +
                                 " is not the build given (its .bin sha256 differs): bundle it again and reinstall");
    Manifest manifest;
    {
        Options verify;  // load once with checksums on: the bytes benchmarked are the manifest's
        Build build = open_build_memory(files.manifest_text, files.param_text, files.bin.data(), files.bin.size(),
                                        precision, verify, name);
        manifest = build.manifest();
    }
    if (plan.scratch_dir.empty()) throw Error("usage", "bench needs a scratch directory for the model files");
    BenchOptions options;
    options.param = plan.scratch_dir + "/" + name + "." + precision + ".param";
    options.bin = plan.scratch_dir + "/" + name + "." + precision + ".bin";
    write_file(options.param, files.param_text.data(), files.param_text.size());
    write_file(options.bin, files.bin.data(), files.bin.size());
    options.input = manifest.input.ncnn_name;
    options.c = manifest.input.channels;
    options.h = manifest.input.height;
    options.w = manifest.input.width;
    options.precision = precision;
    options.threads = plan.threads;
    options.loops = plan.loops;
    options.warmup = plan.warmup;
    options.powersave = plan.powersave;
    options.use_vulkan = plan.use_vulkan;
    std::vector<BenchRun> runs;
    try {
        runs = bench(options);
    } catch (...) {  // a refused option (e.g. no Vulkan) or a failed load leaves no scratch files either
        std::remove(options.param.c_str());
        std::remove(options.bin.c_str());
        throw;
    }
    std::remove(options.param.c_str());
    std::remove(options.bin.c_str());
    return bench_json(options, runs, {{"runner", "app"}, {"bundle", name}});
}

std::string error_json(const std::string& kind, const std::string& message) {
    return json{{"error", kind}, {"message", message}}.dump();
}

std::string bundles_json(const std::vector<BundleEntry>& bundles) {
    json out = json::array();
    for (const auto& b : bundles) out.push_back({{"name", b.name}, {"precisions", b.precisions}});
    return out.dump();
}

}  // namespace edgekit::app
