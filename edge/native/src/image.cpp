// Image decoding without OpenCV: JPEG with libjpeg-turbo as OpenCV does it (jpeg.cpp, when the core is
// built with it: EDGEKIT_WITH_LIBJPEG), everything else with stb_image through ncnn's simpleocv (BGR).
#include <fstream>
#include <sstream>

#include "simpleocv.h"

#include "internal.h"
#ifdef EDGEKIT_WITH_LIBJPEG
#include "jpeg.h"
#endif

namespace edgekit {
namespace {

OwnedImage from_cv(const cv::Mat& m, const std::string& what) {
    if (m.empty() || m.data == nullptr || m.c != 3)
        throw Error("input", "cannot read image " + what + ": not a supported image file or corrupt");
    OwnedImage out;
    out.width = m.cols;
    out.height = m.rows;
    out.bgr.assign(m.data, m.data + static_cast<std::size_t>(m.cols) * m.rows * 3);
    return out;
}

}  // namespace

OwnedImage read_image(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("input", "image not found: " + path);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    return decode_image(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), path);
}

OwnedImage decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& what) {
    if (size == 0) throw Error("input", "cannot read image " + what + ": the file is empty");
#ifdef EDGEKIT_WITH_LIBJPEG
    if (is_jpeg(bytes, size)) return decode_jpeg(bytes, size, what);
#endif
    std::vector<unsigned char> buf(bytes, bytes + size);
    return from_cv(cv::imdecode(buf, cv::IMREAD_COLOR), what);
}

}  // namespace edgekit
