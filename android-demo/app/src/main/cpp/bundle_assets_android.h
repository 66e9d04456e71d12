// AssetReader over the APK's assets (Android only; the host tests use DirectoryReader).
#pragma once

#include <android/asset_manager.h>

#include "bundle_assets.h"

namespace edgekit::app {

/// Reads `<root>/<path>` from the APK with AAssetManager (root: "edgekit").
class AssetManagerReader final : public AssetReader {
public:
    AssetManagerReader(AAssetManager* manager, std::string root);
    std::vector<std::uint8_t> read(const std::string& path) const override;

private:
    AAssetManager* manager_;
    std::string root_;
};

}  // namespace edgekit::app
