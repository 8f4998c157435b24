// The feedback view: the samples people answered "Right?" for, as a grid of 28x28 thumbnails
// with their label and the model's guess; filters, paging, accept, relabel, delete, export.
// Changes need the train token when the server has one: asked for here on a 401, kept with the
// Train view's (api.js, this tab only).

import { api } from "./api.js";
import { date, percent } from "./format.js";
import { tokenForm } from "./token-form.js";

const PER_PAGE = 48;
const $ = (id) => document.getElementById(id);

const FILTERS = {
  all: {},
  wrong: { wrong: true },
  right: { wrong: false },
  unreviewed: { reviewed: false },
};

export function initFeedback() {
  let page = 1;
  let loading = 0; // the number of the newest load, so an older answer never overwrites it
  const askToken = tokenForm($("feedback-token-form"));

  const digitFilter = $("feedback-digit");
  for (let digit = 0; digit <= 9; digit += 1) digitFilter.append(new Option(String(digit), String(digit)));
  for (const control of [$("feedback-filter"), digitFilter]) {
    control.addEventListener("change", () => {
      page = 1;
      load();
    });
  }
  $("feedback-refresh").addEventListener("click", () => load());
  $("feedback-prev").addEventListener("click", () => {
    page = Math.max(1, page - 1);
    load();
  });
  $("feedback-next").addEventListener("click", () => {
    page += 1;
    load();
  });
  const exportLink = $("feedback-export");
  const updateExport = () => { exportLink.href = api.feedbackExportUrl($("export-unreviewed").checked); };
  $("export-unreviewed").addEventListener("change", updateExport);
  updateExport();

  // ---------------------------------------------------------------- the list
  async function load() {
    const mine = ++loading;
    const filters = { ...FILTERS[$("feedback-filter").value], page, per_page: PER_PAGE };
    if (digitFilter.value !== "") filters.label = digitFilter.value;
    let body;
    try {
      body = await api.feedback(filters);
    } catch (error) {
      if (mine !== loading) return;
      showError(`Could not load the samples: ${error.message}`);
      return;
    }
    if (mine !== loading) return;
    const total = body.total ?? 0;
    const pages = Math.max(1, Math.ceil(total / (body.per_page || PER_PAGE)));
    if (page > pages && total > 0) {
      page = pages; // the last page emptied (a delete): show the one before
      load();
      return;
    }
    showError("");
    render(body.items || [], body.counts || {}, total, pages);
  }

  function render(items, counts, total, pages) {
    const summary = [];
    if (typeof counts.total === "number") summary.push(`${counts.total} ${counts.total === 1 ? "sample" : "samples"}`);
    if (typeof counts.wrong === "number") summary.push(`${counts.wrong} wrong`);
    if (typeof counts.unreviewed === "number") summary.push(`${counts.unreviewed} not reviewed`);
    $("feedback-counts").textContent = summary.length ? `· ${summary.join(" · ")}` : "";

    const grid = $("feedback-grid");
    grid.replaceChildren(...items.map(sampleItem));
    const empty = $("feedback-empty");
    empty.hidden = items.length > 0;
    empty.textContent = counts.total === 0 || (total === 0 && isUnfiltered())
      ? "No samples yet. In the Predict view, answer “Right?” under a prediction (✓, or the digit it "
        + "was) and the digit is kept here."
      : "No samples match these filters.";
    $("feedback-page").textContent = total ? `Page ${page} of ${pages} (${total} ${total === 1 ? "sample" : "samples"})` : "";
    $("feedback-prev").disabled = page <= 1;
    $("feedback-next").disabled = page >= pages;
  }

  function isUnfiltered() {
    return $("feedback-filter").value === "all" && digitFilter.value === "";
  }

  function showError(message) {
    $("feedback-error").textContent = message;
    $("feedback-error").hidden = !message;
  }

  // ---------------------------------------------------------------- one sample
  function sampleItem(sample) {
    const item = document.createElement("li");
    item.className = "sample";
    item.dataset.id = sample.id;
    item.dataset.testid = "feedback-sample";
    item.dataset.label = String(sample.label);
    const wrong = sample.correct === false || (sample.correct == null && sample.label !== sample.predicted);
    item.classList.toggle("wrong", wrong);

    const image = document.createElement("img");
    image.className = "thumb";
    image.src = sample.image_url || api.feedbackImageUrl(sample.id);
    image.width = 84;
    image.height = 84;
    image.alt = `A ${sample.label}${wrong ? `, read as ${sample.predicted}` : ""}`;
    image.loading = "lazy";

    const labels = document.createElement("p");
    labels.className = "sample-labels";
    labels.id = `sample-${sample.id}-labels`;
    const label = document.createElement("strong");
    label.className = "sample-label";
    label.textContent = String(sample.label);
    const said = document.createElement("span");
    said.className = "sample-said";
    said.textContent = ` / model said ${sample.predicted}`;
    labels.append(label, said);
    item.setAttribute("aria-labelledby", labels.id);

    const meta = document.createElement("p");
    meta.className = "sample-meta";
    meta.textContent = [
      sample.reviewed ? "reviewed" : "not reviewed",
      sample.model,
      typeof sample.confidence === "number" ? percent(sample.confidence) : "",
      date(sample.created_at),
    ].filter((part) => part && part !== "–").join(" · ");
    if (sample.split) meta.title = `In the ${sample.split} split`;

    const actions = document.createElement("div");
    actions.className = "sample-actions";
    const relabelRow = digitRow(sample);
    const confirmRow = deleteRow(sample, item);
    if (!sample.reviewed) {
      actions.append(button("Accept", "secondary", () => change(item, () => api.reviewFeedback(sample.id)),
        { label: `Accept ${sample.label} as the label` }));
    }
    const relabel = button("Relabel", "secondary", () => {
      const open = relabelRow.hidden;
      relabelRow.hidden = !open;
      confirmRow.hidden = true;
      relabel.setAttribute("aria-expanded", String(open));
      if (open) relabelRow.querySelector("button").focus();
    });
    relabel.setAttribute("aria-expanded", "false");
    relabel.setAttribute("aria-controls", relabelRow.id);
    const remove = button("Delete", "danger", () => {
      confirmRow.hidden = false;
      relabelRow.hidden = true;
      relabel.setAttribute("aria-expanded", "false");
      confirmRow.querySelector("button").focus();
    });
    actions.append(relabel, remove);
    if (sample.original_url) {
      const link = document.createElement("a");
      link.href = sample.original_url;
      link.target = "_blank";
      link.rel = "noopener";
      link.className = "sample-original";
      link.textContent = "Original";
      actions.append(link);
    }

    const error = document.createElement("p");
    error.className = "error sample-error";
    error.setAttribute("role", "alert");
    error.hidden = true;

    item.append(image, labels, meta, actions, relabelRow, confirmRow, error);
    return item;
  }

  function digitRow(sample) {
    const row = document.createElement("div");
    row.className = "relabel-digits";
    row.id = `sample-${sample.id}-relabel`;
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "The digit it is");
    row.hidden = true;
    for (let digit = 0; digit <= 9; digit += 1) {
      const choice = button(String(digit), digit === sample.label ? "" : "secondary",
        () => change(row.closest("li"), () => api.reviewFeedback(sample.id, digit)),
        { label: `Label it ${digit}` });
      if (digit === sample.label) choice.setAttribute("aria-current", "true");
      row.append(choice);
    }
    return row;
  }

  function deleteRow(sample, item) {
    const row = document.createElement("div");
    row.className = "delete-confirm";
    row.hidden = true;
    const text = document.createElement("span");
    text.textContent = "Delete this sample?";
    row.append(text,
      button("Delete it", "danger", () => change(item, () => api.deleteFeedback(sample.id))),
      button("Keep", "secondary", () => { row.hidden = true; }));
    return row;
  }

  // Runs a change, then reloads the page of samples (it may leave the filter, or the list).
  async function change(item, action) {
    const error = item.querySelector(".sample-error");
    error.hidden = true;
    for (const each of item.querySelectorAll("button")) each.disabled = true;
    try {
      await action();
    } catch (failure) {
      for (const each of item.querySelectorAll("button")) each.disabled = false;
      if (failure.status === 401) {
        error.textContent = askToken(() => change(item, action));
      } else {
        error.textContent = failure.message;
      }
      error.hidden = false;
      return;
    }
    await load();
  }

  return () => load();
}

function button(text, className, onClick, { label } = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  if (className) element.className = className;
  if (label) element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}
