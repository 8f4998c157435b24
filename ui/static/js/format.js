// Numbers, sizes and dates as people read them.

export function percent(value, digits = 1) {
  if (typeof value !== "number" || Number.isNaN(value)) return "–";
  return `${(value * 100).toFixed(digits)}%`;
}

export function bytes(value) {
  if (typeof value !== "number") return "–";
  const units = ["B", "KB", "MB", "GB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function count(value) {
  return typeof value === "number" ? value.toLocaleString("en") : "–";
}

export function date(iso) {
  if (!iso) return "–";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "–";
  return when.toLocaleString("en", { year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit" });
}

export function shortDate(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return when.toLocaleDateString("en", { year: "numeric", month: "short", day: "numeric" });
}

export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "–";
  const total = Math.round(seconds);
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

export function number(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

// Metadata written by training nests some fields; older or hand-copied models may lack them.
export function datasetName(model) {
  const dataset = model.dataset;
  if (!dataset) return "";
  return typeof dataset === "string" ? dataset : dataset.name || "";
}

export function parameterCount(model) {
  for (const key of ["parameters", "parameter_count", "params", "param_count", "num_parameters"]) {
    if (typeof model[key] === "number") return model[key];
  }
  return undefined;
}
