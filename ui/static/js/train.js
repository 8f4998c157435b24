// The train view: a form built from /api/train/options, and the live progress of a run, fed by
// the run's server-sent events, or by polling when the event stream is not available.

import { api, hasTrainToken, setTrainToken } from "./api.js";
import { historyCharts } from "./charts.js";
import { duration, number, percent } from "./format.js";
import { refresh as refreshModels } from "./models-store.js";

const ACTIVE = new Set(["queued", "running", "stopping"]);
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

export function initTrain() {
  const form = $("train-form");
  let options = null;
  let run = null; // the run shown
  let events = null; // its EventSource
  let pollTimer = null;
  let optionsLoading = null;
  let runsChecked = false;

  // ---------------------------------------------------------------- the form
  async function loadOptions() {
    try {
      options = await api.trainOptions();
      buildForm(options);
      $("train-start").disabled = Boolean(run && ACTIVE.has(run.state));
    } catch (error) {
      $("train-fields").replaceChildren(errorText(`Could not load the training options: ${error.message}`));
      optionsLoading = null; // try again next time the view opens
    }
  }

  function buildForm({ architectures = [], datasets = [], defaults = {}, bounds = {} }) {
    const fields = $("train-fields");
    fields.replaceChildren();
    const archDefault = defaults.architecture ?? architectures.find((a) => a.default)?.name;
    const archSelect = selectField(fields, "architecture", "Architecture",
      architectures.map((a) => [a.name, a.name]), archDefault);
    const archHint = hint(fields, "architecture-hint");
    archSelect.setAttribute("aria-describedby", "architecture-hint");
    selectField(fields, "dataset", "Data set", datasets.map((d) => [d.name, d.name]),
      defaults.dataset ?? datasets.find((d) => d.default)?.name);
    numberField(fields, "epochs", "Epochs", bounds.epochs, 1);
    numberField(fields, "batch_size", "Batch size", bounds.batch_size, 1);
    numberField(fields, "learning_rate", "Learning rate", bounds.learning_rate, "any");
    checkboxField(fields, "augment", "Augment the training images (shifts, rotations)");
    const name = textField(fields, "name", "Name of the new model");
    if (bounds.name?.pattern) {
      // Checked here rather than with the pattern attribute: HTML compiles that with the `v`
      // flag, which rejects the server's (plain, valid) `[._-]` class.
      const allowed = new RegExp(bounds.name.pattern);
      name.addEventListener("input", () => name.setCustomValidity(
        !name.value || allowed.test(name.value) ? ""
          : "Use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit."));
    }

    const applyArchitecture = () => {
      const arch = architectures.find((a) => a.name === archSelect.value) || {};
      const recipe = { ...defaults, ...(arch.defaults || {}) };
      for (const key of ["epochs", "batch_size", "learning_rate"]) {
        if (recipe[key] !== undefined) form.elements[key].value = recipe[key];
      }
      form.elements.augment.checked = Boolean(recipe.augment);
      archHint.textContent = arch.description || "";
      name.placeholder = `automatic, e.g. ${arch.name || "model"}-20250101-1200`;
    };
    archSelect.addEventListener("change", applyArchitecture);
    applyArchitecture();
  }

  function params() {
    const values = {
      architecture: form.elements.architecture.value,
      dataset: form.elements.dataset.value,
      epochs: Number(form.elements.epochs.value),
      batch_size: Number(form.elements.batch_size.value),
      learning_rate: Number(form.elements.learning_rate.value),
      augment: form.elements.augment.checked,
    };
    const name = form.elements.name.value.trim();
    if (name) values.name = name;
    return values;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError("");
    const invalid = [...form.elements].find((element) => element.willValidate && !element.checkValidity());
    if (invalid) {
      const label = form.querySelector(`label[for="${invalid.id}"]`)?.textContent || invalid.name;
      formError(`${label}: ${invalid.validationMessage}`);
      invalid.focus();
      return;
    }
    $("train-start").disabled = true;
    try {
      attach(await api.startRun(params()));
    } catch (error) {
      $("train-start").disabled = false;
      if (error.status === 401) return askForToken();
      formError(error.message);
      if (error.status === 409) attachActive();
    }
  });

  function askForToken() {
    $("token-field").hidden = false;
    formError(hasTrainToken() ? "That token was not accepted; check it and try again."
      : "Training is protected on this server: enter its token, then start again.");
    $("train-token").focus();
  }
  $("train-token").addEventListener("change", (event) => setTrainToken(event.target.value.trim()));

  $("train-stop").addEventListener("click", async () => {
    if (!run) return;
    $("train-stop").disabled = true;
    try {
      show(await api.stopRun(run.id));
    } catch (error) {
      $("train-stop").disabled = false;
      if (error.status === 401) return askForToken();
      formError(`Could not stop the run: ${error.message}`);
    }
  });

  function formError(message) {
    $("train-form-error").textContent = message;
    $("train-form-error").hidden = !message;
  }

  // ---------------------------------------------------------------- following a run
  function attach(newRun) {
    closeStreams();
    run = null;
    show(newRun);
    if (ACTIVE.has(newRun.state)) follow(newRun.id);
  }

  function follow(id) {
    if (!window.EventSource) return poll(id);
    events = new EventSource(api.runEventsUrl(id));
    const onEvent = (message) => {
      let body;
      try {
        body = JSON.parse(message.data);
      } catch {
        return; // a keep-alive or a non-JSON note
      }
      const snapshot = body && body.run ? body.run : body;
      // `progress` events carry the whole run; the closing `end` event only its state.
      if (snapshot && typeof snapshot === "object" && "state" in snapshot) {
        show({ ...snapshot, id: snapshot.id ?? id });
      }
    };
    for (const type of ["message", "progress", "run", "state", "done", "end"]) {
      events.addEventListener(type, onEvent);
    }
    events.addEventListener("error", () => {
      // The stream broke (a proxy, a restart): poll instead, unless the run is over anyway.
      if (!run || run.id !== id || !ACTIVE.has(run.state)) return closeStreams();
      closeStreams();
      poll(id);
    });
  }

  function poll(id) {
    const tick = async () => {
      try {
        show(await api.run(id));
      } catch (error) {
        $("run-summary").textContent = `Lost track of the run: ${error.message}. Retrying…`;
      }
      if (run && run.id === id && ACTIVE.has(run.state)) pollTimer = setTimeout(tick, POLL_MS);
    };
    pollTimer = setTimeout(tick, POLL_MS);
  }

  function closeStreams() {
    if (events) events.close();
    events = null;
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  async function attachActive() {
    try {
      const body = await api.runs();
      const runs = Array.isArray(body) ? body : body.runs || [];
      const active = runs.find((each) => ACTIVE.has(each.state));
      if (active) attach(active);
      else if (runs.length && !run) show(runs[0]);
    } catch {
      // The form's error already says what went wrong; the run panel stays as it is.
    }
  }

  // ---------------------------------------------------------------- drawing a run
  function show(snapshot) {
    const previous = run;
    if (previous && previous.id === snapshot.id && !ACTIVE.has(previous.state)) return; // settled
    run = { ...(previous && previous.id === snapshot.id ? previous : {}), ...snapshot };
    const active = ACTIVE.has(run.state);
    $("run-id").textContent = run.id ? `(${run.id})` : "";
    const state = $("train-state");
    state.textContent = run.state;
    state.dataset.state = run.state;
    $("train-stop").disabled = !active || run.state === "stopping" || Boolean(run.stop_requested);
    $("train-start").disabled = active || !options;

    const progress = run.state === "succeeded" ? 1 : clamp(run.progress);
    meter($("train-progress"), Math.round(progress * 100), 100);
    $("overall-text").textContent = `${Math.round(progress * 100)}%`;
    const epochs = run.epochs ?? run.params?.epochs ?? 0;
    meter($("epoch-meter"), run.epoch ?? 0, epochs);
    $("epoch-text").textContent = epochs ? `${run.epoch ?? 0} of ${epochs}` : "–";
    meter($("step-meter"), run.step ?? 0, run.steps ?? 0);
    $("step-text").textContent = run.steps ? `${run.step ?? 0} of ${run.steps}` : "–";

    $("run-eta").textContent = active ? etaText(run, progress) : "–";
    const metrics = run.metrics || run.latest_metrics || {};
    $("run-loss").textContent = number(metrics.loss);
    $("run-accuracy").textContent = percent(metrics.accuracy);
    $("run-summary").textContent = summary(run);
    historyCharts($("loss-chart"), $("accuracy-chart"), run.history,
      active ? "The first epoch is on its way…" : "No epochs");

    if (previous?.id === run.id && ACTIVE.has(previous.state) && !active) finished(run);
    else if (!active) showOutcome(run);
  }

  async function finished(done) {
    closeStreams();
    showOutcome(done);
    if (done.state === "succeeded") await refreshModels(); // the new model joins the picker
  }

  async function showOutcome(done) {
    const result = $("run-result");
    result.hidden = false;
    result.dataset.state = done.state;
    let accuracy = done.test_accuracy ?? done.metrics?.test_accuracy;
    if (done.state === "succeeded" && done.model && accuracy === undefined) {
      try {
        accuracy = (await api.model(done.model)).test_accuracy;
      } catch {
        // The model's metadata is a nicety here; the run itself succeeded.
      }
    }
    $("run-test-accuracy").textContent = percent(accuracy, 2);
    result.textContent = {
      succeeded: `Done: model “${done.model}” is saved and in the model picker`
        + (accuracy !== undefined ? `, ${percent(accuracy, 2)} on the test digits.` : "."),
      stopped: "Stopped: no model was saved.",
      failed: `Failed: ${done.error?.message || done.error || "the job ended without a model."}`,
    }[done.state] || "";
  }

  function summary(each) {
    const p = each.params || {};
    const what = [p.architecture, p.dataset && `on ${p.dataset}`, p.name && `→ ${p.name}`]
      .filter(Boolean).join(" ");
    const state = { queued: "Waiting to start", running: "Training", stopping: "Stopping",
      stopped: "Stopped", succeeded: "Finished", failed: "Failed" }[each.state] || each.state;
    return what ? `${state}: ${what}` : state;
  }

  function etaText(each, progress) {
    if (typeof each.eta_seconds === "number") return duration(each.eta_seconds);
    const started = Date.parse(each.started_at);
    if (!progress || Number.isNaN(started)) return "estimating…";
    const elapsed = (Date.now() - started) / 1000;
    return duration((elapsed / progress) * (1 - progress));
  }

  historyCharts($("loss-chart"), $("accuracy-chart"), [], "No run yet");

  return () => {
    if (!optionsLoading) optionsLoading = loadOptions();
    if (!runsChecked) {
      runsChecked = true;
      attachActive();
    }
    historyCharts($("loss-chart"), $("accuracy-chart"), run?.history || [],
      run ? "No epochs" : "No run yet");
  };
}

// ------------------------------------------------------------------ small helpers

function clamp(value) {
  return typeof value === "number" ? Math.max(0, Math.min(1, value)) : 0;
}

function meter(element, value, max) {
  element.setAttribute("aria-valuemax", String(max));
  element.setAttribute("aria-valuenow", String(value));
  element.querySelector(".meter-fill").style.width = max ? `${(value / max) * 100}%` : "0%";
}

function errorText(message) {
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = message;
  return p;
}

function hint(parent, id) {
  const p = document.createElement("p");
  p.className = "hint";
  p.id = id;
  parent.append(p);
  return p;
}

function fieldWrap(parent, id, text) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const label = document.createElement("label");
  label.htmlFor = `train-${id}`;
  label.textContent = text;
  wrap.append(label);
  parent.append(wrap);
  return wrap;
}

function selectField(parent, id, text, choices, chosen) {
  const select = document.createElement("select");
  select.id = `train-${id}`;
  select.name = id;
  select.dataset.testid = `train-${id}`;
  for (const [value, label] of choices) select.append(new Option(label, value));
  if (chosen) select.value = chosen;
  fieldWrap(parent, id, text).append(select);
  return select;
}

function numberField(parent, id, text, bounds = {}, step) {
  const input = document.createElement("input");
  input.type = "number";
  input.id = `train-${id}`;
  input.name = id;
  input.dataset.testid = `train-${id}`;
  input.required = true;
  input.step = String(step);
  input.inputMode = step === "any" ? "decimal" : "numeric";
  const low = bounds.min ?? bounds.exclusive_min;
  if (low !== undefined) input.min = String(low);
  if (bounds.max !== undefined) input.max = String(bounds.max);
  fieldWrap(parent, id, text).append(input);
  return input;
}

function textField(parent, id, text) {
  const input = document.createElement("input");
  input.type = "text";
  input.id = `train-${id}`;
  input.name = id;
  input.dataset.testid = `train-${id}`;
  input.autocomplete = "off";
  input.spellcheck = false;
  fieldWrap(parent, id, text).append(input);
  return input;
}

function checkboxField(parent, id, text) {
  const wrap = document.createElement("div");
  wrap.className = "field check";
  const input = document.createElement("input");
  input.type = "checkbox";
  input.id = `train-${id}`;
  input.name = id;
  const label = document.createElement("label");
  label.htmlFor = input.id;
  label.textContent = text;
  wrap.append(input, label);
  parent.append(wrap);
  return input;
}
