// The job console: a channel's jobs, live, from the same HTTP API a script uses.
//
// No framework and no build step: the page is served as it is by the API. Every value from
// the API is put in the page as text (textContent, attributes), never as HTML, so a job's
// error message or tag cannot run as script here; the page's Content-Security-Policy allows
// only this file anyway. The channel and API key live in this tab's sessionStorage.

const POLL_MS = 2000;
const PAGE = 100;
const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED", "EXPIRED"]);

const $ = (id) => document.getElementById(id);
let timer = null;
let openJob = null;

function identity() {
  const channel = sessionStorage.getItem("exhaust.channel");
  return channel ? { channel, key: sessionStorage.getItem("exhaust.key") || "" } : null;
}

async function api(method, path) {
  const who = identity();
  const headers = { "X-Channel-ID": who.channel, Accept: "application/json" };
  if (who.key) headers.Authorization = `Bearer ${who.key}`;
  const response = await fetch(path, { method, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new Error(`${error.code || response.status}: ${error.message || response.statusText}`);
  }
  return body;
}

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function when(value) {
  if (value === null || value === undefined) return "";
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function problem(message) {
  const box = $("problem");
  box.hidden = !message;
  box.textContent = message || "";
}

function statusBadge(status) {
  return el("span", status, { class: `status ${String(status).toLowerCase()}`, "data-testid": "status" });
}

function progressBar(job) {
  const bar = el("progress", null, { max: "1", value: String(job.progress ?? 0) });
  bar.title = `${Math.round((job.progress ?? 0) * 100)} %`;
  return bar;
}

function row(job) {
  const tr = el("tr", null, { "data-request-id": job.request_id, tabindex: "0" });
  const link = el("button", job.request_id, { type: "button", class: "link", "data-testid": "open" });
  link.addEventListener("click", () => openDetail(job.request_id));
  const cells = [
    link, job.tag, job.dataset, statusBadge(job.status), progressBar(job),
    `${job.attempt}/${job.max_attempts}`, job.error ? job.error.code : "", when(job.last_updated),
  ];
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

async function refresh() {
  const filters = new FormData($("filters"));
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ["tag", "status"]) {
    const value = String(filters.get(name) || "").trim();
    if (value) query.set(name, value);
  }
  try {
    const page = await api("GET", `/v1/jobs?${query}`);
    $("rows").replaceChildren(...page.jobs.map(row));
    $("empty").hidden = page.jobs.length > 0;
    $("live").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    problem(null);
  } catch (error) {
    problem(error.message);
  }
  if (openJob) await showDetail(openJob);
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, POLL_MS);
}

async function openDetail(requestId) {
  openJob = requestId;
  $("detail").hidden = false;
  await showDetail(requestId);
}

async function showDetail(requestId) {
  let job;
  try {
    job = await api("GET", `/v1/jobs/${encodeURIComponent(requestId)}`);
  } catch (error) {
    problem(error.message);
    return;
  }
  if (openJob !== requestId) return;
  $("detail-title").textContent = job.request_id;
  const fields = $("detail-fields");
  fields.replaceChildren();
  const shown = [
    ["status", job.status], ["tag", job.tag], ["dataset", job.dataset],
    ["attempt", `${job.attempt} of ${job.max_attempts}`],
    ["progress", `${Math.round((job.progress ?? 0) * 100)} %`],
    ["rows", job.total_rows], ["size", bytes(job.total_bytes)],
    ["submitted", when(job.submitted_at)], ["completed", when(job.completed_at)],
    ["duplicates", job.duplicates], ["config", JSON.stringify(job.config)],
  ];
  for (const [name, value] of shown) {
    if (value === null || value === undefined || value === "") continue;
    fields.append(el("dt", name), el("dd", value, { "data-field": name }));
  }
  const error = $("detail-error");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";

  const files = $("detail-files");
  files.replaceChildren();
  (job.outputs || []).forEach((output, i) => {
    const name = output.key.split("/").pop();
    const url = (job.download_urls || [])[i];
    const item = el("li");
    if (url && /^https?:/i.test(url)) {
      item.append(el("a", name, { href: url, download: name, "data-testid": "file", rel: "noreferrer" }));
    } else {
      item.append(el("span", name));
    }
    item.append(el("span", ` ${bytes(output.bytes)} · ${output.rows} rows · sha256 ${output.sha256.slice(0, 12)}…`, { class: "meta" }));
    files.append(item);
  });
  if (!files.children.length) files.append(el("li", job.status === "SUCCESS" ? "none" : "when it succeeds", { class: "meta" }));
  const manifest = $("detail-manifest");
  manifest.replaceChildren();
  if (job.manifest_url && /^https?:/i.test(job.manifest_url)) {
    manifest.append(el("a", "manifest (every file with its SHA-256)", { href: job.manifest_url, rel: "noreferrer" }));
  }
  $("cancel").hidden = TERMINAL.has(job.status);
  $("retry").hidden = !["FAILED", "CANCELLED"].includes(job.status) || job.attempt >= job.max_attempts;
}

async function act(action) {
  if (!openJob) return;
  try {
    await api("POST", `/v1/jobs/${encodeURIComponent(openJob)}/${action}`);
    await refresh();
  } catch (error) {
    problem(error.message);
  }
}

function start() {
  const who = identity();
  $("sign-in").hidden = Boolean(who);
  $("jobs").hidden = !who;
  $("who").hidden = !who;
  if (!who) {
    clearTimeout(timer);
    $("detail").hidden = true;
    openJob = null;
    return;
  }
  $("who-channel").textContent = who.channel;
  refresh().then(schedule);
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    sessionStorage.setItem("exhaust.channel", String(form.get("channel")).trim());
    sessionStorage.setItem("exhaust.key", String(form.get("key") || ""));
    event.target.reset();
    start();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("exhaust.channel");
    sessionStorage.removeItem("exhaust.key");
    $("rows").replaceChildren();
    start();
  });
  $("filters").addEventListener("input", () => refresh());
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  $("close").addEventListener("click", () => { openJob = null; $("detail").hidden = true; });
  $("cancel").addEventListener("click", () => act("cancel"));
  $("retry").addEventListener("click", () => act("retry"));
  start();
});
