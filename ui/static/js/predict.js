// The predict view: the model picker, the drawing pad, uploads, the result, and the person's
// answer to "Right?" under it (kept on the volume as a labelled sample, issue 13).

import { api } from "./api.js";
import { DrawPad } from "./drawpad.js";
import { percent, shortDate } from "./format.js";
import { current as currentModels, subscribe } from "./models-store.js";
import { renderBars } from "./bars.js";
import { commonMnistKey, feedbackRank, feedbackScore, mnistRank, mnistScore } from "./scores.js";

const PREDICT_EVERY_MS = 300; // while drawing: at most this often, so the server keeps up
// A drawing smaller than this share of the pad is a dot or a start, not yet a digit: the
// server would only answer "no digit found".
const MIN_EXTENT = 0.1;

const EMPTY_TEXT = "Draw or upload a digit to see what the model reads.";
// An upload larger than this is not sent as the sample's original (the 28x28 image always is).
const MAX_ORIGINAL_BYTES = 256 * 1024;
// Remembered in this browser: whether the pad clears after an answer, the picker's order, and
// that the person has seen (and answered after) the notice about what is kept.
const CLEAR_KEY = "digits-clear-after-feedback";
const ORDER_KEY = "digits-model-order";
const NOTICE_KEY = "digits-feedback-notice-seen";
const $ = (id) => document.getElementById(id);

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage blocked: behave as on a first visit
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // not remembered; the page still works
  }
}

function readAsDataURL(file) {
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === "string" ? reader.result : null);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(file);
  });
}

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
  // The result on screen and what was sent for it: { result, kind, dataUrl, file }.
  let shown = null;
  let answered = false; // the shown result has its answer (or one is being saved)
  let queued = null; // an answer given while a newer prediction was on its way

  // ---------------------------------------------------------------- the model picker
  const order = $("model-order");
  if ([...order.options].some((option) => option.value === stored(ORDER_KEY))) order.value = stored(ORDER_KEY);
  order.addEventListener("change", () => {
    store(ORDER_KEY, order.value);
    const chosen = select.value;
    fillPicker(currentModels());
    if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
  });
  subscribe(fillPicker);

  function ordered(models) {
    if (order.value === "mnist") {
      const key = commonMnistKey(models);
      return [...models].sort((a, b) => mnistRank(b, key) - mnistRank(a, key));
    }
    if (order.value === "feedback") return [...models].sort((a, b) => feedbackRank(b) - feedbackRank(a));
    return models; // the service lists them newest first
  }

  function pickerLabel(model, key) {
    const mnist = mnistScore(model, key);
    const yours = feedbackScore(model);
    return [
      model.name,
      mnist ? `${percent(mnist.accuracy)} ${mnist.comparable ? mnist.set.split(" ")[0] : "own test"}` : "",
      yours ? `${percent(yours.accuracy)} yours` : "",
      shortDate(model.created_at),
    ].filter(Boolean).join(" · ");
  }

  function fillPicker({ models, defaultName, error }) {
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
    const key = commonMnistKey(models);
    for (const model of ordered(models)) {
      const label = pickerLabel(model, key);
      select.append(new Option(model.name === defaultName ? `${label} (default)` : label, model.name));
    }
    const names = models.map((model) => model.name);
    select.value = names.includes(keep) ? keep : names.includes(defaultName) ? defaultName : names[0];
    $("model-hint").textContent = "Name, accuracy on MNIST's test digits, on your handwriting "
      + "(once scored), date. The default model is preselected.";
  }
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
    const sent = source.kind === "file"
      ? { kind: "file", file: source.file }
      : { kind: "drawing", dataUrl: pad.toDataURL() };
    try {
      const result = sent.kind === "file"
        ? await api.predictFile(sent.file, model)
        : await api.predictImage(sent.dataUrl, model);
      if (!again && source) showResult(result, sent);
    } catch (error) {
      if (!again && source) showError(error.message);
    } finally {
      inFlight = false;
      if (again && source) send();
      else if (queued !== null && !timer) answerQueued();
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
    shown = null;
    if (queued !== null) status("");
    queued = null;
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
    shown = null;
    if (queued !== null) status("");
    queued = null;
    $("result").dataset.state = "error";
    $("result-empty").hidden = true;
    $("result-error").textContent = message;
    $("result-error").hidden = false;
    $("result-body").hidden = true;
  }

  function showResult(result, sent) {
    shown = { result, ...sent };
    answered = false;
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
    askFeedback();
  }

  // ---------------------------------------------------------------- "Right?"
  const clearAfter = $("clear-after-feedback");
  // On by default: the usual flow is draw, answer, draw the next one, and an answered digit is
  // done with (saved); clearing saves a click per digit. Off keeps it to try other models on.
  clearAfter.checked = stored(CLEAR_KEY) !== "false";
  clearAfter.addEventListener("change", () => store(CLEAR_KEY, String(clearAfter.checked)));

  const digits = $("feedback-digits");
  for (let digit = 0; digit <= 9; digit += 1) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary feedback-digit";
    button.textContent = String(digit);
    button.setAttribute("aria-label", `It was ${digit}`);
    button.setAttribute("aria-keyshortcuts", String(digit));
    button.dataset.digit = String(digit);
    button.addEventListener("click", () => answer(digit));
    digits.append(button);
  }
  $("feedback-right").addEventListener("click", () => shown && answer(shown.result.digit));

  function askFeedback() {
    const row = $("feedback");
    row.hidden = false;
    for (const button of row.querySelectorAll("button")) {
      button.disabled = false;
      button.classList.toggle("predicted", button.dataset.digit === String(shown.result.digit));
    }
    $("feedback-notice").hidden = stored(NOTICE_KEY) === "yes";
    if (queued === null) status("");
  }

  function answerQueued() {
    const label = queued;
    queued = null;
    if (shown) answer(label);
    else status("");
  }

  function feedbackOpen() {
    return Boolean(shown) && !answered && !$("result-body").hidden && !$("feedback").hidden;
  }

  // One answer per result. While a newer prediction is on its way (the pen just lifted), the
  // answer waits for it, so it is stored with the image the person finished.
  async function answer(label) {
    if (!shown || answered) return;
    if (timer || inFlight) {
      queued = label;
      status("Saving…");
      return;
    }
    answered = true;
    const { result, kind, dataUrl, file } = shown;
    for (const button of $("feedback").querySelectorAll("button")) button.disabled = true;
    status("Saving…");
    let original = kind === "drawing" ? dataUrl : null;
    if (kind === "file" && file.size <= MAX_ORIGINAL_BYTES) original = await readAsDataURL(file);
    const sample = {
      image: result.preprocessed,
      label,
      predicted: result.digit,
      confidence: result.confidence,
      model: result.model,
      preprocessing_version: result.preprocessing_version ?? 1,
    };
    if (original && original.startsWith("data:image/")) sample.original = original;
    let saved;
    try {
      saved = await api.sendFeedback(sample);
    } catch (error) {
      if (shown && shown.result === result) {
        answered = false;
        for (const button of $("feedback").querySelectorAll("button")) button.disabled = false;
      }
      status(`Not saved: ${error.message}`, true);
      return;
    }
    store(NOTICE_KEY, "yes");
    const said = label === result.digit ? "" : ` as ${label}`;
    status(saved && saved.duplicate ? `Thanks — already saved${said}.` : `Thanks — saved${said}.`);
    if (shown && shown.result === result) {
      $("feedback").hidden = true;
      if (clearAfter.checked) pad.clear();
    }
  }

  function status(text, isError = false) {
    const line = $("feedback-status");
    line.textContent = text;
    line.classList.toggle("error", isError);
    line.hidden = !text;
  }

  // Enter confirms and 0-9 corrects, only while the question shows and no text field, select or
  // dialog has the keys; Enter on a focused button or link still presses that control.
  document.addEventListener("keydown", (event) => {
    if (view.hidden || !feedbackOpen() || pad.drawing) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target instanceof Element ? event.target : null;
    if (target && target.closest("input, select, textarea, [contenteditable]:not([contenteditable='false'])")) return;
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "Enter") {
      if (target && target.closest("button, a[href], summary, label")) return;
      event.preventDefault();
      answer(shown.result.digit);
    } else if (/^[0-9]$/.test(event.key)) {
      event.preventDefault();
      answer(Number(event.key));
    }
  });

  status("");
  showEmpty();
  return () => pad.resize();
}
