// JPEG decoding with libjpeg-turbo, exactly as OpenCV's imdecode(IMREAD_COLOR) does it (the Python
// runtime's decoder), so both runtimes see the same pixels:
//   - libjpeg defaults: integer DCT (JDCT_ISLOW), fancy upsampling, no block smoothing changes;
//   - out_color_space JCS_RGB (3 components) or JCS_CMYK (4), then OpenCV's RGB->BGR swap or its
//     CMYK->BGR formula (grfmt_jpeg.cpp readData, icvCvt_CMYK2BGR_8u_C4C3R);
//   - the EXIF orientation of APP1 applied afterwards (imdecode's default without
//     IMREAD_IGNORE_ORIENTATION; loadsave.cpp ExifTransform).
// Built only when the core links libjpeg-turbo (EDGEKIT_WITH_LIBJPEG); image.cpp picks it for JPEG bytes.
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>

#include "jpeg.h"

namespace edgekit {
namespace {

struct ErrorManager {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
    ErrorManager* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr) {}  // warnings (e.g. premature end of data) are not printed, as in OpenCV

unsigned read16(const std::uint8_t* p, bool le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
std::uint32_t read32(const std::uint8_t* p, bool le) {
    return le ? p[0] | p[1] << 8 | p[2] << 16 | static_cast<std::uint32_t>(p[3]) << 24
              : static_cast<std::uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/// The Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" payload; 1 when absent or malformed.
int exif_orientation(const std::uint8_t* data, std::size_t size) {
    if (size < 14 || std::memcmp(data, "Exif\0\0", 6) != 0) return 1;
    const std::uint8_t* tiff = data + 6;
    const std::size_t n = size - 6;
    bool le;
    if (tiff[0] == 'I' && tiff[1] == 'I') le = true;
    else if (tiff[0] == 'M' && tiff[1] == 'M') le = false;
    else return 1;
    const std::uint32_t ifd = read32(tiff + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    const unsigned count = read16(tiff + ifd, le);
    for (unsigned i = 0; i < count; ++i) {
        const std::size_t at = ifd + 2 + 12 * static_cast<std::size_t>(i);
        if (at + 12 > n) return 1;
        if (read16(tiff + at, le) == 0x0112) {
            const unsigned value = read16(tiff + at + 8, le);
            return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
        }
    }
    return 1;
}

/// Apply an EXIF orientation (2..8) to a BGR image like OpenCV's ExifTransform (flip / transpose).
void orient(OwnedImage& img, int orientation) {
    if (orientation <= 1) return;
    const int w = img.width, h = img.height;
    const bool transpose = orientation >= 5;
    const int ow = transpose ? h : w, oh = transpose ? w : h;
    // flips after the (optional) transpose, in output coordinates, as OpenCV composes them
    bool flip_x = false, flip_y = false;
    switch (orientation) {
        case 2: flip_x = true; break;                  // flip(1)
        case 3: flip_x = flip_y = true; break;         // flip(-1)
        case 4: flip_y = true; break;                  // flip(0)
        case 5: break;                                 // transpose
        case 6: flip_x = true; break;                  // transpose + flip(1): rotate 90 clockwise
        case 7: flip_x = flip_y = true; break;         // transpose + flip(-1)
        case 8: flip_y = true; break;                  // transpose + flip(0): rotate 90 counter-clockwise
    }
    std::vector<std::uint8_t> out(img.bgr.size());
    for (int y = 0; y < oh; ++y) {
        for (int x = 0; x < ow; ++x) {
            const int tx = flip_x ? ow - 1 - x : x, ty = flip_y ? oh - 1 - y : y;  // transposed coords
            const int sx = transpose ? ty : tx, sy = transpose ? tx : ty;
            std::memcpy(&out[(static_cast<std::size_t>(y) * ow + x) * 3],
                        &img.bgr[(static_cast<std::size_t>(sy) * w + sx) * 3], 3);
        }
    }
    img.bgr.swap(out);
    img.width = ow;
    img.height = oh;
}

/// The decode itself, with libjpeg's longjmp error path: nothing with a destructor is created
/// between setjmp and the last libjpeg call (the output buffer is sized before).
bool decode_into(jpeg_decompress_struct& cinfo, ErrorManager& err, const std::uint8_t* bytes, std::size_t size,
                 OwnedImage& out, std::vector<std::uint8_t>& row, int& orientation) {
    if (setjmp(err.jump)) return false;
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, static_cast<unsigned long>(size));
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
            orientation = exif_orientation(m->data, m->data_length);
            break;
        }
    }
    const bool cmyk = cinfo.num_components == 4;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    cinfo.out_color_components = cmyk ? 4 : 3;
    jpeg_start_decompress(&cinfo);
    out.width = static_cast<int>(cinfo.output_width);
    out.height = static_cast<int>(cinfo.output_height);
    out.bgr.resize(static_cast<std::size_t>(out.width) * out.height * 3);
    row.resize(static_cast<std::size_t>(out.width) * 4);
    JSAMPROW rows[1] = {row.data()};
    for (int y = 0; y < out.height; ++y) {
        jpeg_read_scanlines(&cinfo, rows, 1);
        std::uint8_t* dst = &out.bgr[static_cast<std::size_t>(y) * out.width * 3];
        const std::uint8_t* src = row.data();
        for (int x = 0; x < out.width; ++x, dst += 3) {
            if (cmyk) {
                const int c = src[0], m = src[1], yy = src[2], k = src[3];
                dst[2] = static_cast<std::uint8_t>(k - ((255 - c) * k >> 8));
                dst[1] = static_cast<std::uint8_t>(k - ((255 - m) * k >> 8));
                dst[0] = static_cast<std::uint8_t>(k - ((255 - yy) * k >> 8));
                src += 4;
            } else {
                dst[0] = src[2];
                dst[1] = src[1];
                dst[2] = src[0];
                src += 3;
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    return true;
}

}  // namespace

bool is_jpeg(const std::uint8_t* bytes, std::size_t size) {
    return size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff;
}

OwnedImage decode_jpeg(const std::uint8_t* bytes, std::size_t size, const std::string& what) {
    jpeg_decompress_struct cinfo;
    ErrorManager err;
    std::memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = on_message;
    err.message[0] = '\0';
    OwnedImage out;
    std::vector<std::uint8_t> row;
    int orientation = 1;
    const bool ok = decode_into(cinfo, err, bytes, size, out, row, orientation);
    jpeg_destroy_decompress(&cinfo);
    if (!ok) throw Error("input", "cannot read image " + what + ": corrupt JPEG (" + err.message + ")");
    orient(out, orientation);
    return out;
}

}  // namespace edgekit
