// Line charts drawn on a canvas: per-epoch curves, a few series each. No library: axes, grid,
// ticks, lines, points and a legend are all a chart of this size needs. A chart redraws itself
// when its canvas changes size.

const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const AXIS = "#6b7280";
const GRID = "#e5e7eb";
export const COLORS = { train: "#2563eb", validation: "#f97316" };

const charts = new WeakMap();
const observer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const spec = charts.get(entry.target);
    if (spec) draw(entry.target, spec);
  }
});

// series: [{ label, color, values: [number|null per epoch] }]; options: { yMin, yMax, empty }
export function lineChart(canvas, series, options = {}) {
  const first = !charts.has(canvas);
  charts.set(canvas, { series, options });
  if (first) observer.observe(canvas);
  draw(canvas, { series, options });
}

function niceStep(range, ticks) {
  const rough = range / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const scaled = rough / power;
  return (scaled >= 5 ? 10 : scaled >= 2 ? 5 : scaled >= 1 ? 2 : 1) * power;
}

function draw(canvas, { series, options }) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.font = FONT;

  const values = series.flatMap((each) => each.values).filter((v) => typeof v === "number");
  const count = Math.max(0, ...series.map((each) => each.values.length));
  const box = { left: 44, right: width - 10, top: 26, bottom: height - 26 };

  if (!values.length) {
    context.fillStyle = AXIS;
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillText(options.empty || "No data yet", width / 2, height / 2);
    return;
  }

  let low = options.yMin ?? Math.min(...values);
  let high = options.yMax ?? Math.max(...values);
  if (options.fit) {
    low = Math.min(...values);
    high = Math.max(...values);
  }
  if (high - low < 1e-9) {
    low -= 0.5;
    high += 0.5;
  }
  const step = niceStep(high - low, 4);
  low = Math.floor(low / step) * step;
  high = Math.ceil(high / step) * step;
  const x = (index) => box.left + (count <= 1 ? (box.right - box.left) / 2
    : (index / (count - 1)) * (box.right - box.left));
  const y = (value) => box.bottom - ((value - low) / (high - low)) * (box.bottom - box.top);

  // Grid and y ticks.
  context.strokeStyle = GRID;
  context.fillStyle = AXIS;
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  for (let tick = low; tick <= high + step / 2; tick += step) {
    context.beginPath();
    context.moveTo(box.left, Math.round(y(tick)) + 0.5);
    context.lineTo(box.right, Math.round(y(tick)) + 0.5);
    context.stroke();
    context.fillText(tick.toFixed(decimals), box.left - 6, y(tick));
  }
  // x ticks: epochs, at most about eight labels.
  context.textAlign = "center";
  context.textBaseline = "top";
  const every = Math.max(1, Math.ceil(count / 8));
  for (let index = 0; index < count; index += every) {
    context.fillText(String(index + 1), x(index), box.bottom + 6);
  }

  // Lines and points.
  for (const each of series) {
    context.strokeStyle = each.color;
    context.fillStyle = each.color;
    context.lineWidth = 2;
    context.beginPath();
    let started = false;
    each.values.forEach((value, index) => {
      if (typeof value !== "number") return;
      if (started) context.lineTo(x(index), y(value));
      else context.moveTo(x(index), y(value));
      started = true;
    });
    context.stroke();
    each.values.forEach((value, index) => {
      if (typeof value !== "number") return;
      context.beginPath();
      context.arc(x(index), y(value), 2.5, 0, Math.PI * 2);
      context.fill();
    });
  }

  // Legend, top left.
  context.textAlign = "left";
  context.textBaseline = "middle";
  let legendX = box.left;
  for (const each of series) {
    context.fillStyle = each.color;
    context.fillRect(legendX, 9, 14, 4);
    context.fillStyle = "#374151";
    context.fillText(each.label, legendX + 19, 11);
    legendX += 28 + context.measureText(each.label).width;
  }
  context.fillStyle = AXIS;
  context.textAlign = "right";
  context.fillText("per epoch", box.right, 11);
}

// The two charts every model and run has: loss and accuracy per epoch, training and validation.
export function historyCharts(lossCanvas, accuracyCanvas, history, empty) {
  const pick = (key) => (history || []).map((entry) => entry[key] ?? null);
  lineChart(lossCanvas, [
    { label: "training", color: COLORS.train, values: pick("loss") },
    { label: "validation", color: COLORS.validation, values: pick("val_loss") },
  ], { yMin: 0, empty });
  lineChart(accuracyCanvas, [
    { label: "training", color: COLORS.train, values: pick("accuracy") },
    { label: "validation", color: COLORS.validation, values: pick("val_accuracy") },
  ], { fit: true, yMax: 1, empty });
}
