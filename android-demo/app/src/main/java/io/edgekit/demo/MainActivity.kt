package io.edgekit.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.os.Build
import android.os.Bundle as OsBundle
import android.os.SystemClock
import android.provider.MediaStore
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Toast
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import io.edgekit.demo.databinding.ActivityMainBinding
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The demo: camera stream (CameraX ImageAnalysis, RGBA frames) or a gallery image, detected by the
 * native core with the chosen bundle, precision, thread count, cores (ncnn powersave) and, where
 * the phone has one, the Vulkan GPU; shows boxes, class names, scores, FPS and inference time.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var ui: ActivityMainBinding
    private lateinit var bundles: List<Bundle>
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var handle = 0L
    private var names: Array<String> = emptyArray()
    private var cameraProvider: ProcessCameraProvider? = null
    private var lastFrameAt = 0L
    private var fps = 0.0

    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else toast(getString(R.string.no_camera_permission))
    }
    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) {
            stopCamera()
            val bitmap = if (Build.VERSION.SDK_INT >= 28) {
                ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { d, _, _ ->
                    d.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                }
            } else {
                @Suppress("DEPRECATION")
                MediaStore.Images.Media.getBitmap(contentResolver, uri)
            }
            worker.execute { runOn(bitmap.copy(Bitmap.Config.ARGB_8888, false), still = true) }
        }
    }

    override fun onCreate(savedInstanceState: OsBundle?) {
        super.onCreate(savedInstanceState)
        ui = ActivityMainBinding.inflate(layoutInflater)
        setContentView(ui.root)
        bundles = try {
            loadBundles(assets)
        } catch (e: RuntimeException) {
            toast(e.message ?: "cannot read the bundled models"); emptyList()
        }
        if (bundles.isEmpty()) {
            ui.status.text = getString(R.string.no_bundles)
            return
        }
        ui.bundle.adapter = adapter(bundles.map { it.name })
        ui.threads.adapter = adapter(listOf("1", "2", "4", "8"))
        ui.threads.setSelection(2)
        ui.cores.adapter = adapter(listOf("all cores", "little cores", "big cores")) // powersave 0, 1, 2
        ui.cores.setSelection(2)
        val gpus = NativeCore.gpuCount()
        ui.gpu.isEnabled = gpus > 0
        ui.gpu.text = if (gpus > 0) getString(R.string.use_gpu) else getString(R.string.no_gpu)
        ui.bundle.onItemSelectedListener = changed { updatePrecisions(); reopen() }
        listOf(ui.precision, ui.threads, ui.cores).forEach { it.onItemSelectedListener = changed { reopen() } }
        ui.gpu.setOnCheckedChangeListener { _, _ -> reopen() }
        ui.gallery.setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        ui.camera.setOnClickListener { requestCamera() }
        updatePrecisions()
        requestCamera()
    }

    override fun onDestroy() {
        super.onDestroy()
        stopCamera()
        worker.execute { closeBuild() }
        worker.shutdown()
    }

    private fun updatePrecisions() {
        val chosen = bundles[ui.bundle.selectedItemPosition]
        ui.precision.adapter = adapter(chosen.precisions)
        ui.precision.setSelection(chosen.precisions.indexOf("fp16").coerceAtLeast(0))
    }

    /** (Re)loads the selected bundle with the selected options on the worker thread. */
    private fun reopen() {
        if (bundles.isEmpty() || ui.precision.adapter == null) return
        val bundle = bundles[ui.bundle.selectedItemPosition].name
        val precision = ui.precision.selectedItem as String
        val threads = (ui.threads.selectedItem as String).toInt()
        val powersave = when (ui.cores.selectedItemPosition) { 1 -> 1; 2 -> 2; else -> 0 }
        val gpu = ui.gpu.isChecked && ui.gpu.isEnabled
        worker.execute {
            closeBuild()
            try {
                handle = NativeCore.open(assets, bundle, precision, threads, powersave, gpu)
                names = NativeCore.classNames(handle)
            } catch (e: RuntimeException) {
                runOnUiThread { toast(e.message ?: "cannot load $bundle") }
            }
        }
    }

    private fun closeBuild() {
        if (handle != 0L) NativeCore.close(handle)
        handle = 0L
    }

    private fun requestCamera() {
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            cameraProvider = provider
            val analysis = ImageAnalysis.Builder()
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .build()
            analysis.setAnalyzer(worker) { frame -> analyse(frame) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun stopCamera() {
        cameraProvider?.unbindAll()
        lastFrameAt = 0L
    }

    private fun analyse(frame: ImageProxy) {
        frame.use {
            val bitmap = it.toBitmap() // RGBA_8888 output: no YUV conversion
            val rotated = rotate(bitmap, it.imageInfo.rotationDegrees)
            runOn(rotated, still = false)
        }
    }

    /** Detects on [bitmap] (worker thread) and shows the result with the timings. */
    private fun runOn(bitmap: Bitmap, still: Boolean) {
        if (handle == 0L) return
        val start = SystemClock.elapsedRealtimeNanos()
        val found = try {
            unpackDetections(NativeCore.detect(handle, bitmap), names)
        } catch (e: RuntimeException) {
            runOnUiThread { toast(e.message ?: "detection failed") }; return
        }
        val inferenceMs = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        val now = SystemClock.elapsedRealtime()
        if (!still && lastFrameAt != 0L) {
            val instant = 1000.0 / (now - lastFrameAt).coerceAtLeast(1)
            fps = if (fps == 0.0) instant else 0.9 * fps + 0.1 * instant
        }
        lastFrameAt = if (still) 0L else now
        ui.overlay.show(bitmap, found)
        runOnUiThread {
            ui.status.text = if (still) {
                getString(R.string.status_still, inferenceMs, found.size)
            } else {
                getString(R.string.status_live, fps, inferenceMs, found.size)
            }
        }
    }

    private fun rotate(bitmap: Bitmap, degrees: Int): Bitmap {
        if (degrees == 0) return bitmap
        val m = android.graphics.Matrix().apply { postRotate(degrees.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, m, true)
    }

    private fun adapter(items: List<String>) =
        ArrayAdapter(this, android.R.layout.simple_spinner_item, items).apply {
            setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item)
        }

    private fun changed(action: () -> Unit) = object : AdapterView.OnItemSelectedListener {
        override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = action()
        override fun onNothingSelected(parent: AdapterView<*>?) = Unit
    }

    private fun toast(message: String) = Toast.makeText(this, message, Toast.LENGTH_LONG).show()

}
