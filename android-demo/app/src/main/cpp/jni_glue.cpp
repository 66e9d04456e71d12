// JNI glue of io.edgekit.demo.NativeCore: converts Java arguments, calls the app's bundle loader
// (bundle_assets.h) and edgekit's native core, and turns every edgekit::Error into a Java
// RuntimeException with its one-line message. No detection logic lives here.
#include <android/asset_manager_jni.h>
#include <android/bitmap.h>
#include <jni.h>

#include <string>
#include <vector>

#include "bundle_assets.h"
#include "bundle_assets_android.h"
#include "cpu.h"  // ncnn: set_cpu_powersave
#include "gpu.h"  // ncnn: get_gpu_count

using edgekit::app::AssetManagerReader;

namespace {

const char* const kAssetsRoot = "edgekit";

std::string str(JNIEnv* env, jstring value) {
    if (value == nullptr) return {};
    const char* chars = env->GetStringUTFChars(value, nullptr);
    std::string out(chars);
    env->ReleaseStringUTFChars(value, chars);
    return out;
}

void throw_java(JNIEnv* env, const std::string& message) {
    jclass cls = env->FindClass("java/lang/RuntimeException");
    env->ThrowNew(cls, message.c_str());
}

AssetManagerReader reader(JNIEnv* env, jobject assets) {
    return AssetManagerReader(AAssetManager_fromJava(env, assets), kAssetsRoot);
}

/// One open build and the names the UI shows.
struct Session {
    edgekit::Build build;
};

/// Runs `body`; an edgekit::Error (or any std::exception) becomes a RuntimeException.
template <typename F, typename R>
R guarded(JNIEnv* env, R failed, F body) {
    try {
        return body();
    } catch (const edgekit::Error& e) {
        throw_java(env, e.what());
    } catch (const std::exception& e) {
        throw_java(env, std::string("native error: ") + e.what());
    }
    return failed;
}

}  // namespace

extern "C" {

JNIEXPORT jstring JNICALL Java_io_edgekit_demo_NativeCore_listBundles(JNIEnv* env, jobject, jobject assets) {
    return guarded(env, static_cast<jstring>(nullptr), [&] {
        auto files = reader(env, assets);
        return env->NewStringUTF(edgekit::app::bundles_json(edgekit::app::read_index(files)).c_str());
    });
}

JNIEXPORT jint JNICALL Java_io_edgekit_demo_NativeCore_gpuCount(JNIEnv*, jobject) {
    return ncnn::get_gpu_count();
}

JNIEXPORT jlong JNICALL Java_io_edgekit_demo_NativeCore_open(JNIEnv* env, jobject, jobject assets, jstring bundle,
                                                              jstring precision, jint threads, jint powersave,
                                                              jboolean use_gpu) {
    return guarded(env, static_cast<jlong>(0), [&] {
        ncnn::set_cpu_powersave(powersave);  // 0 all cores, 1 little, 2 big
        edgekit::Options options;
        options.threads = threads;
        options.use_vulkan = use_gpu == JNI_TRUE;  // the core refuses it where there is no Vulkan GPU
        auto files = reader(env, assets);
        auto* session = new Session{edgekit::app::open_bundle(files, str(env, bundle), str(env, precision), options)};
        return reinterpret_cast<jlong>(session);
    });
}

JNIEXPORT jobjectArray JNICALL Java_io_edgekit_demo_NativeCore_classNames(JNIEnv* env, jobject, jlong handle) {
    const auto& names = reinterpret_cast<Session*>(handle)->build.manifest().decoder.class_names;
    jobjectArray out = env->NewObjectArray(static_cast<jsize>(names.size()), env->FindClass("java/lang/String"), nullptr);
    for (std::size_t i = 0; i < names.size(); ++i)
        env->SetObjectArrayElement(out, static_cast<jsize>(i), env->NewStringUTF(names[i].c_str()));
    return out;
}

JNIEXPORT jfloatArray JNICALL Java_io_edgekit_demo_NativeCore_detect(JNIEnv* env, jobject, jlong handle,
                                                                      jobject bitmap) {
    return guarded(env, static_cast<jfloatArray>(nullptr), [&] {
        AndroidBitmapInfo info;
        if (AndroidBitmap_getInfo(env, bitmap, &info) != ANDROID_BITMAP_RESULT_SUCCESS ||
            info.format != ANDROID_BITMAP_FORMAT_RGBA_8888)
            throw edgekit::Error("input", "the frame must be an ARGB_8888 bitmap");
        void* pixels = nullptr;
        if (AndroidBitmap_lockPixels(env, bitmap, &pixels) != ANDROID_BITMAP_RESULT_SUCCESS)
            throw edgekit::Error("input", "cannot lock the bitmap's pixels");
        std::vector<edgekit::Detection> found;
        try {
            edgekit::Image image{static_cast<int>(info.width), static_cast<int>(info.height),
                                 static_cast<int>(info.stride), edgekit::PixelOrder::RGBA,
                                 static_cast<const std::uint8_t*>(pixels)};
            found = edgekit::detect(reinterpret_cast<Session*>(handle)->build, image, {});
        } catch (...) {
            AndroidBitmap_unlockPixels(env, bitmap);
            throw;
        }
        AndroidBitmap_unlockPixels(env, bitmap);
        std::vector<float> packed;
        packed.reserve(found.size() * 6);
        for (const auto& d : found) packed.insert(packed.end(), {float(d.label), d.score, d.x0, d.y0, d.x1, d.y1});
        jfloatArray out = env->NewFloatArray(static_cast<jsize>(packed.size()));
        env->SetFloatArrayRegion(out, 0, static_cast<jsize>(packed.size()), packed.data());
        return out;
    });
}

JNIEXPORT void JNICALL Java_io_edgekit_demo_NativeCore_close(JNIEnv*, jobject, jlong handle) {
    delete reinterpret_cast<Session*>(handle);
}

JNIEXPORT jstring JNICALL Java_io_edgekit_demo_NativeCore_bench(JNIEnv* env, jobject, jobject assets, jstring bundle,
                                                                jstring precision, jintArray threads, jint loops,
                                                                jint warmup, jint powersave, jboolean use_gpu,
                                                                jstring expect_sha256, jstring scratch_dir) {
    std::string result;
    try {
        edgekit::app::BundleBench plan;
        jint* values = env->GetIntArrayElements(threads, nullptr);
        plan.threads.assign(values, values + env->GetArrayLength(threads));
        env->ReleaseIntArrayElements(threads, values, JNI_ABORT);
        plan.loops = loops;
        plan.warmup = warmup;
        plan.powersave = powersave;
        plan.use_vulkan = use_gpu == JNI_TRUE;
        plan.expect_bin_sha256 = str(env, expect_sha256);
        plan.scratch_dir = str(env, scratch_dir);
        auto files = reader(env, assets);
        result = edgekit::app::bench_bundle_json(files, str(env, bundle), str(env, precision), plan);
    } catch (const edgekit::Error& e) {
        result = edgekit::app::error_json(e.kind(), e.what());
    } catch (const std::exception& e) {
        result = edgekit::app::error_json("crash", e.what());
    }
    return env->NewStringUTF(result.c_str());
}

}  // extern "C"
