// While the volume holds no model: say under the picker whether one is training (as `make run`
// starts the starter model right after the page is up), with its progress, and fill the picker
// as soon as it is saved. Without this a new user sees an empty picker and no reason to wait.

import { api } from "./api.js";
import { refresh, subscribe } from "./models-store.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running", "stopping"]);

export function initFirstModel(element) {
  let waiting = false; // the store has loaded and holds no model
  let timer = null;
  let busy = false;
  let watched = null; // the id of the run seen training

  function show(text) {
    element.textContent = text;
    element.hidden = !text;
  }

  async function activeRun() {
    try {
      const runs = (await api.runs()).runs || [];
      return runs.find((run) => ACTIVE.has(run.state)) || null;
    } catch {
      return null; // the train service is not up (yet): say nothing and look again
    }
  }

  async function tick() {
    timer = null;
    busy = true;
    const active = await activeRun();
    if (active) {
      watched = active.id;
      const name = active.params?.name ? `“${active.params.name}” ` : "";
      const done = Math.round(100 * (active.progress || 0));
      show(`No model yet: model ${name}is training (${done}%, epoch ${active.epoch || 0} of ` +
        `${active.epochs || "?"}). It joins the picker when it is saved; the Train view shows it live.`);
    } else {
      show("");
      if (watched) {
        watched = null; // it ended: if it saved a model, the list now has it
        await refresh();
      }
    }
    busy = false;
    if (waiting) timer = setTimeout(tick, POLL_MS);
  }

  subscribe(({ models, error }) => {
    waiting = !error && models.length === 0;
    if (waiting && timer === null && !busy) tick();
    if (!waiting) {
      clearTimeout(timer);
      timer = null;
      show("");
    }
  });
}
