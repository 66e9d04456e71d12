package io.edgekit.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import kotlin.math.min

/** Draws the analysed frame (camera or gallery image), fitted to the view, and its detections. */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var frame: Bitmap? = null
    private var detections: List<Detection> = emptyList()
    private val box = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 4f; color = Color.GREEN }
    private val labelBg = Paint().apply { style = Paint.Style.FILL; color = Color.argb(180, 0, 0, 0) }
    private val text = Paint().apply { color = Color.WHITE; textSize = 36f; isAntiAlias = true }
    private val dst = RectF()

    fun show(bitmap: Bitmap, found: List<Detection>) {
        frame = bitmap
        detections = found
        postInvalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val bmp = frame ?: return
        val scale = min(width / bmp.width.toFloat(), height / bmp.height.toFloat())
        val dx = (width - bmp.width * scale) / 2f
        val dy = (height - bmp.height * scale) / 2f
        dst.set(dx, dy, dx + bmp.width * scale, dy + bmp.height * scale)
        canvas.drawBitmap(bmp, null, dst, null)
        for (d in detections) {
            val r = RectF(dx + d.x0 * scale, dy + d.y0 * scale, dx + d.x1 * scale, dy + d.y1 * scale)
            canvas.drawRect(r, box)
            val caption = "%s %.2f".format(d.name, d.score)
            val w = text.measureText(caption)
            canvas.drawRect(r.left, r.top - text.textSize - 8f, r.left + w + 12f, r.top, labelBg)
            canvas.drawText(caption, r.left + 6f, r.top - 8f, text)
        }
    }
}
