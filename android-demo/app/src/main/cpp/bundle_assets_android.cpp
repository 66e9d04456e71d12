// AssetReader over the APK's assets (see bundle_assets_android.h).
#include "bundle_assets_android.h"

#include <algorithm>

namespace edgekit::app {

AssetManagerReader::AssetManagerReader(AAssetManager* manager, std::string root)
    : manager_(manager), root_(std::move(root)) {}

std::vector<std::uint8_t> AssetManagerReader::read(const std::string& path) const {
    const std::string full = root_ + "/" + path;
    AAsset* asset = AAssetManager_open(manager_, full.c_str(), AASSET_MODE_BUFFER);
    if (asset == nullptr) throw Error("model", "asset " + full + " is missing from the APK (run edgekit bundle)");
    const off64_t size = AAsset_getLength64(asset);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    // .bin assets are stored uncompressed (app/build.gradle.kts noCompress): getBuffer maps them.
    const void* mapped = AAsset_getBuffer(asset);
    bool ok = true;
    if (mapped != nullptr) {
        std::copy_n(static_cast<const std::uint8_t*>(mapped), bytes.size(), bytes.begin());
    } else {
        ok = AAsset_read(asset, bytes.data(), bytes.size()) == static_cast<int>(bytes.size());
    }
    AAsset_close(asset);
    if (!ok) throw Error("model", "cannot read asset " + full);
    return bytes;
}

}  // namespace edgekit::app
