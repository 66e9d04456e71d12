// The app's bundle loader: reads what `edgekit bundle` put in the app's assets (index.json, each
// bundle's manifest.json, .param and .bin) through an abstract AssetReader and hands it to
// edgekit's native core. On the phone the reader is AAssetManager (bundle_assets_android.cpp);
// on the host, tests read the same files from the android-demo assets directory with
// DirectoryReader, so this code is compiled and tested without Android.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/core.h"

namespace edgekit::app {

/// Reads whole files of the edgekit assets root (paths '/'-separated, relative to that root).
class AssetReader {
public:
    virtual ~AssetReader() = default;
    /// The file's bytes; Error("model") naming the path when it is missing or unreadable.
    virtual std::vector<std::uint8_t> read(const std::string& path) const = 0;
};

/// An AssetReader over a host directory (the android-demo's app/src/main/assets/edgekit).
class DirectoryReader final : public AssetReader {
public:
    explicit DirectoryReader(std::string root);
    std::vector<std::uint8_t> read(const std::string& path) const override;

private:
    std::string root_;
};

/// One bundle as index.json lists it.
struct BundleEntry {
    std::string name;
    std::string source;    // the build directory it was made from
    std::string manifest;  // path of its manifest.json
    std::vector<std::string> precisions;
};

/// The bundles in index.json (edgekit.bundles/1); Error("model") for a missing or malformed index.
std::vector<BundleEntry> read_index(const AssetReader& reader);

/// A bundle's files for one precision, read into memory.
struct BundleFiles {
    std::string name, precision;
    std::string manifest_text, param_text;
    std::vector<std::uint8_t> bin;
    std::string bin_sha256;  // as the manifest records it
};

/// Read bundle `name` at `precision`; Error("model"/"usage") naming an unknown bundle or precision.
BundleFiles read_bundle(const AssetReader& reader, const std::string& name, const std::string& precision);

/// Open bundle `name` at `precision` with the core (files checked against the manifest's sha256).
Build open_bundle(const AssetReader& reader, const std::string& name, const std::string& precision,
                  const Options& options);

/// The bench loop of `edgekit-runner bench` on a bundle, as the JSON that command prints (the core's
/// bench_json) plus "runner": "app" and "bundle": name.
struct BundleBench {
    std::vector<int> threads{1};
    int loops = 100, warmup = 10, powersave = 0;
    std::string expect_bin_sha256;  // empty: not checked; else the bundled .bin must have it
    std::string scratch_dir;        // where the model files are written for the core's bench (app cache dir)
    bool use_vulkan = false;        // the core's BenchOptions::use_vulkan (refused where there is no Vulkan GPU)
};
std::string bench_bundle_json(const AssetReader& reader, const std::string& name, const std::string& precision,
                              const BundleBench& plan);

/// `{"error": kind, "message": ...}` for an Error (what BenchActivity writes on failure).
std::string error_json(const std::string& kind, const std::string& message);

/// The bundles as JSON for the UI: [{"name": ..., "precisions": [...]}, ...].
std::string bundles_json(const std::vector<BundleEntry>& bundles);

}  // namespace edgekit::app
