package io.edgekit.demo

import android.content.res.AssetManager
import android.graphics.Bitmap

/**
 * JNI entry points of libedgekit_jni.so (app/src/main/cpp/jni_glue.cpp). Detection, bundle
 * loading and the bench loop are edgekit's native core (edge/native/) and the app's asset loader
 * (bundle_assets.cpp); every native failure arrives as a RuntimeException with one clear line.
 */
object NativeCore {
    init {
        System.loadLibrary("edgekit_jni")
    }

    /** The bundles in assets/edgekit/index.json as JSON: [{"name": ..., "precisions": [...]}, ...]. */
    external fun listBundles(assets: AssetManager): String

    /** Vulkan GPUs ncnn found (0: CPU only). */
    external fun gpuCount(): Int

    /**
     * Loads one bundled build (files checked against the manifest's sha256); returns a handle.
     * [powersave] is ncnn's set_cpu_powersave: 0 all cores, 1 little cores, 2 big cores.
     * [useGpu] runs it with ncnn's Vulkan compute; refused (RuntimeException) without a Vulkan GPU.
     */
    external fun open(
        assets: AssetManager,
        bundle: String,
        precision: String,
        threads: Int,
        powersave: Int,
        useGpu: Boolean,
    ): Long

    /** Class names of an open build, by label. */
    external fun classNames(handle: Long): Array<String>

    /**
     * Detects objects in an ARGB_8888 bitmap: 6 floats per detection (label, score, x0, y0, x1,
     * y1 in bitmap pixels), best first, after the manifest's score threshold and NMS.
     */
    external fun detect(handle: Long, bitmap: Bitmap): FloatArray

    /** Frees an open build. */
    external fun close(handle: Long)

    /**
     * The core's bench loop (as `edgekit-runner bench`) on one bundled build; returns the JSON that
     * command prints ({"precision": ..., "runs": [...]}, plus "vulkan": true when [useGpu]) or
     * {"error": ..., "message": ...}. [useGpu] runs it with ncnn's Vulkan compute (an error where
     * the phone has no Vulkan GPU). [expectSha256] (may be empty) must equal the bundled .bin's
     * sha256: the harness passes the host build's. The model files are written to [scratchDir]
     * for the loop and removed.
     */
    external fun bench(
        assets: AssetManager,
        bundle: String,
        precision: String,
        threads: IntArray,
        loops: Int,
        warmup: Int,
        powersave: Int,
        useGpu: Boolean,
        expectSha256: String,
        scratchDir: String,
    ): String
}
