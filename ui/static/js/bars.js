// A list of ten horizontal bars, one per digit: probabilities or per-class accuracy.

import { percent } from "./format.js";

export function renderBars(list, values, { highlight = null, label } = {}) {
  list.replaceChildren();
  values.forEach((value, digit) => {
    const item = document.createElement("li");
    item.className = digit === highlight ? "best" : "";
    item.setAttribute("aria-label", label ? label(digit, value) : `${digit}: ${percent(value)}`);
    const name = document.createElement("span");
    name.className = "bar-digit";
    name.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`; // CSSOM: allowed by our CSP
    track.append(fill);
    const text = document.createElement("span");
    text.className = "bar-text";
    text.textContent = percent(value);
    item.append(name, track, text);
    list.append(item);
  });
}
