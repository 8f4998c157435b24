// The predict view: the model picker, the drawing pad, uploads, and the result.

import { api } from "./api.js";
import { DrawPad } from "./drawpad.js";
import { percent, shortDate } from "./format.js";
import { subscribe } from "./models-store.js";
import { renderBars } from "./bars.js";

const PREDICT_EVERY_MS = 300; // while drawing: at most this often, so the server keeps up
// A drawing smaller than this share of the pad is a dot or a start, not yet a digit: the
// server would only answer "no digit found".
const MIN_EXTENT = 0.1;

const EMPTY_TEXT = "Draw or upload a digit to see what the model reads.";
const $ = (id) => document.getElementById(id);

export function initPredict() {
  const select = $("model-select");
  const pad = new DrawPad($("draw-canvas"));
  const view = $("view-predict");
  let source = null; // null, { kind: "drawing" } or { kind: "file", file }
  let inFlight = false;
  let again = false; // a newer input arrived while a request was in flight
  let timer = null;
  let lastSent = 0;
  let userPicked = false;

  // ---------------------------------------------------------------- the model picker
  subscribe(({ models, defaultName, error }) => {
    const keep = userPicked ? select.value : null;
    select.replaceChildren();
    if (error && !models.length) {
      select.append(new Option("Models could not be loaded", ""));
      select.disabled = true;
      showError(`Could not load the models: ${error.message}`);
      return;
    }
    if (!models.length) {
      select.append(new Option("No models yet: train one in the Train view", ""));
      select.disabled = true;
      return;
    }
    select.disabled = false;
    for (const model of models) {
      const label = [model.name, percent(model.test_accuracy), shortDate(model.created_at)]
        .filter((part) => part && part !== "–").join(" · ");
      select.append(new Option(model.name === defaultName ? `${label} (default)` : label, model.name));
    }
    const names = models.map((model) => model.name);
    select.value = names.includes(keep) ? keep : names.includes(defaultName) ? defaultName : names[0];
  });
  select.addEventListener("change", () => {
    userPicked = true;
    predictNow();
  });

  // ---------------------------------------------------------------- prediction
  async function send() {
    if (!source) return;
    if (source.kind === "drawing" && pad.extent() < MIN_EXTENT) {
      if (!pad.drawing) showHint("Keep going: that is too small to be a digit yet.");
      return;
    }
    inFlight = true;
    again = false;
    lastSent = performance.now();
    const model = select.value || undefined;
    try {
      const result = source.kind === "file"
        ? await api.predictFile(source.file, model)
        : await api.predictImage(pad.toDataURL(), model);
      if (!again && source) showResult(result);
    } catch (error) {
      if (!again && source) showError(error.message);
    } finally {
      inFlight = false;
      if (again && source) send();
    }
  }

  function predictNow() {
    clearTimeout(timer);
    timer = null;
    if (!source) return;
    if (inFlight) again = true;
    else send();
  }

  function predictSoon() {
    if (timer) return;
    const wait = Math.max(0, PREDICT_EVERY_MS - (performance.now() - lastSent));
    timer = setTimeout(predictNow, wait);
  }

  // ---------------------------------------------------------------- drawing
  pad.addEventListener("change", () => {
    source = { kind: "drawing" };
    updateButtons();
    predictSoon();
  });
  pad.addEventListener("strokeend", () => {
    if (pad.isEmpty) return reset();
    source = { kind: "drawing" };
    updateButtons();
    predictNow();
  });
  pad.addEventListener("cleared", reset);
  $("clear-button").addEventListener("click", () => pad.clear());
  $("undo-button").addEventListener("click", () => pad.undo());
  document.addEventListener("keydown", (event) => {
    if (view.hidden || !(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "z") return;
    if (event.target.closest("input, select, textarea")) return;
    event.preventDefault();
    pad.undo();
  });

  function reset() {
    clearTimeout(timer);
    timer = null;
    source = null;
    if (inFlight) again = true; // drop the answer still on its way
    updateButtons();
    showEmpty();
  }

  function updateButtons() {
    $("clear-button").disabled = !source;
    $("undo-button").disabled = !source;
  }

  // ---------------------------------------------------------------- uploads
  async function useFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      showError(`“${file.name}” is not an image; choose a PNG, JPEG or similar picture of one digit.`);
      return;
    }
    source = { kind: "file", file };
    updateButtons();
    try {
      pad.showImage(await createImageBitmap(file));
    } catch {
      pad.showImage(null); // the browser cannot show it; the server may still read it
    }
    predictNow();
  }

  $("file-input").addEventListener("change", (event) => {
    useFile(event.target.files[0]);
    event.target.value = ""; // choosing the same file again is a change too
  });

  const dropZone = $("drop-zone");
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    if (view.hidden) return;
    const item = [...(event.clipboardData?.items || [])].find((each) => each.type.startsWith("image/"));
    if (!item) return;
    event.preventDefault();
    useFile(item.getAsFile());
  });

  // ---------------------------------------------------------------- the result
  function showEmpty() {
    $("result").dataset.state = "empty";
    $("result-empty").textContent = EMPTY_TEXT;
    $("result-empty").hidden = false;
    $("result-error").hidden = true;
    $("result-body").hidden = true;
  }

  function showHint(message) {
    showEmpty();
    $("result-empty").textContent = message;
  }

  function showError(message) {
    $("result").dataset.state = "error";
    $("result-empty").hidden = true;
    $("result-error").textContent = message;
    $("result-error").hidden = false;
    $("result-body").hidden = true;
  }

  function showResult(result) {
    $("result").dataset.state = "result";
    $("result-empty").hidden = true;
    $("result-error").hidden = true;
    $("result-body").hidden = false;
    $("result-digit").textContent = String(result.digit);
    $("result-confidence").textContent = percent(result.confidence);
    $("result-model").textContent = result.model;
    $("preprocessed-image").src = result.preprocessed;
    renderBars($("probability-bars"), result.probabilities, {
      highlight: result.digit, label: (digit, p) => `${digit}: ${percent(p)}`,
    });
  }

  showEmpty();
  return () => pad.resize();
}
