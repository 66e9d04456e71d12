package io.edgekit.demo

import android.app.Activity
import android.os.Bundle as OsBundle
import android.util.Log
import org.json.JSONObject
import java.io.File

/**
 * Benchmark mode, started by `edgekit bench --target adb --runner app` (README.md):
 *
 *     adb shell am start -S -W -n io.edgekit.demo/.BenchActivity --es build NAME --es precision fp16 \
 *         --es threads 1,2 --ei loops 100 --ei warmup 10 --ei powersave 0 --es sha256 HEX \
 *         --es out bench-XXXX.json [--ez gpu true]
 *
 * Runs the native core's bench loop on the bundled build NAME inside the app (the app's process
 * and scheduling; the CPU as `edgekit-runner bench`, or with `--ez gpu true` ncnn's Vulkan compute,
 * an error where the phone has no Vulkan GPU) and writes the JSON `edgekit-runner bench` prints,
 * or {"error": ..., "message": ...}, to <external files dir>/OUT (written as OUT.partial, then
 * renamed), then finishes.
 */
class BenchActivity : Activity() {
    override fun onCreate(savedInstanceState: OsBundle?) {
        super.onCreate(savedInstanceState)
        val extras = intent.extras ?: OsBundle()
        val outName = extras.getString("out") ?: "bench.json"
        val dir = getExternalFilesDir(null) ?: filesDir
        Thread {
            val result = run(extras)
            write(File(dir, File(outName).name), result)
            runOnUiThread { finish() }
        }.start()
    }

    private fun run(extras: OsBundle): String = try {
        val build = extras.getString("build") ?: throw IllegalArgumentException("extra 'build' (bundle name) is missing")
        val threads = (extras.getString("threads") ?: "1").split(",").filter { it.isNotBlank() }.map { it.trim().toInt() }
        NativeCore.bench(
            assets,
            build,
            extras.getString("precision") ?: "fp16",
            threads.toIntArray(),
            extras.getInt("loops", 100),
            extras.getInt("warmup", 10),
            extras.getInt("powersave", 0),
            extras.getBoolean("gpu", false),
            extras.getString("sha256") ?: "",
            cacheDir.absolutePath,
        )
    } catch (e: RuntimeException) {
        JSONObject().put("error", "usage").put("message", e.message ?: e.toString()).toString()
    }

    private fun write(out: File, text: String) {
        val partial = File(out.path + ".partial")
        partial.writeText(text + "\n")
        if (!partial.renameTo(out)) Log.e("edgekit", "cannot write $out")
    }
}
