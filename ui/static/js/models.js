// The models view: a sortable table of the models on the volume, one model's details (confusion
// matrix heat map, per-class accuracy, training curves) and deleting a model after a confirmation.

import { api } from "./api.js";
import { renderBars } from "./bars.js";
import { historyCharts } from "./charts.js";
import { bytes, count, datasetName, date, duration, number, parameterCount, percent } from "./format.js";
import { current, refresh, subscribe } from "./models-store.js";
import { tokenForm } from "./token-form.js";
import { commonMnistKey, commonMnistSet, feedbackRank, feedbackScore, mnistRank, mnistScore } from "./scores.js";

const $ = (id) => document.getElementById(id);

// Accuracy sorts compare like with like: scores on the common test set first, then the others.
const SORT_VALUE = {
  name: (m) => m.name.toLowerCase(),
  test_accuracy: (m, key) => mnistRank(m, key),
  feedback: (m) => feedbackRank(m),
  architecture: (m) => m.architecture || "",
  dataset: (m) => datasetName(m),
  parameters: (m) => parameterCount(m) ?? -1,
  size_bytes: (m) => m.size_bytes ?? -1,
  created_at: (m) => m.created_at || "",
};

export function initModels() {
  const table = $("models-table");
  let sort = { key: "test_accuracy", descending: true };
  let selected = null;
  const askToken = tokenForm($("models-token-form"));

  subscribe(renderTable);

  for (const header of table.querySelectorAll("th[data-sort]")) {
    header.querySelector("button").addEventListener("click", () => {
      const key = header.dataset.sort;
      sort = { key, descending: sort.key === key ? !sort.descending : key !== "name" };
      renderTable(current());
    });
  }
  $("models-refresh").addEventListener("click", () => refresh());

  function renderTable({ models, error }) {
    $("models-error").hidden = !error;
    $("models-error").textContent = error ? `Could not load the models: ${error.message}` : "";
    for (const header of table.querySelectorAll("th[data-sort]")) {
      const on = header.dataset.sort === sort.key;
      header.setAttribute("aria-sort", on ? (sort.descending ? "descending" : "ascending") : "none");
    }
    const key = commonMnistKey(models);
    const mnistSet = commonMnistSet(models, key);
    $("mnist-set").textContent = mnistSet ? `on ${mnistSet}` : "";
    const value = SORT_VALUE[sort.key];
    const rows = [...models].sort((a, b) => {
      const [x, y] = [value(a, key), value(b, key)];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sort.descending ? -order : order;
    });
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 8;
      cell.className = "empty";
      cell.textContent = error ? "–" : "No models yet. Train one in the Train view.";
    }
    for (const model of rows) {
      const row = body.insertRow();
      row.dataset.model = model.name;
      if (model.name === selected) row.classList.add("selected");
      const nameCell = row.insertCell();
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = model.name;
      button.setAttribute("aria-label", `Details of ${model.name}`);
      button.addEventListener("click", () => showDetails(model.name));
      nameCell.append(button);
      scoreCell(row, mnistScore(model, key), `Accuracy${mnistSet ? ` (${mnistSet})` : ""}`);
      feedbackCell(row, model);
      cells(row, [
        [model.architecture || "–", "Architecture"],
        [datasetName(model) || "–", "Data set"],
        [count(parameterCount(model)), "Parameters", "num"],
        [bytes(model.size_bytes), "Size", "num"],
        [date(model.created_at), "Date"],
      ]);
    }
    if (selected && !models.some((model) => model.name === selected)) hideDetails();
  }

  function scoreCell(row, score, label) {
    const cell = row.insertCell();
    cell.className = "num";
    cell.dataset.label = label;
    cell.textContent = score ? percent(score.accuracy, 2) : "–";
    if (score && !score.comparable) {
      // Not on the set the others are compared on: say which set it is on.
      const set = document.createElement("span");
      set.className = "set";
      set.textContent = ` on ${score.set}`;
      cell.append(set);
    }
  }

  function feedbackCell(row, model) {
    const cell = row.insertCell();
    cell.className = "num";
    cell.dataset.label = "Your handwriting";
    cell.dataset.testid = "feedback-accuracy";
    const score = feedbackScore(model);
    if (score) {
      cell.textContent = percent(score.accuracy, 2);
      if (typeof score.size === "number") {
        const set = document.createElement("span");
        set.className = "set";
        set.textContent = ` of ${count(score.size)}`;
        cell.append(set);
      }
      cell.title = `On ${score.set}`;
      return;
    }
    cell.textContent = "– ";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link score-button";
    button.textContent = "Score";
    button.setAttribute("aria-label", `Score ${model.name} on your handwriting`);
    button.addEventListener("click", () => scoreOnFeedback(model.name, button, cell));
    cell.append(button);
  }

  async function scoreOnFeedback(name, button, cell) {
    button.disabled = true;
    button.textContent = "Scoring…";
    try {
      await api.evaluateModel(name, "feedback");
      await refresh();
    } catch (error) {
      button.disabled = false;
      button.textContent = "Score";
      const words = error.status === 401
        ? askToken(() => scoreOnFeedback(name, button, cell))
        : `Could not score ${name} on your handwriting: ${error.message}`;
      $("models-error").textContent = words;
      $("models-error").hidden = false;
      cell.title = words;
    }
  }

  // ---------------------------------------------------------------- details
  async function showDetails(name) {
    selected = name;
    for (const row of table.tBodies[0].rows) row.classList.toggle("selected", row.dataset.model === name);
    const panel = $("model-details");
    panel.hidden = false;
    $("details-title").textContent = name;
    $("model-export").href = api.exportUrl(name);
    let model;
    try {
      model = await api.model(name);
    } catch (error) {
      $("details-facts").replaceChildren();
      note(`Could not load ${name}: ${error.message}`);
      return;
    }
    if (selected !== name) return;
    const p = model.hyperparameters || model.params || {};
    const models = current().models;
    const key = commonMnistKey(models.length ? models : [model]);
    const mnist = mnistScore(model, key);
    const yours = feedbackScore(model);
    facts([
      [mnist ? `Accuracy on ${mnist.set}` : "Test accuracy", mnist ? percent(mnist.accuracy, 2) : "–"],
      [yours ? `Accuracy on ${yours.set}` : "Accuracy on your handwriting", yours ? percent(yours.accuracy, 2) : "not scored yet"],
      ["Test loss", number(model.test_loss)],
      ["Architecture", model.architecture || "–"],
      ["Data set", datasetName(model) || "–"],
      ["Epochs", p.epochs ?? (model.history ? model.history.length : "–")],
      ["Batch size", p.batch_size ?? "–"],
      ["Learning rate", p.learning_rate ?? "–"],
      // Models saved before the field existed were trained in float32. /api/models gives every
      // model its preprocessing version (1 for models saved before versions existed).
      ["Training precision", model.training_precision || "float32"],
      ["Preprocessing version", model.preprocessing_version],
      ["Parameters", count(parameterCount(model))],
      ["Size", bytes(model.size_bytes)],
      ["Training time", duration(model.train_seconds)],
      ["Created", date(model.created_at)],
    ]);
    heatmap($("confusion-matrix"), model.confusion_matrix);
    if (Array.isArray(model.per_class_accuracy)) {
      renderBars($("per-class"), model.per_class_accuracy, {
        label: (digit, value) => `Digit ${digit}: ${percent(value)} correct`,
      });
    } else {
      $("per-class").replaceChildren();
    }
    historyCharts($("details-loss-chart"), $("details-accuracy-chart"), model.history,
      "No training history saved");
    note(model.confusion_matrix ? "" : "This model has no saved evaluation (copied in by hand?).");
    panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function hideDetails() {
    selected = null;
    $("model-details").hidden = true;
  }

  function facts(pairs) {
    const list = $("details-facts");
    list.replaceChildren();
    for (const [term, value] of pairs) {
      const wrap = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      wrap.append(dt, dd);
      list.append(wrap);
    }
  }

  function note(text) {
    $("details-note").textContent = text;
    $("details-note").hidden = !text;
  }

  // ---------------------------------------------------------------- delete
  const dialog = $("delete-dialog");
  $("model-delete").addEventListener("click", () => {
    if (!selected) return;
    $("delete-text").textContent = `“${selected}” and its metadata will be removed from the volume. `
      + "This cannot be undone.";
    $("delete-error").hidden = true;
    dialog.showModal();
  });
  $("delete-confirm").addEventListener("click", async () => {
    const name = selected;
    $("delete-confirm").disabled = true;
    try {
      await api.deleteModel(name);
      dialog.close();
      hideDetails();
      await refresh();
    } catch (error) {
      if (error.status === 401) $("token-field").hidden = false;
      $("delete-error").textContent = error.status === 401
        ? "Deleting needs the training token: enter it in the Train view, then try again."
        : `Could not delete ${name}: ${error.message}`;
      $("delete-error").hidden = false;
    } finally {
      $("delete-confirm").disabled = false;
    }
  });

  return () => refresh();
}

function cells(row, values) {
  for (const [text, label, className] of values) {
    const cell = row.insertCell();
    cell.textContent = text;
    cell.dataset.label = label; // shown before the value where the table becomes cards (phones)
    if (className) cell.className = className;
  }
}

// The confusion matrix as a table whose cells are shaded by their share of the row: the numbers
// stay readable to screen readers, the colour shows the pattern at a glance.
function heatmap(table, matrix) {
  table.replaceChildren();
  if (!Array.isArray(matrix)) return;
  const caption = table.createCaption();
  caption.className = "visually-hidden";
  caption.textContent = "Confusion matrix: rows are the true digit, columns the predicted digit";
  const head = table.createTHead().insertRow();
  const corner = document.createElement("th");
  corner.scope = "col";
  const cornerText = document.createElement("span");
  cornerText.className = "visually-hidden";
  cornerText.textContent = "true digit, predicted digit";
  corner.append(cornerText);
  head.append(corner);
  matrix.forEach((_, digit) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = String(digit);
    head.append(th);
  });
  const body = table.createTBody();
  matrix.forEach((counts, truth) => {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = String(truth);
    row.append(th);
    const total = counts.reduce((sum, each) => sum + each, 0) || 1;
    counts.forEach((value, predicted) => {
      const cell = row.insertCell();
      cell.textContent = String(value);
      const share = value / total;
      const hue = truth === predicted ? 150 : 8; // green on the diagonal, red off it
      const light = 97 - Math.round(Math.sqrt(share) * 55);
      cell.style.backgroundColor = value ? `hsl(${hue} 65% ${light}%)` : "";
      if (light < 62) cell.classList.add("dark");
      cell.title = `true ${truth}, predicted ${predicted}: ${value}`;
    });
  });
}
