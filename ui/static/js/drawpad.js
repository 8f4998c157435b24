// The drawing pad: Pointer Events (mouse, touch, pen), thick strokes smoothed with quadratic
// curves through the midpoints, undo and clear. Strokes are kept in coordinates from 0 to 1, so
// the pad can be redrawn at any size and exported for the model as white ink on black (MNIST's
// look) while people see dark ink on paper.

const INK = "#1d2433";
const PAPER = "#ffffff";
const STROKE_WIDTH = 0.075; // of the pad's width: about MNIST's pen on a digit that fills the pad
const EXPORT_SIZE = 280;

export class DrawPad extends EventTarget {
  constructor(canvas) {
    super();
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.strokes = [];
    this.active = null; // { pointerId, points }
    this.image = null; // an uploaded image shown instead of strokes
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
    canvas.addEventListener("pointerdown", (event) => this.onDown(event));
    canvas.addEventListener("pointermove", (event) => this.onMove(event));
    canvas.addEventListener("pointerup", (event) => this.onUp(event));
    canvas.addEventListener("pointercancel", (event) => this.onUp(event));
    canvas.addEventListener("lostpointercapture", (event) => this.onUp(event));
  }

  get drawing() {
    return Boolean(this.active);
  }

  get isEmpty() {
    return this.strokes.length === 0 && !this.active;
  }

  // The larger side of the box around all strokes, as a share of the pad (0 for a blank pad).
  extent() {
    const points = this.strokes.flat();
    if (!points.length) return 0;
    const xs = points.map(([x]) => x);
    const ys = points.map(([, y]) => y);
    return Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
  }

  resize() {
    const size = Math.round(this.canvas.clientWidth * (window.devicePixelRatio || 1));
    if (size > 0 && size !== this.canvas.width) {
      this.canvas.width = size;
      this.canvas.height = size;
    }
    this.render();
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  }

  onDown(event) {
    if (this.active || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    if (this.image) {
      this.image = null; // drawing replaces an uploaded image
      this.strokes = [];
    }
    this.active = { pointerId: event.pointerId, points: [this.point(event)] };
    this.strokes.push(this.active.points);
    this.render();
    this.emit("change");
  }

  onMove(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) this.active.points.push(this.point(each));
    this.render();
    this.emit("change");
  }

  onUp(event) {
    if (!this.active || event.pointerId !== this.active.pointerId) return;
    this.active = null;
    this.render();
    this.emit("strokeend");
  }

  undo() {
    if (this.image) return this.clear();
    this.strokes.pop();
    this.render();
    this.emit("strokeend");
  }

  clear() {
    this.strokes = [];
    this.active = null;
    this.image = null;
    this.render();
    this.emit("cleared");
  }

  showImage(bitmap) {
    this.strokes = [];
    this.active = null;
    this.image = bitmap;
    this.render();
  }

  emit(type) {
    this.dispatchEvent(new Event(type));
  }

  render() {
    const { context, canvas } = this;
    context.fillStyle = PAPER;
    context.fillRect(0, 0, canvas.width, canvas.height);
    if (this.image) {
      drawContained(context, this.image, canvas.width, canvas.height);
      return;
    }
    drawStrokes(context, this.strokes, canvas.width, INK);
  }

  // What the model gets: a PNG data URL, white strokes on black.
  toDataURL() {
    const out = document.createElement("canvas");
    out.width = EXPORT_SIZE;
    out.height = EXPORT_SIZE;
    const context = out.getContext("2d");
    context.fillStyle = "#000000";
    context.fillRect(0, 0, EXPORT_SIZE, EXPORT_SIZE);
    drawStrokes(context, this.strokes, EXPORT_SIZE, "#ffffff");
    return out.toDataURL("image/png");
  }
}

function drawStrokes(context, strokes, size, color) {
  context.strokeStyle = color;
  context.fillStyle = color;
  context.lineWidth = STROKE_WIDTH * size;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const points of strokes) {
    const scaled = points.map(([x, y]) => [x * size, y * size]);
    if (scaled.length === 1) {
      context.beginPath();
      context.arc(scaled[0][0], scaled[0][1], context.lineWidth / 2, 0, Math.PI * 2);
      context.fill();
      continue;
    }
    context.beginPath();
    context.moveTo(...scaled[0]);
    for (let i = 1; i < scaled.length - 1; i += 1) {
      const [x, y] = scaled[i];
      const [nx, ny] = scaled[i + 1];
      context.quadraticCurveTo(x, y, (x + nx) / 2, (y + ny) / 2);
    }
    context.lineTo(...scaled[scaled.length - 1]);
    context.stroke();
  }
}

function drawContained(context, image, width, height) {
  const scale = Math.min(width / image.width, height / image.height) * 0.9;
  const w = image.width * scale;
  const h = image.height * scale;
  context.imageSmoothingEnabled = scale < 4; // tiny 28x28 digits look crisp when enlarged
  context.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
}
