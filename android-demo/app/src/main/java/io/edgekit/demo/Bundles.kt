package io.edgekit.demo

import android.content.res.AssetManager
import org.json.JSONArray

/** One bundle the app holds (written into assets/edgekit/ by `edgekit bundle`). */
data class Bundle(val name: String, val precisions: List<String>)

/** The bundles listed by the native asset loader (the same index the host tests read). */
fun loadBundles(assets: AssetManager): List<Bundle> {
    val array = JSONArray(NativeCore.listBundles(assets))
    return (0 until array.length()).map { i ->
        val item = array.getJSONObject(i)
        val precisions = item.getJSONArray("precisions")
        Bundle(item.getString("name"), (0 until precisions.length()).map { precisions.getString(it) })
    }
}

/** One detection in bitmap pixels. */
data class Detection(val label: Int, val name: String, val score: Float, val x0: Float, val y0: Float, val x1: Float, val y1: Float)

/** Unpacks [NativeCore.detect]'s 6 floats per detection. */
fun unpackDetections(packed: FloatArray, names: Array<String>): List<Detection> =
    (0 until packed.size / 6).map { i ->
        val o = i * 6
        val label = packed[o].toInt()
        Detection(label, names.getOrElse(label) { "class $label" }, packed[o + 1], packed[o + 2], packed[o + 3], packed[o + 4], packed[o + 5])
    }
